"""The SQLite log of chat turns (sessions, images by content hash, turns, feedback, annotations).

Owns the schema, its migrations, the image files under `images_dir`, exports and retention.
Knows no model and no UI: plain values in, plain values out; the app, CLI and eval call it.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlite_utils import Database

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "TRAINING_KEYS", "Store", "StoreError"]

logger = logging.getLogger(__name__)

CLIENTS = ("ui", "api", "cli")
SOURCES = CLIENTS
DECISIONS = ("allow", "caution", "refuse")
MODES = ("hint", "tokens", "both", "off")
STATUSES = ("complete", "stopped", "error")
JSON_TURN_COLUMNS = ("type_probs", "level_probs", "thresholds", "timings")
TRAINING_KEYS = ("image", "prompt", "response", "type", "level", "source", "split")

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_FORMAT_RE = re.compile(r"^[a-z0-9]{1,10}$")
_IMAGE_FILE_RE = re.compile(r"^(\.)?[0-9a-f]{64}\.[a-z0-9]{1,10}(\..+\.tmp)?$")
# Spreadsheet apps run cells that start with these as formulas: prompts come from the public.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class StoreError(RuntimeError):
    """The log cannot do what was asked; the message says why and what to do."""


# --- schema ------------------------------------------------------------------------------
# Migrations are frozen history: never edit one that has shipped, append a new one.
# Version 1 is plain SQL rather than sqlite-utils' generated DDL so that it stays the same
# whatever sqlite-utils version runs it, and because `AUTOINCREMENT` (turn ids are never
# reused after a purge, so an annotator's open turn id cannot point at a newer turn) is not
# part of sqlite-utils' public `create()`.

_V1_TABLES = (
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        client TEXT NOT NULL,
        logging INTEGER NOT NULL CHECK (logging IN (0, 1)),
        settings TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE images (
        hash TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        bytes INTEGER NOT NULL,
        created TEXT NOT NULL
    )""",
    """CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        turn_index INTEGER NOT NULL,
        created TEXT NOT NULL,
        image_hash TEXT REFERENCES images(hash),
        prompt TEXT NOT NULL,
        response TEXT NOT NULL,
        type TEXT,
        level INTEGER,
        decision TEXT,
        flagged INTEGER NOT NULL CHECK (flagged IN (0, 1)),
        type_probs TEXT,
        level_probs TEXT,
        hint TEXT,
        mode TEXT,
        thresholds TEXT,
        base TEXT,
        checkpoint TEXT,
        timings TEXT,
        source TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'complete',
        error TEXT,
        UNIQUE (session_id, turn_index)
    )""",
    """CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
        created TEXT NOT NULL,
        rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
        comment TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE annotations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
        created TEXT NOT NULL,
        annotator TEXT NOT NULL,
        decision_correct INTEGER CHECK (decision_correct IN (0, 1)),
        true_type TEXT,
        true_level INTEGER CHECK (true_level >= 0),
        response_rating INTEGER CHECK (response_rating BETWEEN 1 AND 5),
        note TEXT NOT NULL DEFAULT ''
    )""",
)


def _migration_1_initial_tables(db: Database) -> None:
    for statement in _V1_TABLES:
        db.execute(statement)


def _migration_2_reader_text_and_indexes(db: Database) -> None:
    db["turns"].add_column("reader_text", str)
    db["turns"].create_index(["created"], index_name="idx_turns_created")
    db["turns"].create_index(["decision"], index_name="idx_turns_decision")
    db["turns"].create_index(["type"], index_name="idx_turns_type")
    db["turns"].create_index(["image_hash"], index_name="idx_turns_image_hash")
    db["feedback"].create_index(["turn_id"], index_name="idx_feedback_turn_id")
    db["annotations"].create_index(["turn_id", "id"], index_name="idx_annotations_turn_id_id")


def _migration_3_label_views(db: Database) -> None:
    # Annotations are append-only; the current label of a turn is its newest row.
    db.create_view(
        "latest_annotations",
        """SELECT id AS annotation_id, turn_id, created AS annotated, annotator,
       decision_correct, true_type, true_level, response_rating, note
FROM annotations
WHERE id IN (SELECT max(id) FROM annotations GROUP BY turn_id)""",
    )
    db.create_view(
        "labelled_turns",
        """SELECT turns.*, la.annotation_id, la.annotated, la.annotator, la.decision_correct,
       la.true_type, la.true_level, la.response_rating, la.note
FROM turns JOIN latest_annotations AS la ON la.turn_id = turns.id""",
    )


MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    _migration_1_initial_tables,
    _migration_2_reader_text_and_indexes,
    _migration_3_label_views,
)
SCHEMA_VERSION = len(MIGRATIONS)
_TABLES = ("sessions", "images", "turns", "feedback", "annotations")

# One query shape for list_turns, get_turn and the exports: a turn, its latest label, its
# users' thumbs and where its image lives.
_TURN_SELECT = """SELECT turns.*, images.path AS image_relpath,
       la.annotation_id, la.annotated, la.annotator, la.decision_correct, la.true_type,
       la.true_level, la.response_rating, la.note,
       (SELECT count(*) FROM feedback WHERE feedback.turn_id = turns.id AND rating = 1)
           AS feedback_up,
       (SELECT count(*) FROM feedback WHERE feedback.turn_id = turns.id AND rating = -1)
           AS feedback_down
FROM turns
LEFT JOIN latest_annotations AS la ON la.turn_id = turns.id
LEFT JOIN images ON images.hash = turns.image_hash"""


@dataclasses.dataclass(frozen=True)
class _PreparedImage:
    hash: str
    data: bytes
    width: int | None
    height: int | None
    format: str
    relpath: str


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: Any) -> Any:
    # numpy and torch scalars/arrays both offer tolist(); dataclasses (policy.Thresholds) asdict.
    if hasattr(value, "tolist"):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _to_json(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StoreError(
            f"{name} must be plain JSON values (dict/list/str/number): {error}"
        ) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(value: Any, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise StoreError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


class Store:
    """The chat log of one SQLite file and its images folder; safe to share between threads.

    One connection (`check_same_thread=False`) serialised by a lock within the process; every
    write is one `BEGIN IMMEDIATE` transaction, so other processes (the CLI, an annotation UI)
    wait up to `busy_timeout` seconds for the write lock instead of failing at commit.
    `enabled=False` keeps the schema readable but writes no session, turn or image;
    `read_only=True` opens the file with `mode=ro` for viewers (writes raise StoreError).
    """

    def __init__(
        self,
        path: str | Path,
        images_dir: str | Path | None = None,
        *,
        enabled: bool = True,
        read_only: bool = False,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.images_dir = (
            Path(images_dir) if images_dir is not None else self.path.parent / "images"
        )
        self.enabled = enabled
        self.read_only = read_only
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._db = self._connect()
        try:
            if read_only:
                self._check_version_readable()
            else:
                self._migrate()
                if enabled:
                    self._make_dir(self.images_dir)
        except BaseException:
            self._db.close()
            raise

    # --- connection, errors, transactions ------------------------------------------------

    def _connect(self) -> Database:
        if self.read_only:
            if not self.path.is_file():
                raise StoreError(
                    f"no database at {self.path}; check the path (read-only viewers never create one)"
                )
            uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
            target, is_uri = uri, True
        else:
            self._make_dir(self.path.parent)
            target, is_uri = str(self.path), False
        with self._errors("open the database"):
            conn = sqlite3.connect(
                target, uri=is_uri, timeout=self.busy_timeout, check_same_thread=False
            )
            db = Database(conn, execute_plugins=False)
            try:
                db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                db.execute("PRAGMA foreign_keys = ON")
                if not self.read_only:
                    db.enable_wal()
                    # One fsync per turn is nothing next to generation; a committed turn then
                    # survives a power cut, not just a killed process.
                    db.execute("PRAGMA synchronous = FULL")
            except BaseException:
                conn.close()
                raise
        return db

    def _make_dir(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create folder {folder} ({error.strerror or error}); "
                "pick a writable location or fix its permissions"
            ) from None

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

    @contextmanager
    def _read(self, action: str) -> Iterator[Database]:
        with self._lock, self._errors(action):
            yield self._db

    def close(self) -> None:
        """Close the connection; the Store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        flags = "" if self.enabled else ", enabled=False"
        flags += ", read_only=True" if self.read_only else ""
        return f"Store({str(self.path)!r}{flags})"

    # --- schema version ------------------------------------------------------------------

    def _user_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _check_version_readable(self) -> None:
        with self._read("read the schema version"):
            version = self._user_version()
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, this code reads version "
                f"{SCHEMA_VERSION}; open it once with Store(path) (read-write) to migrate it"
                if version < SCHEMA_VERSION
                else f"{self.path} has schema version {version}, newer than this code's "
                f"{SCHEMA_VERSION}; upgrade safevlm"
            )

    def _migrate(self) -> None:
        with self._read("read the schema version") as db:
            version = self._user_version()
            foreign_tables = [n for n in db.table_names() if not n.startswith("sqlite_")]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this code's "
                f"{SCHEMA_VERSION}; upgrade safevlm before writing to it"
            )
        if version == 0 and foreign_tables:
            raise StoreError(
                f"{self.path} already holds tables ({', '.join(foreign_tables)}) but no "
                "safevlm schema version; it is not a SafeVLM log, point the store at a new file"
            )
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            with self._write(f"migrate the schema to version {number}") as db:
                # Another process may have migrated while we waited for the lock.
                if self._user_version() >= number:
                    continue
                migration(db)
                db.execute(f"PRAGMA user_version = {number}")
            logger.info(
                "migrated %s to schema version %d (%s)", self.path, number, migration.__name__
            )

    # --- sessions --------------------------------------------------------------------------

    def start_session(
        self, client: str = "ui", logging: bool = True, settings: Mapping[str, Any] | None = None
    ) -> str:
        """Record a new chat session and return its id (a uuid4 string).

        `logging=False` records only that the session exists and opted out, so that its turns
        are never written, whichever process logs them. A disabled store writes nothing.
        """
        _choice(client, CLIENTS, "client")
        session_id = str(uuid.uuid4())
        if not self.enabled:
            return session_id
        record = {
            "id": session_id,
            "created": _now(),
            "client": client,
            "logging": bool(logging),
            "settings": _to_json(dict(settings or {}), "settings"),
        }
        with self._write("start a session") as db:
            db["sessions"].insert(record)
        return session_id

    def set_session_logging(self, session_id: str, logging: bool) -> None:
        """Switch logging of a session's future turns on or off (earlier turns stay)."""
        if not self.enabled:
            return
        with self._write("change session logging") as db:
            self._session_logging(db, session_id)
            db.execute(
                "UPDATE sessions SET logging = ? WHERE id = ?", [int(bool(logging)), session_id]
            )

    def delete_session(self, session_id: str) -> int:
        """Delete a session with its turns, their feedback and labels, and the images no
        other turn uses (a user's "forget me"). Returns the number of turns deleted."""
        with self._write("delete a session") as db:
            self._session_logging(db, session_id)
            turn_ids = [
                r[0] for r in db.execute("SELECT id FROM turns WHERE session_id = ?", [session_id])
            ]
            count = self._delete_turns(db, turn_ids)
            db.execute("DELETE FROM sessions WHERE id = ?", [session_id])
        logger.info("deleted session %s and its %d turns", session_id, count)
        return count

    def _session_logging(self, db: Database, session_id: str) -> bool:
        row = db.execute("SELECT logging FROM sessions WHERE id = ?", [session_id]).fetchone()
        if row is None:
            raise StoreError(f"unknown session {session_id!r}; call start_session() first")
        return bool(row[0])

    # --- images ----------------------------------------------------------------------------

    def save_image(
        self,
        data: bytes | str | Path,
        width: int | None = None,
        height: int | None = None,
        format: str | None = None,
    ) -> str:
        """Store an image once by the sha256 of its bytes and return that hash.

        `data` is the file's bytes or a path to it. Missing width/height/format are read from
        the image header with Pillow (bytes it cannot read are kept as format 'bin'). Saving
        the same bytes again writes nothing new. A
        disabled store returns the hash and writes nothing. To respect a session's logging
        opt-out, prefer `log_turn(..., image=data)`, which saves the image only if it logs.
        """
        image = self._prepare_image(data, width, height, format)
        if self.enabled:
            with self._write("save an image") as db:
                self._put_image(db, image)
        return image.hash

    def image_path(self, hash: str) -> Path:
        """Absolute path of a stored image file."""
        if not isinstance(hash, str) or not _HASH_RE.match(hash):
            raise StoreError(f"{hash!r} is not an image hash (64 lowercase hex digits)")
        with self._read("look up an image") as db:
            row = db.execute("SELECT path FROM images WHERE hash = ?", [hash]).fetchone()
        if row is None:
            raise StoreError(f"no image with hash {hash} in {self.path}; save_image() it first")
        return (self.images_dir / row[0]).resolve()

    def _prepare_image(
        self, data: bytes | str | Path, width: int | None, height: int | None, format: str | None
    ) -> _PreparedImage:
        if isinstance(data, str | Path):
            try:
                data = Path(data).read_bytes()
            except OSError as error:
                raise StoreError(
                    f"cannot read image file {data}: {error.strerror or error}"
                ) from None
        if not isinstance(data, bytes | bytearray) or not data:
            raise StoreError("image data must be non-empty bytes or a path to an image file")
        data = bytes(data)
        if width is None or height is None or format is None:
            try:
                with Image.open(io.BytesIO(data)) as opened:
                    width = opened.width if width is None else width
                    height = opened.height if height is None else height
                    format = format or opened.format
            except (
                UnidentifiedImageError,
                OSError,
                ValueError,
                Image.DecompressionBombError,
            ) as error:
                # Keep the bytes anyway: an unreadable upload is still evidence of the turn.
                logger.warning(
                    "Pillow cannot read a %d-byte image (%s); storing it as-is", len(data), error
                )
        format = (format or "bin").lower()
        format = "jpg" if format == "jpeg" else format
        if not _FORMAT_RE.match(format):
            raise StoreError(f"image format must be a short name such as 'png'; got {format!r}")
        digest = hashlib.sha256(data).hexdigest()
        relpath = f"{digest[:2]}/{digest}.{format}"
        return _PreparedImage(digest, data, width, height, format, relpath)

    def _put_image(self, db: Database, image: _PreparedImage) -> None:
        """Inside a write transaction: the file first, then the row (a crash leaves at worst
        an orphan file, which purge_older_than() sweeps)."""
        row = db.execute("SELECT path FROM images WHERE hash = ?", [image.hash]).fetchone()
        relpath = row[0] if row else image.relpath
        target = self.images_dir / relpath
        if not target.is_file():
            self._write_file_atomically(target, image.data)
        if row is None:
            db["images"].insert(
                {
                    "hash": image.hash,
                    "path": relpath,
                    "width": image.width,
                    "height": image.height,
                    "format": image.format,
                    "bytes": len(image.data),
                    "created": _now(),
                }
            )

    def _write_file_atomically(self, target: Path, data: bytes) -> None:
        self._make_dir(target.parent)
        try:
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise StoreError(
                f"cannot write {target} ({error.strerror or error}); make {self.images_dir} writable"
            ) from None

    # --- turns -----------------------------------------------------------------------------

    def log_turn(
        self,
        session_id: str,
        *,
        prompt: str,
        response: str,
        decision: str | None,
        type: str | None,
        level: int | None,
        flagged: bool,
        type_probs: Mapping[str, float] | None,
        level_probs: Sequence[float] | None,
        hint: str | None,
        mode: str | None,
        thresholds: Any,
        base: str | None,
        checkpoint: str | None,
        timings: Mapping[str, float] | None,
        source: str,
        image_hash: str | None = None,
        image: bytes | str | Path | None = None,
        reader_text: str | None = None,
        status: str = "complete",
        error: str | None = None,
    ) -> int | None:
        """Write one turn in one transaction and return its id, or None if not logged.

        Nothing is written when the store is disabled or the session opted out of logging.
        Pass the image either as `image_hash` (already saved) or as `image` (bytes or a path:
        saved here, only if the turn is logged). `turn_index` counts from 0 per session.
        `decision` and `mode` may be None only for a turn with status 'error' (the classify
        step never ran); `type` and `level` may be None whenever the model gave none.
        """
        if not self.enabled:
            return None
        _choice(status, STATUSES, "status")
        _choice(source, SOURCES, "source")
        if decision is not None or status != "error":
            _choice(decision, DECISIONS, "decision")
        if mode is not None or status != "error":
            _choice(mode, MODES, "mode")
        if level is not None and (not _is_int(level) or level < 0):
            raise StoreError(f"level must be an integer >= 0; got {level!r}")
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise StoreError("prompt and response must be strings (use '' for none)")
        if image is not None and image_hash is not None:
            raise StoreError("pass the image as image= or image_hash=, not both")
        prepared = self._prepare_image(image, None, None, None) if image is not None else None
        record = {
            "session_id": session_id,
            "prompt": prompt,
            "response": response,
            "type": type,
            "level": level,
            "decision": decision,
            "flagged": bool(flagged),
            "type_probs": _to_json(type_probs, "type_probs"),
            "level_probs": _to_json(level_probs, "level_probs"),
            "hint": hint,
            "mode": mode,
            "thresholds": _to_json(thresholds, "thresholds"),
            "base": base,
            "checkpoint": checkpoint,
            "timings": _to_json(timings, "timings"),
            "source": source,
            "reader_text": reader_text,
            "status": status,
            "error": error,
        }
        with self._write("log a turn") as db:
            if not self._session_logging(db, session_id):
                return None
            if prepared is not None:
                self._put_image(db, prepared)
                image_hash = prepared.hash
            elif image_hash is not None:
                row = db.execute("SELECT path FROM images WHERE hash = ?", [image_hash]).fetchone()
                if row is None:
                    raise StoreError(
                        f"image {image_hash!r} is not in the store; save_image() it first or pass image="
                    )
            (last_index,) = db.execute(
                "SELECT max(turn_index) FROM turns WHERE session_id = ?", [session_id]
            ).fetchone()
            record["turn_index"] = 0 if last_index is None else last_index + 1
            record["created"] = _now()
            record["image_hash"] = image_hash
            turn_id = db["turns"].insert(record).last_pk
        logger.debug("logged turn %s (session %s, %s)", turn_id, session_id, decision)
        return turn_id

    def _turn_exists(self, db: Database, turn_id: int) -> None:
        if (
            not _is_int(turn_id)
            or db.execute("SELECT 1 FROM turns WHERE id = ?", [turn_id]).fetchone() is None
        ):
            raise StoreError(
                f"no turn with id {turn_id!r} in {self.path}; it was never logged or was purged"
            )

    def add_feedback(self, turn_id: int, rating: int, comment: str = "") -> int:
        """Record a user's thumbs up (+1) or down (-1) on a turn; returns the feedback id."""
        if not _is_int(rating) or rating not in (-1, 1):
            raise StoreError(f"rating must be +1 (thumbs up) or -1 (thumbs down); got {rating!r}")
        with self._write("add feedback") as db:
            self._turn_exists(db, turn_id)
            record = {
                "turn_id": turn_id,
                "created": _now(),
                "rating": rating,
                "comment": comment or "",
            }
            return db["feedback"].insert(record).last_pk

    def annotate(
        self,
        turn_id: int,
        *,
        annotator: str,
        decision_correct: bool | None = None,
        true_type: str | None = None,
        true_level: int | None = None,
        response_rating: int | None = None,
        note: str = "",
    ) -> int:
        """Append an annotator's label for a turn and return its id.

        Labels are never overwritten: each call adds a row, and the turn's current label is
        its newest row (view `latest_annotations`), so concurrent annotators lose nothing.
        """
        if not isinstance(annotator, str) or not annotator.strip():
            raise StoreError("annotator must be a non-empty name so labels can be traced")
        if decision_correct is not None and not isinstance(decision_correct, bool):
            raise StoreError(
                f"decision_correct must be True, False or None; got {decision_correct!r}"
            )
        if true_level is not None and (not _is_int(true_level) or true_level < 0):
            raise StoreError(f"true_level must be an integer >= 0 or None; got {true_level!r}")
        if response_rating is not None and (
            not _is_int(response_rating) or not 1 <= response_rating <= 5
        ):
            raise StoreError(
                f"response_rating must be an integer from 1 to 5 or None; got {response_rating!r}"
            )
        if true_type is not None and (not isinstance(true_type, str) or not true_type):
            raise StoreError(f"true_type must be a type name or None; got {true_type!r}")
        record = {
            "turn_id": turn_id,
            "created": _now(),
            "annotator": annotator.strip(),
            "decision_correct": decision_correct,
            "true_type": true_type,
            "true_level": true_level,
            "response_rating": response_rating,
            "note": note or "",
        }
        with self._write("annotate a turn") as db:
            self._turn_exists(db, turn_id)
            return db["annotations"].insert(record).last_pk

    # --- reading ---------------------------------------------------------------------------

    def _decode_turn(self, row: dict[str, Any]) -> dict[str, Any]:
        for column in JSON_TURN_COLUMNS:
            if row.get(column) is not None:
                row[column] = json.loads(row[column])
        row["flagged"] = bool(row["flagged"])
        if row["decision_correct"] is not None:
            row["decision_correct"] = bool(row["decision_correct"])
        relpath = row.pop("image_relpath")
        row["image_path"] = str((self.images_dir / relpath).resolve()) if relpath else None
        return row

    def list_turns(
        self,
        decision: str | None = None,
        type: str | None = None,
        unlabelled: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Turns newest first, JSON decoded, with their latest label (annotation_id, annotator,
        annotated, decision_correct, true_type, true_level, response_rating, note; None when
        unlabelled), feedback_up/feedback_down counts and image_path. `type` filters on the
        model's predicted type; `unlabelled=True` keeps turns nobody has annotated yet."""
        if decision is not None:
            _choice(decision, DECISIONS, "decision")
        if not _is_int(limit) or limit < 1 or not _is_int(offset) or offset < 0:
            raise StoreError(
                f"limit must be >= 1 and offset >= 0; got limit={limit!r}, offset={offset!r}"
            )
        where, params = [], []
        if decision is not None:
            where.append("turns.decision = ?")
            params.append(decision)
        if type is not None:
            where.append("turns.type = ?")
            params.append(type)
        if unlabelled:
            where.append("la.annotation_id IS NULL")
        sql = _TURN_SELECT
        if where:
            sql += "\nWHERE " + " AND ".join(where)
        sql += "\nORDER BY turns.id DESC LIMIT ? OFFSET ?"
        with self._read("list turns") as db:
            rows = list(db.query(sql, [*params, limit, offset]))
        return [self._decode_turn(row) for row in rows]

    def get_turn(self, turn_id: int) -> dict[str, Any] | None:
        """One turn shaped like a list_turns() row, or None if there is no such turn."""
        with self._read("read a turn") as db:
            rows = list(db.query(_TURN_SELECT + "\nWHERE turns.id = ?", [turn_id]))
        return self._decode_turn(rows[0]) if rows else None

    def annotation_history(self, turn_id: int) -> list[dict[str, Any]]:
        """Every label ever saved for a turn, oldest first (disagreements stay visible)."""
        with self._read("read annotations") as db:
            rows = list(
                db.query("SELECT * FROM annotations WHERE turn_id = ? ORDER BY id", [turn_id])
            )
        for row in rows:
            if row["decision_correct"] is not None:
                row["decision_correct"] = bool(row["decision_correct"])
        return rows

    def count_turns(self) -> int:
        """Number of logged turns."""
        with self._read("count turns") as db:
            return db.execute("SELECT count(*) FROM turns").fetchone()[0]

    # --- exports ---------------------------------------------------------------------------

    def _all_turns(self, labelled_only: bool) -> list[dict[str, Any]]:
        sql = _TURN_SELECT
        if labelled_only:
            sql += "\nWHERE la.annotation_id IS NOT NULL"
        with self._read("read turns for export") as db:
            return list(db.query(sql + "\nORDER BY turns.id"))

    def export_jsonl(
        self, path: str | Path, labelled_only: bool = True, min_response_rating: int | None = None
    ) -> int:
        """Write turns as training records {image, prompt, response, type, level, source, split}
        and return how many were written.

        type/level are the annotation's true_type/true_level when given, else the model's;
        source is "annotation" for labelled turns and "log" for unlabelled ones. Skipped, as
        unfit to train on: turns that did not complete (stopped, error), turns whose latest
        label says the decision was wrong without giving the true type or level, and, with
        `min_response_rating`, responses rated below it.
        """
        records, skipped = [], 0
        for row in self._all_turns(labelled_only):
            labelled = row["annotation_id"] is not None
            wrong_without_fix = (
                row["decision_correct"] == 0
                and row["true_type"] is None
                and row["true_level"] is None
            )
            low_rated = (
                min_response_rating is not None
                and row["response_rating"] is not None
                and row["response_rating"] < min_response_rating
            )
            if row["status"] != "complete" or wrong_without_fix or low_rated:
                skipped += 1
                continue
            relpath = row["image_relpath"]
            records.append(
                {
                    "image": str((self.images_dir / relpath).resolve()) if relpath else None,
                    "prompt": row["prompt"],
                    "response": row["response"],
                    "type": row["true_type"] if row["true_type"] is not None else row["type"],
                    "level": row["true_level"] if row["true_level"] is not None else row["level"],
                    "source": "annotation" if labelled else "log",
                    "split": "train",
                }
            )
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        self._write_text_atomically(Path(path), lines)
        if skipped:
            logger.warning(
                "export skipped %d turns unfit for training (see export_jsonl doc)", skipped
            )
        logger.info("exported %d training records to %s", len(records), path)
        return len(records)

    def export_csv(
        self, path: str | Path, labelled_only: bool = False, escape_formulas: bool = True
    ) -> int:
        """Write one row per turn with its latest label and feedback counts; returns the row
        count. JSON columns stay JSON text. `escape_formulas` prefixes text cells starting with
        = + - @ with an apostrophe so a spreadsheet does not run a prompt as a formula."""
        rows = self._all_turns(labelled_only)
        with self._read("read the turns columns") as db:
            columns = [c.name for c in db["turns"].columns]
        columns += [
            "image_path", "annotation_id", "annotated", "annotator", "decision_correct",
            "true_type", "true_level", "response_rating", "note", "feedback_up", "feedback_down",
        ]  # fmt: skip
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            relpath = row.pop("image_relpath")
            row["image_path"] = str((self.images_dir / relpath).resolve()) if relpath else None
            if escape_formulas:
                row = {
                    k: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_PREFIXES) else v
                    for k, v in row.items()
                }
            writer.writerow(row)
        self._write_text_atomically(Path(path), buffer.getvalue())
        logger.info("exported %d turns to %s", len(rows), path)
        return len(rows)

    def _write_text_atomically(self, path: Path, text: str) -> None:
        self._make_dir(path.parent)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            temp.write_text(text, encoding="utf-8", newline="")
            os.replace(temp, path)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise StoreError(
                f"cannot write {path} ({error.strerror or error}); pick a writable path"
            ) from None

    # --- retention -------------------------------------------------------------------------

    def purge_older_than(self, days: float) -> int:
        """Delete turns created more than `days` ago with their feedback and labels, then
        sessions left empty, image rows and files no turn uses any more, and orphan image
        files (from a crash between file and row) older than the cutoff. Returns turns deleted."""
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            raise StoreError(f"days must be a number >= 0; got {days!r}")
        cutoff_moment = datetime.now(UTC) - timedelta(days=days)
        cutoff = _iso(cutoff_moment)
        with self._write("purge old turns") as db:
            turn_ids = [
                r[0] for r in db.execute("SELECT id FROM turns WHERE created < ?", [cutoff])
            ]
            count = self._delete_turns(db, turn_ids)
            db.execute(
                "DELETE FROM sessions WHERE created < ? AND id NOT IN (SELECT session_id FROM turns)",
                [cutoff],
            )
            self._delete_unreferenced_images(db, older_than=cutoff)
            self._sweep_orphan_files(db, cutoff_moment.timestamp())
        logger.info("purged %d turns older than %g days from %s", count, days, self.path)
        return count

    def _delete_turns(self, db: Database, turn_ids: list[int]) -> int:
        hashes: set[str] = set()
        for start in range(0, len(turn_ids), 500):
            chunk = turn_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            hashes.update(
                r[0]
                for r in db.execute(
                    f"SELECT DISTINCT image_hash FROM turns WHERE id IN ({marks})", chunk
                )
                if r[0]
            )
            # feedback and annotations go with their turn: ON DELETE CASCADE.
            db.execute(f"DELETE FROM turns WHERE id IN ({marks})", chunk)
        self._delete_unreferenced_images(db, candidates=sorted(hashes))
        return len(turn_ids)

    def _delete_unreferenced_images(
        self, db: Database, candidates: list[str] | None = None, older_than: str | None = None
    ) -> None:
        """Inside the write transaction, so a turn logged concurrently cannot re-use an image
        whose file is being removed (it waits, then rewrites the file)."""
        sql = "SELECT hash, path FROM images WHERE hash NOT IN (SELECT image_hash FROM turns WHERE image_hash IS NOT NULL)"
        params: list[Any] = []
        if older_than is not None:
            sql += " AND created < ?"
            params.append(older_than)
        rows = db.execute(sql, params).fetchall()
        if candidates is not None:
            wanted = set(candidates)
            rows = [r for r in rows if r[0] in wanted]
        for digest, relpath in rows:
            db.execute("DELETE FROM images WHERE hash = ?", [digest])
            self._remove_image_file(self.images_dir / relpath)

    def _sweep_orphan_files(self, db: Database, before_timestamp: float) -> None:
        if not self.images_dir.is_dir():
            return
        known = {r[0] for r in db.execute("SELECT path FROM images")}
        for file in self.images_dir.glob("*/*"):
            relpath = f"{file.parent.name}/{file.name}"
            if (
                file.is_file()
                and _IMAGE_FILE_RE.match(file.name)
                and relpath not in known
                and file.stat().st_mtime < before_timestamp
            ):
                self._remove_image_file(file)

    def _remove_image_file(self, file: Path) -> None:
        try:
            file.unlink(missing_ok=True)
        except OSError as error:
            logger.warning("could not delete image file %s: %s", file, error)
            return
        try:
            file.parent.rmdir()
        except OSError:
            pass  # the shard folder still holds other images
