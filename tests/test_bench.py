"""`safevlm bench --quick`: writes a JSON report with every section and positive
timings. Speed targets live in the report, never in these tests."""

import json

import pytest

from safevlm.cli import main as cli_main


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    assert cli_main(["bench", "--quick", "--out", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_the_report_has_every_section(report):
    assert {"load", "classify", "chat", "scaling", "scan", "peak_rss_mb", "machine"} <= set(report)
    assert report["quick"] is True


def test_load_is_measured_in_a_fresh_process(report):
    load = report["load"]
    assert load["first_load_s"] > 0 and load["second_load_s"] > 0 and load["peak_rss_mb"] > 0


def test_classify_splits_vision_reader_and_head_for_new_and_cached_images(report):
    classify = report["classify"]
    new, cached = classify["new_image_ms"], classify["cached_image_ms"]
    assert new["vision"] > 0 and new["reader"] > 0 and new["classify"] > 0
    assert cached["vision"] == 0 and cached["reader"] == 0 and cached["classify"] > 0
    assert classify["batch_images_per_s"] > 0


def test_chat_rows_cover_every_mode_and_the_base_on_clean_and_risky_inputs(report):
    for kind in ("clean", "risky"):
        rows = report["chat"][kind]
        for mode in ("hint", "tokens", "both", "off", "base"):
            assert rows[mode]["first_token_ms"] > 0 and rows[mode]["tokens_per_s"] >= 0
        assert rows["base"]["tokens_per_s"] > 0
        assert set(rows["overhead_ratio"]) == {"hint", "tokens", "both", "off"}
        assert all(ratio > 0 for ratio in rows["overhead_ratio"].values())


def test_scaling_rows_grow_with_image_size_prompt_length_and_turns(report):
    scaling = report["scaling"]
    assert scaling["image_size"] and all(row["vision"] > 0 for row in scaling["image_size"])
    assert scaling["prompt_words"] and scaling["prompt_words"][0]["first_token_ms"] > 0
    assert scaling["turns"] and scaling["turns"][0]["tokens_per_s"] > 0


def test_scan_throughput_is_measured_with_and_without_the_reader(report):
    scan = report["scan"]
    assert scan["images"] > 0
    assert scan["reader_images_per_s"] > 0 and scan["no_reader_images_per_s"] > 0


def test_the_llava_path_benches_too(tmp_path, tiny_llava_dir, toy_base):
    """The GPU-host path (`--base llava:DIR`), here on a tiny random Llava and untrained
    safety modules: every section runs, and the report names the base it measured."""
    from safevlm.config import SafeVLMConfig
    from safevlm.model.modeling import SafeVLM

    checkpoint = tmp_path / "checkpoint"
    SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).save_safety_modules(checkpoint)
    out = tmp_path / "results.json"
    assert cli_main(["bench", "--quick", "--base", f"llava:{tiny_llava_dir}",
                     "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["base"].startswith("llava:") and report["load"]["first_load_s"] > 0
    assert report["classify"]["new_image_ms"]["reader"] < 1  # no OCR: LLaVA reads text itself
    assert report["chat"]["clean"]["base"]["tokens_per_s"] > 0
