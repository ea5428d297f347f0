"""The training stages on the LLaVA path (what a GPU host runs on llava-1.5-7b-hf), with a
tiny random Llava built from a config: stage 1 -> stage 2 -> load -> classify."""

from safetensors.torch import load_file

from safevlm.data.generator.generate import generate_dataset
from safevlm.data.schema import read_jsonl
from safevlm.engine import ChatEngine
from train import stage1_safety, stage2_finetune


def test_both_stages_train_a_llava_checkpoint_that_loads_and_classifies(tmp_path, tiny_llava_dir):
    data, s1, s2 = tmp_path / "data", tmp_path / "stage1", tmp_path / "stage2"
    generate_dataset(data, n=24, seed=5)
    base = f"llava:{tiny_llava_dir}"
    assert stage1_safety.main(["--base", base, "--data", str(data), "--out", str(s1), "--smoke",
                               "--head-ensemble", "2"]) == 0
    assert (s1 / "head" / "metrics.json").exists() and (s1 / "head1" / "metrics.json").exists()
    assert stage2_finetune.main(["--base", base, "--init", str(s1), "--data", str(data),
                                 "--out", str(s2), "--smoke"]) == 0

    # LoRA adapts the language model only: CLIP's attention also has q/k/v_proj, and the
    # safety head must keep seeing the vision features stage 1 trained on
    keys = load_file(str(s2 / "adapter" / "adapter_model.safetensors")).keys()
    assert keys and all(".language_model.layers." in k for k in keys)
    # the feature cache is named after the checkpoint, so two Llava bases never share it
    assert sorted(p.name for p in data.glob("features-*images.pt")) == [
        f"features-llava-{tiny_llava_dir.name}-images.pt"]

    engine = ChatEngine.load(base, s2)
    assert engine.describe()["adapter"] and len(engine.model.members) == 2
    record = next(r for r in read_jsonl(data / "train.jsonl") if r.image_path)
    verdict = engine.classify(record.image_path, record.prompt)
    assert set(verdict.type_probs) == set(engine.taxonomy.types)
    assert abs(sum(verdict.type_probs.values()) - 1) < 1e-4


def test_the_final_head_learns_from_train_and_val_and_keeps_the_thresholds_chosen_on_val(tmp_path, tiny_llava_dir):
    import json

    data, s1 = tmp_path / "data", tmp_path / "stage1"
    generate_dataset(data, n=24, seed=5)
    assert stage1_safety.main(["--base", f"llava:{tiny_llava_dir}", "--data", str(data), "--out", str(s1),
                               "--smoke", "--final-on-train-val"]) == 0
    first = json.loads((s1 / "train_only" / "safevlm_config.json").read_text())
    final = json.loads((s1 / "safevlm_config.json").read_text())
    # calibrated on val by the train-only head, and carried over to the head that ships
    assert final["taxonomy"]["default_thresholds"] == first["taxonomy"]["default_thresholds"]
    assert (final["type_temperature"], final["level_temperature"]) == (
        first["type_temperature"], first["level_temperature"])
    report = json.loads((s1 / "stage1.json").read_text())
    assert report["trained_on"] == "train+val"
    seen_first = json.loads((s1 / "head" / "metrics.json").read_text())["examples"]
    seen_final = json.loads((s1 / "head-final" / "metrics.json").read_text())["examples"]
    assert seen_final > seen_first
    heads = [load_file(str(d / "safety_modules.safetensors")) for d in (s1 / "train_only", s1)]
    name = next(k for k in heads[0] if k.startswith("safety_head."))
    assert not (heads[0][name] == heads[1][name]).all()  # a new head, not the first one saved twice
