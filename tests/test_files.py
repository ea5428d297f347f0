"""safevlm.files: every rewritten report, policy, export and store file is replaced whole."""

import os
import sqlite3

import pytest

from safevlm.files import replacing, write_atomically
from safevlm.store.images import _IMAGE_FILE_RE


def test_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "deep" / "report.json"  # missing folders are created
    write_atomically(target, "first\n")
    write_atomically(target, "é second\n")
    assert target.read_text(encoding="utf-8") == "é second\n"
    write_atomically(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes"
    assert os.listdir(target.parent) == ["report.json"]


def test_a_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "policy.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as temp:
        temp.write_text("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["policy.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "labels.jsonl"
    target.write_text("old")
    with pytest.raises(TypeError):
        write_atomically(target, 42)  # not text or bytes: fails after the temp file exists
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["labels.jsonl"]


def test_the_temp_path_can_be_written_by_other_libraries(tmp_path):
    target = tmp_path / "snapshot.db"  # the sync writes SQLite backups this way
    with replacing(target) as temp:
        assert temp.parent == tmp_path and temp.name.startswith(".snapshot.db.") and temp.suffix == ".tmp"
        db = sqlite3.connect(temp)
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.close()
    assert sqlite3.connect(target).execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]


def test_temp_names_of_image_files_are_swept_as_orphans(tmp_path):
    image = tmp_path / ("a" * 64 + ".png")
    with replacing(image) as temp:
        assert _IMAGE_FILE_RE.match(temp.name), temp.name


def test_a_replaced_file_keeps_its_mode_and_a_new_one_gets_the_usual_mode(tmp_path):
    kept = tmp_path / "policy.json"
    kept.write_text("old")
    kept.chmod(0o640)
    write_atomically(kept, "new")
    assert kept.stat().st_mode & 0o777 == 0o640
    kept.chmod(0o444)  # read-only: still replaceable (the folder is writable), still read-only
    write_atomically(kept, "newer")
    assert kept.read_text() == "newer" and kept.stat().st_mode & 0o777 == 0o444
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = write_atomically(tmp_path / "export.jsonl", "{}\n")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not mkstemp's 0600
