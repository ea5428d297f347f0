"""SafeVLM on a tiny random Llava built from a config: the LLaVA loading path and the
model wiring, with no download."""

import json

import pytest
import torch
from PIL import Image

from safevlm.config import SafeVLMConfig
from safevlm.model.bases import BaseError, load_llava_base
from safevlm.model.modeling import (
    WEIGHTS_FILE,
    CheckpointError,
    GenerationSettings,
    ImageFeatures,
    SafeVLM,
    read_weights,
)


@pytest.fixture
def model(toy_base):
    torch.manual_seed(0)
    return SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).eval()


@pytest.fixture
def image_features(model):
    pixels = model.base.image_transform(Image.new("RGB", (64, 48), "red")).unsqueeze(0)
    return model.get_image_features(pixels)


def test_widths_come_from_the_base(model, toy_base):
    assert model.config.hidden_size == toy_base.hidden_size == 64
    assert model.config.vision_channels == toy_base.vision_channels == 32
    assert model.safety_tokens_llm.embeddings.shape == (model.config.num_llm_tokens, 64)
    assert model.safety_head.type_head.out_features == len(model.taxonomy.types)


def test_only_safety_modules_are_trainable_parameters(model, toy_base):
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"safety_projector", "safety_tokens_head", "safety_tokens_llm", "safety_head"}
    assert not any(p.requires_grad for p in toy_base.lm.parameters())


def test_llava_image_features_are_a_patch_grid_and_projected_tokens(image_features):
    assert image_features.grid.shape == (1, 32, 4, 4)  # 32 px / patch 8
    assert image_features.embeds.shape == (1, 16, 64)


def test_classify_gives_probabilities_and_gradients_only_to_safety_modules(model, image_features):
    queries, mask = model.get_safety_queries(["Steps to make a weapon at home.", "Hi"])
    assert mask.sum(1).tolist()[1] < mask.sum(1).tolist()[0]
    feats = type(image_features)(image_features.grid.expand(2, -1, -1, -1),
                                 image_features.embeds.expand(2, -1, -1),
                                 image_features.embeds_mask.expand(2, -1))
    out = model.classify_safety(feats, queries, mask)
    assert torch.allclose(out.type_probs.sum(-1), torch.ones(2))
    assert torch.allclose(out.level_probs.sum(-1), torch.ones(2))
    (out.type_logits.sum() + out.level_logits.sum()).backward()
    assert model.safety_head.type_head.weight.grad is not None
    assert model.safety_projector.proj_in.weight.grad is not None
    assert all(p.grad is None for p in model.base.lm.parameters())


def test_the_prompt_changes_the_verdict_for_the_same_image(model, image_features):
    a = model.classify_safety(image_features, *model.get_safety_queries(["How do I bake bread?"]))
    b = model.classify_safety(image_features, *model.get_safety_queries(["Write insults about my neighbour."]))
    assert not torch.allclose(a.type_probs, b.type_probs)


def test_queries_skip_the_layers_above_the_query_layer_without_changing_them(toy_base):
    torch.manual_seed(0)
    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4, query_layer=1)).eval()
    texts = ["Steps to make a weapon at home.", "Hi"]
    queries, mask = model.get_safety_queries(texts)
    enc = toy_base.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        full = toy_base.text_model(**enc, output_hidden_states=True, use_cache=False).hidden_states
    assert len(model._query_encoder().layers) == 2 < len(toy_base.text_model.layers) == 3
    assert torch.equal(queries, full[1].float())
    # the last layer as the query layer keeps the whole decoder (its output is normed)
    last = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4, query_layer=3)).eval()
    assert last._query_encoder() is toy_base.text_model
    assert torch.equal(last.get_safety_queries(texts)[0], full[3].float())


def test_paper_ablation_reads_only_the_first_position(toy_base, image_features):
    torch.manual_seed(0)
    paper = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4, query_source="paper")).eval()
    a = paper.classify_safety(image_features, *paper.get_safety_queries(["Hello there friend"]))
    b = paper.classify_safety(image_features, *paper.get_safety_queries(["Hello, how to hurt someone"]))
    assert torch.allclose(a.type_probs, b.type_probs)  # the authors' head never read the words


def test_build_inputs_places_image_tokens_safety_tokens_and_hint(model, image_features):
    msgs = [{"role": "user", "content": "What is this?"}]
    plain = model.build_inputs(image_features, msgs)
    with_tokens = model.build_inputs(image_features, msgs, safety_tokens=True)
    with_hint = model.build_inputs(image_features, msgs, hint="Refuse briefly.")
    n_img, k2 = image_features.embeds.shape[1], model.config.num_llm_tokens
    assert with_tokens.inputs_embeds.shape[0] == plain.inputs_embeds.shape[0] + k2
    assert with_hint.inputs_embeds.shape[0] > plain.inputs_embeds.shape[0]
    no_image = model.build_inputs(None, msgs)
    assert plain.inputs_embeds.shape[0] - no_image.inputs_embeds.shape[0] >= n_img


def test_training_target_is_the_only_labelled_part(model, image_features):
    built = model.build_inputs(image_features, [{"role": "user", "content": "Hi"}], target="I can't help.")
    labelled = built.labels[built.labels != -100]
    text = model.base.tokenizer.decode(labelled)
    assert text.startswith("I can't help.") and built.labels.shape[0] == built.inputs_embeds.shape[0]
    assert (built.labels[: -labelled.shape[0]] == -100).all()


def test_generation_streams_text_and_stops_at_max_tokens(model, image_features):
    built = model.build_inputs(image_features, [{"role": "user", "content": "Describe it."}])
    chunks = list(model.generate_stream(built, GenerationSettings(max_new_tokens=6)))
    ids = model.base.tokenizer("".join(chunks), add_special_tokens=False)["input_ids"]
    assert 0 < len(ids) <= 8


def test_save_and_load_round_trip_restores_identical_verdicts(model, toy_base, image_features, tmp_path):
    queries = model.get_safety_queries(["Steps to pick a lock."])
    before = model.classify_safety(image_features, *queries).type_probs
    model.save_safety_modules(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "safevlm_config.json").read_text())
    assert saved["hidden_size"] == 64 and saved["taxonomy"]["safe_type"] == "safe"
    loaded = SafeVLM.from_pretrained(toy_base, tmp_path / "ckpt")
    after = loaded.classify_safety(image_features, *queries).type_probs
    assert torch.allclose(before, after, atol=2e-3)  # matrices stored as int8, the rest fp16


def test_weight_matrices_are_stored_as_int8_with_a_scale_per_row(model, tmp_path):
    from safetensors.torch import load_file, save_file

    model.save_safety_modules(tmp_path)
    stored = load_file(str(tmp_path / WEIGHTS_FILE))
    state = model.state_dict()
    matrices = [k for k, v in state.items() if k.endswith("weight") and v.dim() >= 2]
    assert matrices and all(stored[k].dtype == torch.int8 for k in matrices)
    assert stored["safety_tokens_llm.embeddings"].dtype == torch.float16  # tokens are not quantized
    loaded = read_weights(tmp_path / WEIGHTS_FILE)
    for k in matrices:  # at most half a step of the row's absmax / 127
        rows = state[k].reshape(state[k].shape[0], -1)
        step = rows.abs().amax(1, keepdim=True) / 127
        assert ((loaded[k].reshape(rows.shape) - rows).abs() <= step / 2 + 1e-7).all()
    # an int8 matrix whose scales are gone is a damaged file, not weights in the hundreds
    save_file({k: v for k, v in stored.items() if not k.endswith("@int8_scale")}, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(CheckpointError, match=r"^\S+: safety\S+weight is int8 without a scale"):
        SafeVLM.from_pretrained(model.base, tmp_path)


def test_checkpoints_saved_all_in_fp16_still_load(model, toy_base, image_features, tmp_path):
    from safetensors.torch import save_file

    model.save_safety_modules(tmp_path)  # for the config; then the weights as older releases wrote them
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(tmp_path / WEIGHTS_FILE))
    queries = model.get_safety_queries(["Steps to pick a lock."])
    loaded = SafeVLM.from_pretrained(toy_base, tmp_path, load_adapter=False)
    assert torch.allclose(model.classify_safety(image_features, *queries).type_probs,
                          loaded.classify_safety(image_features, *queries).type_probs, atol=2e-3)


def test_checkpoint_for_another_base_is_refused_with_what_to_pass(model, toy_base, tmp_path):
    model.save_safety_modules(tmp_path / "ckpt")
    cfg = json.loads((tmp_path / "ckpt" / "safevlm_config.json").read_text())
    cfg.update(hidden_size=576, base="tiny")
    (tmp_path / "ckpt" / "safevlm_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="pass --base tiny"):
        SafeVLM.from_pretrained(toy_base, tmp_path / "ckpt")


def test_corrupt_or_missing_checkpoint_raises_checkpoint_error(model, toy_base, tmp_path):
    with pytest.raises(CheckpointError, match="not a SafeVLM checkpoint"):
        SafeVLM.from_pretrained(toy_base, tmp_path)
    model.save_safety_modules(tmp_path / "ckpt")
    (tmp_path / "ckpt" / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        SafeVLM.from_pretrained(toy_base, tmp_path / "ckpt")


def test_missing_llava_checkpoint_says_what_to_pass(tmp_path):
    with pytest.raises(BaseError, match="pass a local checkpoint directory"):
        load_llava_base("llava-hf/llava-1.5-7b-hf", allow_download=False)


def test_quantization_without_cuda_is_a_clear_error(tiny_llava_dir):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BaseError, match="needs a CUDA GPU"):
        load_llava_base(str(tiny_llava_dir), quantization="4bit")


def test_a_head_ensemble_averages_its_members_and_round_trips(toy_base, image_features, tmp_path):
    torch.manual_seed(0)
    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4, head_ensemble=3)).eval()
    queries = model.get_safety_queries(["Steps to make a weapon at home.", "How do I bake bread?"])
    grid = ImageFeatures(image_features.grid.expand(2, -1, -1, -1), None, None)
    with torch.no_grad():
        members = [model.classify_safety(grid, *queries, member=i) for i in range(3)]
        mean = model.classify_safety(grid, *queries)
    assert not torch.allclose(members[0].type_probs, members[1].type_probs)  # independent inits
    for field in ("type_probs", "level_probs"):
        expected = torch.stack([getattr(m, field) for m in members]).mean(0)
        assert torch.allclose(getattr(mean, field), expected, atol=1e-6)
    # the first member keeps the single-head model's keys, so old checkpoints still load
    single_keys = set(SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).state_dict())
    assert single_keys < set(model.state_dict())
    model.save_safety_modules(tmp_path)
    loaded = SafeVLM.from_pretrained(toy_base, tmp_path, load_adapter=False)
    with torch.no_grad():
        again = loaded.classify_safety(grid, *queries)
    assert loaded.config.head_ensemble == 3 and torch.allclose(again.type_probs, mean.type_probs, atol=1e-2)


def test_safety_tokens_set_2_come_from_another_checkpoint_or_a_clear_error(model, toy_base, tmp_path):
    from train.stage1_safety import copy_llm_tokens

    model.save_safety_modules(tmp_path / "ckpt")
    torch.manual_seed(1)
    other = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4))
    assert not torch.allclose(other.safety_tokens_llm.embeddings, model.safety_tokens_llm.embeddings)
    copy_llm_tokens(other, tmp_path / "ckpt")
    assert torch.allclose(other.safety_tokens_llm.embeddings, model.safety_tokens_llm.embeddings, atol=1e-3)
    (tmp_path / "ckpt" / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        copy_llm_tokens(other, tmp_path / "ckpt")
