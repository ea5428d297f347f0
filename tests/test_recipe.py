"""`make train`'s recipe end to end in smoke mode, on the LLaVA path (tiny random Llava):
data -> stage 1 -> stage 2 -> eval, timings recorded, nothing shipped for a non-default base."""

import json

from train import recipe


def test_the_recipe_runs_every_step_on_a_llava_base_and_ships_nothing(tmp_path, tiny_llava_dir, monkeypatch):
    shipped = tmp_path / "assets-checkpoint"
    monkeypatch.setattr(recipe, "SHIPPED", shipped)
    data, out = tmp_path / "data", tmp_path / "run"
    args = ["--base", f"llava:{tiny_llava_dir}", "--data", str(data), "--out", str(out), "--smoke"]
    assert recipe.main(args) == 0

    record = json.loads((out / "recipe.json").read_text())
    assert set(record["timings_s"]) == {"data", "stage1", "stage2", "eval"}
    assert record["base"] == f"llava:{tiny_llava_dir}"
    report = json.loads((out / "eval" / "eval.json").read_text())
    assert report["model"]["base"].startswith("llava:") and {"test", "figstep_eval"} <= set(report["sets"])
    assert not shipped.exists()

    # a second run finds every output and redoes nothing
    assert recipe.main(args) == 0
    assert json.loads((out / "recipe.json").read_text())["timings_s"] == record["timings_s"]
