"""The query-layer probe: it pools exactly what the safety head reads, picks its threshold
and layer on val only, and runs end to end on a tiny Llava."""

import json

import numpy as np

from safevlm.config import SafeVLMConfig
from safevlm.data.generator.generate import generate_dataset
from safevlm.model.modeling import SafeVLM
from train import probe


def test_the_probe_pools_the_heads_queries_at_the_query_layer(toy_base):
    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).eval()
    texts = ["Steps to bake bread at home.", "A much longer prompt about a picture of a cat on a sofa."]
    pooled = probe.pooled_hidden_states(model, texts, batch_size=2)
    assert pooled.shape == (2, toy_base.num_layers + 1, toy_base.hidden_size)
    queries, mask = model.get_safety_queries(texts)  # padded together: the mask must keep them apart
    weights = mask.unsqueeze(-1).float()
    expected = ((queries * weights).sum(1) / weights.sum(1)).numpy()
    np.testing.assert_allclose(pooled[:, model.config.query_layer], expected, atol=1e-4)
    alone = probe.pooled_hidden_states(model, texts[:1])
    np.testing.assert_allclose(alone[0], pooled[0], atol=1e-4)


def test_the_val_threshold_flags_at_most_the_allowed_share_of_safe_inputs():
    scores = np.arange(100, dtype=float)
    y = np.zeros(100, dtype=int)
    threshold = probe.val_threshold(scores, y, max_false_flags=0.03)
    assert (scores > threshold).sum() == 3
    assert (scores > probe.val_threshold(scores, y, max_false_flags=0.0)).sum() == 0


def test_a_separable_layer_wins_and_is_chosen_on_val():
    rng = np.random.default_rng(0)

    def split(n):
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 3, 4))
        x[:, 2, 0] += 4 * y  # only layer 2 carries the label
        return x, y

    rows = probe.probe_layers({"train": split(200), "val": split(100), "test": split(100)})
    assert [r["layer"] for r in rows] == [0, 1, 2]
    assert rows[2]["sets"]["test"]["auroc"] > 0.95 > max(r["sets"]["test"]["auroc"] for r in rows[:2])
    assert probe.best_layer(rows) == 2
    assert rows[2]["sets"]["val"]["flagged_safe"] <= probe.MAX_FALSE_FLAGS


def test_the_probe_runs_on_a_llava_base_and_writes_its_report(tmp_path, tiny_llava_dir):
    data = tmp_path / "data"
    generate_dataset(data, n=40, seed=3)
    assert probe.main(["--base", f"llava:{tiny_llava_dir}", "--data", str(data), "--out", str(tmp_path / "p")]) == 0
    result = json.loads((tmp_path / "p" / "probe.json").read_text())
    assert len(result["layers"]) == 3 + 1  # the tiny Llava's 3 layers and its embeddings
    assert set(result["layers"][0]["sets"]) == {"train", "val", "test"}
    assert 0 <= result["best_layer_on_val"] <= 3
    assert "| layer |" in (tmp_path / "p" / "probe.md").read_text()
