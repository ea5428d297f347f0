"""The SQLite connection under a Store: opening the file, the lock, one transaction per write.

sqlite3 errors become StoreError messages that name the file and the fix. Knows no table:
the tables and their migrations are in `schema`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from safevlm.store.errors import StoreError
from safevlm.store.files import make_dir

logger = logging.getLogger(__name__)


class Connection:
    """One connection (`check_same_thread=False`) shared by threads, serialised by a lock.

    Every write is one `BEGIN IMMEDIATE` transaction, so other processes (the CLI, an
    annotation UI) wait up to `busy_timeout` seconds for the write lock instead of failing at
    commit. `read_only=True` opens the file with `mode=ro` (writes raise StoreError).
    """

    def __init__(self, path: Path, *, read_only: bool, busy_timeout: float) -> None:
        self.path = path
        self.read_only = read_only
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._db = self._connect()

    def _connect(self) -> Database:
        if self.read_only:
            if not self.path.is_file():
                raise StoreError(
                    f"no database at {self.path}; check the path (read-only viewers never create one)"
                )
            target = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        else:
            make_dir(self.path.parent)
            target = str(self.path)
        with self._errors("open the database"):
            conn = sqlite3.connect(
                target, uri=self.read_only, timeout=self.busy_timeout, check_same_thread=False
            )
            db = Database(conn, execute_plugins=False)
            try:
                db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                db.execute("PRAGMA foreign_keys = ON")
                if not self.read_only:
                    # A deleted turn's bytes are overwritten, not left in free pages: a
                    # user's "forget me" must not survive in the file or its backups.
                    db.execute("PRAGMA secure_delete = ON")
                    db.enable_wal()
                    # One fsync per turn is nothing next to generation; a committed turn then
                    # survives a power cut, not just a killed process.
                    db.execute("PRAGMA synchronous = FULL")
            except BaseException:
                conn.close()
                raise
        return db

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn sqlite3 errors into StoreError messages that name the file and the fix."""
        try:
            yield
        except sqlite3.Error as error:
            name = getattr(error, "sqlite_errorname", "") or ""
            text = str(error)
            if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
                raise StoreError(
                    f"database is locked: could not {action} because another connection held "
                    f"the write lock on {self.path} for more than {self.busy_timeout:g} s; "
                    "retry, or close the process holding it (an open sqlite3 shell, a long export)"
                ) from error
            if name.startswith("SQLITE_READONLY") or "readonly" in text:
                raise StoreError(
                    f"cannot {action}: {self.path} is read-only (the file, its folder or "
                    "the Store was opened read_only=True); make it writable or log elsewhere"
                ) from error
            if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
                raise StoreError(
                    f"cannot {action}: unable to open {self.path}; check that its folder "
                    "exists and is writable"
                ) from error
            if name.startswith("SQLITE_NOTADB") or "not a database" in text:
                raise StoreError(
                    f"{self.path} is not an SQLite database; point the store at another file"
                ) from error
            raise StoreError(f"could not {action} in {self.path}: {text}") from error

    @contextmanager
    def _write(self, action: str) -> Iterator[Database]:
        """One write transaction; on any error it rolls back and nothing earlier is touched."""
        if self.read_only:
            raise StoreError(
                f"cannot {action}: {self.path} was opened read-only; open Store(path) "
                "without read_only=True to write"
            )
        with self._lock, self._errors(action):
            conn = self._db.conn
            # IMMEDIATE takes the write lock up front: in WAL mode a deferred transaction
            # that read first fails with SQLITE_BUSY at its first write, without waiting.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _checkpoint(self) -> None:
        """Copy the WAL into the main file and truncate it to zero bytes, so that rows just
        deleted are gone from `-wal` too; a reader holding an old snapshot can make it
        partial (logged), and the next deletion's checkpoint finishes the job."""
        with self._lock, self._errors("checkpoint the write-ahead log"):
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            logger.warning("WAL checkpoint of %s was blocked by a reader; the -wal file may "
                           "still hold deleted rows until the next checkpoint", self.path)

    @contextmanager
    def _read(self, action: str) -> Iterator[Database]:
        with self._lock, self._errors(action):
            yield self._db

    def close(self) -> None:
        """Close the connection; the Store cannot be used afterwards."""
        with self._lock:
            self._db.close()
