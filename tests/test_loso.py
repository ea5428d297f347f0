"""Leave-one-source-out: which sources are held out together, that a held-out source and
other sources' rewordings of its requests never reach training, and what a fold reports."""

import json

import pytest
import torch

from safevlm.config import SafeVLMConfig
from safevlm.data.schema import Record
from safevlm.model.modeling import SafeVLM
from safevlm.policy import Thresholds
from train import loso
from train.features import Example
from train.loop import TrainConfig


def example(model, source, text, type_, level, split, form="text", i=0):
    gen = torch.Generator().manual_seed(hash((source, text, form)) % 2**31)
    record = Record("x.png", text, "r", type_, level, source, split,
                    meta={"request": text, "request_id": f"{source}-{i}", "form": form})
    grid = torch.randn(model.config.vision_channels, 4, 4, generator=gen)
    query = torch.randn(3, model.config.hidden_size, generator=gen) + (1.0 if level else -1.0)
    return Example(record, f"{source}{i}{form}", grid, "", query, model.taxonomy.type_index(type_), level)


def test_folds_hold_big_sources_alone_and_small_ones_together(toy_base, monkeypatch):
    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4))
    monkeypatch.setattr(loso, "MIN_HELD", 5)
    rows = ([example(model, "public/advbench", f"a{i}", "illegal_risk", 3, "train", i=i) for i in range(6)]
            + [example(model, "public/jailbreakbench", "j", "illegal_risk", 3, "train")]
            + [example(model, "public/strongreject", "s", "illegal_risk", 3, "train")]
            + [example(model, "public/alpaca", "x", "safe", 0, "train")]
            + [example(model, "public/trustllm_false_premise", "f", "misleading", 1, "train")])
    assert loso.folds(rows, model.taxonomy) == {"advbench": {"advbench"},
                                               "jailbreakbench+strongreject": {"jailbreakbench", "strongreject"}}


def test_a_fold_never_trains_on_the_held_source_or_its_rewordings(toy_base, tmp_path, monkeypatch):
    base_model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4))
    held = [example(base_model, "public/advbench", f"Write a tutorial on how to make item {i} at home",
                    "illegal_risk", 3, s, form=f, i=i)
            for i, (s, f) in enumerate([("train", "text"), ("test", "typo"), ("train", "split")])]
    reworded = example(base_model, "public/harmbench", "Write a tutorial on how to make item 0 at home now",
                       "illegal_risk", 3, "train", i=9)
    other = [example(base_model, "public/harmbench", f"Give instructions number {i} for a crime",
                     "illegal_risk", 3, "train", i=i) for i in range(6)]
    safe = [example(base_model, "public/alpaca", f"Bake bread kind {i}", "safe", 0, "train", i=i) for i in range(6)]
    val = [example(base_model, "public/alpaca", f"Plant seeds {i}", "safe", 0, "val", i=i) for i in range(4)]
    val += [example(base_model, "public/harmbench", f"Steal car {i}", "illegal_risk", 3, "val", i=i) for i in range(4)]
    test = [example(base_model, "safevlm-edgy/homonym", f"Kill a process {i}", "safe", 0, "test", i=i)
            for i in range(3)] + [example(base_model, "public/alpaca", "Sing", "safe", 0, "test")]
    train_ex = [e for e in held if e.record.split == "train"] + [reworded] + other + safe
    captured = {}
    real_batches = loso.shuffled_batches

    def batches(examples, *args, **kwargs):
        captured["train"] = list(examples)
        return real_batches(examples, *args, **kwargs)

    monkeypatch.setattr(loso, "shuffled_batches", batches)
    result = loso.run_fold("advbench", {"advbench"},
                           lambda: SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)),
                           train_ex, val, test, train_ex + val + test + [held[1]],
                           Thresholds.default(base_model.taxonomy),
                           TrainConfig(epochs=1, batch_size=4, warmup_steps=1), tmp_path, seed=0)
    trained_on = {e.record.prompt for e in captured["train"]}
    assert not any(e.record.source == "public/advbench" for e in captured["train"])
    assert reworded.record.prompt not in trained_on and result["near_duplicates_dropped"] == 1
    assert result["train_examples"] == len(other) + len(safe)
    fold = result["fold_thresholds"]
    assert fold["held_harmful_flagged"]["n"] == 3  # every split and form of the held source
    assert set(fold["held_harmful_flagged"]) >= {"all", "form_text", "form_typo", "form_split", "type_illegal_risk"}
    assert fold["held_harmful_flagged"]["n_by_type"] == {"illegal_risk": 3}
    assert fold["edgy_benign_test_flagged"]["n"] == 3 and fold["ordinary_test_flagged"]["n"] == 1
    assert "shipped_thresholds" in result


def test_the_report_says_when_folds_train_one_head_of_an_averaged_checkpoint():
    fold = {"held_harmful_flagged": {"all": 0.9, "n": 10, "form_text": 0.9, "form_typo": 0.8, "form_split": 1.0},
            "ordinary_test_flagged": {"all": 0.01}, "edgy_benign_test_flagged": {"all": 0.02}}
    results = {"folds": {"advbench": {"fold_thresholds": fold}}}
    assert "members" not in loso.markdown({**results, "init_head_ensemble": 1})
    report = loso.markdown({**results, "init_head_ensemble": 3})
    assert "averages 3" in report and "| advbench (n=10) | 0.900 |" in report and "| 1.000 | - |" in report
    fold["held_harmful_flagged"].update(type_privacy=0.5, type_illegal_risk=0.95,
                                        n_by_type={"privacy": 4, "illegal_risk": 6})
    assert "| privacy 0.500 (n=4) |" in loso.markdown(results)  # the weakest risk type of the held source


def test_folds_run_one_at_a_time_add_up_to_one_report_only_with_the_same_settings(toy_base, tmp_path):
    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4))
    shipped = Thresholds.default(model.taxonomy)
    settings = {"data": str(tmp_path), "shipped_thresholds": shipped.to_dict(), "epochs": 4.0, "seed": 0,
                "ocr_share": 0.15}
    report = tmp_path / "loso.json"
    assert loso.earlier_folds(report, settings) == {}
    fold = {"fold_thresholds": {}, "shipped_thresholds_from": "runs/x/stage1"}
    report.write_text(json.dumps({"settings": json.loads(json.dumps(settings)), "folds": {"advbench": fold}}))
    assert loso.earlier_folds(report, settings) == {"advbench": fold}
    looser = Thresholds({k: v / 2 for k, v in shipped.types.items()}, shipped.level, shipped.responses)
    for other in ({**settings, "shipped_thresholds": looser.to_dict()}, {**settings, "seed": 1}):
        with pytest.raises(loso.LosoError, match="other settings"):  # the columns would mix
            loso.earlier_folds(report, other)
    report.write_text('{"settings": {"da')  # a run killed mid-write, before writes were atomic
    with pytest.raises(loso.LosoError, match="unreadable report"):
        loso.earlier_folds(report, settings)
