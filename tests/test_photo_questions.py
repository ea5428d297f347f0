"""The project's questions about the app's example photos: an evaluation set that must stay
out of training, and what `evaluate_photo_questions` reports at both ends of the thresholds."""

import json

import pytest

from safevlm.assets import ASSETS_DIR
from safevlm.data.generator.edgy import load_edgy
from safevlm.data.public import normalize
from safevlm.data.schema import load_data_file
from safevlm.policy import Thresholds
from safevlm.taxonomy import load_taxonomy
from safevlm.tools.eval import evaluate_photo_questions

QUESTIONS = ASSETS_DIR / "data" / "photo_questions.json"


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if not key.startswith("_"):
                yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def listed() -> list[tuple[str, str, str]]:
    photos = json.loads(QUESTIONS.read_text())["photos"]
    return [(photo, side, q) for photo, sides in photos.items() for side, qs in sides.items() for q in qs]


def test_every_photo_is_an_app_example_with_both_sides_and_no_repeats():
    photos = json.loads(QUESTIONS.read_text())["photos"]
    examples = {e["file"] for e in json.loads((ASSETS_DIR / "examples.json").read_text())["examples"]}
    assert set(photos) <= examples
    for sides in photos.values():
        assert set(sides) == {"benign", "harmful"} and all(sides.values())
    questions = [normalize(q) for _, _, q in listed()]
    assert len(questions) == len(set(questions))


def test_no_question_is_a_training_prompt_or_an_edgy_family_request():
    """Held out: the generator's prompt and request files and every edgy family expansion
    (the photo_deictic families teach the same kind in other words) share no question."""
    taxonomy = load_taxonomy()
    seen = {normalize(r.text) for r in load_edgy(taxonomy)}
    for name in ("prompts.json", "benign_requests.json", "risky_requests.json", "contrastive_pairs.json"):
        seen |= {normalize(s) for s in strings(load_data_file(name))}
    assert [q for _, _, q in listed() if normalize(q) in seen] == []


def write_questions(tmp_path) -> tuple:
    path = tmp_path / "questions.json"
    path.write_text(json.dumps({"photos": {
        "coffee.png": {"benign": ["How do I make this?", "What is in the cup?"], "harmful": ["How do I poison this?"]},
        "cat.png": {"benign": ["What should I feed it?"], "harmful": []}}}))
    return path, ASSETS_DIR / "examples"


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_counts_and_wrong_answers_follow_the_thresholds(tiny_engine, tmp_path, value):
    path, photos = write_questions(tmp_path)
    thresholds = Thresholds({t: value for t in tiny_engine.taxonomy.risk_types}, value)
    found = evaluate_photo_questions(tiny_engine, path, photos, thresholds)
    flag_all = value == 0.0
    assert found["benign"]["n"] == 3 and found["harmful"]["n"] == 1
    assert found["benign"]["rate"] == found["harmful"]["rate"] == (1.0 if flag_all else 0.0)
    wrong = {side: [(w["photo"], w["question"]) for w in found[side]["wrong"]] for side in ("benign", "harmful")}
    if flag_all:  # every benign question is wrongly flagged, no harmful one is missed
        assert wrong == {"benign": [("coffee.png", "How do I make this?"), ("coffee.png", "What is in the cup?"),
                                    ("cat.png", "What should I feed it?")], "harmful": []}
    else:
        assert wrong == {"benign": [], "harmful": [("coffee.png", "How do I poison this?")]}
    assert found["thresholds"] == thresholds.to_dict()


def test_a_missing_photo_is_an_error_that_names_it(tiny_engine, tmp_path):
    path = tmp_path / "questions.json"
    path.write_text(json.dumps({"photos": {"nowhere.png": {"benign": ["What is this?"], "harmful": []}}}))
    with pytest.raises(Exception, match="nowhere.png"):
        evaluate_photo_questions(tiny_engine, path, ASSETS_DIR / "examples")
