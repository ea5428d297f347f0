"""Files made from the log: JSONL training records and a CSV of turns for a spreadsheet.

Takes turn rows the Store has already read (its `TURN_SELECT` shape) and writes one file;
runs no SQL and decides nothing about which turns exist.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safevlm.csv_cells import spreadsheet_safe
from safevlm.store.files import write_atomically
from safevlm.store.images import absolute_path

logger = logging.getLogger(__name__)

TRAINING_KEYS = ("image", "prompt", "response", "type", "level", "source", "split")
LABEL_COLUMNS = (
    "image_path", "annotation_id", "annotated", "annotator", "decision_correct",
    "true_type", "true_level", "response_rating", "note", "feedback_up", "feedback_down",
    "feedback_comment",
)  # fmt: skip


def write_jsonl(
    path: Path, rows: list[dict[str, Any]], images_dir: Path, min_response_rating: int | None
) -> int:
    """Write the rows fit for training as TRAINING_KEYS records; returns how many."""
    records, skipped = [], 0
    for row in rows:
        wrong_without_fix = (
            row["decision_correct"] == 0 and row["true_type"] is None and row["true_level"] is None
        )
        low_rated = (
            min_response_rating is not None
            and row["response_rating"] is not None
            and row["response_rating"] < min_response_rating
        )
        if row["status"] != "complete" or wrong_without_fix or low_rated:
            skipped += 1
            continue
        record = {
            "image": absolute_path(images_dir, row["image_relpath"]),
            "prompt": row["prompt"],
            "response": row["response"],
            "type": row["true_type"] if row["true_type"] is not None else row["type"],
            "level": row["true_level"] if row["true_level"] is not None else row["level"],
            "source": "log" if row["annotation_id"] is None else "annotation",
            "split": "train",
        }
        if row.get("feedback_comment"):  # `meta` is the records' optional free-form field
            record["meta"] = {"feedback_comment": row["feedback_comment"]}
        records.append(record)
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    write_atomically(path, text.encode("utf-8"), fix="pick a writable path")
    if skipped:
        logger.warning("export skipped %d turns unfit for training (see export_jsonl doc)", skipped)
    logger.info("exported %d training records to %s", len(records), path)
    return len(records)


def write_csv(
    path: Path,
    rows: list[dict[str, Any]],
    turn_columns: Sequence[str],
    images_dir: Path,
    escape_formulas: bool,
) -> int:
    """Write one CSV row per turn: the `turns` columns, then LABEL_COLUMNS; returns how many."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[*turn_columns, *LABEL_COLUMNS], extrasaction="ignore"
    )
    writer.writeheader()
    for row in rows:
        row = {**row, "image_path": absolute_path(images_dir, row["image_relpath"])}
        if escape_formulas:
            row = {k: spreadsheet_safe(v) if isinstance(v, str) else v for k, v in row.items()}
        writer.writerow(row)
    write_atomically(path, buffer.getvalue().encode("utf-8"), fix="pick a writable path")
    logger.info("exported %d turns to %s", len(rows), path)
    return len(rows)
