"""What a visitor deletes or opts out of is gone, and what the threat model promises holds: the
served app driven the way a browser drives it (uploads, then events joined to the queue under
one session hash), /chat and /delete through gradio_client, and the raw files on disk."""

import json
import os
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

os.environ.update(
    GRADIO_ANALYTICS_ENABLED="False",
    HF_HUB_DISABLE_TELEMETRY="1",
    NO_PROXY="localhost,127.0.0.1",
    no_proxy="localhost,127.0.0.1",
)

import pytest  # noqa: E402
from conftest import BrowserPage, GatedEngine, serving  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402

from app.handlers import Handlers  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from safevlm.store import Store  # noqa: E402
from safevlm.store.sync import backup_database  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
CAT, COFFEE = EXAMPLES / "cat.png", EXAMPLES / "coffee.png"
MAX_NEW_TOKENS = 6
TOKEN = "privacy-token"
pytestmark = pytest.mark.filterwarnings(  # raised inside gradio's queue, not by the app
    "ignore:'future.no_silent_downcasting':Warning", "ignore:The copy keyword is deprecated:Warning"
)




def defaults(engine) -> list:
    """The Safety settings' values as a fresh page sends them (thresholds, template levels)."""
    from app.safety_settings import default_values

    return default_values(engine)


def marked_png(path: Path, marker: str) -> Path:
    """An image no other test uses: random pixels, and `marker` in a PNG text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", marker)
    Image.frombytes("RGB", (48, 40), os.urandom(48 * 40 * 3)).save(path, pnginfo=info)
    return path


@pytest.fixture
def upload_dir(tmp_path, monkeypatch):
    """Gradio's upload folder for this test: every file the app can serve besides its own
    source and examples lives here."""
    folder = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder




@pytest.fixture
def served(tiny_engine, tmp_path, upload_dir):
    """The whole app with a token, its log in tmp_path, one browser page open on it, and an
    engine whose answers can be held in flight."""
    engine = GatedEngine(tiny_engine)
    db = tmp_path / "logs" / "safevlm.db"
    store = Store(db)
    settings = AppSettings(max_new_tokens=MAX_NEW_TOKENS, annotation_token=TOKEN)
    with serving(engine, store, settings) as url:
        yield SimpleNamespace(url=url, db=db, store=store, engine=engine, page=BrowserPage(url))
    store.close()


def ask(page: BrowserPage, engine, prompt: str, image=None, dont_log=False) -> str:
    """Send a message as the input box does; returns the event id (`page.result` waits)."""
    message = {"text": prompt, "files": [page.upload(image)] if image else []}
    return page.join("respond", message, [], None, "hint", dont_log, *defaults(engine))


def logged(db) -> list[dict]:
    with Store(db) as store:
        return store.list_turns(limit=100)


def sessions(db) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT client, logging FROM sessions ORDER BY created").fetchall()


def served_files(upload_dir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in upload_dir.rglob("*") if p.is_file()} if upload_dir.exists() else {}


def uploaded_images(upload_dir: Path, image: Path) -> list[Path]:
    data = image.read_bytes()
    return [path for path, content in served_files(upload_dir).items() if content == data]


# --- 1. Delete covers every chat of the page ---------------------------------------------------


def test_delete_reaches_every_chat_the_page_logged_across_clear_and_new_images(served):
    page, engine = served.page, served.engine
    page.result(ask(page, engine, "What animal is this?", CAT))
    page.result(ask(page, engine, "What colour is it?"))
    page.call("clear", None)
    page.result(ask(page, engine, "Say hello in French."))
    page.result(ask(page, engine, "What is in the cup?", COFFEE))
    assert len(logged(served.db)) == 4 and len(sessions(served.db)) == 3

    (status,) = page.run("forget", None)

    assert "Deleted 4 logged turn(s) from 3 chat(s)" in status
    assert logged(served.db) == [] and sessions(served.db) == []
    assert list(served.store.images_dir.rglob("*.*")) == []
    (again,) = page.run("forget", None)
    assert "Nothing of this page's chats is logged" in again


def test_delete_leaves_other_pages_chats_alone(served):
    mine, theirs = served.page, BrowserPage(served.url)
    mine.result(ask(mine, served.engine, "What animal is this?", CAT))
    theirs.result(ask(theirs, served.engine, "What is in the cup?", COFFEE))
    mine.run("forget", None)
    assert [t["prompt"] for t in logged(served.db)] == ["What is in the cup?"]


# --- 2. Uploads, opened images and exports do not outlive opt-out, deletion or minutes ----------


def test_an_opted_out_chat_leaves_no_upload_that_the_server_serves(served, upload_dir):
    page = served.page
    page.run("set_logging", True, None)  # tick "Don't log this chat" first
    message = {"text": "What animal is this?", "files": [page.upload(CAT)]}
    path = message["files"][0]["path"]
    assert page.fetch(path).status_code == 200, "an upload is served while its turn runs"

    page.result(page.join("respond", message, [], None, "hint", True, *defaults(served.engine)))

    assert page.fetch(path).status_code in (403, 404)
    assert uploaded_images(upload_dir, CAT) == []
    assert logged(served.db) == []


def test_a_server_that_logs_nothing_keeps_no_upload(tiny_engine, tmp_path, upload_dir):
    store = Store(tmp_path / "off.db", enabled=False)
    settings = AppSettings(max_new_tokens=MAX_NEW_TOKENS, log_turns=False)
    with serving(GatedEngine(tiny_engine), store, settings) as url:
        page = BrowserPage(url)
        message = {"text": "What animal is this?", "files": [page.upload(CAT)]}
        page.result(page.join("respond", message, [], None, "hint", False, *defaults(tiny_engine)))
        assert page.fetch(message["files"][0]["path"]).status_code in (403, 404)
    assert uploaded_images(upload_dir, CAT) == []
    store.close()


def test_delete_removes_the_pages_uploads_from_the_server(served, upload_dir):
    page = served.page
    message = {"text": "What animal is this?", "files": [page.upload(CAT)]}
    page.result(page.join("respond", message, [], None, "hint", False, *defaults(served.engine)))
    path = message["files"][0]["path"]
    assert page.fetch(path).status_code == 200, "a logged chat's upload stays until the sweep"

    page.run("forget", None)

    assert page.fetch(path).status_code in (403, 404)
    assert uploaded_images(upload_dir, CAT) == []


def test_exports_and_opened_images_sit_under_random_names_and_go_with_a_deletion(served):
    visitor, annotator = served.page, BrowserPage(served.url)
    visitor.result(ask(visitor, served.engine, "What animal is this?", CAT))
    (turn,) = logged(served.db)

    (export,) = annotator.run("export_csv", TOKEN, False)
    opened = annotator.run("open_turn", TOKEN, turn["id"])
    image = opened[1]
    for served_file in (export, image):
        folder = Path(served_file["path"]).parent.name
        assert folder.startswith("safevlm-") and len(folder) == len("safevlm-") + 32
    assert "What animal is this?" in annotator.fetch(export["path"]).text
    assert annotator.fetch(image["path"]).content == CAT.read_bytes()

    visitor.run("forget", None)

    for served_file in (export, image):
        assert annotator.fetch(served_file["path"]).status_code in (403, 404)


def test_an_export_is_deleted_a_few_minutes_after_it_was_made(tiny_engine, tmp_path, upload_dir):
    store = Store(tmp_path / "logs" / "safevlm.db")
    handlers = Handlers(tiny_engine, store, AppSettings(annotation_token=TOKEN))
    assert handlers.annotation_files.seconds == 600
    handlers.annotation_files.seconds = 0.3
    path = Path(handlers.annotation.export(TOKEN, "csv", labelled_only=False))
    assert path.is_file() and path.is_relative_to(upload_dir)
    deadline = time.monotonic() + 10
    while path.parent.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not path.exists() and not path.parent.exists()
    store.close()


# --- 3. and the walk: nothing of a deleted chat is left in any file --------------------------------


def test_a_deleted_chat_leaves_no_byte_in_any_served_file_or_database_file(served, upload_dir, tmp_path):
    marker = f"zq{uuid.uuid4().hex}"
    image = marked_png(tmp_path / "mine.png", marker)
    image_bytes = image.read_bytes()
    page, annotator = served.page, BrowserPage(served.url)
    page.result(ask(page, served.engine, f"What is this? {marker}", image))
    page.result(ask(page, served.engine, f"And this? {marker}"))
    # 👍 on the first answer (chatbot index 2: image, question, answer) with a comment
    page.run("on_like", None, f"useful {marker}", event_data={"index": 2, "value": "", "liked": True})
    (_, turn) = logged(served.db)
    assert turn["feedback_comment"] == f"useful {marker}"
    annotator.run("save_label", TOKEN, turn["id"], "ann", "yes", None, None, None, f"note {marker}")
    (export,) = annotator.run("export_csv", TOKEN, False)
    (jsonl,) = annotator.run("export_jsonl", TOKEN, False)
    opened = annotator.run("open_turn", TOKEN, turn["id"])
    assert marker in annotator.fetch(export["path"]).text
    assert annotator.fetch(opened[1]["path"]).content == image_bytes

    (status,) = page.run("forget", None)
    assert "Deleted 2 logged turn(s)" in status

    for path, content in served_files(upload_dir).items():
        assert marker.encode() not in content and image_bytes not in content, path
    for served_file in (export, jsonl, opened[1]):
        assert annotator.fetch(served_file["path"]).status_code in (403, 404)
    for private in (served.db, served.db.with_name(served.db.name + "-wal")):
        assert annotator.fetch(str(private)).status_code == 403, "the log is never served"
    backup = tmp_path / "snapshot.db"
    backup_database(served.db, backup)  # what LogSync pushes to the dataset
    wal = served.db.with_name(served.db.name + "-wal")
    for path in (served.db, wal, backup, *served.store.images_dir.rglob("*")):
        if path.is_file():
            content = path.read_bytes()
            assert marker.encode() not in content and image_bytes not in content, path


# --- 4. "Don't log" ticked while the answer streams wins ---------------------------------------


def test_ticking_dont_log_while_the_first_answer_streams_keeps_it_out_of_the_log(served):
    page, engine = served.page, served.engine
    engine.release.clear()
    turn = ask(page, engine, "What animal is this?", CAT)
    assert engine.in_flight.wait(60)
    (status,) = page.run("set_logging", True, None)
    assert "not logged" in status
    engine.release.set()
    page.result(turn)

    assert logged(served.db) == []
    assert sessions(served.db) == [("ui", 0)]


def test_ticking_dont_log_mid_answer_later_in_a_chat_stops_that_turn_and_stays_off(served):
    page, engine = served.page, served.engine
    page.result(ask(page, engine, "What animal is this?", CAT))
    engine.release.clear()
    turn = ask(page, engine, "What colour is it?")
    assert engine.in_flight.wait(60)
    page.run("set_logging", True, None)
    engine.release.set()
    page.result(turn)

    assert [t["prompt"] for t in logged(served.db)] == ["What animal is this?"]
    assert sessions(served.db) == [("ui", 0)], "the session flag does not flip back to 1"


def test_unticking_dont_log_mid_answer_logs_the_turn_in_flight(served):
    page, engine = served.page, served.engine
    page.run("set_logging", True, None)
    engine.release.clear()
    turn = ask(page, engine, "What animal is this?", CAT, dont_log=True)
    assert engine.in_flight.wait(60)
    page.run("set_logging", False, None)
    engine.release.set()
    page.result(turn)
    assert [t["prompt"] for t in logged(served.db)] == ["What animal is this?"]


# --- 5. UI events run only through the queue ------------------------------------------------------


def test_no_event_runs_by_a_direct_post_around_the_queue(served):
    page = served.page
    queued = ["respond", "regenerate", "forget", "set_logging", "on_like", "unlock", "browse",
              "open_turn", "save_label", "export_csv", "export_jsonl", "chat", "delete"]
    assert {"respond", "forget", "unlock", "browse", "chat"} <= set(page.fns)
    for name in (n for n in queued if n in page.fns):
        for prefix in ("gradio_api/run", "gradio_api/api"):
            response = page.http.post(f"{prefix}/{name}", json={"data": [TOKEN, "any", "any", False]})
            assert response.status_code == 404, (name, prefix, response.text[:200])
            assert "join the queue" in response.text


# --- 6. and 7. /chat: types checked at the edge, log=false, and a delete by secret ---------------


@pytest.fixture
def client(served):
    from gradio_client import Client

    return Client(served.url, analytics_enabled=False, verbose=False)


@pytest.fixture(scope="module")
def api_app(tiny_engine, tmp_path_factory):
    """One app for the many bad requests below (each logs nothing, so they can share it)."""
    from gradio_client import Client

    db = tmp_path_factory.mktemp("api") / "safevlm.db"
    store = Store(db)
    with serving(tiny_engine, store, AppSettings(max_new_tokens=MAX_NEW_TOKENS)) as url:
        yield SimpleNamespace(db=db, client=Client(url, analytics_enabled=False, verbose=False))
    store.close()


@pytest.mark.parametrize(
    ("prompt", "mode", "thresholds", "log", "message"),
    [
        (123, "", "", True, "prompt must be a string"),
        (["a"], "", "", True, "prompt must be a string"),
        ({"a": 1}, "", "", True, "prompt must be a string"),
        ("What is this?", 5, "", True, "mode must be a string"),
        ("What is this?", "", 5, True, "thresholds must be a JSON string"),
        ("What is this?", "", '{"types": 5}', True, 'thresholds "types" must be an object'),
        ("What is this?", "", "[" * 1500 + "]" * 1500, True, "nested too deeply"),
        ("What is this?", "", '{"a":' * 2000 + "1" + "}" * 2000, True, "longer than 4000"),
        ("What is this?", "", "", "yes", "log must be true or false"),
    ],
)
def test_a_chat_request_of_the_wrong_type_gets_one_clear_line(
    api_app, prompt, mode, thresholds, log, message
):
    from gradio_client import handle_file

    with pytest.raises(Exception, match=message) as error:
        api_app.client.predict(handle_file(str(CAT)), prompt, mode, thresholds, log, api_name="/chat")
    assert "\n" not in str(error.value).strip() and "Traceback" not in str(error.value)
    assert logged(api_app.db) == []


def test_chat_with_log_false_writes_nothing_and_keeps_no_upload(served, client, upload_dir):
    from gradio_client import handle_file

    result = client.predict(handle_file(str(CAT)), "What animal is this?", "", "", False,
                            api_name="/chat")
    assert result["response"] and result["log"] == {"logged": False}
    assert logged(served.db) == [] and sessions(served.db) == []
    assert uploaded_images(upload_dir, CAT) == [], "the API upload is deleted after the call"


def test_calls_sending_the_same_image_at_once_all_answer_and_the_upload_goes_after_the_last(
    served, client, upload_dir
):
    """Gradio stores an upload under the hash of its bytes: three callers sending one image
    share one file, and the first call to end must not delete it from under the others."""
    from gradio_client import handle_file

    jobs = [client.submit(handle_file(str(CAT)), f"Caller {n}: what animal is this?", "", "", False,
                          api_name="/chat") for n in range(3)]
    results = [job.result(timeout=120) for job in jobs]
    assert all(r["response"] and r["log"] == {"logged": False} for r in results)
    assert uploaded_images(upload_dir, CAT) == [], "the last call to end deletes the upload"


def test_an_upload_is_deleted_when_its_last_claim_goes_and_no_upload_is_being_received(tmp_path, upload_dir):
    from app.served import UploadClaims

    path = upload_dir / "abc" / "cat.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(CAT.read_bytes())
    claims = UploadClaims()
    claims.claim([str(path), str(path)])  # two callers sent the same bytes
    assert claims.release(path) is False and path.exists() and claims.count(path) == 1
    claims.receiving()  # a third upload, maybe of the same bytes, is arriving
    assert claims.release(path) is False and path.exists()
    claims.received([str(path)])  # it was: the file stays for that caller
    assert path.exists() and claims.count(path) == 1
    claims.receiving()
    assert claims.release(path) is False and path.exists()
    claims.received([])  # that upload failed: nothing claims the file now
    assert not path.exists() and claims.count(path) == 0
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"x")
    assert claims.release(outside) is False and outside.exists(), "only uploads are deleted"


def test_an_api_caller_deletes_its_own_turn_with_the_secret_only_it_received(served, client, upload_dir):
    from gradio_client import handle_file

    other = client.predict(handle_file(str(COFFEE)), "What is in the cup?", api_name="/chat")
    mine = client.predict(handle_file(str(CAT)), "What animal is this?", api_name="/chat")
    ids = mine["log"]
    assert ids["logged"] is True and len(ids["delete_secret"]) >= 32
    by_id = {t["id"]: t for t in logged(served.db)}
    assert by_id[ids["turn_id"]]["session_id"] == ids["session_id"]
    assert uploaded_images(upload_dir, CAT) == []

    for wrong in (other["log"]["delete_secret"], "x" * 43):
        with pytest.raises(Exception, match="unknown session or wrong delete secret"):
            client.predict(ids["session_id"], wrong, api_name="/delete")
    assert client.predict(ids["session_id"], ids["delete_secret"], api_name="/delete") == {"deleted": 1}
    assert [t["prompt"] for t in logged(served.db)] == ["What is in the cup?"]
    with pytest.raises(Exception, match="unknown session or wrong delete secret"):
        client.predict(ids["session_id"], ids["delete_secret"], api_name="/delete")


# --- 8. token rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_name", "public"),
    [("", False), ("127.0.0.1", False), ("localhost", False), ("::1", False), ("127.0.0.2", False),
     ("0.0.0.0", True), ("::", True), ("192.168.1.20", True), ("myhost.example", True)],
)
def test_an_app_bound_beyond_loopback_is_public(server_name, public):
    settings = AppSettings.from_env({"GRADIO_SERVER_NAME": server_name})
    assert settings.public is public and settings.annotation_open is not public


def test_a_public_bind_without_a_token_keeps_the_log_closed(tiny_engine, tmp_path):
    import gradio as gr

    store = Store(tmp_path / "logs" / "safevlm.db")
    handlers = Handlers(tiny_engine, store, AppSettings.from_env({"GRADIO_SERVER_NAME": "0.0.0.0"}))
    with pytest.raises(gr.Error, match="Annotation is disabled"):
        handlers.annotation.browse("", "any", "any", False)
    with pytest.raises(gr.Error, match="Annotation is disabled"):
        handlers.annotation.export("", "csv")
    store.close()


def test_the_token_is_stripped_and_a_blank_one_is_refused():
    assert AppSettings.from_env({"SAFEVLM_ANNOTATION_TOKEN": "  s3cret\n"}).annotation_token == "s3cret"
    with pytest.raises(ValueError, match="SAFEVLM_ANNOTATION_TOKEN is set but blank"):
        AppSettings.from_env({"SAFEVLM_ANNOTATION_TOKEN": "   "})


def test_the_app_refuses_to_start_with_a_blank_token_in_one_line(tmp_path, monkeypatch):
    from app.app import main

    monkeypatch.setenv("SAFEVLM_ANNOTATION_TOKEN", " ")
    monkeypatch.setenv("SAFEVLM_DB", str(tmp_path / "x.db"))
    with pytest.raises(SystemExit) as stopped:  # sys.exit(text): text on stderr, exit status 1
        main()
    assert stopped.value.code == (
        "safevlm app: SAFEVLM_ANNOTATION_TOKEN is set but blank; set a real token or unset it"
    )
    assert not (tmp_path / "x.db").exists(), "it stops before opening the log"


# --- 10. users' comments reach annotators ---------------------------------------------------------


def test_a_users_comment_shows_in_the_table_the_opened_turn_and_both_exports(tiny_engine, tmp_path, upload_dir):
    store = Store(tmp_path / "logs" / "safevlm.db")
    handlers = Handlers(tiny_engine, store, AppSettings(max_new_tokens=MAX_NEW_TOKENS, annotation_token=TOKEN))
    message = {"text": "What animal is this?", "files": [str(CAT)]}
    final = list(handlers.chat.respond(message, [], None, "", defaults(tiny_engine), True, "tab"))[-1]
    handlers.chatlog.feedback(final.session, len(final.chatbot) - 1, False, "it refused a harmless question")
    (turn,) = store.list_turns()

    table = handlers.annotation.browse(TOKEN, "any", "any", False)
    assert list(table["comment"]) == ["it refused a harmless question"]
    text = handlers.annotation.open_turn(TOKEN, turn["id"])[2]
    assert "it refused a harmless question" in text
    csv_text = Path(handlers.annotation.export(TOKEN, "csv", labelled_only=False)).read_text()
    assert "it refused a harmless question" in csv_text
    handlers.annotation.save_label(TOKEN, turn["id"], "ann", "yes", None, None, None, "")
    (record,) = [json.loads(line) for line in
                 Path(handlers.annotation.export(TOKEN, "jsonl", labelled_only=False)).read_text().splitlines()]
    assert record["meta"]["feedback_comment"] == "it refused a harmless question"
    store.close()
