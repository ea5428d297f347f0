"""The feedback loop's proof at smoke size (`train.feedback_proof`): the shipped checkpoint
misses a family it never trained on (drug-slang requests, held out of training by family);
simulated annotators label part of it through the store; thresholds from the labels and a
retrain with the promotion gate follow; the error on the held-out part of the family must
fall by at least half, and the retrained checkpoint is promoted in its registry. Slow: CI
runs it in `make test-slow`; the full-size numbers are in bench/results.json."""

import json

import pytest

pytestmark = pytest.mark.slow

FAMILY = "definition-drug-slang"  # a test-split family: never in the shipped checkpoint's training


def write_family(data, photo, taxonomy):
    """The family as text-form records about an ordinary photo, in data/test.jsonl."""
    from safevlm.data.generator.edgy import expand_family
    from safevlm.data.schema import load_data_file

    family = next(f for f in load_data_file("edgy_pairs.json")["families"] if f["id"] == FAMILY)
    lines = []
    for r in expand_family(family, taxonomy):
        risky = r.type != taxonomy.safe_type
        lines.append(json.dumps({
            "image": str(photo), "prompt": r.text, "type": r.type, "level": r.level,
            "response": taxonomy.refusal(r.type) if risky else "Here is a plain explanation.",
            "source": f"safevlm-edgy/{FAMILY}", "split": "test",
            "meta": {"request_id": r.id, "form": "text", "request": r.text}}))
    with open(data / "test.jsonl", "a") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


def test_labels_on_a_missed_family_halve_its_error_after_retrain_and_promotion(tmp_path, photo_path):
    from safevlm.data.generator.generate import generate_dataset
    from safevlm.registry import Registry
    from safevlm.taxonomy import load_taxonomy
    from train import feedback_proof

    data, out = tmp_path / "data", tmp_path / "proof"
    generate_dataset(data, n=40, seed=3)
    assert write_family(data, photo_path, load_taxonomy()) == 64
    results = tmp_path / "results.json"
    # At smoke size the gate's fixed set is a handful of val records, so its tolerances are
    # opened here (the gate's rules are tested in test_registry); the family's error is not.
    assert feedback_proof.main(["--data", str(data), "--family", f"edgy-{FAMILY}", "--out", str(out),
                                "--replay", "40", "--eval-limit", "40", "--epochs", "20", "--lr", "3e-3",
                                "--risky-tolerance", "0.5", "--benign-tolerance", "0.5",
                                "--results", str(results)]) == 0
    proof = json.loads(results.read_text())["feedback_loop"][f"edgy-{FAMILY}"]
    assert proof["labelled_records"] + proof["held_out_records"] == 64
    assert proof["labels"] > proof["labelled_records"]  # a second annotator labelled some turns
    assert proof["before"]["error"] >= 0.2  # the shipped checkpoint gets this family wrong
    assert proof["after_retrain"]["error"] <= proof["before"]["error"] / 2
    assert proof["promoted"] and proof["error_halved"]["retrain"]
    registry = Registry(out / "registry")
    promoted = registry.get(registry.promoted_id())
    assert promoted.parent.startswith("baseline-") and promoted.data_hash
    assert (out / "policy.json").exists() and (registry.promoted_path() / "retrain_report.md").exists()
