"""Tests for the JSONL record schema: round trips and validation errors that name the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from safevlm.data.schema import DataError, Record, read_jsonl, write_jsonl
from safevlm.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


def _image(folder: Path, name: str = "images/a.png") -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    return name


def _good(image: str, **changes) -> dict:
    record = {
        "image": image,
        "prompt": "What is in this image?",
        "response": "A red square.",
        "type": "safe",
        "level": 0,
        "source": "test",
        "split": "train",
    }
    record.update(changes)
    return record


def _write_lines(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_written_records_read_back_equal_with_group_and_meta(tmp_path, taxonomy):
    image = _image(tmp_path)
    records = [
        Record(image, "Describe this.", "A square.", "safe", 0, "test", "train"),
        Record(
            image,
            "Steps to do harm.",
            "I can't help.",
            "illegal_risk",
            3,
            "test",
            "test",
            group="g1",
            meta={"kind": "typo_risky", "held_out": ["font"]},
        ),
    ]
    path = write_jsonl(tmp_path / "data.jsonl", records)
    again = read_jsonl(path, taxonomy)
    assert again == records
    assert again[1].group == "g1" and again[1].meta["held_out"] == ["font"]


def test_image_paths_resolve_against_the_jsonl_folder(tmp_path, taxonomy):
    image = _image(tmp_path / "set")
    path = _write_lines(tmp_path / "set" / "train.jsonl", [_good(image)])
    (record,) = read_jsonl(path, taxonomy)
    assert record.image == "images/a.png"
    assert record.image_path == tmp_path / "set" / "images" / "a.png"
    assert record.image_path.is_file()


def test_blank_lines_are_skipped(tmp_path, taxonomy):
    image = _image(tmp_path)
    path = _write_lines(tmp_path / "d.jsonl", [_good(image), "", _good(image)])
    assert len(read_jsonl(path, taxonomy)) == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, taxonomy, bad, message):
    image = _image(tmp_path)
    path = _write_lines(tmp_path / "d.jsonl", [_good(image), bad])
    with pytest.raises(DataError, match=rf"d\.jsonl:2: .*{message}"):
        read_jsonl(path, taxonomy)


def test_a_missing_key_is_named_with_its_line(tmp_path, taxonomy):
    image = _image(tmp_path)
    bad = _good(image)
    del bad["response"]
    path = _write_lines(tmp_path / "d.jsonl", [_good(image), _good(image), bad])
    with pytest.raises(DataError, match=r"d\.jsonl:3: missing key\(s\) response"):
        read_jsonl(path, taxonomy)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": "weather"}, "unknown type 'weather'"),
        ({"type": "illegal_risk", "level": 7}, "level 7 out of range 0..3"),
        ({"type": "illegal_risk", "level": -1}, "out of range"),
        ({"type": "illegal_risk", "level": "3"}, "level must be an integer"),
        ({"type": "safe", "level": 2}, "safe type but level is 2"),
        ({"type": "privacy", "level": 0}, "risky type 'privacy' has level 0"),
        ({"split": "holdout"}, "unknown split 'holdout'"),
        ({"meta": [1, 2]}, "'meta' must be an object"),
        ({"prompt": None}, "'prompt' must be a string"),
    ],
)
def test_invalid_labels_are_rejected_with_the_line(tmp_path, taxonomy, changes, message):
    image = _image(tmp_path)
    path = _write_lines(tmp_path / "d.jsonl", [_good(image, **changes)])
    with pytest.raises(DataError, match=rf"d\.jsonl:1: .*{message}"):
        read_jsonl(path, taxonomy)


def test_a_missing_image_file_is_rejected_unless_checks_are_off(tmp_path, taxonomy):
    path = _write_lines(tmp_path / "d.jsonl", [_good("images/nowhere.png")])
    with pytest.raises(DataError, match=r"d\.jsonl:1: image file not found: .*nowhere\.png"):
        read_jsonl(path, taxonomy)
    assert len(read_jsonl(path, taxonomy, check_images=False)) == 1


def test_a_missing_file_says_so(tmp_path, taxonomy):
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "absent.jsonl", taxonomy)
