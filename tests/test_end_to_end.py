"""The whole path on the offline default: generate data -> train a few steps (stage 1 and
stage 2) -> save -> load -> classify -> chat -> log -> reopen the log. Slow: run in CI by
`make test-slow`."""

import sqlite3

import pytest
import torch

pytestmark = pytest.mark.slow


def checkpoint_contents(checkpoint):
    """(tensors, metadata) of a checkpoint's safety modules."""
    from safetensors import safe_open

    with safe_open(str(checkpoint / "safety_modules.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_train_save_load_classify_chat_and_log(tmp_path):
    from safevlm.data.generator.generate import generate_dataset
    from safevlm.data.schema import read_jsonl
    from safevlm.engine import ChatEngine
    from safevlm.model.modeling import GenerationSettings
    from safevlm.store import Store
    from train import stage1_safety, stage2_finetune

    data, s1, s2 = tmp_path / "data", tmp_path / "stage1", tmp_path / "stage2"
    generate_dataset(data, n=40, seed=3)
    assert stage1_safety.main(["--data", str(data), "--out", str(s1), "--smoke"]) == 0
    assert (s1 / "head" / "metrics.json").exists() and (s1 / "head" / "loss.png").exists()
    # the same seed on the same data gives the same checkpoint (the features come from the cache
    # now): the same tensors, bit for bit, and the same metadata (safetensors writes its
    # metadata map in hash order, so the file's bytes are compared through what it holds)
    assert stage1_safety.main(["--data", str(data), "--out", str(tmp_path / "again"), "--smoke"]) == 0
    first, again = checkpoint_contents(s1), checkpoint_contents(tmp_path / "again")
    assert first[0].keys() == again[0].keys() and first[1] == again[1]
    assert all(torch.equal(first[0][k], again[0][k]) for k in first[0])
    assert stage2_finetune.main(["--init", str(s1), "--data", str(data), "--out", str(s2), "--smoke"]) == 0
    assert (s2 / "adapter" / "adapter_config.json").exists()

    engine = ChatEngine.load("tiny", s2)
    assert engine.describe()["adapter"] and engine.checkpoint_id == str(s2)
    record = next(r for r in read_jsonl(data / "train.jsonl") if r.type != "safe")
    verdict = engine.classify(record.image_path, record.prompt)
    assert abs(sum(verdict.type_probs.values()) - 1) < 1e-4

    zero = engine.thresholds({t: 0.0 for t in engine.taxonomy.risk_types} | {"level": 0.0})
    turn = engine.chat(record.image_path, record.prompt, thresholds=zero,
                       settings=GenerationSettings(max_new_tokens=12))
    assert turn.conditioned and turn.verdict.decision.hint and turn.done

    store = Store(tmp_path / "log.db")
    session = store.start_session(client="cli")
    d = turn.to_dict()
    turn_id = store.log_turn(
        session, prompt=record.prompt, response=turn.text, decision=d["decision"], type=d["type"],
        level=d["level"], flagged=d["flagged"], type_probs=d["type_probs"], level_probs=d["level_probs"],
        hint=d["hint"], mode=d["mode"], thresholds=zero.to_dict(), base=engine.model.base.id,
        checkpoint=engine.checkpoint_id, timings=d["timings"], source="cli", image=record.image_path,
        reader_text=d["reader_text"],
    )
    store.close()
    with sqlite3.connect(tmp_path / "log.db") as db:
        row = db.execute("select prompt, response, decision, checkpoint, image_hash from turns where id = ?",
                         (turn_id,)).fetchone()
    assert row[0] == record.prompt and row[1] == turn.text and row[2] == d["decision"]
    assert row[3] == str(s2) and row[4]
