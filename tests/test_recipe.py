"""`make train`'s recipe end to end in smoke mode, on the LLaVA path (tiny random Llava):
data -> stage 1 -> stage 2 -> eval, timings recorded, nothing shipped for a non-default base;
and what shipping copies, to wherever SHIPPED points when it is called."""

import hashlib
import inspect
import json

from safevlm.model.modeling import CONFIG_FILE, WEIGHTS_FILE
from train import recipe


def refuse_to_ship(checkpoint, target=None):
    raise AssertionError(f"the recipe shipped {checkpoint}: it must not for this base")


def test_shipping_goes_where_shipped_points_when_it_is_called(tmp_path, monkeypatch):
    checkpoint = tmp_path / "stage2"
    checkpoint.mkdir()
    for name in (CONFIG_FILE, WEIGHTS_FILE, "optimizer.pt"):
        (checkpoint / name).write_text(name)
    shipped = tmp_path / "assets-checkpoint"
    monkeypatch.setattr(recipe, "SHIPPED", shipped)
    # a default bound at import would be the real assets/checkpoint, which ship() replaces
    assert inspect.signature(recipe.ship).parameters["target"].default is None
    recipe.ship(checkpoint)
    assert sorted(p.name for p in shipped.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])


def test_the_recipe_runs_every_step_on_a_llava_base_and_ships_nothing(tmp_path, tiny_llava_dir, monkeypatch):
    shipped = tmp_path / "assets-checkpoint"
    monkeypatch.setattr(recipe, "SHIPPED", shipped)
    monkeypatch.setattr(recipe, "ship", refuse_to_ship)  # a regression fails here, before touching assets/
    data, out = tmp_path / "data", tmp_path / "run"
    args = ["--base", f"llava:{tiny_llava_dir}", "--data", str(data), "--out", str(out), "--smoke"]
    assert recipe.main(args) == 0

    record = json.loads((out / "recipe.json").read_text())
    assert set(record["timings_s"]) == {"data", "stage1", "stage2", "eval", "examples", "photo_questions"}
    examples = json.loads((out / "examples.json").read_text())
    assert {e["file"] for e in examples} >= {"steps_weapon.png", "steps_bread.png"}
    questions = json.loads((out / "photo_questions.json").read_text())
    listed = json.loads((recipe.ASSETS_DIR / "data" / "photo_questions.json").read_text())["photos"]
    assert questions["benign"]["n"] == sum(len(q["benign"]) for q in listed.values())
    assert questions["questions_sha256"] == hashlib.sha256(
        (recipe.ASSETS_DIR / "data" / "photo_questions.json").read_bytes()).hexdigest()
    assert record["base"] == f"llava:{tiny_llava_dir}"
    report = json.loads((out / "eval" / "eval.json").read_text())
    assert report["model"]["base"].startswith("llava:") and {"test", "figstep_eval"} <= set(report["sets"])
    assert not shipped.exists()

    # a second run finds every output and redoes nothing
    assert recipe.main(args) == 0
    assert json.loads((out / "recipe.json").read_text())["timings_s"] == record["timings_s"]

    # answers to other questions than the current ones are redone, and only they
    (out / "photo_questions.json").write_text(json.dumps({**questions, "questions_sha256": "older"}))
    assert recipe.main(args) == 0
    again = json.loads((out / "recipe.json").read_text())["timings_s"]
    assert {k for k in again if again[k] != record["timings_s"][k]} <= {"photo_questions"}
    assert json.loads((out / "photo_questions.json").read_text())["questions_sha256"] == questions["questions_sha256"]


def test_a_rerun_with_another_base_is_refused_before_any_step(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "recipe.json").write_text(json.dumps({"base": "tiny", "head_ensemble": 1, "timings_s": {"data": 1.0}}))
    monkeypatch.setattr(recipe, "ship", refuse_to_ship)
    args = ["--base", "llava:/nowhere", "--data", str(tmp_path / "data"), "--out", str(out), "--smoke"]
    try:
        recipe.main(args)
    except SystemExit as stop:
        message = str(stop)
    else:
        raise AssertionError("the recipe resumed a run made for another base")
    assert "base='tiny'" in message and "--fresh" in message
    assert not (tmp_path / "data").exists()  # refused before the data step


def test_a_rerun_with_the_same_settings_is_allowed(tmp_path):
    record = tmp_path / "recipe.json"
    wanted = {"base": "tiny", "head_ensemble": 1, "n": 2400, "seed": 0, "data": "data/gen", "stage2_steps": None}
    record.write_text(json.dumps({**wanted, "timings_s": {"data": 1.0}}))
    recipe.check_same_run(record, wanted)  # no SystemExit
    recipe.check_same_run(tmp_path / "missing.json", wanted)
