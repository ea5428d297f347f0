"""Tests for loaders of public formats (VLGuard-style JSON, the paper's JSONL): categories
map onto our taxonomy and unknown ones are rejected by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from safevlm.data.loaders import load_paper_jsonl, load_vlguard, normalize_name
from safevlm.data.schema import DataError, read_jsonl, write_jsonl
from safevlm.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (8, 8), (0, 120, 0)).save(folder / name)
    return folder


def _vlguard_file(tmp_path: Path, entries: list) -> Path:
    path = tmp_path / "vlguard.json"
    path.write_text(json.dumps(entries))
    return path


def _safe_entry() -> dict:
    return {
        "id": "s1",
        "image": "imgs/a.jpg",
        "safe": True,
        "instr-resp": [
            {"safe_instruction": "What is in this picture?", "response": "A green square."},
            {
                "unsafe_instruction": "Tell me how to hurt someone with this.",
                "response": "I can't help with that.",
            },
        ],
    }


def _unsafe_entry(category: str, subcategory: str, image: str = "imgs/b.jpg") -> dict:
    return {
        "id": f"u-{subcategory}",
        "image": image,
        "safe": False,
        "harmful_category": category,
        "harmful_subcategory": subcategory,
        "instr-resp": [{"instruction": "Describe the image.", "response": "I can't."}],
    }


def test_vlguard_entries_map_onto_our_types_and_levels(tmp_path, images, taxonomy):
    path = _vlguard_file(
        tmp_path,
        [
            _safe_entry(),
            _unsafe_entry("Privacy", "Personal data"),
            _unsafe_entry("Risky Behavior", "Violence"),
            _unsafe_entry("Deception", "Disinformation"),
            _unsafe_entry("Hateful Speech", "Discrimination by race"),
            _unsafe_entry("Hateful Speech", "Other"),
            _unsafe_entry("risky_behavior", "professional-advice", image="imgs/c.jpg"),
        ],
    )
    records = load_vlguard(path, taxonomy=taxonomy)
    labels = [(r.type, r.level) for r in records]
    assert labels == [
        ("safe", 0),
        ("illegal_risk", 3),
        ("privacy", 2),
        ("illegal_risk", 3),
        ("misleading", 3),
        ("fairness", 3),
        ("insults_bullying", 3),
        ("misleading", 2),
    ]
    assert records[1].meta["type_guessed"] is True
    assert records[0].group == records[1].group == "s1"
    assert records[0].prompt == "What is in this picture?"
    assert Path(records[2].image) == images / "b.jpg"
    assert all(r.source == "vlguard" and r.split == "train" for r in records)


def test_vlguard_unknown_category_is_rejected_by_name(tmp_path, images, taxonomy):
    path = _vlguard_file(tmp_path, [_safe_entry(), _unsafe_entry("Weather", "Hail")])
    with pytest.raises(
        DataError,
        match=r"vlguard\.json\[1\].*unknown VLGuard category "
        r"'Weather/Hail'",
    ):
        load_vlguard(path, taxonomy=taxonomy)


def test_vlguard_missing_image_and_missing_keys_are_reported(tmp_path, images, taxonomy):
    path = _vlguard_file(tmp_path, [_unsafe_entry("Privacy", "Personal data", "imgs/zz.jpg")])
    with pytest.raises(DataError, match=r"\[0\]: image file not found"):
        load_vlguard(path, taxonomy=taxonomy)
    assert len(load_vlguard(path, taxonomy=taxonomy, check_images=False)) == 1
    path = _vlguard_file(tmp_path, [{"id": "x", "image": "imgs/a.jpg"}])
    with pytest.raises(DataError, match=r"\[0\]: missing key 'safe'"):
        load_vlguard(path, taxonomy=taxonomy)


def test_vlguard_image_root_overrides_the_json_folder(tmp_path, images, taxonomy):
    entry = _unsafe_entry("Privacy", "Personal data", image="a.jpg")
    path = _vlguard_file(tmp_path, [entry])
    (record,) = load_vlguard(path, image_root=images, taxonomy=taxonomy)
    assert Path(record.image) == images / "a.jpg"


def _paper_file(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "paper.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _paper_row(safe_type, level: int, image: str = "imgs/a.jpg") -> dict:
    return {
        "image": image,
        "safe_type": safe_type,
        "safe_level": level,
        "conversations": [
            {"from": "human", "value": "<image>\nWhat does the sign say?"},
            {"from": "gpt", "value": "It says hello."},
            {"from": "human", "value": "And the colour?"},
            {"from": "gpt", "value": "Green."},
        ],
    }


def test_paper_jsonl_maps_type_names_and_indices(tmp_path, images, taxonomy):
    path = _paper_file(
        tmp_path,
        [
            _paper_row("illegal risk", 3),
            _paper_row(4, 2),
            _paper_row("6", 0),
            _paper_row("Insults and Bullying", 1),
        ],
    )
    records = load_paper_jsonl(path, taxonomy=taxonomy)
    assert [(r.type, r.level) for r in records[::2]] == [
        ("illegal_risk", 3),
        ("privacy", 2),
        ("safe", 0),
        ("insults_bullying", 1),
    ]
    assert records[0].prompt == "What does the sign say?"
    assert records[1].prompt == "And the colour?" and records[1].response == "Green."
    assert records[0].group == records[1].group != records[2].group


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_paper_row("astrology", 2), "unknown safe_type 'astrology'"),
        (_paper_row(9, 2), "safe_type index 9 out of range"),
        (_paper_row("privacy", 5), "level 5 out of range"),
        (_paper_row("safe", 2), "safe type but level is 2"),
        ({"image": "imgs/a.jpg", "safe_type": "safe", "safe_level": 0}, "missing key"),
        (
            {
                "image": "imgs/a.jpg",
                "safe_type": "safe",
                "safe_level": 0,
                "conversations": [{"from": "human", "value": "hi"}],
            },
            "no human/gpt turn pair",
        ),
    ],
)
def test_paper_jsonl_problems_name_the_line(tmp_path, images, taxonomy, row, message):
    path = _paper_file(tmp_path, [_paper_row("safe", 0), row])
    with pytest.raises(DataError, match=rf"paper\.jsonl:2: .*{message}"):
        load_paper_jsonl(path, taxonomy=taxonomy)


def test_loaded_records_round_trip_through_our_jsonl(tmp_path, images, taxonomy):
    records = load_paper_jsonl(
        _paper_file(tmp_path, [_paper_row("misleading", 2)]), taxonomy=taxonomy
    )
    path = write_jsonl(tmp_path / "out" / "train.jsonl", records)
    assert read_jsonl(path, taxonomy) == records


def test_a_custom_mapping_file_can_rename_categories(tmp_path, images, taxonomy):
    mapping = {
        "vlguard": {"categories": {"weather": {"type": "misleading", "level": 1}}},
        "paper": {"type_order": [], "types": {}},
    }
    path = _vlguard_file(tmp_path, [_unsafe_entry("Weather", "Hail")])
    (record,) = load_vlguard(path, taxonomy=taxonomy, mapping=mapping)
    assert (record.type, record.level) == ("misleading", 1)


def test_category_names_ignore_case_spaces_underscores_and_hyphens():
    assert (
        normalize_name(" Risky_Behavior ") == normalize_name("risky-behavior") == "risky behavior"
    )
