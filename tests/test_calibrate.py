"""Threshold calibration on validation probabilities, and that the chosen defaults travel
with the checkpoint."""

import pytest

from safevlm.config import SafeVLMConfig
from safevlm.model import SafeVLM
from safevlm.policy import Thresholds
from safevlm.taxonomy import load_taxonomy
from train.calibrate import apply_thresholds, calibrate, rates

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
