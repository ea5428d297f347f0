"""Files that readers see whole: the old version or the new one, never half of either.

Every report, policy, export and store file the project rewrites goes through here: the
new content is written to a temporary file beside the target (same folder, so the final
rename stays on one filesystem), flushed to disk, then renamed over the target in one
step. A failed or interrupted write leaves the previous file as it was and no temporary
file behind. Temporary names are `.<name>.<random>.tmp`, which the image store's orphan
sweep recognises and the log sync never uploads. The new file gets the mode the old one had,
or the one a plain `open` would give (0666 less the umask), not mkstemp's private 0600.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


@contextmanager
def replacing(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target` (an empty file) that replaces `target` when the
    block ends without an error; on an error it is removed and `target` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    temp = Path(name)
    try:
        yield temp
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
