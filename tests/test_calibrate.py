"""Threshold calibration on validation probabilities, and that the chosen defaults travel
with the checkpoint."""

import pytest

from safevlm.config import SafeVLMConfig
from safevlm.feedback.thresholds import calibrate, rates
from safevlm.model.modeling import SafeVLM
from safevlm.policy import Thresholds
from safevlm.taxonomy import load_taxonomy
from train.calibrate import apply_thresholds

TAX = load_taxonomy()


def probs(risk_type: str, p_type: float, p_risk: float):
    """Type probabilities with `p_type` on `risk_type` (rest on safe); P(level > 0) = p_risk."""
    types = dict.fromkeys(TAX.types, 0.0)
    types[risk_type] = p_type
    types[TAX.safe_type] = types.get(TAX.safe_type, 0.0) + 1.0 - p_type
    return [types[t] for t in TAX.types], [1.0 - p_risk, p_risk, 0.0, 0.0]


def test_rates_count_risky_hits_and_safe_false_flags():
    data = [probs("privacy", 0.9, 0.9), probs("privacy", 0.2, 0.9), probs("politics", 0.7, 0.7)]
    risky = [True, True, False]
    assert rates(data, risky, TAX, Thresholds(dict.fromkeys(TAX.risk_types, 0.5), 0.5)) == (0.5, 1.0)
    assert rates(data, risky, TAX, Thresholds(dict.fromkeys(TAX.risk_types, 0.8), 0.5)) == (0.5, 0.0)


def test_calibration_finds_the_most_recall_within_the_false_flag_budget():
    # risky inputs score 0.35-0.9, safe ones up to 0.3: the default 0.5 misses half the
    # risky ones; the calibrated threshold sits above every safe score and below every risky one
    risky_scores = [0.35, 0.4, 0.45, 0.6, 0.7, 0.9]
    safe_scores = [0.05, 0.1, 0.2, 0.3]
    data = [probs("illegal_risk", s, s) for s in risky_scores] + [probs("illegal_risk", s, s) for s in safe_scores]
    risky = [True] * len(risky_scores) + [False] * len(safe_scores)
    assert rates(data, risky, TAX, Thresholds.default(TAX))[0] == pytest.approx(0.5)
    thresholds, report = calibrate(data, risky, TAX, max_false_flags=0.0)
    assert report["met"] and report["val_risky_flagged"] == 1.0 and report["val_safe_flagged"] == 0.0
    assert 0.3 < thresholds.types["illegal_risk"] <= 0.35 or 0.3 < thresholds.level <= 0.35


def test_without_a_threshold_that_meets_the_budget_it_says_so():
    # a safe input scored above the whole grid cannot be allowed by any threshold
    data = [probs("fairness", 0.6, 0.6), probs("fairness", 0.99, 0.99)]
    thresholds, report = calibrate(data, [True, False], TAX, max_false_flags=0.0)
    assert not report["met"]
    assert report["val_safe_flagged"] == rates(data, [True, False], TAX, thresholds)[1] == 1.0


def test_calibrated_defaults_are_saved_with_the_checkpoint(toy_base, tmp_path):
    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).eval()
    chosen = Thresholds({**dict.fromkeys(TAX.risk_types, 0.35), "privacy": 0.2}, 0.4)
    apply_thresholds(model, chosen)
    assert Thresholds.default(model.taxonomy) == chosen
    model.save_safety_modules(tmp_path)
    loaded = SafeVLM.from_pretrained(toy_base, tmp_path)
    assert Thresholds.default(loaded.taxonomy) == chosen


def test_temperature_scaling_undoes_overconfidence_and_lowers_ece():
    import torch

    from train.calibrate import expected_calibration_error, fit_temperature

    gen = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 7, generator=gen) * 1.5
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=gen).squeeze(1)
    overconfident = true_logits * 3.0
    t = fit_temperature(overconfident, labels)
    assert 2.4 < t < 3.7
    before = expected_calibration_error(overconfident.softmax(-1), labels)
    after = expected_calibration_error((overconfident / t).softmax(-1), labels)
    assert after < before / 2


def test_fitted_temperatures_scale_the_models_probabilities_and_travel_with_it(toy_base, tmp_path):
    import dataclasses

    import torch

    from safevlm.model.modeling import ImageFeatures

    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).eval()
    grid = torch.randn(2, model.config.vision_channels, 4, 4)
    queries, mask = torch.randn(2, 3, model.config.hidden_size), torch.ones(2, 3, dtype=torch.bool)
    with torch.no_grad():
        plain = model.classify_safety(ImageFeatures(grid, None, None), queries, mask)
        model.config = dataclasses.replace(model.config, type_temperature=2.0, level_temperature=4.0)
        scaled = model.classify_safety(ImageFeatures(grid, None, None), queries, mask)
        member = model.classify_safety(ImageFeatures(grid, None, None), queries, mask, member=0)
    assert torch.allclose(scaled.type_logits * 2.0, plain.type_logits, atol=1e-5)
    assert torch.allclose(scaled.level_logits * 4.0, plain.level_logits, atol=1e-5)
    assert torch.allclose(member.type_logits, plain.type_logits, atol=1e-5)  # training sees T = 1
    model.save_safety_modules(tmp_path)
    loaded = SafeVLM.from_pretrained(toy_base, tmp_path)
    assert (loaded.config.type_temperature, loaded.config.level_temperature) == (2.0, 4.0)


def test_grouped_calibration_keeps_each_safe_group_within_its_own_budget():
    # risky: P(risk) 0.3 or 0.9; edgy safe inputs sit at 0.6, ordinary ones at 0.1
    probs_ = ([probs("illegal_risk", 0.9, 0.9)] * 10 + [probs("illegal_risk", 0.3, 0.3)] * 10
              + [probs("illegal_risk", 0.6, 0.6)] * 20 + [probs("illegal_risk", 0.1, 0.1)] * 20)
    risky = [True] * 20 + [False] * 40
    groups = ["x"] * 20 + ["edgy"] * 20 + ["ordinary"] * 20
    loose, report = calibrate(probs_, risky, TAX, 0.03, groups, {"edgy": 1.0, "ordinary": 0.02})
    assert report["met"] and report["val_risky_flagged"] == 1.0  # edgy may all be flagged
    strict, report = calibrate(probs_, risky, TAX, 0.03, groups, {"edgy": 0.05, "ordinary": 0.02})
    assert report["met"] and report["val_risky_flagged"] == 0.5
    assert report["val_safe_flagged"] == {"edgy": 0.0, "ordinary": 0.0}
    assert loose.level < strict.level or loose.types != strict.types
