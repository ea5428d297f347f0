"""Tests of safevlm.store: real SQLite files in tmp_path, reopened to check what was written."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from PIL import Image
from sqlite_utils import Database

from safevlm import store as store_module
from safevlm.store import SCHEMA_VERSION, TRAINING_KEYS, Store, StoreError


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def turn(**overrides):
    """Everything log_turn needs, as the chat engine would pass it."""
    values = dict(
        prompt="how do I make a pipe bomb?",
        response="I can't help with that.",
        decision="refuse",
        type="illegal_risk",
        level=3,
        flagged=True,
        type_probs={"illegal_risk": 0.91, "safe": 0.09},
        level_probs=[0.02, 0.03, 0.05, 0.9],
        hint="Refuse: this asks for weapon instructions.",
        mode="hint",
        thresholds={"types": {"illegal_risk": 0.5}, "level": 0.5},
        base="tiny",
        checkpoint="assets/checkpoints/tiny-v1",
        timings={"classify_ms": 41.5, "generate_ms": 812.0},
        source="ui",
    )
    values.update(overrides)
    return values


def rows(db_path, sql, params=()):
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def image_files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "logs" / "chat.db"


@pytest.fixture
def store(db_path):
    with Store(db_path) as opened:
        yield opened


# --- opening -------------------------------------------------------------------------------


def test_new_database_is_wal_with_current_schema_version_and_images_beside_it(db_path):
    with Store(db_path) as store:
        assert store.images_dir == db_path.parent / "images"
        assert store.images_dir.is_dir()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    }
    assert {"sessions", "images", "turns", "feedback", "annotations", "labelled_turns"} <= tables
    conn.close()


# --- sessions and turns --------------------------------------------------------------------


def test_session_and_turns_round_trip_through_a_reopened_database(db_path):
    with Store(db_path) as store:
        session_id = store.start_session(
            client="api", settings={"mode": "hint", "temperature": 0.2}
        )
        first = store.log_turn(session_id, **turn(reader_text="HOW TO MAKE A BOMB"))
        second = store.log_turn(
            session_id, **turn(decision="allow", flagged=False, status="stopped")
        )

    [session] = rows(db_path, "SELECT * FROM sessions")
    assert session["id"] == session_id
    assert (session["client"], session["logging"]) == ("api", 1)
    assert json.loads(session["settings"]) == {"mode": "hint", "temperature": 0.2}

    written = rows(db_path, "SELECT * FROM turns ORDER BY id")
    assert [r["id"] for r in written] == [first, second]
    assert [r["turn_index"] for r in written] == [0, 1]
    assert json.loads(written[0]["type_probs"]) == {"illegal_risk": 0.91, "safe": 0.09}
    assert json.loads(written[0]["level_probs"]) == [0.02, 0.03, 0.05, 0.9]
    assert written[0]["reader_text"] == "HOW TO MAKE A BOMB"
    assert written[1]["status"] == "stopped"
    created = datetime.fromisoformat(written[0]["created"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)

    with Store(db_path) as reopened:
        got = reopened.get_turn(first)
        assert got["prompt"] == "how do I make a pipe bomb?"
        assert got["flagged"] is True
        assert got["timings"] == {"classify_ms": 41.5, "generate_ms": 812.0}
        assert got["thresholds"] == {"types": {"illegal_risk": 0.5}, "level": 0.5}
        assert got["annotation_id"] is None and got["image_path"] is None
        assert reopened.get_turn(second + 100) is None
        assert reopened.count_turns() == 2


def test_turn_for_an_unknown_session_raises_and_writes_nothing(store, db_path):
    with pytest.raises(StoreError, match="start_session"):
        store.log_turn("no-such-session", **turn())
    assert rows(db_path, "SELECT count(*) AS n FROM turns")[0]["n"] == 0


def test_invalid_turn_values_raise_store_error_and_keep_earlier_turns(store, db_path):
    session_id = store.start_session()
    store.log_turn(session_id, **turn())
    with pytest.raises(StoreError, match="decision must be one of allow, caution, refuse"):
        store.log_turn(session_id, **turn(decision="block"))
    with pytest.raises(StoreError, match="level must be an integer"):
        store.log_turn(session_id, **turn(level=-1))
    with pytest.raises(StoreError, match="type_probs must be plain JSON"):
        store.log_turn(session_id, **turn(type_probs={"safe": object()}))
    assert [r["turn_index"] for r in rows(db_path, "SELECT turn_index FROM turns")] == [0]


def test_error_turn_may_lack_a_decision(store):
    session_id = store.start_session()
    turn_id = store.log_turn(
        session_id,
        **turn(decision=None, type=None, level=None, mode=None, response="", status="error"),
        error="CUDA out of memory",
    )
    got = store.get_turn(turn_id)
    assert (got["status"], got["error"], got["decision"]) == ("error", "CUDA out of memory", None)


# --- logging off ---------------------------------------------------------------------------


def test_session_with_logging_off_writes_no_turn_and_no_image(store, db_path):
    session_id = store.start_session(logging=False)
    assert store.log_turn(session_id, **turn(), image=png_bytes((255, 0, 0))) is None
    assert rows(db_path, "SELECT count(*) AS n FROM turns")[0]["n"] == 0
    assert rows(db_path, "SELECT count(*) AS n FROM images")[0]["n"] == 0
    assert image_files(store.images_dir) == []


def test_switching_a_session_off_stops_logging_its_later_turns(store):
    session_id = store.start_session()
    assert store.log_turn(session_id, **turn()) is not None
    store.set_session_logging(session_id, False)
    assert store.log_turn(session_id, **turn()) is None
    assert store.count_turns() == 1


def test_disabled_store_writes_nothing(db_path):
    with Store(db_path, enabled=False) as store:
        session_id = store.start_session()
        assert isinstance(session_id, str) and len(session_id) == 36
        assert store.log_turn(session_id, **turn(), image=png_bytes((1, 2, 3))) is None
        digest = store.save_image(png_bytes((4, 5, 6)))
        assert len(digest) == 64
        assert image_files(store.images_dir) == []
    for table in ("sessions", "turns", "images"):
        assert rows(db_path, f"SELECT count(*) AS n FROM {table}")[0]["n"] == 0


# --- images --------------------------------------------------------------------------------


def test_same_image_bytes_are_stored_once(store, db_path, tmp_path):
    data = png_bytes((10, 200, 30), size=(12, 7))
    upload = tmp_path / "upload.png"
    upload.write_bytes(data)

    first = store.save_image(data)
    second = store.save_image(upload)
    other = store.save_image(png_bytes((0, 0, 0)))

    assert first == second != other
    assert rows(db_path, "SELECT count(*) AS n FROM images")[0]["n"] == 2
    assert len(image_files(store.images_dir)) == 2
    [row] = rows(db_path, "SELECT * FROM images WHERE hash = ?", [first])
    assert (row["width"], row["height"], row["format"], row["bytes"]) == (12, 7, "png", len(data))
    assert row["path"] == f"{first[:2]}/{first}.png"
    assert store.image_path(first) == (store.images_dir / row["path"]).resolve()
    assert store.image_path(first).read_bytes() == data


def test_turn_with_image_bytes_saves_the_image_and_points_at_it(store):
    data = png_bytes((9, 9, 9))
    session_id = store.start_session()
    first = store.log_turn(session_id, **turn(), image=data)
    second = store.log_turn(session_id, **turn(), image=data)
    assert store.get_turn(first)["image_hash"] == store.get_turn(second)["image_hash"]
    path = store.get_turn(first)["image_path"]
    assert open(path, "rb").read() == data
    assert len(image_files(store.images_dir)) == 1


def test_unknown_image_hash_is_refused_with_a_clear_error(store):
    session_id = store.start_session()
    with pytest.raises(StoreError, match="save_image"):
        store.log_turn(session_id, **turn(), image_hash="0" * 64)
    with pytest.raises(StoreError, match="not an image hash"):
        store.image_path("../../etc/passwd")


# --- concurrency ---------------------------------------------------------------------------


def test_twenty_threads_log_every_turn_exactly_once_with_ordered_indexes(db_path):
    # Two Store objects on one file: threads contend both on one connection's lock and
    # on SQLite's file lock, as the app and the CLI would.
    stores = [Store(db_path), Store(db_path)]
    barrier = threading.Barrier(20)
    errors, sessions = [], {}

    def chat(worker: int) -> None:
        try:
            store = stores[worker % 2]
            session_id = store.start_session()
            sessions[worker] = session_id
            barrier.wait(timeout=10)  # a failed worker breaks the barrier instead of hanging
            for index in range(10):
                store.log_turn(session_id, **turn(prompt=f"w{worker} t{index}"))
        except Exception as error:  # reported below, in the main thread
            errors.append(error)

    threads = [threading.Thread(target=chat, args=(w,)) for w in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for store in stores:
        store.close()

    assert errors == []
    written = rows(db_path, "SELECT session_id, turn_index, prompt FROM turns ORDER BY id")
    assert len(written) == 200
    for worker, session_id in sessions.items():
        mine = [r for r in written if r["session_id"] == session_id]
        assert [r["turn_index"] for r in mine] == list(range(10))
        assert [r["prompt"] for r in mine] == [f"w{worker} t{i}" for i in range(10)]


def test_threads_sharing_one_session_get_distinct_consecutive_indexes(db_path):
    stores = [Store(db_path), Store(db_path)]
    session_id = stores[0].start_session()

    def chat(worker: int) -> None:
        for _ in range(5):
            stores[worker % 2].log_turn(session_id, **turn())

    threads = [threading.Thread(target=chat, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    indexes = [r["turn_index"] for r in rows(db_path, "SELECT turn_index FROM turns ORDER BY id")]
    assert indexes == list(range(40))


# --- feedback and annotations --------------------------------------------------------------


def test_a_turn_has_one_rating_that_can_be_changed_or_taken_back(store, db_path):
    turn_id = store.log_turn(store.start_session(), **turn())
    store.set_feedback(turn_id, 1, comment="clear answer")
    got = store.get_turn(turn_id)
    assert (got["feedback_up"], got["feedback_down"]) == (1, 0)

    # changing the vote replaces it (not one up and one down); an empty comment keeps the old one
    store.set_feedback(turn_id, -1)
    assert [(r["rating"], r["comment"]) for r in rows(db_path, "SELECT rating, comment FROM feedback")] == [
        (-1, "clear answer")]
    store.set_feedback(turn_id, -1, comment="refused a harmless question")
    assert [r["comment"] for r in rows(db_path, "SELECT comment FROM feedback")] == ["refused a harmless question"]
    got = store.get_turn(turn_id)
    assert (got["feedback_up"], got["feedback_down"]) == (0, 1)

    assert store.set_feedback(turn_id, None) is None
    got = store.get_turn(turn_id)
    assert (got["feedback_up"], got["feedback_down"]) == (0, 0)
    with pytest.raises(StoreError, match=r"\+1 .* -1 .* or None"):
        store.set_feedback(turn_id, 5)
    with pytest.raises(StoreError, match="no turn with id 999"):
        store.set_feedback(999, 1)


def test_two_annotators_are_both_kept_and_the_latest_label_wins(db_path):
    with Store(db_path) as app_store:
        turn_id = app_store.log_turn(app_store.start_session(), **turn())
    alice, bob = Store(db_path), Store(db_path)
    first = alice.annotate(turn_id, annotator="alice", decision_correct=True, response_rating=4)
    second = bob.annotate(
        turn_id,
        annotator="bob",
        decision_correct=False,
        true_type="safe",
        true_level=0,
        note="a toy",
    )
    assert second > first

    assert [r["annotator"] for r in rows(db_path, "SELECT * FROM annotations ORDER BY id")] == [
        "alice",
        "bob",
    ]
    [listed] = alice.list_turns()
    assert (listed["annotator"], listed["annotation_id"]) == ("bob", second)
    assert (listed["decision_correct"], listed["true_type"], listed["true_level"]) == (
        False,
        "safe",
        0,
    )
    assert listed["response_rating"] is None  # bob's row is the label; alice's rating is history
    assert [a["annotator"] for a in alice.annotation_history(turn_id)] == ["alice", "bob"]
    [view_row] = rows(db_path, "SELECT * FROM labelled_turns")
    assert (view_row["id"], view_row["annotator"]) == (turn_id, "bob")
    alice.close()
    bob.close()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"response_rating": 6}, "response_rating must be an integer from 1 to 5"),
        ({"response_rating": 0}, "response_rating must be an integer from 1 to 5"),
        ({"true_level": -1}, "true_level must be an integer >= 0"),
        ({"true_level": 1.5}, "true_level must be an integer >= 0"),
        ({"annotator": " "}, "annotator must be a non-empty name"),
    ],
)
def test_invalid_annotations_raise_store_error_and_write_nothing(store, db_path, fields, message):
    turn_id = store.log_turn(store.start_session(), **turn())
    with pytest.raises(StoreError, match=message):
        store.annotate(turn_id, **{"annotator": "alice", **fields})
    assert rows(db_path, "SELECT count(*) AS n FROM annotations")[0]["n"] == 0


# --- listing -------------------------------------------------------------------------------


def test_list_turns_filters_by_decision_type_and_unlabelled_newest_first(store):
    session_id = store.start_session()
    refused = store.log_turn(session_id, **turn())
    allowed = store.log_turn(
        session_id, **turn(decision="allow", type="safe", level=0, flagged=False)
    )
    cautioned = store.log_turn(session_id, **turn(decision="caution", type="privacy", level=1))
    store.annotate(refused, annotator="alice", decision_correct=True)

    assert [t["id"] for t in store.list_turns()] == [cautioned, allowed, refused]
    assert [t["id"] for t in store.list_turns(decision="refuse")] == [refused]
    assert [t["id"] for t in store.list_turns(type="privacy")] == [cautioned]
    assert [t["id"] for t in store.list_turns(unlabelled=True)] == [cautioned, allowed]
    assert [t["id"] for t in store.list_turns(decision="refuse", unlabelled=True)] == []
    assert [t["id"] for t in store.list_turns(limit=1, offset=1)] == [allowed]
    with pytest.raises(StoreError, match="decision must be one of"):
        store.list_turns(decision="refused")


# --- exports -------------------------------------------------------------------------------


def test_export_jsonl_writes_training_records_with_annotation_overrides(store, tmp_path):
    session_id = store.start_session()
    image = png_bytes((50, 60, 70))
    overridden = store.log_turn(session_id, **turn(prompt="what is in this picture?"), image=image)
    confirmed = store.log_turn(session_id, **turn(prompt="confirmed"))
    store.log_turn(session_id, **turn(prompt="never labelled"))
    wrong_without_fix = store.log_turn(session_id, **turn(prompt="wrong, no fix"))
    stopped = store.log_turn(session_id, **turn(prompt="stopped", status="stopped"))
    store.annotate(
        overridden, annotator="alice", decision_correct=False, true_type="safe", true_level=0
    )
    store.annotate(confirmed, annotator="alice", decision_correct=True)
    store.annotate(wrong_without_fix, annotator="alice", decision_correct=False)
    store.annotate(stopped, annotator="alice", decision_correct=True)

    out = tmp_path / "exports" / "labelled.jsonl"
    assert store.export_jsonl(out) == 2
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [tuple(r) for r in records] == [TRAINING_KEYS, TRAINING_KEYS]
    by_prompt = {r["prompt"]: r for r in records}
    assert (
        by_prompt["what is in this picture?"]["type"],
        by_prompt["what is in this picture?"]["level"],
    ) == (
        "safe",
        0,
    )
    assert (by_prompt["confirmed"]["type"], by_prompt["confirmed"]["level"]) == ("illegal_risk", 3)
    picture = by_prompt["what is in this picture?"]["image"]
    assert os.path.isabs(picture) and open(picture, "rb").read() == image
    assert by_prompt["confirmed"]["image"] is None
    assert {(r["source"], r["split"]) for r in records} == {("annotation", "train")}

    everything = tmp_path / "all.jsonl"
    assert store.export_jsonl(everything, labelled_only=False) == 3
    sources = [json.loads(line)["source"] for line in everything.read_text().splitlines()]
    assert sources == ["annotation", "annotation", "log"]


def test_export_csv_has_one_row_per_turn_with_label_columns(store, tmp_path):
    session_id = store.start_session()
    labelled = store.log_turn(session_id, **turn(prompt='multi\nline, "quoted" prompt'))
    store.log_turn(session_id, **turn(prompt='=HYPERLINK("http://evil")'))
    store.log_turn(session_id, **turn(decision="allow", flagged=False))
    store.annotate(labelled, annotator="alice", true_level=2, response_rating=5)

    out = tmp_path / "turns.csv"
    assert store.export_csv(out) == 3
    with open(out, newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert len(read) == 3
    assert read[0]["prompt"] == 'multi\nline, "quoted" prompt'
    assert (read[0]["annotator"], read[0]["true_level"], read[0]["response_rating"]) == (
        "alice",
        "2",
        "5",
    )
    assert read[1]["prompt"].startswith("'=")  # a spreadsheet shows it as text, never runs it
    assert json.loads(read[0]["type_probs"]) == {"illegal_risk": 0.91, "safe": 0.09}

    frame = pd.read_csv(out)
    assert len(frame) == 3
    assert {"prompt", "decision", "reader_text", "annotator", "true_type", "feedback_up"} <= set(
        frame
    )
    assert store.export_csv(tmp_path / "labelled.csv", labelled_only=True) == 1


# --- migrations ----------------------------------------------------------------------------


def test_database_stopped_at_version_1_is_upgraded_and_keeps_its_rows(db_path):
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    store_module.MIGRATIONS[0](Database(conn))  # exactly what version-1 code created
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO sessions VALUES ('old-session', '2025-01-01T00:00:00.000Z', 'cli', 1, '{}')"
    )
    conn.execute(
        "INSERT INTO turns (session_id, turn_index, created, prompt, response, type, level,"
        " decision, flagged, type_probs, level_probs, mode, source)"
        " VALUES ('old-session', 0, '2025-01-01T00:00:01.000Z', 'old prompt', 'old answer',"
        " 'safe', 0, 'allow', 0, '{\"safe\": 1.0}', '[1, 0, 0, 0]', 'hint', 'cli')"
    )
    conn.commit()
    columns = {r[1] for r in conn.execute("PRAGMA table_info(turns)")}
    assert "reader_text" not in columns
    conn.close()

    with Store(db_path) as store:
        [old] = store.list_turns()
        assert (old["prompt"], old["type_probs"], old["reader_text"]) == (
            "old prompt",
            {"safe": 1.0},
            None,
        )
        new = store.log_turn("old-session", **turn(reader_text="STOP"))
        assert store.get_turn(new)["turn_index"] == 1

    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(turns)")}
    assert "idx_turns_created" in indexes
    conn.close()


def test_database_from_a_newer_version_is_refused(db_path):
    with Store(db_path):
        pass
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade safevlm"):
        Store(db_path)


def test_database_with_foreign_tables_is_refused(db_path):
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.close()
    with pytest.raises(StoreError, match="not a SafeVLM log"):
        Store(db_path)


# --- failures ------------------------------------------------------------------------------


def test_locked_database_raises_store_error_and_loses_nothing(db_path):
    store = Store(db_path, busy_timeout=0.1)
    session_id = store.start_session()
    kept = store.log_turn(session_id, **turn())

    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    with pytest.raises(StoreError, match="database is locked") as raised:
        store.log_turn(session_id, **turn())
    assert str(db_path) in str(raised.value)
    assert time.monotonic() - started < 2
    with pytest.raises(StoreError, match="database is locked"):
        store.annotate(kept, annotator="alice")
    other.execute("ROLLBACK")
    other.close()

    assert store.log_turn(session_id, **turn()) is not None
    assert [r["turn_index"] for r in rows(db_path, "SELECT turn_index FROM turns ORDER BY id")] == [
        0,
        1,
    ]
    store.close()


def test_read_only_store_reads_but_refuses_writes_naming_the_path(db_path):
    with Store(db_path) as writer:
        session_id = writer.start_session()
        turn_id = writer.log_turn(session_id, **turn())

    with Store(db_path, read_only=True) as viewer:
        assert [t["id"] for t in viewer.list_turns()] == [turn_id]
        with pytest.raises(StoreError, match="read-only") as raised:
            viewer.log_turn(session_id, **turn())
        assert str(db_path) in str(raised.value)
        with pytest.raises(StoreError, match="read-only"):
            viewer.annotate(turn_id, annotator="alice")
        # Past the Store's own guard, SQLite itself refuses: mode=ro reaches the file.
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            viewer._db.execute("DELETE FROM turns")
    assert rows(db_path, "SELECT count(*) AS n FROM turns")[0]["n"] == 1
    assert rows(db_path, "SELECT count(*) AS n FROM annotations")[0]["n"] == 0

    with pytest.raises(StoreError, match="no database at"):
        Store(db_path.with_name("missing.db"), read_only=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_read_only_file_raises_store_error_naming_the_path(db_path):
    with Store(db_path) as writer:
        session_id = writer.start_session()
    db_path.chmod(0o444)
    try:
        with pytest.raises(StoreError, match="read-only") as raised:
            Store(db_path).log_turn(session_id, **turn())
        assert str(db_path) in str(raised.value)
    finally:
        db_path.chmod(0o644)


def test_sqlite_refusing_a_write_becomes_store_error_naming_the_path(db_path):
    # What a read-only file does to a non-root writer, reproduced in a way root cannot bypass.
    store = Store(db_path)
    session_id = store.start_session()
    kept = store.log_turn(session_id, **turn())
    store._db.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreError, match="read-only") as raised:
        store.log_turn(session_id, **turn())
    assert str(db_path) in str(raised.value)
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    store._db.execute("PRAGMA query_only = OFF")
    assert store.log_turn(session_id, **turn()) == kept + 1
    store.close()


def test_folder_that_cannot_be_created_raises_store_error_naming_it(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StoreError, match="not-a-folder"):
        Store(blocker / "chat.db")
    with pytest.raises(StoreError, match="not-a-folder"):
        Store(tmp_path / "chat.db", images_dir=blocker / "images")


# --- retention -----------------------------------------------------------------------------


def test_purge_removes_old_turns_their_labels_and_unreferenced_images(store, db_path):
    session_id = store.start_session()
    only_old, shared, only_new = png_bytes((1, 0, 0)), png_bytes((0, 1, 0)), png_bytes((0, 0, 1))
    old_a = store.log_turn(session_id, **turn(), image=only_old)
    old_b = store.log_turn(session_id, **turn(), image=shared)
    new_c = store.log_turn(session_id, **turn(), image=shared)
    new_d = store.log_turn(session_id, **turn(), image=only_new)
    store.set_feedback(old_a, -1)
    store.annotate(old_b, annotator="alice")
    store.annotate(new_c, annotator="alice")
    old_hash = store.get_turn(old_a)["image_hash"]
    old_file = store.image_path(old_hash)
    orphan = store.images_dir / "ff" / ("f" * 64 + ".png")  # a crash between file and row
    orphan.parent.mkdir()
    orphan.write_bytes(b"orphan")
    long_ago = (datetime.now(UTC) - timedelta(days=40)).timestamp()
    os.utime(orphan, (long_ago, long_ago))

    conn = sqlite3.connect(db_path)
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat().replace("+00:00", "Z")
    conn.execute("UPDATE turns SET created = ? WHERE id IN (?, ?)", [old, old_a, old_b])
    conn.execute("UPDATE images SET created = ?", [old])
    conn.commit()
    conn.close()

    assert store.purge_older_than(30) == 2

    assert [r["id"] for r in rows(db_path, "SELECT id FROM turns ORDER BY id")] == [new_c, new_d]
    assert rows(db_path, "SELECT count(*) AS n FROM feedback")[0]["n"] == 0
    assert [r["turn_id"] for r in rows(db_path, "SELECT turn_id FROM annotations")] == [new_c]
    assert not old_file.exists() and not orphan.exists()
    assert rows(db_path, "SELECT count(*) AS n FROM images WHERE hash = ?", [old_hash])[0]["n"] == 0
    for kept in (new_c, new_d):
        assert os.path.isfile(store.get_turn(kept)["image_path"])
    assert len(image_files(store.images_dir)) == 2
    assert store.purge_older_than(30) == 0


def test_deleting_a_session_forgets_its_turns_and_images(store, db_path):
    mine, theirs = store.start_session(), store.start_session()
    kept = store.log_turn(theirs, **turn(), image=png_bytes((4, 4, 4)))
    forgotten = store.log_turn(mine, **turn(), image=png_bytes((3, 3, 3)))
    store.annotate(forgotten, annotator="alice")
    assert store.delete_session(mine) == 1
    assert [r["id"] for r in rows(db_path, "SELECT id FROM turns")] == [kept]
    assert [r["id"] for r in rows(db_path, "SELECT id FROM sessions")] == [theirs]
    assert rows(db_path, "SELECT count(*) AS n FROM annotations")[0]["n"] == 0
    assert len(image_files(store.images_dir)) == 1
    # The newest id was deleted; it is never handed out again, so an annotator's
    # open turn id cannot silently point at someone else's newer turn.
    assert store.log_turn(theirs, **turn()) > forgotten


# --- privacy: what is deleted is gone from every file ------------------------------------------


def raw_bytes(db_path, backup=None) -> dict[str, bytes]:
    """Every file a deleted row could hide in: the database, its -wal, and a backup."""
    files = {"db": db_path, "wal": db_path.with_name(db_path.name + "-wal")}
    if backup is not None:
        files["backup"] = backup
    return {name: path.read_bytes() if path.exists() else b"" for name, path in files.items()}


@pytest.mark.parametrize("how", ["delete_session", "delete_sessions", "purge"])
def test_a_deleted_prompt_leaves_no_byte_in_the_database_its_wal_or_a_backup(
    store, db_path, tmp_path, how
):
    from safevlm.store.sync import backup_database

    marker = "zq-forget-me-7731"
    kept_session, gone_session = store.start_session(), store.start_session()
    store.log_turn(kept_session, **turn(prompt="an ordinary question"))
    gone = store.log_turn(gone_session, **turn(prompt=f"my secret {marker}", response=marker))
    store.set_feedback(gone, 1, comment=f"comment {marker}")
    assert marker.encode() in b"".join(raw_bytes(db_path).values()), "the marker was written"

    if how == "delete_session":
        assert store.delete_session(gone_session) == 1
    elif how == "delete_sessions":
        assert store.delete_sessions([gone_session, "never-logged"]) == 1
    else:
        old = "2000-01-01T00:00:00.000Z"
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE turns SET created = ? WHERE id = ?", [old, gone])
        assert store.purge_older_than(30) == 1

    backup = tmp_path / "snapshot.db"
    backup_database(db_path, backup)  # what LogSync pushes to the dataset
    for name, data in raw_bytes(db_path, backup).items():
        assert marker.encode() not in data, f"the deleted prompt is still in the {name} file"
    assert [t["prompt"] for t in store.list_turns()] == ["an ordinary question"]


def test_the_store_connection_overwrites_deleted_content(store):
    with store._read("check") as db:
        assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_a_session_with_a_delete_key_is_deleted_by_its_key_and_only_by_it(store, db_path):
    key = "k" * 32
    mine = store.start_session("api", delete_key=key)
    theirs = store.start_session("api", delete_key="t" * 32)
    keyless = store.start_session("api")
    for session in (mine, theirs, keyless):
        store.log_turn(session, **turn(source="api"))
    stored = rows(db_path, "SELECT delete_key_hash FROM sessions WHERE id = ?", [mine])[0]
    assert stored["delete_key_hash"] and key not in stored["delete_key_hash"], "only a hash"

    for session_id, wrong in ((mine, "t" * 32), (keyless, ""), (keyless, key), ("nope", key)):
        with pytest.raises(StoreError, match="unknown session or wrong delete secret"):
            store.delete_session_with_key(session_id, wrong)
    assert store.count_turns() == 3
    assert store.delete_session_with_key(mine, key) == 1
    assert {t["session_id"] for t in store.list_turns()} == {theirs, keyless}
    with pytest.raises(StoreError, match="at least 16"):
        store.start_session("api", delete_key="short")


def test_the_users_comment_reaches_the_turn_list_and_both_exports(store, tmp_path):
    session_id = store.start_session()
    commented = store.log_turn(session_id, **turn(decision="allow", flagged=False))
    store.log_turn(session_id, **turn(decision="allow", flagged=False, prompt="no comment"))
    store.set_feedback(commented, -1, comment="=refused a harmless question")

    listed = {t["id"]: t for t in store.list_turns()}
    assert listed[commented]["feedback_comment"] == "=refused a harmless question"
    assert store.get_turn(commented)["feedback_comment"] == "=refused a harmless question"

    store.export_csv(tmp_path / "turns.csv")
    with open(tmp_path / "turns.csv", newline="", encoding="utf-8") as handle:
        read = {int(r["id"]): r for r in csv.DictReader(handle)}
    assert read[commented]["feedback_comment"] == "'=refused a harmless question"
    assert read[commented + 1]["feedback_comment"] == ""

    store.export_jsonl(tmp_path / "turns.jsonl", labelled_only=False)
    records = [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]
    assert records[0]["meta"] == {"feedback_comment": "=refused a harmless question"}
    assert "meta" not in records[1]


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_prefix_is_neutralised_in_the_csv_export(store, tmp_path, prefix):
    session_id = store.start_session()
    store.log_turn(session_id, **turn(prompt=f"{prefix}cmd|' /C calc'!A0"))
    store.export_csv(tmp_path / "turns.csv")
    with open(tmp_path / "turns.csv", newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["prompt"] == f"'{prefix}cmd|' /C calc'!A0"
