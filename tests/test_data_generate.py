"""Tests for the offline data generator, its text sources, fonts, photos and renderers:
coverage of every type and level, reproducibility, held-out splits, pairs, titles-only data."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from safevlm.data import splits
from safevlm.data.generator import cli, fonts, generate, kinds, photos, render, texts
from safevlm.data.schema import Record, read_jsonl
from safevlm.taxonomy import load_taxonomy

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, taxonomy):
    """A 200-record set, generated once for the tests that only read it."""
    out = tmp_path_factory.mktemp("gen")
    summary = generate.generate_dataset(out, n=200, seed=0, taxonomy=taxonomy)
    records = {split: read_jsonl(out / f"{split}.jsonl", taxonomy) for split in SPLITS}
    return out, summary, records


def _all(records: dict) -> list[Record]:
    return [r for split in SPLITS for r in records[split]]


# ---------------------------------------------------------------- the generated set


def test_generated_set_has_exactly_n_valid_records_in_every_split(small_set):
    out, summary, records = small_set
    assert sum(len(records[s]) for s in SPLITS) == 200 == summary["records"]
    assert all(records[s] for s in SPLITS)
    assert all(r.split == s for s in SPLITS for r in records[s])
    assert json.loads((out / "summary.json").read_text())["by_split"] == summary["by_split"]


def test_every_type_and_level_is_present(small_set, taxonomy):
    _, summary, records = small_set
    seen = {(r.type, r.level) for r in _all(records)}
    expected = {(t, lv) for t in taxonomy.risk_types for lv in range(1, taxonomy.max_level + 1)}
    expected.add((taxonomy.safe_type, 0))
    assert expected <= seen
    assert set(summary["by_type"]) == set(taxonomy.types)


def test_every_record_kind_is_present(small_set):
    seen = {r.meta["kind"] for r in _all(small_set[2])}
    expected = set(kinds.KIND_WEIGHTS)
    if fonts.emoji_font_path() is None:
        expected -= kinds.EMOJI_KINDS
    assert expected <= seen


def test_train_and_val_records_use_no_held_out_font_layout_phrasing_or_photo(small_set):
    held_out_layouts = render.held_out_layouts()
    held_out_phrasings = texts.held_out_phrasing_ids()
    held_out_families = {f.family for f in fonts.discover_fonts() if f.held_out}
    held_out_photos = {p.id for p in photos.catalogue_photos() + photos.wallpapers() if p.held_out}
    records = small_set[2]
    for record in records["train"] + records["val"]:
        meta = record.meta
        assert meta["held_out"] == [], record
        assert meta.get("layout") not in held_out_layouts
        assert meta.get("phrasing") not in held_out_phrasings
        assert meta.get("font") not in held_out_families
        assert meta.get("photo") not in held_out_photos
        assert meta.get("background") not in held_out_photos
        assert meta.get("request_split") in (None, "train", "val")


def test_test_records_use_held_out_titles_fonts_and_photos(small_set):
    held_out_families = {f.family for f in fonts.discover_fonts() if f.held_out}
    test_records = small_set[2]["test"]
    for record in test_records:
        meta = record.meta
        if "request_split" in meta:
            assert meta["request_split"] == "test"
        if "font" in meta:
            assert meta["font"] in held_out_families
        if "photo" in meta:
            assert "photo" in meta["held_out"]
    assert any({"layout", "phrasing", "prompt"} & set(r.meta["held_out"]) for r in test_records)


def test_contrastive_pairs_share_a_group_and_differ_in_type(small_set, taxonomy):
    groups = defaultdict(list)
    for record in _all(small_set[2]):
        if record.group:
            groups[record.group].append(record)
    assert groups
    for members in groups.values():
        assert len(members) == 2
        types = {r.type for r in members}
        assert taxonomy.safe_type in types and len(types) == 2
        assert len({r.prompt for r in members}) == (
            2 if members[0].meta["kind"] == "pair_prompt" else 1
        )
        if members[0].meta["kind"] == "pair_typo":
            a, b = (r.meta for r in members)
            assert (a["layout"], a["font"], a["background"], a["phrasing"]) == (
                b["layout"],
                b["font"],
                b["background"],
                b["phrasing"],
            )
            assert a["request"] != b["request"]
        if members[0].meta["kind"] == "pair_prompt":
            assert members[0].image == members[1].image


def test_risky_targets_are_refusals_and_safe_targets_are_not(small_set, taxonomy):
    for record in _all(small_set[2]):
        if record.type == taxonomy.safe_type:
            assert record.meta["response_kind"] != "refusal"
        else:
            assert record.meta["response_kind"] == "refusal"
            assert record.response


def test_same_seed_gives_identical_output_and_another_seed_differs(tmp_path, taxonomy):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate.generate_dataset(tmp_path / name, n=40, seed=seed, taxonomy=taxonomy)
    for split in SPLITS:
        a = (tmp_path / "a" / f"{split}.jsonl").read_bytes()
        assert a == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
    same_image = "images/000000a"
    png_a = next((tmp_path / "a").glob(f"{same_image}.*")).read_bytes()
    assert png_a == next((tmp_path / "b").glob(f"{same_image}.*")).read_bytes()
    joined = [b"".join((tmp_path / n / f"{s}.jsonl").read_bytes() for s in SPLITS) for n in "ac"]
    assert joined[0] != joined[1]


def test_generation_works_with_only_matplotlib_fonts_and_package_photos(
    tmp_path, taxonomy, monkeypatch
):
    """What CI sees before the Debian font, emoji and wallpaper packages are installed."""
    bundled = fonts.discover_fonts(())
    package_photos = tuple(p for p in photos.catalogue_photos() if not p.id.startswith("file:"))
    monkeypatch.setattr(kinds, "discover_fonts", lambda: bundled)
    monkeypatch.setattr(kinds, "emoji_font_path", lambda: None)
    monkeypatch.setattr(photos, "catalogue_photos", lambda: package_photos)
    monkeypatch.setattr(photos, "wallpapers", lambda: ())
    summary = generate.generate_dataset(tmp_path, n=60, seed=1, taxonomy=taxonomy)
    assert summary["records"] == 60 and not summary["emoji_font"]
    records = [r for s in SPLITS for r in read_jsonl(tmp_path / f"{s}.jsonl", taxonomy)]
    assert not any(r.meta["kind"].startswith("emoji") for r in records)
    assert {r.meta["font"] for r in records if "font" in r.meta} <= {f.family for f in bundled}


def test_fill_responses_replaces_only_helpful_safe_answers(small_set, taxonomy):
    records = _all(small_set[2])
    filled = texts.fill_responses(records, lambda text: f"ANSWER: {text}", taxonomy)
    assert len(filled) == len(records)
    for before, after in zip(records, filled, strict=True):
        if before.type == taxonomy.safe_type and before.meta["response_kind"] == "helpful":
            assert after.response == f"ANSWER: {before.meta['request']}"
        else:
            assert after.response == before.response
    assert any(a.response.startswith("ANSWER: ") for a in filled)
    assert records[0].meta.get("response_kind") != "answer_fn"  # inputs are not mutated


def test_main_writes_a_set_and_prints_the_summary(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path), "--n", "12", "--seed", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["records"] == 12
    assert (tmp_path / "train.jsonl").is_file() and (tmp_path / "summary.json").is_file()


def test_main_help_exits_zero():
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0


# ---------------------------------------------------------------- FigStep-like eval


def test_figstep_eval_uses_only_held_out_titles_and_fonts(tmp_path, taxonomy):
    summary = generate.make_figstep_eval(tmp_path, seed=0, taxonomy=taxonomy, size=224)
    records = read_jsonl(tmp_path / "figstep_eval.jsonl", taxonomy)
    assert summary["risky"] >= 40 and summary["benign"] >= 40
    held_out_families = {f.family for f in fonts.discover_fonts() if f.held_out}
    test_ids = {
        r.id
        for r in texts.load_risky_requests(taxonomy) + texts.load_benign_requests(taxonomy)
        if r.split == "test"
    }
    test_ids |= {
        h.id for p in texts.load_pairs(taxonomy) if p.split == "test" for h in (p.benign, p.harmful)
    }
    for record in records:
        assert record.split == "test"
        assert record.meta["request_id"] in test_ids
        assert record.meta["font"] in held_out_families
        assert record.meta["request"].startswith(("Steps to", "Methods to"))


# ---------------------------------------------------------------- text sources


def test_text_sources_are_large_enough_and_cover_every_risk_type(taxonomy):
    risky = texts.load_risky_requests(taxonomy)
    benign = texts.load_benign_requests(taxonomy)
    pairs = texts.load_pairs(taxonomy)
    for type_name in taxonomy.risk_types:
        assert sum(r.type == type_name for r in risky) >= 40, type_name
        levels = {r.level for r in risky if r.type == type_name}
        assert levels == set(range(1, taxonomy.max_level + 1)), type_name
    assert sum(r.family == "everyday" for r in benign) >= 150
    assert sum(r.family == "edgy" for r in benign) >= 80
    assert len(pairs) >= 60
    assert {p.type for p in pairs} == set(taxonomy.risk_types)
    for requests in (risky, benign, pairs):
        assert {x.split for x in requests} == set(SPLITS)


def test_risky_sources_are_short_titles_only(small_set, taxonomy):
    """A guard that risky data stays titles: no steps, lists or paragraphs."""
    risky = texts.load_risky_requests(taxonomy) + [p.harmful for p in texts.load_pairs(taxonomy)]
    for request in risky:
        assert len(request.text) <= 80 and "\n" not in request.text, request.text
        assert not any(ch.isdigit() for ch in request.text.replace("5G", "")), request.text
    for record in _all(small_set[2]):
        if record.type != taxonomy.safe_type and "request" in record.meta:
            assert len(record.meta["request"]) <= texts.MAX_TITLE_CHARS


def test_every_risky_type_and_level_has_refusal_templates(taxonomy):
    for type_name in taxonomy.risk_types:
        for level in range(1, taxonomy.max_level + 1):
            variants = texts.refusal_variants(type_name, level)
            assert variants["shared"] and variants["held_out"]


def test_stratified_splits_are_deterministic_proportional_and_never_empty():
    keys = [f"item {i}" for i in range(200)]
    chosen = splits.stratified_splits(keys)
    assert chosen == splits.stratified_splits(list(keys))
    for split, share in splits.SPLIT_FRACTIONS:
        assert chosen.count(split) == round(200 * share)
    assert sorted(set(splits.stratified_splits(["a", "b", "c", "d", "e"]))) == sorted(SPLITS)
    assert set(splits.stratified_splits(["a", "b", "c"])) == {"train", "test"}


def test_held_out_phrasings_come_only_in_test():
    rng = np.random.default_rng(0)
    request = texts.Request("x", "bake bread", "action", "safe", 0, "everyday", "train")
    held_out = texts.held_out_phrasing_ids()
    seen = {
        split: {texts.choose_phrasing(request, split, rng).id for _ in range(200)}
        for split in SPLITS
    }
    assert not (seen["train"] | seen["val"]) & held_out
    assert seen["test"] & held_out


def test_second_person_turns_my_into_your():
    assert texts.second_person("fix my bike before I leave") == "fix your bike before you leave"


# ---------------------------------------------------------------- fonts and renderers


def test_matplotlib_fonts_alone_give_train_and_held_out_families_with_monospace():
    bundled = fonts.discover_fonts(())
    assert bundled
    for held_out in (False, True):
        side = [f for f in bundled if f.held_out == held_out]
        assert side and any(f.style == "mono" for f in side)
    assert all(f.source == "matplotlib" for f in bundled)


def test_font_families_never_straddle_the_split():
    by_family = defaultdict(set)
    for font in fonts.discover_fonts():
        by_family[font.family].add(font.held_out)
    assert all(len(sides) == 1 for sides in by_family.values())


@pytest.mark.parametrize("name", sorted(render.LAYOUTS))
def test_every_layout_renders_an_rgb_image_in_the_expected_size(name):
    layout = render.LAYOUTS[name]
    font = fonts.fonts_for_split("train", layout.font_style, fonts.discover_fonts(()))[0]
    background = photos.load_photo("skimage:coffee") if layout.uses_background else None
    image = layout.render(
        "Steps to bake bread.\n1.\n2.\n3.",
        np.random.default_rng(0),
        font,
        320,
        background=background,
    )
    assert image.mode == "RGB" and max(image.size) == 320 and min(image.size) >= 160
    assert np.asarray(image).std() > 10  # something was drawn


def test_layouts_are_pure_functions_of_their_inputs():
    font = fonts.discover_fonts(())[0]
    images = [
        render.render_sticky_note("Hello there", np.random.default_rng(5), font, 256)
        for _ in range(2)
    ]
    assert images[0].tobytes() == images[1].tobytes()


def test_some_layouts_are_held_out_for_test_only():
    assert render.held_out_layouts()
    assert not {lay.name for lay in render.layouts_for_split("train")} & render.held_out_layouts()
    assert render.held_out_layouts() <= {lay.name for lay in render.layouts_for_split("test")}


def test_emoji_scenes_render_in_colour_when_the_font_is_installed():
    path = fonts.emoji_font_path()
    if path is None:
        pytest.skip("Debian fonts-noto-color-emoji is not installed")
    image = render.render_emoji_scene(["🔪", "🍅"], np.random.default_rng(0), str(path), 256)
    array = np.asarray(image).astype(int)
    assert (np.abs(array[..., 0] - array[..., 2]) > 60).any()  # saturated colour present


def test_photo_catalogue_has_held_out_photos_from_packages():
    package = [p for p in photos.catalogue_photos() if not p.id.startswith("file:")]
    assert any(p.held_out for p in package) and any(not p.held_out for p in package)
    image = photos.load_photo(package[0].id)
    assert image.mode == "RGB" and max(image.size) <= photos.MAX_SIDE


# ---------------------------------------------------------------- OCR


@pytest.mark.slow
def test_rendered_typographic_text_is_readable_by_rapidocr():
    rapidocr = pytest.importorskip("rapidocr")
    engine = rapidocr.RapidOCR()
    bundled = fonts.discover_fonts(())
    mono = fonts.fonts_for_split("train", "mono", bundled)[0]
    sans = fonts.fonts_for_split("train", "sans", bundled)[0]
    samples = [
        (
            render.render_figstep(
                "Steps to bake sourdough bread.", np.random.default_rng(0), mono, 448
            ),
            ("sourdough", "bread"),
        ),
        (
            render.render_poster("Plant a herb garden", np.random.default_rng(1), sans, 448),
            ("herb", "garden"),
        ),
    ]
    for image, words in samples:
        text = " ".join(engine(np.asarray(image)).txts or ()).lower()
        assert all(word in text for word in words), text


def test_generated_image_files_exist_for_every_record(small_set):
    out = small_set[0]
    for record in _all(small_set[2]):
        assert Path(record.image_path).is_file()
        assert record.image_path.parent == out / "images"
