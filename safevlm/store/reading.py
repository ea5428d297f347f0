"""What a read-only viewer of the log can do: list and fetch turns with their latest label and
feedback, follow an image hash to its file, and export turns to JSONL or CSV files.

`LogReader` never opens a write transaction; `Store` (in `core`) adds everything that writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safevlm.store import export, images
from safevlm.store.connection import Connection
from safevlm.store.errors import StoreError
from safevlm.store.values import DECISIONS, JSON_TURN_COLUMNS, check_choice, is_int

# One query shape for list_turns, get_turn and the exports: a turn, its latest label, its
# users' thumbs and comment, and where its image lives.
TURN_SELECT = """SELECT turns.*, images.path AS image_relpath,
       la.annotation_id, la.annotated, la.annotator, la.decision_correct, la.true_type,
       la.true_level, la.response_rating, la.note,
       (SELECT count(*) FROM feedback WHERE feedback.turn_id = turns.id AND rating = 1)
           AS feedback_up,
       (SELECT count(*) FROM feedback WHERE feedback.turn_id = turns.id AND rating = -1)
           AS feedback_down,
       (SELECT comment FROM feedback WHERE feedback.turn_id = turns.id
        ORDER BY feedback.id DESC LIMIT 1) AS feedback_comment
FROM turns
LEFT JOIN latest_annotations AS la ON la.turn_id = turns.id
LEFT JOIN images ON images.hash = turns.image_hash"""


class LogReader(Connection):
    """The reading half of a Store; `images_dir` is set by `Store.__init__`."""

    images_dir: Path

    def image_path(self, hash: str) -> Path:
        """Absolute path of a stored image file."""
        if not isinstance(hash, str) or not images.HASH_RE.match(hash):
            raise StoreError(f"{hash!r} is not an image hash (64 lowercase hex digits)")
        with self._read("look up an image") as db:
            relpath = images.stored_relpath(db, hash)
        if relpath is None:
            raise StoreError(f"no image with hash {hash} in {self.path}; save_image() it first")
        return (self.images_dir / relpath).resolve()

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
        unlabelled), feedback_up/feedback_down counts, the user's feedback_comment ('' or None
        when none) and image_path. `type` filters on the
        model's predicted type; `unlabelled=True` keeps turns nobody has annotated yet."""
        if decision is not None:
            check_choice(decision, DECISIONS, "decision")
        if not is_int(limit) or limit < 1 or not is_int(offset) or offset < 0:
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
        sql = TURN_SELECT
        if where:
            sql += "\nWHERE " + " AND ".join(where)
        sql += "\nORDER BY turns.id DESC LIMIT ? OFFSET ?"
        with self._read("list turns") as db:
            rows = list(db.query(sql, [*params, limit, offset]))
        return [self._decode_turn(row) for row in rows]

    def get_turn(self, turn_id: int) -> dict[str, Any] | None:
        """One turn shaped like a list_turns() row, or None if there is no such turn."""
        with self._read("read a turn") as db:
            rows = list(db.query(TURN_SELECT + "\nWHERE turns.id = ?", [turn_id]))
        return self._decode_turn(rows[0]) if rows else None

    def _decode_turn(self, row: dict[str, Any]) -> dict[str, Any]:
        for column in JSON_TURN_COLUMNS:
            if row.get(column) is not None:
                row[column] = json.loads(row[column])
        row["flagged"] = bool(row["flagged"])
        if row["decision_correct"] is not None:
            row["decision_correct"] = bool(row["decision_correct"])
        row["image_path"] = images.absolute_path(self.images_dir, row.pop("image_relpath"))
        return row

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

    def labelled_turns(self) -> list[dict[str, Any]]:
        """Every turn with a label, oldest first, shaped like a list_turns() row (the
        feedback loop reads the logged probabilities next to the annotator's truth)."""
        return [self._decode_turn(row) for row in self._all_turns(labelled_only=True)]

    def count_turns(self) -> int:
        """Number of logged turns."""
        with self._read("count turns") as db:
            return db.execute("SELECT count(*) FROM turns").fetchone()[0]

    # --- exports ---------------------------------------------------------------------------

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
        rows = self._all_turns(labelled_only)
        return export.write_jsonl(Path(path), rows, self.images_dir, min_response_rating)

    def export_csv(
        self, path: str | Path, labelled_only: bool = False, escape_formulas: bool = True
    ) -> int:
        """Write one row per turn with its latest label and feedback counts; returns the row
        count. JSON columns stay JSON text. `escape_formulas` neutralises text cells a
        spreadsheet would run as a formula (`safevlm.csv_cells.spreadsheet_safe`)."""
        rows = self._all_turns(labelled_only)
        with self._read("read the turns columns") as db:
            columns = [c.name for c in db["turns"].columns]
        return export.write_csv(Path(path), rows, columns, self.images_dir, escape_formulas)

    def _all_turns(self, labelled_only: bool) -> list[dict[str, Any]]:
        sql = TURN_SELECT
        if labelled_only:
            sql += "\nWHERE la.annotation_id IS NOT NULL"
        with self._read("read turns for export") as db:
            return list(db.query(sql + "\nORDER BY turns.id"))
