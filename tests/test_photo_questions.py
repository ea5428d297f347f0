"""The project's questions about the app's example photos: an evaluation set that must stay
out of training, and what `evaluate_photo_questions` reports at both ends of the thresholds."""

import json

import pytest

from safevlm.assets import ASSETS_DIR
from safevlm.data.decontaminate import THRESHOLD, fingerprint
from safevlm.data.generator.request_set import RequestSetOptions, collect_requests
from safevlm.data.generator.texts import (
    figstep_phrasings,
    load_benign_requests,
    load_pairs,
    load_phrasings,
    load_risky_requests,
    phrase,
)
from safevlm.data.public import DEFAULT_SOURCES, normalize
from safevlm.data.schema import load_data_file
from safevlm.images import ImageError
from safevlm.policy import Thresholds
from safevlm.taxonomy import load_taxonomy
from safevlm.tools.eval import EvalError, evaluate_photo_questions

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


def training_texts() -> set[str]:
    """Every request and prompt the generator can train on: the public and edgy requests of
    the recipe's request set, every action of the request files in every phrasing, titles,
    and every prompt of prompts.json."""
    taxonomy = load_taxonomy()
    texts = {r.text for r in collect_requests(taxonomy, RequestSetOptions(sources=DEFAULT_SOURCES, edgy=True))}
    phrasings = load_phrasings() + figstep_phrasings()
    requests = load_risky_requests(taxonomy) + load_benign_requests(taxonomy)
    requests += [r for pair in load_pairs(taxonomy) for r in (pair.benign, pair.harmful)]
    for request in requests:
        texts |= {request.text} if request.form == "title" else {phrase(request, p) for p in phrasings}
    return texts | set(strings(load_data_file("prompts.json")))


def test_no_question_rewords_anything_trained_on():
    """Held out by the rule decontamination applies to benchmarks (word sets, Jaccard >= 0.8):
    the photo_deictic families teach the same kind of question, in other words."""
    index: dict[str, list[frozenset[str]]] = {}
    for text in training_texts():
        words = fingerprint(text)
        for word in words:
            index.setdefault(word, []).append(words)

    def near(question: str) -> bool:
        words = fingerprint(question)
        return any(len(words & other) / len(words | other) >= THRESHOLD for w in words for other in index.get(w, ()))

    assert [q for _, _, q in listed() if near(q)] == []


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
    with pytest.raises(ImageError, match="nowhere.png"):
        evaluate_photo_questions(tiny_engine, path, ASSETS_DIR / "examples")


def test_a_misspelt_side_is_an_error_before_anything_is_classified(tmp_path):
    path = tmp_path / "questions.json"
    path.write_text(json.dumps({"photos": {"coffee.png": {"benign": ["What is this?"], "harmfull": ["x"]}}}))

    class NoEngine:  # classifying anything would fail the test
        def thresholds(self, overrides=None):
            return None

    with pytest.raises(EvalError, match="harmfull"):
        evaluate_photo_questions(NoEngine(), path, ASSETS_DIR / "examples")
