import json

import pytest

from safevlm.taxonomy import TaxonomyError, load_taxonomy


def test_default_taxonomy_is_the_papers():
    tax = load_taxonomy()
    assert len(tax.types) == 7 and tax.types[tax.safe_index] == "safe"
    assert len(tax.levels) == 4 and tax.max_level == 3
    assert set(tax.risk_types) == set(tax.types) - {"safe"}


def test_every_risk_type_has_a_hint_for_every_risky_level():
    tax = load_taxonomy()
    for t in tax.risk_types:
        for level in range(1, tax.max_level + 1):
            assert tax.hint(t, level), (t, level)
    assert tax.hint("safe", 3) is None and tax.hint("privacy", 0) is None


def test_round_trip_through_dict_keeps_everything():
    tax = load_taxonomy()
    again = type(tax).from_dict(tax.to_dict())
    assert again == tax


def test_another_taxonomy_is_a_data_change(tmp_path):
    data = {"name": "three", "types": [{"name": "weapons"}, {"name": "pii"}, {"name": "ok"}],
            "safe_type": "ok", "levels": [{"name": "fine"}, {"name": "block"}],
            "hints": {"weapons": {"1": "No weapons."}}}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    tax = load_taxonomy(path)
    assert tax.risk_types == ("weapons", "pii") and tax.max_level == 1
    assert tax.hint("weapons", 1) == "No weapons." and tax.default_type_thresholds == {"weapons": 0.5, "pii": 0.5}


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ('{"types": []}', "missing or malformed"),
    ('{"types": [{"name": "a"}], "levels": [{"name": "x"}, {"name": "y"}], "safe_type": "b"}', "safe_type"),
])
def test_broken_taxonomy_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TaxonomyError, match=message):
        load_taxonomy(path)
