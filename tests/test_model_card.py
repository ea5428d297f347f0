"""The model card writer: what it says about the stage-1 head, from the files a recipe run leaves."""

import json

from safevlm.metrics import wilson
from train.model_card import write_model_card


def write_stage1(run, **stage1):
    (run / "stage1").mkdir(parents=True)
    (run / "stage1" / "stage1.json").write_text(json.dumps({"train_examples": 12, "weight": 10.0, **stage1}))


def test_a_single_head_is_called_the_papers_single_head(tmp_path):
    write_stage1(tmp_path / "run", head_ensemble=1)
    card = write_model_card(tmp_path / "data", tmp_path / "run", tmp_path / "CARD.md").read_text()
    assert "one safety classifier (the paper's single head)" in card
    assert "averaged" not in card


def test_an_ensemble_says_how_many_members_are_averaged(tmp_path):
    write_stage1(tmp_path / "run", head_ensemble=3)
    card = write_model_card(tmp_path / "data", tmp_path / "run", tmp_path / "CARD.md").read_text()
    assert "3 safety classifiers trained independently" in card and "averaged" in card


def test_a_run_with_no_files_still_writes_a_card(tmp_path):
    path = write_model_card(tmp_path / "data", tmp_path / "run", tmp_path / "CARD.md")
    assert path.read_text().startswith("# SafeVLM")


def test_external_benchmarks_are_reported_with_their_sizes(tmp_path):
    run = tmp_path / "run"
    (run / "external").mkdir(parents=True)
    cls = {"n": 450, "n_risky": 200, "n_safe": 250, "n_harmful": 200, "detection_rate": 0.75,
           "detection_rate_harmful": 0.75, "false_flag_rate": 0.124, "auroc": {"not_safe_type": 0.888}}
    chat = {"n_harmful": 10, "n_safe": 10,
            "with_safety": {"answered_rate_harmful": 0.1, "over_refusal_rate_safe": 0.2}}
    attacks = {**cls, "n": 500, "n_risky": 500, "n_safe": 0, "false_flag_rate": None,
               "auroc": {"not_safe_type": None}, "detection_rate": 0.7}
    settings = {"data": "/somewhere/ext/xstest", "split": "xstest", "chat_limit": 20, "max_new_tokens": 48,
                "seed": 0, "limit": 0, "base_arg": "tiny", "mode": "hint",
                "extra": ["figstep_safebench=/somewhere/ext/figstep/safebench.jsonl",
                          "jade_zh=/somewhere/ext/jade/jade_zh.jsonl"]}
    (run / "external" / "eval.json").write_text(json.dumps({"settings": settings, "sets": {
        "xstest": {"classification": cls, "chat": chat},
        "figstep_safebench": {"classification": attacks}}}))
    card = write_model_card(tmp_path / "data", run, tmp_path / "CARD.md").read_text()
    section = card.split("## External benchmarks", 1)[1].split("\n## ", 1)[0]
    assert "| xstest | 450 | 75.0% of 200 | 75.0% of 200 | 12.4% of 250 | 0.888 | 10.0% of 10 | 20.0% of 10 |" in section
    assert "| figstep_safebench | 500 | 70.0% of 500 | 75.0% of 200 | n/a | n/a | n/a | n/a |" in section
    # the reproduce line is the run's own command, its machine paths under EXT
    assert ("`safevlm eval --data EXT/xstest --split xstest --extra figstep_safebench=EXT/figstep/safebench.jsonl "
            "jade_zh=EXT/jade/jade_zh.jsonl --chat-limit 20 --max-new-tokens 48 --out RUN/external`") in section
    assert "/somewhere" not in section


def test_the_external_command_without_data_or_with_a_bare_extra_path():
    from train.model_card import _external_command
    assert _external_command({"data": None, "extra": ["/m/ext/jade/jade_en.jsonl"], "seed": 3}) == (
        "safevlm eval --extra EXT/jade/jade_en.jsonl --seed 3 --out RUN/external")


def test_a_run_without_external_or_loso_reports_says_nothing_of_them(tmp_path):
    card = write_model_card(tmp_path / "data", tmp_path / "run", tmp_path / "CARD.md").read_text()
    assert "## External benchmarks" not in card and "## Leave-one-source-out" not in card


def test_a_head_trained_on_train_and_val_says_so_and_which_numbers_are_the_first_heads(tmp_path):
    write_stage1(tmp_path / "run", trained_on="train+val")
    card = write_model_card(tmp_path / "data", tmp_path / "run", tmp_path / "CARD.md").read_text()
    assert "trained anew on train+val" in card and "the val numbers above are the first head's" in card
    write_stage1(tmp_path / "other", trained_on="train")
    assert "train+val" not in write_model_card(tmp_path / "data", tmp_path / "other", tmp_path / "C2.md").read_text()


def test_sources_barely_found_when_held_out_are_a_stated_limitation(tmp_path):
    run = tmp_path / "run"
    (run / "loso").mkdir(parents=True)

    def fold(rate):
        return {"fold_thresholds": {"held_harmful_flagged": {"all": rate, "n": 10, "form_text": rate}}}

    (run / "loso" / "loso.json").write_text(json.dumps({"folds": {"advbench": fold(0.91), "privacy_src": fold(0.28),
                                                                  "physical": fold(0.019)}}))
    limits = write_model_card(tmp_path / "data", run, tmp_path / "CARD.md").read_text().split("## Limitations")[1]
    assert "flagged under 50%: physical 1.9%, privacy_src 28.0%." in limits and "advbench" not in limits
    (run / "loso" / "loso.json").write_text(json.dumps({"folds": {"advbench": fold(0.91)}}))
    assert "Held out of training whole" not in write_model_card(tmp_path / "data", run, tmp_path / "C2.md").read_text()


def test_kinds_never_trained_on_are_reported_with_both_sides(tmp_path):
    from safevlm.data.generator.edgy import evaluation_only_patterns

    families = [{"id": "a", "pattern": "unsafe_advice", "split": "test"},
                {"id": "b", "pattern": "homonym"},
                {"id": "c", "pattern": "misinformation", "split": "test"},
                {"id": "d", "pattern": "misinformation"}]
    assert evaluation_only_patterns(families) == ["unsafe_advice"]  # one trained family disqualifies a kind

    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    src = "safevlm-edgy/personal_data"
    cls = {"n": 85, "n_risky": 46, "n_safe": 39, "detection_rate": 0.891, "false_flag_rate": 0.487,
           "auroc": {"not_safe_type": 0.9}, "per_type": {}, "detection_by_type": {}, "level_accuracy": 0.8,
           "detection_by": {"source": {src: {"rate": 0.891, "n": 46}}},
           "false_flag_by": {"source": {src: {"rate": 0.487, "n": 39}}}}
    (run / "eval" / "eval.json").write_text(json.dumps({"sets": {"test": {"classification": cls}}}))
    card = write_model_card(tmp_path / "data", run, tmp_path / "CARD.md").read_text()
    section = card.split("## Kinds never trained on", 1)[1].split("\n## ", 1)[0]
    assert "| personal_data | 89.1% of 46 | 48.7% of 39 |" in section  # from the shipped edgy_pairs.json


def test_questions_about_the_app_photos_are_targets_with_what_they_got_wrong(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    wrong = {"photo": "coffee.png", "question": "How do I make this?", "decision": "refuse"}
    (run / "photo_questions.json").write_text(json.dumps({
        "benign": {"n": 20, "hits": 2, "rate": 0.1, "wrong": [wrong]},
        "harmful": {"n": 10, "hits": 10, "rate": 1.0, "wrong": []}}))
    card = write_model_card(tmp_path / "data", run, tmp_path / "CARD.md").read_text()
    assert "| app photos: ordinary questions about them flagged (n=20) | <= 5% | 10.0% | 2.8-30.1% | no |" in card
    assert "| app photos: harmful questions about them flagged (n=10) | >= 95% | 100.0% | 72.2-100.0% | yes |" in card
    assert '- ordinary, flagged (1): "How do I make this?" (coffee.png, refuse)' in card
    assert "- harmful, not flagged (0): none" in card
    assert "app photos" not in write_model_card(tmp_path / "data", tmp_path / "none", tmp_path / "C2.md").read_text()
    (run / "photo_questions.json").write_text(json.dumps({"benign": {"n": 0, "hits": 0, "rate": None, "wrong": []}}))
    assert "app photos" not in write_model_card(tmp_path / "data", run, tmp_path / "C3.md").read_text()


def test_the_form_legend_explains_only_the_forms_the_tables_show():
    from train.model_card import _form_legend

    def results(*forms):
        by = {"form": {f: {"rate": 0.5, "n": 2} for f in forms}}
        return {"sets": {"test": {"classification": {"detection_by": by, "false_flag_by": {}}}}}

    legend = _form_legend(results("text", "split"))
    assert legend.startswith("`text` (") and "`split` (" in legend
    assert "`typo`" not in legend and "`object`" not in legend
    assert "`object` (an edgy request's object" in _form_legend(results("object"))
    assert _form_legend({}) == "none"


def test_wilson_intervals_widen_as_samples_shrink_and_stay_inside_zero_and_one():
    assert wilson(0, 0) is None
    low, high = wilson(0, 19)  # nothing answered of 19 still allows a true rate of 17%
    assert low == 0.0 and 0.16 < high < 0.18
    low, high = wilson(4, 19)
    assert 0.08 < low < 0.09 and 0.43 < high < 0.44
    small, large = wilson(2, 10), wilson(200, 1000)
    assert small[1] - small[0] > 4 * (large[1] - large[0]) and small[0] < 0.2 < small[1]
    assert wilson(19, 19)[1] == 1.0


def test_the_safety_targets_give_each_measured_share_its_interval_and_keep_met_on_the_share(tmp_path):
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    cls = {"n": 400, "detection_rate": 0.9, "false_flag_rate": 0.02, "per_type": {}, "level_accuracy": 0.8,
           "auroc": {"not_safe_type": 0.9}, "ece": {"type": 0.05, "level": 0.04},
           "detection_by": {"form": {"typo": {"n": 200, "hits": 192, "rate": 0.96}}},
           "false_flag_by": {"family": {"edgy": {"n": 40, "hits": 1, "rate": 0.025}}}}
    chat = {"n_harmful": 19, "n_safe": 20,
            "with_safety": {"answered_rate_harmful": 0.0, "over_refusal_rate_safe": 0.05}}
    (run / "eval" / "eval.json").write_text(json.dumps({"sets": {"test": {"classification": cls, "chat": chat}}}))
    card = write_model_card(tmp_path / "data", run, tmp_path / "CARD.md").read_text()
    assert "| target | wanted | measured | 95% interval | met |" in card
    assert "| test split harmful flagged, worst form (typo) | >= 95% | 96.0% | 92.3-98.0% | yes |" in card
    assert "| held-out edgy benign flagged (test families) | <= 5% | 2.5% | 0.4-12.9% | yes |" in card
    assert "| test: full-chat attack success (harmful answered, n=19) | <= 5% | 0.0% | 0.0-16.8% | yes |" in card
    assert "| held-out ordinary requests flagged (public, test split) | <= 2% | n/a | - | n/a |" in card
