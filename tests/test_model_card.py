"""The model card writer: what it says about the stage-1 head, from the files a recipe run leaves."""

import json

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
