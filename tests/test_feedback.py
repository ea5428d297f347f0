"""The feedback loop's first step: labels saved through the store API the app uses become
per-type thresholds and a policy file that the engine and the app start from."""

import json
from pathlib import Path

import pytest

from safevlm.cli import main as cli_main
from safevlm.feedback.labels import FeedbackError, threshold_policy, truth
from safevlm.policy import ThresholdError, Thresholds, decide, load_policy
from safevlm.store import Store
from safevlm.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
LEVELS = [0.05, 0.15, 0.5, 0.3]  # P(level > 0) = 0.95: the level gate never decides here


def probs(**types):
    p = dict.fromkeys(TAXONOMY.types, 0.0)
    p.update(types)
    p[TAXONOMY.safe_type] = max(0.0, 1 - sum(types.values()))
    return p


def log_labelled(store, type_probs, true_type, true_level, annotator="ann"):
    """One chat turn as the app logs it (decided at the default thresholds), then a label."""
    session = store.start_session("ui")
    d = decide(type_probs, LEVELS, TAXONOMY)
    turn = store.log_turn(session, prompt="a request", response="an answer", decision=d.action,
                          type=d.type, level=d.level, flagged=d.flagged, type_probs=type_probs,
                          level_probs=LEVELS, hint=d.hint, mode="hint", thresholds={}, base="tiny",
                          checkpoint="ckpt-a", timings={}, source="ui")
    store.annotate(turn, annotator=annotator, true_type=true_type, true_level=true_level)
    return turn


@pytest.fixture
def labelled_db(tmp_path):
    """Benign requests the head scores 0.50-0.52 on illegal_risk (flagged at the taxonomy's
    default 0.5) and harmful ones it scores 0.60-0.88: a threshold between them separates every label."""
    path = tmp_path / "log.db"
    with Store(path) as store:
        for i in range(12):
            log_labelled(store, probs(illegal_risk=0.5 + 0.01 * (i % 3)), "safe", 0)
        for i in range(8):
            log_labelled(store, probs(illegal_risk=0.6 + 0.04 * i), "illegal_risk", 3)
        log_labelled(store, probs(privacy=0.7), "privacy", 2)
    return path


def test_labels_give_a_threshold_that_stops_the_false_flags_and_keeps_the_catches(labelled_db):
    current = Thresholds.default(TAXONOMY)
    assert current.types["illegal_risk"] == 0.5
    with Store(labelled_db) as store:
        turns = store.labelled_turns()
    policy = threshold_policy(turns, TAXONOMY, current, max_false_flags=0.0, db=str(labelled_db))
    assert policy["current"]["safe_flagged"] == 1.0  # every benign turn flagged at the defaults
    new = policy["thresholds"]["types"]
    assert 0.52 < new["illegal_risk"] <= 0.6
    assert policy["suggested"]["risky_flagged"] == 1.0 and policy["suggested"]["safe_flagged"] == 0.0
    assert policy["thresholds"]["level"] == current.level
    assert policy["source"] | {"date": None} == {
        "db": str(labelled_db), "labels": 21, "risky": 9, "safe": 12, "skipped": 0, "date": None,
        "checkpoints": ["ckpt-a"], "max_false_flags": 0.0}
    row = next(r for r in policy["curves"]["illegal_risk"] if r["threshold"] == 0.5)
    assert row["recall"] == 1.0 and row["false_flags"] == 1.0 and row["positives"] == 8
    # a looser budget lets a threshold flag some benign turns, never more than the budget
    loose = threshold_policy(turns, TAXONOMY, current, max_false_flags=0.25)
    assert loose["suggested"]["safe_flagged"] <= 0.25


def test_the_cli_writes_a_policy_file_the_engine_starts_from(labelled_db, tmp_path, tiny_engine, capsys):
    out = tmp_path / "policy.json"
    assert cli_main(["feedback", "thresholds", "--db", str(labelled_db), "--out", str(out),
                     "--max-false-flags", "0"]) == 0
    printed = capsys.readouterr().out
    assert "illegal_risk" in printed and "safe flagged 100.0% ->   0.0%" in printed
    thresholds = load_policy(out, tiny_engine.taxonomy)
    assert thresholds.types["illegal_risk"] == json.loads(out.read_text())["thresholds"]["types"]["illegal_risk"]
    try:
        tiny_engine.use_policy(thresholds)
        assert tiny_engine.default_thresholds() == thresholds
        assert tiny_engine.thresholds({"level": 0.2}).types == thresholds.types
    finally:
        tiny_engine.use_policy(None)
    assert tiny_engine.default_thresholds() == Thresholds.default(tiny_engine.taxonomy)


def test_no_usable_labels_is_one_line_and_leaves_the_policy_file_alone(tmp_path, capsys):
    path, out = tmp_path / "log.db", tmp_path / "policy.json"
    out.write_text('{"thresholds": {"level": 0.5}}')
    with Store(path) as store:
        session = store.start_session("ui")
        store.log_turn(session, prompt="p", response="r", decision="allow", type="safe", level=0, flagged=False,
                       type_probs=probs(), level_probs=LEVELS, hint=None, mode="hint", thresholds={},
                       base="tiny", checkpoint="c", timings={}, source="ui")
    assert cli_main(["feedback", "thresholds", "--db", str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no labelled turn" in err
    assert out.read_text() == '{"thresholds": {"level": 0.5}}'
    assert cli_main(["feedback", "thresholds", "--db", str(tmp_path / "none.db")]) == 1
    assert "no log at" in capsys.readouterr().err and not (tmp_path / "none.db").exists()


def test_a_type_no_label_shows_keeps_its_threshold():
    from safevlm.feedback.thresholds import suggest_thresholds

    tax = load_taxonomy()
    current = Thresholds.default(tax).with_overrides({t: 0.4 for t in tax.risk_types}, tax)

    def probs(illegal, privacy=0.0):
        row = dict.fromkeys(tax.types, 0.0)
        row.update(illegal_risk=illegal, privacy=privacy, safe=1 - illegal - privacy)
        return row, [0.0, 0.0, 0.0, 1.0]

    rows = [probs(0.3), probs(0.35), probs(0.1), probs(0.05)]
    truths = ["illegal_risk", "illegal_risk", "safe", "safe"]
    suggested, report = suggest_thresholds(rows, truths, tax, current, max_false_flags=0.0)
    assert suggested.types["illegal_risk"] == 0.3  # placed by the labels: both caught, no false flag
    assert all(suggested.types[t] == 0.4 for t in tax.risk_types if t != "illegal_risk")
    assert "privacy" in report["kept_without_labels"] and "illegal_risk" not in report["kept_without_labels"]
    # a kept type's false flags count against the budget: here they use it all up
    rows.append(probs(0.0, privacy=0.5))
    truths.append("safe")
    suggested, report = suggest_thresholds(rows, truths, tax, current, max_false_flags=0.25)
    assert suggested.types["privacy"] == 0.4 and report["safe_flagged"] == pytest.approx(1 / 3)
    assert suggested.types["illegal_risk"] == 0.95


def test_when_the_level_gate_hides_labelled_risks_the_suggestion_lowers_it_and_only_so_far():
    from safevlm.feedback.thresholds import suggest_thresholds

    tax = load_taxonomy()
    current = Thresholds.default(tax).with_overrides({t: 0.4 for t in tax.risk_types} | {"level": 0.9}, tax)

    def probs(illegal, p_level):
        row = dict.fromkeys(tax.types, 0.0)
        row.update(illegal_risk=illegal, safe=1 - illegal)
        return row, [1 - p_level, 0.0, 0.0, p_level]

    rows = [probs(0.7, 0.62), probs(0.8, 0.7), probs(0.1, 0.5), probs(0.05, 0.2)]
    truths = ["illegal_risk", "illegal_risk", "safe", "safe"]
    assert not any(decide(*r, tax, current).flagged for r in rows)  # the level gate blocks both
    suggested, report = suggest_thresholds(rows, truths, tax, current, max_false_flags=0.0)
    assert suggested.level == pytest.approx(0.6) and report["level"] == suggested.level
    assert report["risky_flagged"] == 1.0 and report["safe_flagged"] == 0.0
    assert [decide(*r, tax, suggested).flagged for r in rows] == [True, True, False, False]


def test_only_one_kind_of_label_cannot_place_a_threshold(tmp_path):
    with Store(tmp_path / "log.db") as store:
        for _ in range(3):
            log_labelled(store, probs(illegal_risk=0.9), "illegal_risk", 3)
        turns = store.labelled_turns()
    with pytest.raises(FeedbackError, match="all risky"):
        threshold_policy(turns, TAXONOMY, Thresholds.default(TAXONOMY))


def test_what_a_label_says_about_the_truth():
    flagged = {"id": 1, "type": "privacy", "flagged": True}
    assert truth({**flagged, "true_type": "fairness", "true_level": 2}, TAXONOMY) == "fairness"
    assert truth({**flagged, "true_type": "fairness", "true_level": 0}, TAXONOMY) == "safe"
    assert truth({**flagged, "true_type": None, "decision_correct": True}, TAXONOMY) == "privacy"
    assert truth({"type": "safe", "flagged": False, "decision_correct": True}, TAXONOMY) == "safe"
    assert truth({**flagged, "true_type": None, "decision_correct": False}, TAXONOMY) is None
    with pytest.raises(FeedbackError, match="unknown true type 'weapons'"):
        truth({**flagged, "true_type": "weapons", "true_level": 2}, TAXONOMY)


@pytest.mark.parametrize("content, problem", [
    ('{"thresholds": {"illegal_risk": 1.5}}', "illegal_risk"),
    ('{"thresholds": {"nonsense": 0.5}}', "unknown threshold"),
    ('{"policy": {}}', 'no "thresholds"'),
    ("not json", "not JSON"),
])
def test_a_bad_policy_file_is_one_clear_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "policy.json"
    path.write_text(content)
    with pytest.raises(ThresholdError) as error:
        load_policy(path, TAXONOMY)
    assert str(path) in str(error.value) and problem in str(error.value)
    with pytest.raises(ThresholdError, match="cannot read"):
        load_policy(tmp_path / "missing.json", TAXONOMY)


def test_the_app_starts_from_safevlm_policy_and_refuses_a_bad_one(tmp_path, tiny_engine):
    from app.about import about_markdown
    from app.checkpoints import use_policy
    from app.settings import AppSettings

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"thresholds": {"types": {"privacy": 0.35}, "level": 0.6}}))
    bad.write_text(json.dumps({"thresholds": {"privacy": -1}}))
    settings = AppSettings.from_env({"SAFEVLM_POLICY": str(good)})
    assert settings.policy == str(good)
    try:
        use_policy(tiny_engine, settings)
        assert tiny_engine.default_thresholds().types["privacy"] == 0.35
        assert tiny_engine.default_thresholds().level == 0.6
        assert str(good) in about_markdown(tiny_engine, settings, True)
        with pytest.raises(SystemExit) as stop:
            use_policy(tiny_engine, AppSettings.from_env({"SAFEVLM_POLICY": str(bad)}))
        assert "SAFEVLM_POLICY" in str(stop.value) and str(bad) in str(stop.value)
        assert "\n" not in str(stop.value)
        assert tiny_engine.default_thresholds().types["privacy"] == 0.35  # the good one stays
    finally:
        tiny_engine.use_policy(None)


def test_the_annotate_tab_suggests_draws_and_applies_thresholds(labelled_db, tiny_engine, tmp_path):
    import gradio as gr

    from app.annotate import AnnotationHandlers
    from app.safety_settings import default_values
    from app.settings import AppSettings

    settings = AppSettings(db=str(labelled_db), annotation_token="secret")
    with Store(labelled_db) as store:
        annotation = AnnotationHandlers(tiny_engine, store, settings)
        with pytest.raises(gr.Error, match="token"):
            annotation.suggest("wrong", 0, "illegal_risk")
        text, frame, policy, path = annotation.suggest("secret", 0, "illegal_risk")
        assert "illegal_risk" in text and json.loads(open(path).read())["thresholds"] == policy["thresholds"]
        suggested = policy["thresholds"]["types"]["illegal_risk"]
        marks = frame[frame.series == "suggested"]
        assert list(marks.threshold) == [suggested, suggested] and set(frame.series) >= {"recall", "false flags"}
        assert annotation.curve(policy, "privacy").series.eq("recall").sum() == 19
        with pytest.raises(gr.Error, match="first"):
            annotation.apply("secret", None)
        try:
            status = annotation.apply("secret", policy)
            assert f"illegal_risk {suggested:.2f}" in status
            assert tiny_engine.default_thresholds().types["illegal_risk"] == suggested
            # a page opened now starts its sliders there (layout's demo.load reads these)
            names = [*tiny_engine.taxonomy.risk_types, "level"]
            assert dict(zip(names, default_values(tiny_engine), strict=False))["illegal_risk"] == suggested
        finally:
            tiny_engine.use_policy(None)


def log_unlabelled(store, type_probs, thumbs_down=0):
    session = store.start_session("ui")
    d = decide(type_probs, LEVELS, TAXONOMY)
    turn = store.log_turn(session, prompt=f"request {type_probs}", response="an answer", decision=d.action,
                          type=d.type, level=d.level, flagged=d.flagged, type_probs=type_probs,
                          level_probs=LEVELS, hint=d.hint, mode="hint", thresholds={}, base="tiny",
                          checkpoint="ckpt-a", timings={}, source="ui")
    for _ in range(thumbs_down):
        store.set_feedback(turn, -1)
    return turn


def test_the_queue_puts_unsure_near_threshold_and_disputed_turns_before_confident_ones(tmp_path, capsys):
    from safevlm.feedback.queue import review_queue

    path = tmp_path / "log.db"
    with Store(path) as store:
        confident = log_unlabelled(store, probs(illegal_risk=0.99))
        near = log_unlabelled(store, probs(illegal_risk=0.48))  # the default threshold is 0.5
        disputed = log_unlabelled(store, probs(illegal_risk=0.99), thumbs_down=1)
        labelled = log_labelled(store, probs(illegal_risk=0.5), "illegal_risk", 3)
        turns = store.list_turns(limit=100)
    ranked = review_queue(turns, TAXONOMY, Thresholds.default(TAXONOMY))
    order = [t["id"] for t, _ in ranked]
    assert labelled not in order and order[-1] == confident
    assert set(order[:2]) == {near, disputed}
    parts = dict((t["id"], p) for t, p in ranked)
    assert parts[near]["closeness"] > 0.8 and parts[confident]["closeness"] == 0.0
    assert parts[disputed]["disagreement"] == 1.0 and parts[confident]["disagreement"] == 0.0
    assert cli_main(["feedback", "queue", "--db", str(path), "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # the CLI ranks with the shipped checkpoint's thresholds: the same three, the confident one last
    assert {row["id"] for row in printed[:2]} == {near, disputed} and printed[-1]["id"] == confident
    assert len(printed) == 3 and "visitor disagreed" in next(r["why"] for r in printed if r["id"] == disputed)


def test_the_annotate_tab_lists_the_most_useful_turns_first_with_the_reason(tmp_path, tiny_engine):
    from app.annotate import AnnotationHandlers
    from app.settings import AppSettings

    with Store(tmp_path / "log.db") as store:
        confident = log_unlabelled(store, probs(illegal_risk=0.99))
        disputed = log_unlabelled(store, probs(illegal_risk=0.99), thumbs_down=2)
        log_labelled(store, probs(illegal_risk=0.45), "illegal_risk", 3)
        annotation = AnnotationHandlers(tiny_engine, store, AppSettings(annotation_token="t"))
        newest = annotation.browse("t", "any", "any", False)
        useful = annotation.browse("t", "any", "any", False, 100, "useful")
    assert len(newest) == 3 and set(newest["why"]) == {""}
    assert list(useful["id"]) == [disputed, confident]  # labelled turns leave the queue
    assert "visitor disagreed" in useful["why"].iloc[0]


def _image(tmp_path, name, colour):
    from PIL import Image

    path = tmp_path / f"{name}.png"
    Image.new("RGB", (32, 32), colour).save(path)
    return path


def _turn(store, image, prompt, type_probs, response="the logged answer"):
    session = store.start_session("ui")
    d = decide(type_probs, LEVELS, TAXONOMY)
    return store.log_turn(session, prompt=prompt, response=response, decision=d.action, type=d.type,
                          level=d.level, flagged=d.flagged, type_probs=type_probs, level_probs=LEVELS,
                          hint=d.hint, mode="hint", thresholds={}, base="tiny", checkpoint="c", timings={},
                          source="ui", image=image)


def test_the_export_resolves_conflicts_writes_project_targets_and_reports_agreement(tmp_path, capsys):
    from safevlm.data.schema import record_from_dict
    from safevlm.feedback.export import feedback_records

    db, out = tmp_path / "log.db", tmp_path / "feedback.jsonl"
    one, two = _image(tmp_path, "one", "red"), _image(tmp_path, "two", "blue")
    with Store(db) as store:
        a = _turn(store, one, "a risky request", probs(illegal_risk=0.3), response="MODEL ANSWER A")
        store.annotate(a, annotator="ann1", true_type="illegal_risk", true_level=3)
        store.annotate(a, annotator="ann3", true_type="safe", true_level=0)
        store.annotate(a, annotator="ann2", true_type="illegal_risk", true_level=2)
        b = _turn(store, two, "a benign request", probs(privacy=0.6), response="answer b")
        c = _turn(store, two, "a  benign request", probs(privacy=0.6), response="answer c, rated good")
        store.annotate(b, annotator="ann1", true_type="safe", true_level=0)
        store.annotate(c, annotator="ann2", true_type="safe", true_level=0, response_rating=5)
        d = _turn(store, one, "another benign request", probs(), response="answer d")
        store.annotate(d, annotator="ann1", true_type="safe", true_level=0)
        e = _turn(store, two, "unclear", probs(fairness=0.7))
        store.annotate(e, annotator="ann1", decision_correct=False)
        records, report = feedback_records(store, TAXONOMY)
    by_prompt = {r["prompt"]: r for r in records}
    risky = by_prompt["a risky request"]
    assert (risky["type"], risky["level"]) == ("illegal_risk", 2)  # majority type; level tie -> newest
    assert risky["response"] == TAXONOMY.refusal("illegal_risk") and "MODEL ANSWER" not in json.dumps(records)
    benign = next(r for r in records if r["meta"]["turns"] == sorted([b, c]))
    assert benign["response"] == "answer c, rated good" and benign["meta"]["target"] == "rated answer"
    assert by_prompt["another benign request"]["response"] == "" and report["skipped"] == {"no usable label": 1}
    assert len(records) == 3 and report["targets"] == {"refusal": 1, "rated answer": 1, "head-only": 1}
    for record in records:
        record_from_dict(record, TAXONOMY)  # the training schema accepts every record
    assert report["agreement"]["pairs"] == 4 and report["agreement"]["percent"] == 50.0
    assert report["agreement"]["kappa"]["illegal_risk"] == pytest.approx(0.0)

    assert cli_main(["feedback", "export", "--db", str(db), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3 and "50.0% of 4 pairs" in capsys.readouterr().out
    Path(risky["image"]).unlink()  # an image gone from the log's folder: one line, the old export stays
    before = out.read_text()
    assert cli_main(["feedback", "export", "--db", str(db), "--out", str(out)]) == 1
    assert "missing" in capsys.readouterr().err and out.read_text() == before


def test_kappa_is_one_for_agreement_and_undefined_without_variation():
    from safevlm.feedback.export import kappa

    assert kappa([(True, True), (False, False)]) == 1.0
    assert kappa([(True, False), (False, True)]) == -1.0
    assert kappa([(False, False), (False, False)]) is None and kappa([]) is None


def test_calibration_on_labels_cools_an_overconfident_head_and_draws_the_diagram(tmp_path, capsys):
    from safevlm.feedback.calibration import calibrate_labels

    db = tmp_path / "log.db"
    with Store(db) as store:  # the head says 0.95 illegal_risk; the labels agree 3 times in 5
        for i in range(40):
            log_labelled(store, probs(illegal_risk=0.95), "illegal_risk" if i % 5 < 3 else "safe",
                         3 if i % 5 < 3 else 0)
        report = calibrate_labels(store.labelled_turns(), TAXONOMY)
    part = report["type"]
    assert report["labels"] == 40 and part["temperature"] > 1.5
    assert part["ece_after"] < part["ece_before"] - 0.2 and part["nll_after"] < part["nll_before"]
    assert sum(r["n"] for r in part["reliability_before"]) == 40
    assert cli_main(["feedback", "calibrate", "--db", str(db), "--out", str(tmp_path / "cal")]) == 0
    assert (tmp_path / "cal" / "reliability.png").stat().st_size > 1000
    assert json.loads((tmp_path / "cal" / "calibration.json").read_text())["type"]["temperature"] == part["temperature"]
    assert "type: temperature x" in capsys.readouterr().out


def test_a_tie_goes_to_the_newest_label_even_within_one_millisecond(tmp_path, monkeypatch):
    import safevlm.store.core as core
    from safevlm.feedback.export import feedback_records

    monkeypatch.setattr(core, "now", lambda: "2026-12-05T07:00:00.000Z")  # every label, one moment
    with Store(tmp_path / "log.db") as store:
        turn = _turn(store, _image(tmp_path, "one", "red"), "a risky request", probs(illegal_risk=0.3))
        store.annotate(turn, annotator="ann1", true_type="illegal_risk", true_level=3)
        store.annotate(turn, annotator="ann2", true_type="illegal_risk", true_level=2)
        records, _ = feedback_records(store, TAXONOMY)
    assert [(r["type"], r["level"]) for r in records] == [("illegal_risk", 2)]
