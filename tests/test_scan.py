"""`safevlm scan`: folder, training JSONL and LLaVA JSON inputs, one CSV row per item,
resuming, unreadable images as error rows, and an HTML report that escapes what it shows."""

import csv
import json

import pytest
from PIL import Image

from safevlm.cli import main
from safevlm.data.schema import Record, write_jsonl
from safevlm.images import load_image
from safevlm.tools.scan import csv_columns, read_rows, scan
from safevlm.tools.scan_inputs import ScanError, find_items

SCRIPT = "<script>alert(1)</script>"
COLOURS = ("red", "green", "blue", "white", "black", "orange")


def picture(path, colour="red", size=(64, 48), **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, **save)
    return path


def csv_rows(out):
    with (out / "scan.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def folder(tmp_path):
    """Six images in nested folders, one per supported format, a file that is not one and
    hidden files that are not part of the dataset."""
    root = tmp_path / "images"
    for suffix, colour in zip(("png", "jpg", "webp", "gif", "bmp", "jpeg"), COLOURS, strict=True):
        picture(root / ("sub" if suffix in ("gif", "bmp") else "") / f"{colour}.{suffix}", colour)
    (root / "notes.txt").write_text("not an image")
    (root / "._red.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # hidden: skipped
    picture(root / ".cache" / "old.png")
    return root


def run_scan(engine, items, out, **kwargs):
    return scan(engine, items, out, progress=False, **kwargs)


def test_a_folder_gives_one_csv_row_per_image_with_every_probability(tiny_engine, folder, tmp_path):
    out = tmp_path / "report"
    result = run_scan(tiny_engine, find_items(folder), out, batch_size=4)

    rows = csv_rows(out)
    assert sorted(r["key"] for r in rows) == sorted(
        ["red.png", "green.jpg", "blue.webp", "sub/white.gif", "sub/black.bmp", "orange.jpeg"]
    )
    assert list(rows[0]) == csv_columns(tiny_engine.taxonomy)
    for row in rows:
        assert row["error"] == "" and row["prompt"] == "Describe this image."
        type_sum = sum(float(row[f"p_{t}"]) for t in tiny_engine.taxonomy.types)
        level_sum = sum(float(row[f"p_level_{k}"]) for k in range(len(tiny_engine.taxonomy.levels)))
        assert type_sum == pytest.approx(1, abs=1e-3) and level_sum == pytest.approx(1, abs=1e-3)
        assert row["flagged"] == str(int(row["decision"] != "allow"))
    assert (result.scanned, result.skipped, result.errors, result.rows) == (6, 0, 0, 6)
    assert (out / "scan.html").is_file()


def test_a_training_jsonl_gives_one_row_per_record_with_its_own_prompt(tiny_engine, tmp_path):
    image = picture(tmp_path / "data" / "images" / "sign.png", "white")
    records = [  # a contrastive pair: one image, two prompts, two rows
        Record(
            "images/sign.png", "What does the sign say?", "It says hello.", "safe", 0, "t", "test"
        ),
        Record(
            "images/sign.png",
            "How do I pick a lock?",
            "I can't help.",
            "illegal_risk",
            2,
            "t",
            "test",
        ),
        Record("images/missing.png", "What is this?", "-", "safe", 0, "t", "test"),
    ]
    jsonl = write_jsonl(tmp_path / "data" / "test.jsonl", records)

    items = find_items(jsonl)
    run_scan(tiny_engine, items, tmp_path / "report")

    rows = csv_rows(tmp_path / "report")
    assert [r["prompt"] for r in rows] == [r.prompt for r in records]
    assert len({r["key"] for r in rows}) == 3
    assert rows[0]["image"] == rows[1]["image"] == str(image)
    assert rows[2]["error"] and "not found" in rows[2]["error"]


def test_a_llava_json_gives_one_row_per_entry_with_the_first_human_prompt(tiny_engine, tmp_path):
    root = tmp_path / "coco"
    picture(root / "train2017" / "a.jpg", "green")
    picture(root / "train2017" / "b.jpg", "blue")
    entries = [
        {
            "id": "000a",
            "image": "train2017/a.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is on the table?"},
                {"from": "gpt", "value": "A cup."},
                {"from": "human", "value": "And the colour?"},
            ],
        },
        {
            "id": "000b",
            "image": "train2017/b.jpg",
            "conversations": [{"from": "human", "value": "Describe it in one word.\n<image>"}],
        },
        {"id": "000c", "conversations": [{"from": "human", "value": "Write a poem."}]},  # text only
    ]
    listing = tmp_path / "llava_mix.json"
    listing.write_text(json.dumps(entries))

    run_scan(tiny_engine, find_items(listing, image_root=root), tmp_path / "report")

    rows = {r["key"]: r for r in csv_rows(tmp_path / "report")}
    assert list(rows) == ["000a", "000b", "000c"]
    assert rows["000a"]["prompt"] == "What is on the table?"
    assert rows["000b"]["prompt"] == "Describe it in one word."
    assert rows["000a"]["image"] == str(root / "train2017" / "a.jpg")
    assert rows["000c"]["image"] == "" and rows["000c"]["error"] == ""
    assert all(r["decision"] in ("allow", "caution", "refuse") for r in rows.values())


def test_llava_paths_default_to_the_json_folder_and_repeated_ids_stay_apart(tmp_path):
    picture(tmp_path / "x.png")
    listing = tmp_path / "mix.json"
    listing.write_text(json.dumps([{"id": 7, "image": "x.png", "conversations": []}] * 2))
    items = find_items(listing)
    assert [i.key for i in items] == ["7", "7#dup2"]
    assert items[0].image == tmp_path / "x.png" and items[0].prompt == "Describe this image."


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ('{"id": 1}', "JSON list")],
)
def test_a_broken_llava_json_names_the_problem(tmp_path, content, message):
    listing = tmp_path / "bad.json"
    listing.write_text(content)
    with pytest.raises(ScanError, match=message):
        find_items(listing)


def test_a_rerun_skips_every_item_already_in_the_csv(tiny_engine, folder, tmp_path):
    out = tmp_path / "report"
    items = find_items(folder)
    first = run_scan(tiny_engine, items[:2], out)
    second = run_scan(tiny_engine, items, out)
    third = run_scan(tiny_engine, items, out)

    assert (first.scanned, second.scanned, second.skipped) == (2, 4, 2)
    assert (third.scanned, third.skipped, third.rows) == (0, 6, 6)
    assert len(csv_rows(out)) == 6, "no item is written twice"


def test_a_row_cut_short_by_a_killed_scan_is_dropped_and_redone(tiny_engine, folder, tmp_path):
    out = tmp_path / "report"
    items = find_items(folder)
    run_scan(tiny_engine, items[:3], out)
    csv_path = out / "scan.csv"
    text = csv_path.read_text(encoding="utf-8")
    csv_path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 20], encoding="utf-8")

    result = run_scan(tiny_engine, items, out)

    assert (result.skipped, result.scanned) == (2, 4)
    assert sorted(r["key"] for r in csv_rows(out)) == sorted(i.key for i in items)


def test_resuming_with_other_thresholds_is_refused(tiny_engine, folder, tmp_path):
    out = tmp_path / "report"
    items = find_items(folder)[:1]
    run_scan(tiny_engine, items, out)
    with pytest.raises(ScanError, match="thresholds"):
        run_scan(tiny_engine, items, out, thresholds={"level": 0.1})


def test_a_corrupt_image_gives_an_error_row_and_the_scan_goes_on(tiny_engine, folder, tmp_path):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (folder / "empty.jpg").write_bytes(b"")
    out = tmp_path / "report"

    result = run_scan(tiny_engine, find_items(folder), out, batch_size=3)

    rows = {r["key"]: r for r in csv_rows(out)}
    assert len(rows) == 8 and result.errors == 2 and result.unreadable == 2
    assert "corrupt" in rows["broken.png"]["error"] and rows["broken.png"]["decision"] == ""
    assert "empty" in rows["empty.jpg"]["error"]
    assert sum(1 for r in rows.values() if r["decision"]) == 6, "every other image is classified"
    assert "broken.png" in (out / "scan.html").read_text()


def test_the_report_escapes_prompts_file_names_and_read_text(tiny_engine, tmp_path):
    root = tmp_path / "images"
    picture(root / "a&b<i>.png", "white")
    out = tmp_path / "report"

    run_scan(tiny_engine, find_items(root, prompt=SCRIPT), out)

    page = (out / "scan.html").read_text(encoding="utf-8")
    assert SCRIPT not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&amp;b&lt;i&gt;.png" in page


def test_thumbnails_are_small_jpegs_beside_the_report_not_inline_data(tiny_engine, tmp_path):
    root = tmp_path / "images"
    picture(root / "big.png", "orange", size=(1600, 1200))
    out = tmp_path / "report"

    run_scan(tiny_engine, find_items(root), out)

    page = (out / "scan.html").read_text(encoding="utf-8")
    (thumb,) = (out / "thumbs").iterdir()
    assert f"thumbs/{thumb.name}" in page and "base64" not in page
    with Image.open(thumb) as img:
        assert img.format == "JPEG" and max(img.size) <= 128


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_a_spreadsheet_formula_in_a_prompt_is_neutralised(tiny_engine, folder, tmp_path, prefix):
    out = tmp_path / "report"
    prompt = f"{prefix}HYPERLINK(1) what is this?"
    run_scan(tiny_engine, find_items(folder, prompt=prompt)[:1], out)
    assert csv_rows(out)[0]["prompt"] == "'" + prompt, "the same escaping as the log's CSV export"
    assert read_rows(out / "scan.csv", csv_columns(tiny_engine.taxonomy))[0]["prompt"].startswith(
        "'"
    )


def test_batched_verdicts_equal_the_engines_classify(tiny_engine, folder, text_image_path):
    images = [load_image(folder / "red.png"), load_image(text_image_path), None]
    prompts = ["What is this?", "Read the text and follow it.", "Say hi."]
    thresholds = tiny_engine.thresholds()

    batched = tiny_engine.classify_batch(images, prompts, thresholds)

    for image, prompt, verdict in zip(images, prompts, batched, strict=True):
        single = tiny_engine.classify(image, prompt, thresholds)
        assert verdict.reader_text == single.reader_text
        assert verdict.decision == single.decision
        for t, p in single.type_probs.items():
            assert verdict.type_probs[t] == pytest.approx(p, abs=1e-4)
        assert verdict.level_probs == pytest.approx(single.level_probs, abs=1e-4)


def test_scan_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--help"])
    assert exc.value.code == 0 and "--no-ocr" in capsys.readouterr().out


def test_the_command_scans_without_ocr_and_prints_a_summary(folder, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["scan", str(folder), "--no-ocr", "--out", str(out), "--no-progress", "--top", "3"])

    printed = capsys.readouterr().out
    assert code == 0 and "6 new" in printed and "images/s" in printed
    assert all(r["reader_text"] == "" for r in csv_rows(out))
    assert json.loads((out / "scan.json").read_text())["reader"] is False
    assert (out / "scan.html").read_text().count("<img ") == 3


def test_a_path_that_is_not_a_dataset_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["scan", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0
