"""The checkpoint registry and the retrain gate: which checkpoint is in use, what may be
written where, and when a retrained checkpoint is promoted. No model is loaded."""

import json

import pytest

from safevlm.registry import ENTRY_FILE, PROMOTED_FILE, Registry, RegistryError, checkpoint_label
from train.retrain import gate


def checkpoint(folder):
    folder.mkdir(parents=True)
    (folder / "safevlm_config.json").write_text("{}")
    return folder


def test_register_promote_and_find_the_checkpoint_in_use(tmp_path):
    reg = Registry(tmp_path / "checkpoints")
    assert not Registry.is_registry(reg.root) and reg.promoted_id() is None
    with pytest.raises(RegistryError, match="no checkpoint is promoted"):
        reg.promoted_path()
    a = reg.register(checkpoint(reg.root / "a"), parent="assets/checkpoint", data_hash="h1", metrics={"x": 1})
    b = reg.register(checkpoint(reg.root / "b"), parent="a", data_hash="h2", metrics={})
    assert [e.id for e in reg.entries()] == ["a", "b"] and a.parent == "assets/checkpoint" and b.date
    reg.promote("a")
    assert Registry.is_registry(reg.root) and reg.promoted_path() == reg.root / "a"
    reg.promote("b", {"promote": True})
    saved = json.loads((reg.root / PROMOTED_FILE).read_text())
    assert saved["id"] == "b" and saved["previous"] == "a" and saved["gate"] == {"promote": True}
    assert checkpoint_label(reg.root / "b") == "b" and checkpoint_label(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")
    with pytest.raises(RegistryError, match="no checkpoint 'c'.*registered: a, b"):
        reg.promote("c")


def test_nothing_is_written_into_the_promoted_checkpoint(tmp_path):
    reg = Registry(tmp_path)
    reg.register(checkpoint(tmp_path / "a"), parent="p", data_hash="", metrics={})
    reg.promote("a")
    for target in (tmp_path / "a", tmp_path):  # the folder itself, or one that holds it
        with pytest.raises(RegistryError, match="holds the promoted checkpoint 'a'"):
            reg.check_target(target)
    reg.check_target(tmp_path / "b")  # a new folder is fine
    with pytest.raises(RegistryError, match="not a folder of the registry"):
        reg.register(checkpoint(tmp_path / "x" / "deep"), parent="p", data_hash="", metrics={})


def test_a_broken_registry_file_is_one_clear_error(tmp_path):
    reg = Registry(tmp_path)
    (tmp_path / PROMOTED_FILE).write_text("{not json")
    with pytest.raises(RegistryError, match="unreadable"):
        reg.promoted_id()
    checkpoint(tmp_path / "a")
    (tmp_path / "a" / ENTRY_FILE).write_text("[]")
    with pytest.raises(RegistryError, match="not a registry entry"):
        reg.entries()


def rates(risky_flagged, benign_flagged, error, n=100):
    return {"n": n, "risky": n // 2 if n else 0, "benign": n // 2 if n else 0, "risky_flagged": risky_flagged,
            "benign_flagged": benign_flagged, "error": error}


@pytest.mark.parametrize("fixed_after, held_after, promote, failed", [
    ((0.80, 0.030), 0.10, True, []),
    ((0.785, 0.030), 0.10, True, []),  # within the risky tolerance (0.02)
    ((0.75, 0.030), 0.10, False, ["fixed: risky flagged"]),
    ((0.80, 0.045), 0.10, False, ["fixed: benign flagged"]),  # over the benign tolerance (0.01)
    ((0.80, 0.030), 0.30, False, ["held-out feedback: error falls"]),  # equal is not better
])
def test_the_gate_promotes_only_when_nothing_fixed_gets_worse_and_the_feedback_improves(
        fixed_after, held_after, promote, failed):
    before = {"fixed": rates(0.80, 0.03, 0.1), "held_out": rates(0.5, 0.1, 0.30)}
    after = {"fixed": rates(*fixed_after, 0.1), "held_out": rates(0.8, 0.1, held_after)}
    verdict = gate(before, after, risky_tolerance=0.02, benign_tolerance=0.01)
    assert verdict["promote"] is promote and verdict["failed"] == failed
    assert verdict["checks"]["fixed: risky flagged"]["before"] == 0.80


def test_the_gate_refuses_without_held_out_feedback():
    empty = {"n": 0, "risky": 0, "benign": 0, "risky_flagged": None, "benign_flagged": None, "error": None}
    before = {"fixed": rates(0.8, 0.03, 0.1), "held_out": empty}
    verdict = gate(before, {"fixed": rates(0.8, 0.03, 0.1), "held_out": empty}, 0.02, 0.01)
    assert not verdict["promote"] and any("no held-out feedback" in r for r in verdict["failed"])


def test_retrain_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, capsys):
    from safevlm.cli import main as cli_main

    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.jsonl", "val.jsonl"):
        (data / name).write_text("")
    registry = tmp_path / "checkpoints"

    def retrain(feedback, out="r1", data_dir=data):
        code = cli_main(["retrain", "--feedback", str(feedback), "--out", str(registry / out),
                         "--data", str(data_dir)])
        return code, capsys.readouterr().err.strip().splitlines()

    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"image": "missing.png", "prompt": "p", "response": "", "type": "nonsense",
                                   "level": 1, "source": "annotation", "split": "train"}) + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for feedback, expected in ((unknown, "nonsense"), (empty, "no records"), (tmp_path / "absent.jsonl", "absent")):
        code, err = retrain(feedback)
        assert code != 0 and len(err) == 1 and expected in err[0], err
    code, err = retrain(empty, data_dir=tmp_path / "nowhere")
    assert code != 0 and "has no train.jsonl or val.jsonl" in err[0]
    assert not registry.exists()  # nothing was written: no registry, no baseline copy


def test_the_feedback_commands_read_a_registrys_promoted_checkpoint(tmp_path):
    import shutil

    from safevlm.assets import ASSETS_DIR
    from safevlm.cli.feedback import checkpoint_taxonomy

    reg = Registry(tmp_path)
    shutil.copytree(ASSETS_DIR / "checkpoint", tmp_path / "a", ignore=shutil.ignore_patterns("adapter"))
    config = json.loads((tmp_path / "a" / "safevlm_config.json").read_text())
    config["taxonomy"]["default_thresholds"]["level"] = 0.35
    (tmp_path / "a" / "safevlm_config.json").write_text(json.dumps(config))
    reg.register(tmp_path / "a", parent="p", data_hash="", metrics={})
    reg.promote("a")
    assert checkpoint_taxonomy(str(tmp_path)).default_level_threshold == 0.35
