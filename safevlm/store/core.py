"""`Store`, the chat log's one class, and what it writes: sessions, turns with their images,
users' feedback, annotators' labels, purges. It checks every value before opening a transaction.
Reading and exports come from `LogReader` (`reading`), SQL plumbing from `Connection`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from safevlm.config import MODES
from safevlm.store import images, retention, schema
from safevlm.store.errors import StoreError
from safevlm.store.files import make_dir
from safevlm.store.reading import LogReader
from safevlm.store.values import (
    CLIENTS,
    DECISIONS,
    STATUSES,
    check_choice,
    is_int,
    now,
    to_json,
)

logger = logging.getLogger(__name__)


class Store(LogReader):
    """The chat log of one SQLite file and its images folder; safe to share between threads.

    `enabled=False` keeps the schema readable but writes no session, turn or image;
    `read_only=True` opens the file with `mode=ro` for viewers (writes raise StoreError).
    Threads, processes and transactions: see `Connection`.
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
        super().__init__(Path(path), read_only=read_only, busy_timeout=busy_timeout)
        self.images_dir = (
            Path(images_dir) if images_dir is not None else self.path.parent / "images"
        )
        self.enabled = enabled
        try:
            if read_only:
                with self._read("read the schema version") as db:
                    schema.check_readable(db, self.path)
            else:
                self._migrate()
                if enabled:
                    make_dir(self.images_dir)
        except BaseException:
            self.close()
            raise

    def _migrate(self) -> None:
        with self._read("read the schema version") as db:
            pending = schema.pending_migrations(db, self.path)
        for number in pending:
            with self._write(f"migrate the schema to version {number}") as db:
                migrated = schema.apply_migration(db, number)
            if migrated:
                name = schema.MIGRATIONS[number - 1].__name__
                logger.info("migrated %s to schema version %d (%s)", self.path, number, name)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        flags = "" if self.enabled else ", enabled=False"
        flags += ", read_only=True" if self.read_only else ""
        return f"Store({str(self.path)!r}{flags})"

    # --- sessions --------------------------------------------------------------------------

    def start_session(
        self,
        client: str = "ui",
        logging: bool = True,
        settings: Mapping[str, Any] | None = None,
        delete_key: str | None = None,
    ) -> str:
        """Record a new chat session and return its id (a uuid4 string).

        `logging=False` records only that the session exists and opted out, so that its turns
        are never written, whichever process logs them. With `delete_key` (a secret the caller
        keeps), `delete_session_with_key` deletes the session without any other right; only
        its sha256 is stored. A disabled store writes nothing.
        """
        check_choice(client, CLIENTS, "client")
        if delete_key is not None and (not isinstance(delete_key, str) or len(delete_key) < 16):
            raise StoreError("delete_key must be a secret string of at least 16 characters")
        session_id = str(uuid.uuid4())
        if not self.enabled:
            return session_id
        record = {
            "id": session_id,
            "created": now(),
            "client": client,
            "logging": bool(logging),
            "settings": to_json(dict(settings or {}), "settings"),
            "delete_key_hash": _key_hash(delete_key) if delete_key is not None else None,
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
            count = self._delete_sessions(db, [session_id])
        self._checkpoint()
        logger.info("deleted session %s and its %d turns", session_id, count)
        return count

    def delete_sessions(self, session_ids: Sequence[str]) -> int:
        """`delete_session` for several sessions in one transaction (one browser page's
        chats); ids the log does not hold (never logged, or purged) are skipped. Returns the
        number of turns deleted."""
        ids = [str(i) for i in session_ids if isinstance(i, str) and i]
        if not ids:
            return 0
        with self._write("delete sessions") as db:
            count = self._delete_sessions(db, ids)
        self._checkpoint()
        logger.info("deleted %d sessions and their %d turns", len(ids), count)
        return count

    def delete_session_with_key(self, session_id: str, delete_key: str) -> int:
        """Delete a session given the secret passed to `start_session` (an API caller's own
        turns); returns the number of turns deleted. A wrong key and an unknown session
        raise the same StoreError, so the error tells nothing about other sessions."""
        refused = StoreError("unknown session or wrong delete secret; nothing was deleted")
        if not isinstance(session_id, str) or not isinstance(delete_key, str) or not delete_key:
            raise refused
        with self._write("delete a session") as db:
            row = db.execute(
                "SELECT delete_key_hash FROM sessions WHERE id = ?", [session_id]
            ).fetchone()
            if row is None or not row[0] or not hmac.compare_digest(row[0], _key_hash(delete_key)):
                raise refused
            count = self._delete_sessions(db, [session_id])
        self._checkpoint()
        logger.info("deleted session %s and its %d turns by its delete secret", session_id, count)
        return count

    def _delete_sessions(self, db: Database, session_ids: list[str]) -> int:
        turn_ids = []
        for start in range(0, len(session_ids), 500):  # SQLite caps the number of ?
            chunk = session_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            turn_ids += [
                r[0]
                for r in db.execute(f"SELECT id FROM turns WHERE session_id IN ({marks})", chunk)
            ]
        count = retention.delete_turns(db, self.images_dir, turn_ids)
        for start in range(0, len(session_ids), 500):
            chunk = session_ids[start : start + 500]
            db.execute(f"DELETE FROM sessions WHERE id IN ({','.join('?' * len(chunk))})", chunk)
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
        the same bytes again writes nothing new. A disabled store returns the hash and writes
        nothing. To respect a session's logging opt-out, prefer `log_turn(..., image=data)`,
        which saves the image only if it logs.
        """
        image = images.prepare_image(data, width, height, format)
        if self.enabled:
            with self._write("save an image") as db:
                images.put_image(db, self.images_dir, image)
        return image.hash

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
        check_choice(status, STATUSES, "status")
        check_choice(source, CLIENTS, "source")
        if decision is not None or status != "error":
            check_choice(decision, DECISIONS, "decision")
        if mode is not None or status != "error":
            check_choice(mode, MODES, "mode")
        if level is not None and (not is_int(level) or level < 0):
            raise StoreError(f"level must be an integer >= 0; got {level!r}")
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise StoreError("prompt and response must be strings (use '' for none)")
        if image is not None and image_hash is not None:
            raise StoreError("pass the image as image= or image_hash=, not both")
        prepared = images.prepare_image(image) if image is not None else None
        record = {
            "session_id": session_id,
            "prompt": prompt,
            "response": response,
            "type": type,
            "level": level,
            "decision": decision,
            "flagged": bool(flagged),
            "type_probs": to_json(type_probs, "type_probs"),
            "level_probs": to_json(level_probs, "level_probs"),
            "hint": hint,
            "mode": mode,
            "thresholds": to_json(thresholds, "thresholds"),
            "base": base,
            "checkpoint": checkpoint,
            "timings": to_json(timings, "timings"),
            "source": source,
            "reader_text": reader_text,
            "status": status,
            "error": error,
        }
        with self._write("log a turn") as db:
            if not self._session_logging(db, session_id):
                return None
            if prepared is not None:
                images.put_image(db, self.images_dir, prepared)
                image_hash = prepared.hash
            elif image_hash is not None and images.stored_relpath(db, image_hash) is None:
                raise StoreError(
                    f"image {image_hash!r} is not in the store; save_image() it first or pass image="
                )
            (last_index,) = db.execute(
                "SELECT max(turn_index) FROM turns WHERE session_id = ?", [session_id]
            ).fetchone()
            record["turn_index"] = 0 if last_index is None else last_index + 1
            record["created"] = now()
            record["image_hash"] = image_hash
            turn_id = db["turns"].insert(record).last_pk
        logger.debug("logged turn %s (session %s, %s)", turn_id, session_id, decision)
        return turn_id

    # --- feedback and annotations ----------------------------------------------------------

    def _turn_exists(self, db: Database, turn_id: int) -> None:
        if (
            not is_int(turn_id)
            or db.execute("SELECT 1 FROM turns WHERE id = ?", [turn_id]).fetchone() is None
        ):
            raise StoreError(
                f"no turn with id {turn_id!r} in {self.path}; it was never logged or was purged"
            )

    def set_feedback(self, turn_id: int, rating: int | None, comment: str = "") -> int | None:
        """Set a user's rating of a turn: thumbs up (+1), down (-1), or None to take it back.

        A turn has one rater (the chat that made it), so a new rating replaces the old one
        rather than adding to the counts; an empty comment keeps the comment already given.
        Returns the feedback row's id, or None when the rating was removed."""
        if rating is not None and (not is_int(rating) or rating not in (-1, 1)):
            raise StoreError(f"rating must be +1 (thumbs up), -1 (thumbs down) or None; got {rating!r}")
        with self._write("set feedback") as db:
            self._turn_exists(db, turn_id)
            old = db.execute(
                "SELECT comment FROM feedback WHERE turn_id = ? ORDER BY id DESC LIMIT 1", [turn_id]
            ).fetchone()
            db.execute("DELETE FROM feedback WHERE turn_id = ?", [turn_id])
            if rating is None:
                return None
            record = {
                "turn_id": turn_id,
                "created": now(),
                "rating": rating,
                "comment": comment or (old[0] if old else ""),
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
        if true_level is not None and (not is_int(true_level) or true_level < 0):
            raise StoreError(f"true_level must be an integer >= 0 or None; got {true_level!r}")
        if response_rating is not None and (
            not is_int(response_rating) or not 1 <= response_rating <= 5
        ):
            raise StoreError(
                f"response_rating must be an integer from 1 to 5 or None; got {response_rating!r}"
            )
        if true_type is not None and (not isinstance(true_type, str) or not true_type):
            raise StoreError(f"true_type must be a type name or None; got {true_type!r}")
        record = {
            "turn_id": turn_id,
            "created": now(),
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

    # --- retention -------------------------------------------------------------------------

    def purge_older_than(self, days: float) -> int:
        """Delete turns created more than `days` ago with their feedback and labels, then
        sessions left empty, image rows and files no turn uses any more, and orphan image
        files (from a crash between file and row) older than the cutoff. Returns turns deleted."""
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            raise StoreError(f"days must be a number >= 0; got {days!r}")
        cutoff = datetime.now(UTC) - timedelta(days=days)
        with self._write("purge old turns") as db:
            count = retention.purge_before(db, self.images_dir, cutoff)
        self._checkpoint()
        logger.info("purged %d turns older than %g days from %s", count, days, self.path)
        return count


def _key_hash(delete_key: str) -> str:
    return hashlib.sha256(delete_key.encode("utf-8")).hexdigest()
