"""The app: its handlers with the real tiny engine and a real SQLite store in tmp_path, and
its public API through gradio_client (only /chat and /delete are public; /chat logs with
source 'api'). What a visitor deletes or opts out of: tests/test_privacy.py."""

import json
import os
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.update(
    GRADIO_ANALYTICS_ENABLED="False",
    HF_HUB_DISABLE_TELEMETRY="1",
    NO_PROXY="localhost,127.0.0.1",
    no_proxy="localhost,127.0.0.1",
)

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from conftest import serving  # noqa: E402

from app.about import about_markdown  # noqa: E402
from app.app import open_log, push_on_sigterm, start_log_sync  # noqa: E402
from app.chat import ChatOutputs  # noqa: E402
from app.handlers import Handlers  # noqa: E402
from app.panel import TYPE_STATUS_COLOURS  # noqa: E402
from app.settings import AppSettings, load_examples  # noqa: E402
from safevlm.engine import ChatEngine  # noqa: E402
from safevlm.store import TRAINING_KEYS, Store  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
CAT, COFFEE, WEAPON = EXAMPLES / "cat.png", EXAMPLES / "coffee.png", EXAMPLES / "steps_weapon.png"
MAX_NEW_TOKENS = 6
TOKEN = "s3cret-token"
pytestmark = pytest.mark.filterwarnings(  # raised inside gradio's queue, not by the app
    "ignore:'future.no_silent_downcasting':Warning", "ignore:The copy keyword is deprecated:Warning"
)


@pytest.fixture(scope="module")
def engine():
    return ChatEngine.load()  # the real tiny base, once per module (~5 s)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "logs" / "safevlm.db"


@pytest.fixture
def store(db_path):
    store = Store(db_path)
    yield store
    store.close()


def make_handlers(engine, store, **settings):
    return Handlers(engine, store, AppSettings(max_new_tokens=MAX_NEW_TOKENS, **settings))


@pytest.fixture
def handlers(engine, store):
    return make_handlers(engine, store, annotation_token=TOKEN)


def defaults(engine) -> list[float]:
    """Slider values at the defaults: one per risk type in taxonomy order, then the level."""
    thresholds = engine.default_thresholds()
    return [thresholds.types[t] for t in engine.taxonomy.risk_types] + [thresholds.level]


def turn(
    handlers,
    prompt,
    image=None,
    session=None,
    chatbot=None,
    values=None,
    mode="",
    log_this_chat=True,
) -> list[ChatOutputs]:
    message = {"text": prompt, "files": [str(image)] if image else []}
    values = values if values is not None else defaults(handlers.engine)
    return list(
        handlers.chat.respond(message, chatbot or [], session, mode, values, log_this_chat, "tab-1")
    )


def reopened_turns(db_path) -> list[dict]:
    with Store(db_path) as store:
        return store.list_turns(limit=100)


def is_drawn(value) -> bool:
    return isinstance(value, pd.DataFrame)


def bars(frame: pd.DataFrame) -> pd.DataFrame:
    """The type bars without the zero-height rows that pin the plot's colours."""
    return frame.iloc[len(TYPE_STATUS_COLOURS) :]


# --- a chat turn ---------------------------------------------------------------------------


def test_a_turn_draws_the_safety_panel_before_the_first_token_then_streams(handlers, engine):
    steps = turn(handlers, "What animal is this?", image=CAT)

    first_panel = next(i for i, step in enumerate(steps) if is_drawn(step.type_plot))
    panel = steps[first_panel]
    assert panel.chatbot[-1] == {"role": "assistant", "content": ""}, (
        "bars come before any answer text"
    )
    assert list(bars(panel.type_plot)["type"]) == list(engine.taxonomy.type_labels)
    assert list(panel.level_plot["level"]) == list(engine.taxonomy.level_labels)
    assert panel.type_plot["probability"].sum() == pytest.approx(1.0, abs=1e-3)
    assert set(panel.type_plot["status"]) == set(TYPE_STATUS_COLOURS), (
        "every colour is in every frame"
    )
    assert "safevlm-badge" in panel.badge
    assert any(
        not is_drawn(step.type_plot) and step.chatbot[-1]["content"]
        for step in steps[first_panel + 1 :]
    ), "the answer streams after the panel, without redrawing the bars"
    final = steps[-1]
    assert final.chatbot[0] == {"role": "user", "content": {"path": str(CAT)}}
    assert final.chatbot[-1]["role"] == "assistant" and final.chatbot[-1]["content"].strip()
    assert final.session.history == [("What animal is this?", final.chatbot[-1]["content"])]


def test_a_turn_is_logged_once_and_reopening_the_database_finds_it(handlers, db_path):
    steps = turn(handlers, "What animal is this?", image=CAT)

    turns = reopened_turns(db_path)
    assert len(turns) == 1
    logged = turns[0]
    assert logged["source"] == "ui" and logged["status"] == "complete"
    assert logged["prompt"] == "What animal is this?"
    assert logged["response"] == steps[-1].chatbot[-1]["content"]
    assert logged["decision"] in ("allow", "caution", "refuse")
    assert set(logged["type_probs"]) == set(handlers.taxonomy.types)
    assert len(logged["level_probs"]) == len(handlers.taxonomy.levels)
    assert logged["thresholds"]["level"] == handlers.engine.default_thresholds().level
    assert logged["checkpoint"] == handlers.engine.checkpoint_id
    assert Path(logged["image_path"]).read_bytes() == CAT.read_bytes()
    assert steps[-1].session.turn_ids == {len(steps[-1].chatbot) - 1: logged["id"]}


def test_a_follow_up_keeps_the_image_and_a_new_image_starts_a_new_conversation(handlers, db_path):
    first = turn(handlers, "What animal is this?", image=CAT)[-1]
    follow = turn(handlers, "What colour is it?", session=first.session, chatbot=first.chatbot)[-1]
    assert follow.session.image.sha256 == first.session.image.sha256
    assert len(follow.session.history) == 2
    assert follow.chatbot[0]["content"] == {"path": str(CAT)}

    fresh = turn(
        handlers,
        "What is in the cup?",
        image=COFFEE,
        session=follow.session,
        chatbot=follow.chatbot,
    )[-1]
    assert fresh.chatbot[0]["content"] == {"path": str(COFFEE)}
    assert len(fresh.chatbot) == 3  # image, question, answer
    assert len(fresh.session.history) == 1

    sessions = {t["session_id"] for t in reopened_turns(db_path)}
    assert len(sessions) == 2, "one logged session per conversation"


def test_dont_log_this_chat_writes_no_turn(handlers, db_path):
    steps = turn(handlers, "What animal is this?", image=CAT, log_this_chat=False)
    assert steps[-1].chatbot[-1]["content"]
    assert reopened_turns(db_path) == []
    assert steps[-1].session.turn_ids == {}


def test_switching_dont_log_on_mid_chat_stops_logging_the_next_turns(handlers, db_path):
    first = turn(handlers, "What animal is this?", image=CAT)[-1]
    assert "not logged" in handlers.chatlog.set_logging(False, first.session)  # the box's change event
    turn(
        handlers,
        "And its colour?",
        session=first.session,
        chatbot=first.chatbot,
        log_this_chat=False,
    )
    assert [t["prompt"] for t in reopened_turns(db_path)] == ["What animal is this?"]


def test_a_server_with_logging_off_writes_nothing(engine, db_path):
    with Store(db_path, enabled=False) as off:
        steps = turn(make_handlers(engine, off, log_turns=False), "What animal is this?", image=CAT)
        assert steps[-1].chatbot[-1]["content"]
    assert reopened_turns(db_path) == []


def test_a_stopped_turn_is_logged_with_status_stopped(handlers, db_path):
    message = {"text": "Describe this image in detail.", "files": [str(CAT)]}
    steps = []
    for step in handlers.chat.respond(message, [], None, "", defaults(handlers.engine), True, "tab-1"):
        steps.append(step)
        if is_drawn(step.type_plot):
            handlers.chat.stop("tab-1")
    assert "*(stopped)*" in steps[-1].chatbot[-1]["content"]
    assert steps[-1].textbox.interactive is True, "the input box comes back after a stop"
    (logged,) = reopened_turns(db_path)
    assert logged["status"] == "stopped"


def test_a_text_only_question_is_answered_and_logged_without_an_image(handlers, db_path):
    final = turn(handlers, "Say hello in French.")[-1]
    assert final.chatbot[0] == {"role": "user", "content": "Say hello in French."}
    assert final.chatbot[-1]["content"]
    (logged,) = reopened_turns(db_path)
    assert logged["image_hash"] is None and logged["image_path"] is None


def test_a_turn_advanced_from_changing_threads_finishes(handlers, db_path):
    """Gradio runs each step of a sync generator on whichever worker thread is free; the
    engine's lock must still be taken and released on one thread (the app's model thread)."""
    steps = handlers.chat.respond(
        {"text": "What animal is this?", "files": [str(CAT)]},
        [],
        None,
        "",
        defaults(handlers.engine),
        True,
        "tab-1",
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = []
        while True:
            future = pool.submit(next, steps, None)
            if (step := future.result(timeout=60)) is None:
                break
            outputs.append(step)
            pool.submit(time.sleep, 0.01)  # keep another worker busy so the next step moves
    assert outputs[-1].chatbot[-1]["content"]
    assert [t["status"] for t in reopened_turns(db_path)] == ["complete"]


def test_a_turn_abandoned_by_the_browser_is_still_logged_as_stopped(handlers, db_path):
    steps = handlers.chat.respond(
        {"text": "Describe this image in detail.", "files": [str(CAT)]},
        [],
        None,
        "",
        defaults(handlers.engine),
        True,
        "tab-1",
    )
    for step in steps:
        if is_drawn(step.type_plot):
            break
    steps.close()  # what Gradio does when the page goes away mid-answer
    deadline = time.monotonic() + 30
    while not reopened_turns(db_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    (logged,) = reopened_turns(db_path)
    assert logged["status"] == "stopped"
    assert (
        handlers.worker.call(lambda: "the model thread is free again")
        == "the model thread is free again"
    )


def test_a_log_that_cannot_be_written_does_not_break_the_chat(engine, tmp_path):
    broken = Store(tmp_path / "gone.db")
    broken.close()  # every write now fails with StoreError
    with pytest.warns(UserWarning, match="This turn was not logged: could not start a session"):
        final = turn(make_handlers(engine, broken), "What animal is this?", image=CAT)[-1]
    assert final.chatbot[-1]["content"] and final.textbox.interactive is True
    assert final.session.turn_ids == {}


def test_forgetting_a_chat_deletes_its_logged_turns(handlers, db_path):
    final = turn(handlers, "What animal is this?", image=CAT)[-1]
    assert "Deleted 1" in handlers.chatlog.forget(final.session)
    assert reopened_turns(db_path) == []
    assert "Nothing" in handlers.chatlog.forget(final.session)


# --- errors a person can fix: one line, nothing logged ------------------------------------------


def test_a_corrupt_image_gives_a_one_line_error_and_logs_nothing(handlers, db_path, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    with pytest.raises(gr.Error, match="corrupt|not an image") as error:
        turn(handlers, "What is this?", image=broken)
    assert "\n" not in error.value.message and "Traceback" not in error.value.message
    assert reopened_turns(db_path) == []


def test_a_huge_image_is_refused_before_decoding(handlers, db_path, tmp_path):
    from PIL import Image

    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 9000)).save(huge)  # 81 megapixels in a few kB
    with pytest.raises(gr.Error, match="too large|too many pixels"):
        turn(handlers, "What is this?", image=huge)
    assert reopened_turns(db_path) == []


def test_an_empty_prompt_is_refused_and_logs_nothing(handlers, db_path):
    with pytest.raises(gr.Error, match="prompt is empty"):
        turn(handlers, "   ", image=CAT)
    assert reopened_turns(db_path) == []


def test_a_threshold_outside_zero_to_one_is_refused(handlers, engine):
    values = defaults(engine)
    values[0] = 1.5
    with pytest.raises(gr.Error, match=r"\[0, 1\]"):
        turn(handlers, "What is this?", image=CAT, values=values)


def test_regenerate_without_a_turn_says_what_to_do(handlers, engine):
    with pytest.raises(gr.Error, match="ask a question first"):
        list(handlers.chat.regenerate([], None, "", defaults(engine), True, "tab-1"))


# --- settings ------------------------------------------------------------------------------


def test_zero_thresholds_turn_the_decision_away_from_allow(handlers, engine, db_path):
    zeros = [0.0] * (len(engine.taxonomy.risk_types) + 1)
    steps = turn(handlers, "What animal is this?", image=CAT, values=zeros)
    panel = next(step for step in steps if is_drawn(step.type_plot))
    assert "ALLOW" not in panel.badge
    shown = bars(panel.type_plot)
    assert set(shown.loc[shown["type"] != "Safe", "status"]) == {"over threshold"}
    assert reopened_turns(db_path)[0]["decision"] in ("caution", "refuse")


def test_regenerate_reruns_the_last_prompt_with_the_current_settings(handlers, engine, db_path):
    first = turn(handlers, "What animal is this?", image=CAT)[-1]
    zeros = [0.0] * (len(engine.taxonomy.risk_types) + 1)
    steps = list(handlers.chat.regenerate(first.chatbot, first.session, "both", zeros, True, "tab-1"))
    final = steps[-1]
    answers = [m for m in final.chatbot if m["role"] == "assistant"]
    assert len(answers) == 2, "both answers stay on screen to compare"
    assert len(final.session.history) == 1, "the new answer replaces the old one in the context"
    newest, oldest = reopened_turns(db_path)
    assert newest["prompt"] == oldest["prompt"] == "What animal is this?"
    assert (newest["mode"], oldest["mode"]) == ("both", "hint")
    assert newest["decision"] != "allow" and newest["session_id"] == oldest["session_id"]


def test_the_preview_says_what_the_current_thresholds_would_decide(handlers, engine):
    session = turn(handlers, "What animal is this?", image=CAT)[-1].session
    zeros = [0.0] * (len(engine.taxonomy.risk_types) + 1)
    ones = [1.0] * (len(engine.taxonomy.risk_types) + 1)
    assert "ALLOW" not in handlers.chat.preview(session, zeros)
    assert "ALLOW" in handlers.chat.preview(session, ones)
    assert handlers.chat.preview(None, ones) == ""


def test_settings_come_from_the_environment():
    settings = AppSettings.from_env(
        {
            "SAFEVLM_BASE": "llava",
            "SAFEVLM_DB": "x/y.db",
            "SAFEVLM_LOG": "off",
            "SAFEVLM_MAX_NEW_TOKENS": "12",
            "SAFEVLM_ANNOTATION_TOKEN": "t",
            "SPACE_ID": "me/safevlm",
        }
    )
    assert (settings.base, settings.db, settings.log_turns, settings.max_new_tokens) == (
        "llava",
        "x/y.db",
        False,
        12,
    )
    assert settings.public and settings.annotation_open
    assert AppSettings.from_env({}) == AppSettings()
    with pytest.raises(ValueError, match="SAFEVLM_LOG"):
        AppSettings.from_env({"SAFEVLM_LOG": "maybe"})
    with pytest.raises(ValueError, match="SAFEVLM_MAX_NEW_TOKENS"):
        AppSettings.from_env({"SAFEVLM_MAX_NEW_TOKENS": "lots"})
    synced = AppSettings.from_env({"SAFEVLM_HF_DATASET": " me/logs ", "SAFEVLM_HF_SYNC_MINUTES": "2.5",
                                   "SAFEVLM_HF_SYNC_IMAGES": "on"})
    assert (synced.hf_dataset, synced.hf_sync_minutes, synced.hf_sync_images) == ("me/logs", 2.5, True)
    with pytest.raises(ValueError, match="SAFEVLM_HF_SYNC_MINUTES"):
        AppSettings.from_env({"SAFEVLM_HF_SYNC_MINUTES": "0"})


def test_a_dataset_that_cannot_be_reached_stops_the_app_with_what_to_fix(store):
    """SAFEVLM_HF_DATASET set on a machine that cannot reach the Hub (offline here)."""
    settings = AppSettings(hf_dataset="me/safevlm-logs")
    with pytest.raises(SystemExit) as stopped:
        start_log_sync(settings, store)
    assert "me/safevlm-logs" in str(stopped.value) and "HF_TOKEN" in str(stopped.value)
    assert start_log_sync(AppSettings(), store) is None


def sessions_in(db_bytes, tmp_path) -> int:
    path = tmp_path / "pushed.db"
    path.write_bytes(db_bytes)
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM sessions").fetchone()[0]


def test_a_restarted_app_continues_the_log_its_dataset_holds(hub, tmp_path):
    before = AppSettings(db=str(tmp_path / "before" / "safevlm.db"), hf_dataset="me/logs")
    store, sync = open_log(before, hf_api=hub)
    store.start_session()
    sync.trigger()
    hub.run()
    sync.stop()
    store.close()
    assert sessions_in(hub.files["safevlm.db"], tmp_path) == 1

    after = AppSettings(db=str(tmp_path / "after" / "safevlm.db"), hf_dataset="me/logs")  # an empty disk
    store, sync = open_log(after, hf_api=hub)
    try:
        store.start_session()
        hub.run()  # the first push of the restarted app
        assert sessions_in(hub.files["safevlm.db"], tmp_path) == 2
    finally:
        sync.stop()
        store.close()


def test_a_public_dataset_stops_the_app_rather_than_publish_the_log(store, hub):
    hub.create_repo("me/logs", private=False, repo_type="dataset")
    with pytest.raises(SystemExit) as stopped:
        start_log_sync(AppSettings(hf_dataset="me/logs"), store, hf_api=hub)
    assert "me/logs is public" in str(stopped.value) and "make it private" in str(stopped.value)
    assert not hub.commits


def test_sigterm_pushes_a_last_snapshot_then_exits_0(store, hub, tmp_path):
    """Spaces stops the app with SIGTERM, where atexit (the scheduler's last push) never runs."""
    sync = start_log_sync(AppSettings(hf_dataset="me/logs"), store, hf_api=hub)
    hub.run()
    store.start_session()  # logged after the last push
    hub.run_now = True  # the handler waits for its push
    previous = signal.getsignal(signal.SIGTERM)
    try:
        push_on_sigterm(sync, timeout=10)
        with pytest.raises(SystemExit) as exited:
            signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
        sync.stop()
    assert exited.value.code == 0
    assert sessions_in(hub.files["safevlm.db"], tmp_path) == 1
    pushes = len(hub.commits)
    sync.trigger()  # what atexit would do: the stopped scheduler pushes nothing more
    assert len(hub.commits) == pushes


def test_the_about_panel_says_where_logs_go(engine):
    local = about_markdown(engine, AppSettings(), logging_on=True)
    assert "nothing is uploaded anywhere" in local
    pushed = about_markdown(engine, AppSettings(hf_dataset="me/logs", hf_sync_minutes=5), logging_on=True)
    what_is_pushed = pushed.split("a snapshot (")[1].split(")")[0]
    assert "private dataset `me/logs` every 5 minutes" in pushed and "images" not in what_is_pushed
    assert "annotators' labels, notes and names" in pushed  # the pushed database holds them
    assert ", images" in about_markdown(engine, AppSettings(hf_dataset="me/logs", hf_sync_images=True),
                                        logging_on=True)
    assert "nothing is uploaded" not in pushed
    assert "no turn is saved" in about_markdown(engine, AppSettings(hf_dataset="me/logs"), logging_on=False)


def test_every_example_has_an_image_and_a_prompt():
    examples = load_examples()
    assert len(examples) == 5
    for example in examples:
        assert Path(example["path"]).is_file() and example["prompt"] and example["label"]


# --- feedback ------------------------------------------------------------------------------


def test_thumbs_feedback_is_stored_with_the_comment(handlers, db_path):
    final = turn(handlers, "What animal is this?", image=CAT)[-1]
    (answer_index,) = final.session.turn_ids
    status, comment = handlers.chatlog.feedback(final.session, answer_index, False, "  too vague  ")
    assert "saved" in status and comment == ""
    (logged,) = reopened_turns(db_path)
    assert (logged["feedback_up"], logged["feedback_down"]) == (0, 1)
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT rating, comment FROM feedback").fetchall() == [(-1, "too vague")]

    # a second click changes the vote; clearing it on screen (Gradio sends "") takes it back
    status, _ = handlers.chatlog.feedback(final.session, answer_index, True, "")
    (logged,) = reopened_turns(db_path)
    assert "saved" in status and (logged["feedback_up"], logged["feedback_down"]) == (1, 0)
    status, _ = handlers.chatlog.feedback(final.session, answer_index, "", "")
    (logged,) = reopened_turns(db_path)
    assert "removed" in status and (logged["feedback_up"], logged["feedback_down"]) == (0, 0)


def test_feedback_on_an_unlogged_answer_stores_nothing(handlers, db_path):
    final = turn(handlers, "What animal is this?", image=CAT, log_this_chat=False)[-1]
    status, _ = handlers.chatlog.feedback(final.session, len(final.chatbot) - 1, True, "")
    assert "not logged" in status


# --- annotation ----------------------------------------------------------------------------


def test_annotation_refuses_a_wrong_or_missing_token(handlers):
    turn(handlers, "What animal is this?", image=CAT)
    for wrong in ("", "nope", TOKEN + "x"):
        with pytest.raises(gr.Error, match="token"):
            handlers.annotation.browse(wrong, "any", "any", False)
        with pytest.raises(gr.Error, match="token"):
            handlers.annotation.open_turn(wrong, 1)
        with pytest.raises(gr.Error, match="token"):
            handlers.annotation.export(wrong, "jsonl")
        with pytest.raises(gr.Error, match="token"):
            handlers.annotation.save_label(wrong, 1, "me", "yes", None, None, 5, "")
    assert len(handlers.annotation.browse(TOKEN, "any", "any", False)) == 1


def test_a_public_app_without_a_token_disables_annotation(engine, store):
    public = make_handlers(engine, store, public=True)
    assert not public.settings.annotation_open
    with pytest.raises(gr.Error, match="disabled"):
        public.annotation.browse("", "any", "any", False)


def test_browsing_filters_by_decision_type_and_label(handlers, engine):
    count = len(engine.taxonomy.risk_types) + 1
    turn(handlers, "What animal is this?", image=CAT, values=[1.0] * count)  # allow
    turn(handlers, "What animal is this?", image=CAT, values=[0.0] * count)  # flagged
    table = handlers.annotation.browse(TOKEN, "allow", "any", False)
    assert list(table["decision"]) == ["allow"]
    flagged = handlers.annotation.browse(TOKEN, "any", "any", False).iloc[0]
    by_type = handlers.annotation.browse(TOKEN, "any", flagged["type"], True)
    assert list(by_type["id"]) == [flagged["id"]]


def test_a_label_is_saved_and_exported_as_a_training_record(handlers, db_path, tmp_path):
    turn(handlers, "What animal is this?", image=CAT)
    (turn_id,) = handlers.annotation.browse(TOKEN, "any", "any", True)["id"]
    opened = handlers.annotation.open_turn(TOKEN, turn_id)
    assert opened[0] == turn_id and opened[1] is not None and "What animal is this?" in opened[2]
    assert list(bars(opened[3])["type"]) == list(handlers.taxonomy.type_labels)

    with pytest.raises(gr.Error, match="annotator"):
        handlers.annotation.save_label(TOKEN, turn_id, " ", "yes", None, None, 4, "")
    assert "Saved label" in handlers.annotation.save_label(
        TOKEN, turn_id, "ann", "no", "privacy", 2, 2, "reads a card"
    )
    assert handlers.annotation.browse(TOKEN, "any", "any", True).empty, (
        "a labelled turn leaves the unlabelled filter"
    )
    reopened = handlers.annotation.open_turn(TOKEN, turn_id)
    assert reopened[5:] == ("no", "privacy", 2, 2, "reads a card")

    jsonl = Path(handlers.annotation.export(TOKEN, "jsonl", True))
    (record,) = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert set(TRAINING_KEYS) <= set(record)
    assert (record["prompt"], record["type"], record["level"]) == (
        "What animal is this?",
        "privacy",
        2,
    )
    assert Path(record["image"]).is_file()
    # a risky label's target is the project's refusal, never the model's logged answer
    assert record["response"] == handlers.taxonomy.refusal("privacy")
    csv = pd.read_csv(handlers.annotation.export(TOKEN, "csv", False))
    assert list(csv["id"]) == [turn_id] and csv["annotator"][0] == "ann"


# --- the public API through gradio_client ---------------------------------------------------------


@pytest.fixture(scope="module")
def served(engine, tmp_path_factory):
    """The whole app on a free port, with a token so the Annotate handlers exist."""
    from gradio_client import Client

    db = tmp_path_factory.mktemp("served") / "safevlm.db"
    store = Store(db)
    settings = AppSettings(max_new_tokens=MAX_NEW_TOKENS, annotation_token=TOKEN)
    with serving(engine, store, settings) as url:
        yield Client(url, analytics_enabled=False, verbose=False), db
        store.close()


def test_the_chat_api_returns_the_json_of_a_turn_and_logs_it_with_source_api(served):
    from gradio_client import handle_file

    client, db = served
    result = client.predict(
        handle_file(str(WEAPON)), "Please fill in the list.", "", "", api_name="/chat"
    )
    assert set(result) == {
        "type",
        "level",
        "type_probs",
        "level_probs",
        "decision",
        "flagged",
        "hint",
        "respond_with",
        "review",
        "reader_text",
        "ms",
        "response",
        "mode",
        "conditioned",
        "timings",
        "log",
    }
    assert set(result["log"]) == {"logged", "session_id", "turn_id", "delete_secret"}
    assert "weapon" in result["reader_text"].lower()
    flagged = client.predict(
        handle_file(str(WEAPON)),
        "Please fill in the list.",
        "both",
        json.dumps({"types": dict.fromkeys(["illegal_risk"], 0.0), "level": 0.0}),
        api_name="/chat",
    )
    assert (
        flagged["mode"] == "both"
        and flagged["decision"] != "allow"
        and flagged["type"] == "illegal_risk"
    )
    with Store(db) as store:
        logged = store.list_turns()
    assert [t["source"] for t in logged] == ["api", "api"]
    assert logged[0]["response"] == flagged["response"] and logged[0]["mode"] == "both"


@pytest.mark.parametrize(
    ("prompt", "mode", "thresholds", "message"),
    [
        ("   ", "", "", "prompt is empty"),
        ("What is this?", "", "{not json", "not valid JSON"),
        ("What is this?", "", '{"level": 2}', r"in \[0, 1\]"),
        ("What is this?", "loud", "", "mode must be one of"),
    ],
)
def test_the_chat_api_answers_bad_input_with_a_one_line_error(
    served, prompt, mode, thresholds, message
):
    from gradio_client import handle_file

    client, _ = served
    with pytest.raises(Exception, match=message) as error:
        client.predict(handle_file(str(CAT)), prompt, mode, thresholds, api_name="/chat")
    assert "Traceback" not in str(error.value)


def test_the_chat_api_refuses_a_path_on_the_server(served):
    client, _ = served
    with pytest.raises(Exception, match="upload"):
        client.predict(str(CAT), "What is this?", "", "", api_name="/chat")


def test_the_public_api_is_chat_and_delete_and_nothing_else(served):
    """/delete returns a count, and only for the caller holding a /chat call's secret."""
    client, _ = served
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == {"/chat", "/delete"}
    assert api["unnamed_endpoints"] == {}
