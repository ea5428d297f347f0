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
