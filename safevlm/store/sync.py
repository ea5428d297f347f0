"""Pushing the log to a private Hugging Face dataset, for Spaces whose disk does not survive a
restart: `LogSync` is huggingface_hub's `CommitScheduler` with a snapshot step in front, and
`restore_log` brings the last pushed log back onto an empty disk before the store opens it.

Every `every` minutes (and once at exit) it writes into its folder a consistent copy of the
SQLite file (SQLite's online backup, safe while the app writes), `turns.csv` (one row per turn
with its latest label and rating, for the Hub's viewer) and, when asked, the image files; then
the scheduler commits the files that changed, and the image files the store no longer has are
deleted from the dataset (the scheduler itself only ever adds). It reads the store and never
writes to it. It refuses a dataset that is not private.

A forgotten chat leaves the next snapshot, but earlier commits keep it unless the repo's
history is squashed (`squash_history=True`, at the cost of a history). Images are off by
default: they are what users are least likely to expect to leave the server.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from pathlib import Path, PurePosixPath

from huggingface_hub import CommitOperationDelete, CommitScheduler, HfApi

from safevlm.files import replacing
from safevlm.store.core import Store
from safevlm.store.errors import StoreError

logger = logging.getLogger(__name__)

DB_NAME = "safevlm.db"
CSV_NAME = "turns.csv"
IMAGES_NAME = "images"
REPO_TYPE = "dataset"
# safevlm.files' temporary files, and the journal SQLite keeps beside a backup in progress
TEMP_PATTERNS = ["*.tmp", "*.tmp-*"]


def backup_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite file at `source`, swapped into `target` in one step."""
    try:
        with replacing(target) as tmp:
            src = sqlite3.connect(f"file:{source.resolve()}?mode=ro", uri=True)
            try:
                dst = sqlite3.connect(tmp)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
            finally:
                src.close()
    except (sqlite3.Error, OSError) as error:
        where = f" into {error.filename}" if getattr(error, "filename", None) else ""
        raise StoreError(f"cannot snapshot {source}{where}: {getattr(error, 'strerror', None) or error}") from None


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


def is_image_file(path_in_repo: str) -> bool:
    """Whether a repo path is one of the pushed image files (`images/ab/abcd….png`)."""
    parts = PurePosixPath(path_in_repo).parts
    return len(parts) == 3 and parts[0] == IMAGES_NAME and ".." not in parts


def restore_log(db_path: str | Path, repo_id: str, *, images: bool = False,
                images_dir: str | Path | None = None, token: str | None = None,
                hf_api: HfApi | None = None) -> list[str]:
    """Download the dataset's `safevlm.db` (and with `images` its image files) when there is no
    log at `db_path`, so that a restarted Space continues its log instead of pushing an empty one
    over it. Call it before a `Store` opens `db_path`; a log already on disk is kept as it is.

    Returns the repo paths restored ([] when a local log exists or the dataset has none yet);
    raises whatever the Hub raises when it cannot be reached."""
    db_path = Path(db_path)
    if db_path.exists():
        return []
    api = hf_api or HfApi(token=token)
    if not api.file_exists(repo_id, DB_NAME, repo_type=REPO_TYPE):  # also False for a new repo
        return []
    images_dir = Path(images_dir) if images_dir is not None else db_path.parent / IMAGES_NAME  # the Store's default
    wanted = [p for p in api.list_repo_files(repo_id, repo_type=REPO_TYPE) if is_image_file(p)] if images else []
    db_path.parent.mkdir(parents=True, exist_ok=True)
    restored = []
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=db_path.parent) as tmp:
        for name in wanted:  # images first: a log file on disk means the restore finished
            target = images_dir.joinpath(*PurePosixPath(name).parts[1:])
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(api.hf_hub_download(repo_id, name, repo_type=REPO_TYPE, local_dir=tmp), target)
                restored.append(name)
        shutil.move(api.hf_hub_download(repo_id, DB_NAME, repo_type=REPO_TYPE, local_dir=tmp), db_path)
    logger.info("restored the log from the dataset %s: %s (%d bytes) and %d image files into %s",
                repo_id, db_path, db_path.stat().st_size, len(restored), images_dir)
    return [DB_NAME, *restored]


def require_private(api: HfApi, repo_id: str) -> None:
    """Refuse a dataset that anyone can read: create_repo's private=True does not change one
    that already exists."""
    if not api.repo_info(repo_id, repo_type=REPO_TYPE).private:
        raise StoreError(
            f"the dataset {repo_id} is public, so every logged prompt would be published: "
            "make it private in its settings on the Hub, or name another dataset"
        )


class LogSync(CommitScheduler):
    """Push snapshots of `store` to the dataset `repo_id` (created private if missing; an
    existing dataset that is not private raises StoreError before anything is pushed).

    Raises whatever the Hub raises when the repo cannot be created or reached (a missing or
    read-only token, a wrong id, no network): the caller decides how to tell the host."""

    def __init__(self, store: Store, repo_id: str, *, every: float = 10, images: bool = False,
                 folder: str | Path | None = None, token: str | None = None,
                 squash_history: bool = False, hf_api: HfApi | None = None) -> None:
        if not store.enabled:
            raise StoreError("logging is off (SAFEVLM_LOG=off): there is no log to push")
        self.store, self.images = store, images
        # Checked before the scheduler starts: its thread pushes as soon as it exists.
        api = hf_api or HfApi(token=token)
        repo_id = api.create_repo(repo_id=repo_id, private=True, repo_type=REPO_TYPE, exist_ok=True).repo_id
        require_private(api, repo_id)
        super().__init__(
            repo_id=repo_id, repo_type=REPO_TYPE, private=True, every=every, token=token,
            folder_path=folder or store.path.parent / "hub-sync", squash_history=squash_history,
            hf_api=api, ignore_patterns=TEMP_PATTERNS,  # a snapshot killed mid-write is never pushed
        )

    def snapshot(self) -> None:
        """Refresh the folder's files from the store (under the scheduler's lock, so a commit
        never lists a half-written file)."""
        with self.lock:
            for name in (DB_NAME, CSV_NAME):  # left by a process killed mid-snapshot
                for stale in self.folder_path.glob(f".{name}.*.tmp*"):
                    stale.unlink(missing_ok=True)
            backup_database(self.store.path, self.folder_path / DB_NAME)
            self.store.export_csv(self.folder_path / CSV_NAME)
            if self.images:
                copied = mirror_images(self.store.images_dir, self.folder_path / IMAGES_NAME)
                logger.debug("log sync: %d new image files", copied)

    def delete_gone_images(self) -> list[str]:
        """Delete from the dataset the image files the folder no longer has (a forgotten or
        purged chat's), in a commit of their own; returns their repo paths."""
        pushed = self.api.list_repo_files(self.repo_id, repo_type=self.repo_type, revision=self.revision)
        with self.lock:
            folder = self.folder_path / IMAGES_NAME
            have = {f"{IMAGES_NAME}/{p.relative_to(folder).as_posix()}" for p in folder.glob("*/*")}
        gone = sorted(p for p in pushed if is_image_file(p) and p not in have)
        if not gone:
            return []
        self.api.create_commit(
            repo_id=self.repo_id, repo_type=self.repo_type, revision=self.revision,
            operations=[CommitOperationDelete(path_in_repo=p) for p in gone],
            commit_message=f"Delete {len(gone)} image files gone from the log",
        )
        for path in gone:  # the same image uploaded again must count as new
            self.last_uploaded.pop(self.folder_path / path, None)
        logger.info("log sync: deleted %d image files from the dataset %s", len(gone), self.repo_id)
        return gone

    def push_to_hub(self):
        self.snapshot()
        info = super().push_to_hub()
        if self.images:
            self.delete_gone_images()
        return info
