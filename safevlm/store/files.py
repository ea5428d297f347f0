"""Folders and files the log writes beside its database: image files and exports.

Creates folders and writes files whole (temp file, fsync, rename) or not at all; failures
become StoreError naming the path. Knows nothing of SQLite or of what the bytes mean.
"""

from __future__ import annotations

from pathlib import Path

from safevlm import files
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

    The temp file (`safevlm.files`) is named so that retention's orphan sweep recognises it.
    """
    make_dir(target.parent)
    try:
        files.write_atomically(target, data)
    except OSError as error:
        raise StoreError(f"cannot write {target} ({error.strerror or error}); {fix}") from None
