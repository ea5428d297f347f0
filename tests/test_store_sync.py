"""LogSync: snapshots of the log pushed to a dataset repo by huggingface_hub's real
CommitScheduler, against an in-memory stand-in for the Hub API (no network here)."""

from __future__ import annotations

import io
import sqlite3
from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from PIL import Image

from safevlm.store import Store, StoreError
from safevlm.store.sync import LogSync, backup_database


class FakeHub:
    """The HfApi calls CommitScheduler makes; scheduled pushes wait until `run()`."""

    def __init__(self):
        self.repos, self.commits, self.pending = [], [], []

    def create_repo(self, repo_id, private=None, repo_type=None, exist_ok=False):
        self.repos.append({"repo_id": repo_id, "private": private, "repo_type": repo_type})
        return SimpleNamespace(repo_id=repo_id)

    def run_as_future(self, fn):
        future = Future()
        self.pending.append((fn, future))
        return future

    def run(self):
        while self.pending:
            fn, future = self.pending.pop(0)
            future.set_result(fn())

    def create_commit(self, repo_id, repo_type, operations, commit_message, revision=None):
        self.commits.append({op.path_in_repo: op.path_or_fileobj.read() for op in operations})
        return "commit"


def png(color):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format="PNG")
    return buffer.getvalue()


def log_turn(store, session, image=None):
    return store.log_turn(
        session, prompt="What is in this picture?", response="A red square.", decision="allow",
        type="safe", level=0, flagged=False, type_probs={"safe": 0.97}, level_probs=[0.97, 0.01, 0.01, 0.01],
        hint=None, mode="hint", thresholds={"level": 0.5}, base="tiny", checkpoint="assets/checkpoint",
        timings={"total_ms": 5}, source="ui", image=image,
    )


def turns_in(db_bytes, tmp_path):
    path = tmp_path / "pushed.db"
    path.write_bytes(db_bytes)
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM turns").fetchone()[0]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "logs" / "safevlm.db") as s:
        yield s


def test_pushes_a_consistent_snapshot_then_only_what_changed(store, tmp_path):
    session = store.start_session(client="ui")
    log_turn(store, session, image=png((255, 0, 0)))
    hub = FakeHub()
    sync = LogSync(store, "me/safevlm-logs", every=60, images=True, hf_api=hub)
    try:
        assert hub.repos == [{"repo_id": "me/safevlm-logs", "private": True, "repo_type": "dataset"}]
        hub.run()  # the scheduler's first push, at start
        (first,) = hub.commits
        image_files = [name for name in first if name.startswith("images/")]
        assert {"safevlm.db", "turns.csv"} <= set(first) and len(image_files) == 1
        assert turns_in(first["safevlm.db"], tmp_path) == 1
        assert b"What is in this picture?" in first["turns.csv"]

        # a new turn on the same image: the database and the CSV go again, the image does not
        log_turn(store, session, image=png((255, 0, 0)))
        sync.trigger()
        hub.run()
        second = hub.commits[-1]
        assert set(second) == {"safevlm.db", "turns.csv"}
        assert turns_in(second["safevlm.db"], tmp_path) == 2

        # a forgotten chat leaves the next snapshot, and its image leaves the folder
        store.delete_session(session)
        sync.trigger()
        hub.run()
        assert turns_in(hub.commits[-1]["safevlm.db"], tmp_path) == 0
        assert not list((sync.folder_path / "images").glob("*/*"))
    finally:
        sync.stop()


def test_images_stay_on_the_server_unless_asked_for(store):
    log_turn(store, store.start_session(), image=png((0, 0, 255)))
    hub = FakeHub()
    sync = LogSync(store, "me/logs", every=60, hf_api=hub)
    try:
        hub.run()
        assert not [name for name in hub.commits[0] if name.startswith("images/")]
    finally:
        sync.stop()


def test_nothing_to_push_when_logging_is_off(tmp_path):
    with Store(tmp_path / "off.db", enabled=False) as off:
        with pytest.raises(StoreError, match="logging is off"):
            LogSync(off, "me/logs", hf_api=FakeHub())


def test_a_snapshot_of_a_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot snapshot"):
        backup_database(tmp_path / "nope.db", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()
