"""Pushing the log to a private Hugging Face dataset, for Spaces whose disk does not survive a
restart: `LogSync` is huggingface_hub's `CommitScheduler` with a snapshot step in front.

Every `every` minutes (and once at exit) it writes into its folder a consistent copy of the
SQLite file (SQLite's online backup, safe while the app writes), `turns.csv` (one row per turn
with its latest label and rating, for the Hub's viewer) and, when asked, the image files; then
the scheduler commits the files that changed. It reads the store and never writes to it.

A forgotten chat leaves the next snapshot, but earlier commits keep it unless the repo's
history is squashed (`squash_history=True`, at the cost of a history). Images are off by
default: they are what users are least likely to expect to leave the server.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path

from huggingface_hub import CommitScheduler

from safevlm.store.core import Store
from safevlm.store.errors import StoreError

logger = logging.getLogger(__name__)

DB_NAME = "safevlm.db"
CSV_NAME = "turns.csv"
IMAGES_NAME = "images"


def backup_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite file at `source`, swapped into `target` in one step."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(f"file:{source.resolve()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as error:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot snapshot {source}: {error}") from None
    os.replace(tmp, target)


def mirror_images(images_dir: Path, target: Path) -> int:
    """Copy image files missing from `target` and drop those the store no longer has;
    returns how many were copied. Image files never change once written (named by hash)."""
    have = {p.relative_to(images_dir) for p in images_dir.glob("*/*") if p.is_file() and not p.name.startswith(".")}
    mirrored = {p.relative_to(target) for p in target.glob("*/*") if p.is_file()} if target.exists() else set()
    for rel in have - mirrored:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(images_dir / rel, target / rel)
    for rel in mirrored - have:
        (target / rel).unlink()
    return len(have - mirrored)


class LogSync(CommitScheduler):
    """Push snapshots of `store` to the dataset `repo_id` (created private if missing).

    Raises whatever the Hub raises when the repo cannot be created or reached (a missing or
    read-only token, a wrong id, no network): the caller decides how to tell the host."""

    def __init__(self, store: Store, repo_id: str, *, every: float = 10, images: bool = False,
                 folder: str | Path | None = None, token: str | None = None,
                 squash_history: bool = False, hf_api=None) -> None:
        if not store.enabled:
            raise StoreError("logging is off (SAFEVLM_LOG=off): there is no log to push")
        self.store, self.images = store, images
        super().__init__(
            repo_id=repo_id, repo_type="dataset", private=True, every=every, token=token,
            folder_path=folder or store.path.parent / "hub-sync", squash_history=squash_history,
            hf_api=hf_api,
        )

    def snapshot(self) -> None:
        """Refresh the folder's files from the store (under the scheduler's lock, so a commit
        never lists a half-written file)."""
        with self.lock:
            backup_database(self.store.path, self.folder_path / DB_NAME)
            self.store.export_csv(self.folder_path / CSV_NAME)
            if self.images:
                copied = mirror_images(self.store.images_dir, self.folder_path / IMAGES_NAME)
                logger.debug("log sync: %d new image files", copied)

    def push_to_hub(self):
        self.snapshot()
        return super().push_to_hub()
