import re

import pytest

from safevlm.policy import ALLOW, CAUTION, REFUSE, ThresholdError, Thresholds, decide
from safevlm.taxonomy import load_taxonomy

TAX = load_taxonomy()


def probs(**kw):
    base = {t: 0.0 for t in TAX.types}
    base.update(kw)
    rest = 1.0 - sum(kw.values())
    base[TAX.safe_type] += rest
    return base


def test_confident_illegal_request_at_top_level_is_refused():
    d = decide(probs(illegal_risk=0.9), [0.05, 0.05, 0.1, 0.8], TAX)
    assert (d.action, d.type, d.level) == (REFUSE, "illegal_risk", 3)
    assert d.hint == TAX.hint("illegal_risk", 3) and d.flagged


def test_middle_level_gives_caution_with_that_levels_hint():
    d = decide(probs(privacy=0.7), [0.1, 0.2, 0.6, 0.1], TAX)
    assert (d.action, d.level) == (CAUTION, 2)
    assert d.hint == TAX.hint("privacy", 2)


def test_safe_input_is_allowed_without_hint():
    d = decide(probs(), [0.9, 0.05, 0.03, 0.02], TAX)
    assert d.action == ALLOW and d.hint is None and d.type == TAX.safe_type and d.level == 0


def test_threshold_turns_allow_into_caution():
    p, lv = probs(politics=0.3), [0.3, 0.6, 0.05, 0.05]
    assert decide(p, lv, TAX).action == ALLOW
    lowered = Thresholds.default(TAX).with_overrides({"politics": 0.25}, TAX)
    assert decide(p, lv, TAX, lowered).action == CAUTION


def test_raising_a_type_threshold_silences_that_type_only():
    p, lv = probs(politics=0.6), [0.1, 0.8, 0.05, 0.05]
    strict = Thresholds.default(TAX).with_overrides({"politics": 0.95}, TAX)
    assert decide(p, lv, TAX, strict).action == ALLOW
    assert decide(probs(privacy=0.6), lv, TAX, strict).action == CAUTION


def test_level_threshold_gates_a_flagged_type():
    p, lv = probs(fairness=0.8), [0.6, 0.3, 0.05, 0.05]  # P(level >= 1) = 0.4
    assert decide(p, lv, TAX).action == ALLOW
    loose = Thresholds.default(TAX).with_overrides({"level": 0.35}, TAX)
    assert decide(p, lv, TAX, loose).action == CAUTION


def test_most_probable_flagged_type_wins():
    d = decide(probs(privacy=0.35, illegal_risk=0.45), [0.1, 0.1, 0.1, 0.7], TAX,
               Thresholds.default(TAX).with_overrides({"privacy": 0.3, "illegal_risk": 0.3}, TAX))
    assert d.type == "illegal_risk" and set(d.flagged_types) == {"privacy", "illegal_risk"}


def test_sequence_probabilities_are_read_in_taxonomy_order():
    seq = [probs(misleading=0.8)[t] for t in TAX.types]
    assert decide(seq, [0.1, 0.8, 0.05, 0.05], TAX).type == "misleading"


@pytest.mark.parametrize("bad, message", [
    ('{"illegal_risk": 1.5}', "in [0, 1]"),
    ('{"nope": 0.2}', "unknown threshold"),
    ('{"level": "high"}', "must be a number"),
    ("not json", "not valid JSON"),
    ("[0.1]", "JSON object"),
])
def test_malformed_thresholds_raise_a_clear_error(bad, message):
    with pytest.raises(ThresholdError, match=re.escape(message)):
        Thresholds.default(TAX).with_overrides(bad, TAX)


def test_nested_and_flat_overrides_agree():
    a = Thresholds.default(TAX).with_overrides({"types": {"privacy": 0.2}, "level": 0.1}, TAX)
    b = Thresholds.default(TAX).with_overrides('{"privacy": 0.2, "level": 0.1}', TAX)
    assert a == b and a.types["privacy"] == 0.2 and a.level == 0.1


def test_wrong_number_of_probabilities_is_rejected():
    with pytest.raises(ValueError, match="expected"):
        decide([0.5, 0.5], [1, 0, 0, 0], TAX)


def test_flagged_levels_answer_by_template_or_generation_as_configured():
    assert TAX.default_responses == {1: "generate", 2: "template", 3: "template"}
    top = decide(probs(illegal_risk=0.9), [0.05, 0.05, 0.1, 0.8], TAX)
    assert top.response == "template" and top.refusal == TAX.refusal("illegal_risk")
    careful = decide(probs(privacy=0.9), [0.1, 0.8, 0.05, 0.05], TAX)
    assert careful.flagged and careful.response == "generate" and careful.refusal is None
    generate_all = Thresholds.default(TAX).with_overrides({"responses": "generate"}, TAX)
    assert decide(probs(illegal_risk=0.9), [0.05, 0.05, 0.1, 0.8], TAX, generate_all).refusal is None
    one_level = Thresholds.default(TAX).with_overrides({"responses": {"1": "template"}}, TAX)
    assert decide(probs(privacy=0.9), [0.1, 0.8, 0.05, 0.05], TAX, one_level).response == "template"
    assert one_level.responses[3] == "template"  # other levels keep their setting
    allowed = decide(probs(), [0.9, 0.05, 0.03, 0.02], TAX)
    assert allowed.refusal is None and allowed.response == "generate"


def test_every_risk_type_has_its_own_refusal_template():
    texts = [TAX.refusal(t) for t in TAX.risk_types]
    assert len(set(texts)) == len(texts) and all(len(t) > 40 for t in texts)


@pytest.mark.parametrize("bad, message", [
    ({"responses": "maybe"}, "generate or template"),
    ({"responses": {"7": "template"}}, "1..3"),
    ({"responses": {"x": "template"}}, "1..3"),
    ({"responses": 5}, "must be generate or template"),
    ({"types": 5}, "types"),
])
def test_malformed_responses_raise_a_clear_error(bad, message):
    with pytest.raises(ThresholdError, match=re.escape(message)):
        Thresholds.default(TAX).with_overrides(bad, TAX)


def test_thresholds_round_trip_through_the_taxonomy_with_their_responses():
    from safevlm.taxonomy import Taxonomy

    thr = Thresholds.default(TAX).with_overrides({"responses": {"2": "generate"}}, TAX)
    data = TAX.to_dict()
    data["default_thresholds"] = thr.to_dict()
    again = Taxonomy.from_dict(data)
    assert again.default_responses == {1: "generate", 2: "generate", 3: "template"}
    assert again.refusals == TAX.refusals


def test_the_review_band_marks_inputs_near_a_threshold_and_decides_as_before():
    from safevlm.policy import ThresholdError, Thresholds, decide
    from safevlm.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    base = Thresholds.default(taxonomy).with_overrides({"illegal_risk": 0.5, "level": 0.5}, taxonomy)
    band = base.with_overrides({"review": 0.1}, taxonomy)
    assert band.to_dict()["review"] == 0.1 and "review" not in base.to_dict()
    levels = [0.1, 0.2, 0.3, 0.4]  # P(level >= 1) = 0.9: far from the level threshold

    def probs(p):
        out = dict.fromkeys(taxonomy.types, 0.0)
        out.update(illegal_risk=p, safe=1 - p)
        return out

    for p, flagged, review in ((0.45, False, True), (0.55, True, True), (0.8, True, False), (0.2, False, False)):
        with_band, without = decide(probs(p), levels, taxonomy, band), decide(probs(p), levels, taxonomy, base)
        assert (with_band.flagged, with_band.review) == (flagged, review), p
        assert without.review is False and with_band.action == without.action
    # over the type threshold, the level mass near its threshold: a review too
    assert decide(probs(0.8), [0.45, 0.2, 0.2, 0.15], taxonomy, band).review
    with pytest.raises(ThresholdError, match="review"):
        base.with_overrides({"review": 0.7}, taxonomy)
