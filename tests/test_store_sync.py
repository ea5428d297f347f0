"""LogSync and restore_log: snapshots of the log pushed to a dataset repo by huggingface_hub's
real CommitScheduler, and brought back after a restart, against the in-memory `hub` of
conftest (no network here)."""

from __future__ import annotations

import io
import sqlite3

import pytest
from PIL import Image

from safevlm.store import Store, StoreError
from safevlm.store.sync import LogSync, backup_database, restore_log


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


def count_turns(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM turns").fetchone()[0]


def turns_in(db_bytes, tmp_path):
    path = tmp_path / "pushed.db"
    path.write_bytes(db_bytes)
    return count_turns(path)


def image_files(files):
    return sorted(name for name in files if name.startswith("images/"))


def push_log(hub, db_path, turns=1, image=None):
    """What a first server leaves in the dataset: its log of `turns` turns, pushed once."""
    with Store(db_path) as store:
        session = store.start_session()
        for _ in range(turns):
            log_turn(store, session, image=image)
        sync = LogSync(store, "me/safevlm-logs", every=60, images=image is not None, hf_api=hub)
        hub.run()
        sync.stop()


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "logs" / "safevlm.db") as s:
        yield s


def test_pushes_a_consistent_snapshot_then_only_what_changed(store, hub, tmp_path):
    session = store.start_session(client="ui")
    log_turn(store, session, image=png((255, 0, 0)))
    sync = LogSync(store, "me/safevlm-logs", every=60, images=True, hf_api=hub)
    try:
        assert hub.private is True
        assert {"repo_id": "me/safevlm-logs", "private": True, "repo_type": "dataset"} in hub.repos
        hub.run()  # the scheduler's first push, at start
        (first,) = hub.commits
        assert {"safevlm.db", "turns.csv"} <= set(first.added) and len(image_files(first.added)) == 1
        assert turns_in(first.added["safevlm.db"], tmp_path) == 1
        assert b"What is in this picture?" in first.added["turns.csv"]

        # a new turn on the same image: the database and the CSV go again, the image does not
        log_turn(store, session, image=png((255, 0, 0)))
        sync.trigger()
        hub.run()
        second = hub.commits[-1]
        assert set(second.added) == {"safevlm.db", "turns.csv"} and not second.deleted
        assert turns_in(second.added["safevlm.db"], tmp_path) == 2
    finally:
        sync.stop()


def test_a_forgotten_chat_leaves_the_next_snapshot_and_its_image_leaves_the_dataset(store, hub, tmp_path):
    kept, forgotten = store.start_session(), store.start_session()
    log_turn(store, kept, image=png((0, 255, 0)))
    log_turn(store, forgotten, image=png((255, 0, 0)))
    sync = LogSync(store, "me/safevlm-logs", every=60, images=True, hf_api=hub)
    try:
        hub.run()
        pushed = image_files(hub.files)
        assert len(pushed) == 2

        store.delete_session(forgotten)
        sync.trigger()
        hub.run()
        assert turns_in(hub.files["safevlm.db"], tmp_path) == 1
        (gone,) = hub.commits[-1].deleted  # the scheduler alone only ever adds files
        assert gone in pushed and image_files(hub.files) == [name for name in pushed if name != gone]
        assert not (sync.folder_path / gone).exists()

        # nothing else gone: the next push deletes nothing
        sync.trigger()
        hub.run()
        assert not hub.commits[-1].deleted and len(image_files(hub.files)) == 1
    finally:
        sync.stop()


def test_images_stay_on_the_server_unless_asked_for(store, hub):
    log_turn(store, store.start_session(), image=png((0, 0, 255)))
    sync = LogSync(store, "me/logs", every=60, hf_api=hub)
    try:
        hub.run()
        assert not image_files(hub.commits[0].added)
    finally:
        sync.stop()


def test_an_existing_public_dataset_is_refused_before_anything_is_pushed(store, hub):
    hub.create_repo("me/logs", private=False, repo_type="dataset")  # made public on the Hub
    log_turn(store, store.start_session())
    with pytest.raises(StoreError, match="me/logs is public.*make it private"):
        LogSync(store, "me/logs", every=60, hf_api=hub)
    assert not hub.pending and not hub.commits


def test_a_restart_continues_the_pushed_log_instead_of_replacing_it(hub, tmp_path):
    push_log(hub, tmp_path / "before" / "safevlm.db", turns=2, image=png((255, 0, 0)))
    (image,) = image_files(hub.files)

    db_path = tmp_path / "after" / "safevlm.db"  # a restarted Space: an empty disk
    assert restore_log(db_path, "me/safevlm-logs", images=True, hf_api=hub) == ["safevlm.db", image]
    with Store(db_path) as store:
        assert count_turns(db_path) == 2
        (restored,) = store.images_dir.glob("*/*")
        assert restored.read_bytes() == png((255, 0, 0))

        log_turn(store, store.start_session())
        sync = LogSync(store, "me/safevlm-logs", every=60, images=True, hf_api=hub)
        try:
            hub.run()
            assert turns_in(hub.files["safevlm.db"], tmp_path) == 3
            assert image_files(hub.files) == [image] and not hub.commits[-1].deleted
        finally:
            sync.stop()


def test_a_restore_without_images_downloads_only_the_log(hub, tmp_path):
    push_log(hub, tmp_path / "before" / "safevlm.db", image=png((255, 0, 0)))
    db_path = tmp_path / "after" / "safevlm.db"
    assert restore_log(db_path, "me/safevlm-logs", hf_api=hub) == ["safevlm.db"]
    assert [p.name for p in db_path.parent.iterdir()] == ["safevlm.db"]  # no images, no download leftovers
    assert count_turns(db_path) == 1


def test_a_log_already_on_disk_is_kept(hub, tmp_path):
    push_log(hub, tmp_path / "before" / "safevlm.db", turns=3)
    with Store(tmp_path / "here" / "safevlm.db") as store:
        log_turn(store, store.start_session())
    assert restore_log(store.path, "me/safevlm-logs", hf_api=hub) == []
    assert count_turns(store.path) == 1


def test_a_new_dataset_has_nothing_to_restore(hub, tmp_path):
    assert restore_log(tmp_path / "logs" / "safevlm.db", "me/safevlm-logs", hf_api=hub) == []
    assert not (tmp_path / "logs").exists()


def test_nothing_to_push_when_logging_is_off(tmp_path, hub):
    with Store(tmp_path / "off.db", enabled=False) as off:
        with pytest.raises(StoreError, match="logging is off"):
            LogSync(off, "me/logs", hf_api=hub)


def test_a_snapshot_of_a_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot snapshot"):
        backup_database(tmp_path / "nope.db", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()


def test_a_snapshot_into_a_folder_it_cannot_write_is_a_clear_error(store, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the sync folder should be")
    with pytest.raises(StoreError, match="cannot snapshot"):
        backup_database(store.path, blocker / "safevlm.db")


def test_a_temp_file_left_by_a_killed_snapshot_is_never_pushed(store, hub):
    log_turn(store, store.start_session())
    sync = LogSync(store, "me/safevlm-logs", every=60, hf_api=hub)
    try:
        crashed = [sync.folder_path / ".safevlm.db.k1ll3d.tmp",  # a half-written copy from a crash
                   sync.folder_path / ".safevlm.db.k1ll3d.tmp-journal"]  # and SQLite's journal
        elsewhere = sync.folder_path / "images" / "ab" / ".cd.png.x.tmp"  # where no cleanup looks
        elsewhere.parent.mkdir(parents=True)
        for path in (*crashed, elsewhere):
            path.write_bytes(b"half a file")
        hub.run()
        assert "safevlm.db" in hub.commits[-1].added
        pushed = [name for c in hub.commits for name in c.added]
        assert not any(".tmp" in name for name in pushed), pushed  # the ignore patterns
        assert not any(path.exists() for path in crashed)  # the snapshot's own leftovers go
    finally:
        sync.stop()
