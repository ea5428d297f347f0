"""Folders and files the log writes beside its database: image files and exports.

Creates folders and writes files whole (temp file, fsync, rename) or not at all; failures
become StoreError naming the path. Knows nothing of SQLite or of what the bytes mean.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from safevlm.store.errors import StoreError


def make_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create folder {folder} ({error.strerror or error}); "
            "pick a writable location or fix its permissions"
        ) from None


def write_atomically(target: Path, data: bytes, fix: str) -> None:
    """Readers see the old file or the new one, never half of it; `fix` ends the error message.

    The temp name (`.<name>.<hex>.tmp`) is one that retention's orphan sweep recognises.
    """
    make_dir(target.parent)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        try:
            with open(temp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise StoreError(f"cannot write {target} ({error.strerror or error}); {fix}") from None
