"""The Safety settings panel's values -> Thresholds, the refusal-template levels included."""

import pytest

from app.safety_settings import default_values, thresholds_from_values
from safevlm.policy import ThresholdError, Thresholds
from safevlm.taxonomy import load_taxonomy

TAX = load_taxonomy()


class Engine:
    taxonomy = TAX

    def default_thresholds(self):
        return Thresholds.default(TAX)

    def thresholds(self, overrides=None):
        return self.default_thresholds().with_overrides(overrides, TAX)


def test_defaults_round_trip_with_the_template_levels():
    engine = Engine()
    values = default_values(engine)
    assert values[-1] == [2, 3]
    assert thresholds_from_values(engine, values) == Thresholds.default(TAX)


def test_unticking_a_level_makes_its_flagged_inputs_generate():
    engine = Engine()
    values = default_values(engine)
    values[-1] = [3]
    thr = thresholds_from_values(engine, values)
    assert (thr.response(1), thr.response(2), thr.response(3)) == ("generate", "generate", "template")
    values[-1] = []
    assert all(thresholds_from_values(engine, values).response(lv) == "generate" for lv in (1, 2, 3))
    assert thresholds_from_values(engine, values[:-1]) == Thresholds.default(TAX)  # sliders only


def test_a_wrong_number_of_values_is_one_clear_error():
    with pytest.raises(ThresholdError, match="expected 7 threshold values"):
        thresholds_from_values(Engine(), [0.5, 0.5])


def test_the_badge_says_when_the_level_threshold_held_a_flagged_type_back():
    from app.panel import badge_html
    from safevlm.policy import decide

    probs = dict.fromkeys(TAX.types, 0.0) | {"illegal_risk": 0.7, TAX.safe_type: 0.3}
    held = decide(probs, [0.3, 0.0, 0.0, 0.7], TAX)  # default level threshold 0.5 < 0.7: flagged
    strict = Thresholds.default(TAX).with_overrides({"level": 0.9}, TAX)
    allowed = decide(probs, [0.3, 0.0, 0.0, 0.7], TAX, strict)
    assert held.flagged and not allowed.flagged
    assert "Illegal over threshold" in badge_html(allowed, TAX) and "level threshold" in badge_html(allowed, TAX)
    nothing = decide(dict.fromkeys(TAX.types, 0.0) | {TAX.safe_type: 1.0}, [1.0, 0, 0, 0], TAX)
    assert "no risk type over its threshold" in badge_html(nothing, TAX)


def test_the_details_say_the_template_answered_instead_of_a_hint():
    from app.panel import details_markdown
    from safevlm.engine import ChatUpdate, Verdict
    from safevlm.policy import decide

    probs = dict.fromkeys(TAX.types, 0.0) | {"illegal_risk": 0.95, TAX.safe_type: 0.05}
    decision = decide(probs, [0.02, 0.0, 0.0, 0.98], TAX)
    verdict = Verdict(probs, [0.02, 0.0, 0.0, 0.98], decision, "", {})
    text = details_markdown(ChatUpdate(verdict, decision.refusal, "hint", True, True), TAX)
    assert "refusal template answered" in text and "response *template*" in text
    off = details_markdown(ChatUpdate(verdict, "an answer", "off", False, True), TAX)
    assert "refusal template answered" not in off and "base model" in off
