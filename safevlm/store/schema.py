"""The log's tables and views, their migrations, and the schema version a file is at.

Creates and upgrades a file inside the caller's transactions; what goes into the rows is
`values`' and `core`'s business.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from safevlm.store.errors import StoreError

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


def _migration_4_session_delete_keys(db: Database) -> None:
    # The sha256 of the secret /chat hands an API caller, so it can delete its own turns
    # without the annotation token; the secret itself is never stored.
    db["sessions"].add_column("delete_key_hash", str)


MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    _migration_1_initial_tables,
    _migration_2_reader_text_and_indexes,
    _migration_3_label_views,
    _migration_4_session_delete_keys,
)
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(db: Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def check_readable(db: Database, path: Path) -> None:
    """Raise unless the file is at exactly this code's schema version (read-only viewers)."""
    version = user_version(db)
    if version < SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, this code reads version {SCHEMA_VERSION}; "
            "open it once with Store(path) (read-write) to migrate it"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this code's {SCHEMA_VERSION}; "
            "upgrade safevlm"
        )


def pending_migrations(db: Database, path: Path) -> range:
    """The version numbers a writer must migrate through; raises for a file it must not touch."""
    version = user_version(db)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this code's {SCHEMA_VERSION}; "
            "upgrade safevlm before writing to it"
        )
    foreign_tables = [n for n in db.table_names() if not n.startswith("sqlite_")]
    if version == 0 and foreign_tables:
        raise StoreError(
            f"{path} already holds tables ({', '.join(foreign_tables)}) but no safevlm schema "
            "version; it is not a SafeVLM log, point the store at a new file"
        )
    return range(version + 1, SCHEMA_VERSION + 1)


def apply_migration(db: Database, number: int) -> bool:
    """Run migration `number` in the caller's write transaction and return True, or return
    False if another process migrated while this one waited for the lock."""
    if user_version(db) >= number:
        return False
    MIGRATIONS[number - 1](db)
    db.execute(f"PRAGMA user_version = {number}")
    return True
