"""Forgetting: deleting turns with their feedback and labels, the sessions and images they
leave unused, for a purge by age or a user's "forget me".

Runs inside the caller's write transaction; the Store decides what to forget and when.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from safevlm.store.images import delete_unreferenced_images, sweep_orphan_files
from safevlm.store.values import iso


def delete_turns(db: Database, images_dir: Path, turn_ids: list[int]) -> int:
    """Delete these turns and the images only they used; returns how many turns."""
    hashes: set[str] = set()
    # SQLite caps the number of ? in one statement.
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
    delete_unreferenced_images(db, images_dir, candidates=sorted(hashes))
    return len(turn_ids)


def purge_before(db: Database, images_dir: Path, cutoff: datetime) -> int:
    """Delete turns created before `cutoff`, then the sessions left empty, the images no turn
    uses and orphan image files older than it; returns how many turns."""
    cutoff_text = iso(cutoff)
    turn_ids = [r[0] for r in db.execute("SELECT id FROM turns WHERE created < ?", [cutoff_text])]
    count = delete_turns(db, images_dir, turn_ids)
    db.execute(
        "DELETE FROM sessions WHERE created < ? AND id NOT IN (SELECT session_id FROM turns)",
        [cutoff_text],
    )
    delete_unreferenced_images(db, images_dir, older_than=cutoff_text)
    sweep_orphan_files(db, images_dir, cutoff.timestamp())
    return count
