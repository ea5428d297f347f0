"""Files that readers see whole: the old version or the new one, never half of either.

Every report, policy, export and store file the project rewrites goes through here: the
new content is written to a temporary file beside the target (same folder, so the final
rename stays on one filesystem), flushed to disk, then renamed over the target in one
step. A failed or interrupted write leaves the previous file as it was and no temporary
file behind. Temporary names are `.<name>.<random>.tmp`, which the image store's orphan
sweep recognises and the log sync never uploads. The new file is created the way a plain
`open` creates one (0666 less the umask), and a replaced file's mode is kept.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _create_temp(folder: Path, name: str) -> Path:
    while True:
        temp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temp
        except FileExistsError:
            continue


@contextmanager
def replacing(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target` (an empty file) that replaces `target` when the
    block ends without an error; on an error it is removed and `target` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _create_temp(target.parent, target.name)
    try:
        yield temp
        try:
            os.chmod(temp, stat.S_IMODE(target.stat().st_mode))  # keep the replaced file's mode
        except FileNotFoundError:
            pass
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def write_atomically(target: str | Path, data: str | bytes) -> Path:
    """Write `data` (text is UTF-8) to `target` through `replacing`; returns the path."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with replacing(target) as temp, open(temp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(target)
