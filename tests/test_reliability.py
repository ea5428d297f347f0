"""Bad input, broken files and crashes: each gets one clear line (never a traceback), the app
keeps serving, and nothing already logged is lost. Through the engine and the app's handlers,
with the real tiny engine and real SQLite files in tmp_path, reopened to count what stayed."""

import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import zlib
from pathlib import Path

os.environ.update(
    GRADIO_ANALYTICS_ENABLED="False",
    HF_HUB_DISABLE_TELEMETRY="1",
    NO_PROXY="localhost,127.0.0.1",
    no_proxy="localhost,127.0.0.1",
)

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402
from PIL import Image  # noqa: E402

from app.chat import generation_settings  # noqa: E402
from app.handlers import Handlers  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from safevlm.cli import main as cli_main  # noqa: E402
from safevlm.engine import ChatEngine, PromptError  # noqa: E402
from safevlm.images import ImageError  # noqa: E402
from safevlm.model.modeling import CONFIG_FILE, WEIGHTS_FILE, CheckpointError  # noqa: E402
from safevlm.policy import ThresholdError  # noqa: E402
from safevlm.store import Store  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
CAT = EXAMPLES / "cat.png"
TOKEN = "reliability-token"
MAX_NEW_TOKENS = 4
pytestmark = pytest.mark.filterwarnings(
    "ignore:'future.no_silent_downcasting':Warning", "ignore:The copy keyword is deprecated:Warning"
)


# --- helpers -----------------------------------------------------------------------------------


def make_handlers(engine, store) -> Handlers:
    return Handlers(
        engine, store, AppSettings(max_new_tokens=MAX_NEW_TOKENS, annotation_token=TOKEN)
    )


def slider_values(engine) -> list[float]:
    thresholds = engine.default_thresholds()
    return [thresholds.types[t] for t in engine.taxonomy.risk_types] + [thresholds.level]


def ui_turn(handlers, prompt, image=None, values=None):
    """One chat turn from the input box, run to the end; its outputs."""
    message = {"text": prompt, "files": [str(image)] if image else []}
    values = slider_values(handlers.engine) if values is None else values
    return list(handlers.chat.respond(message, [], None, "", values, True, "tab-1"))


def uploaded(path: Path) -> dict:
    """The file as the /chat API receives an upload: inside Gradio's upload folder."""
    folder = Path(get_upload_folder()) / f"reliability-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    return {"path": str(shutil.copy(path, folder / path.name))}


def count_turns(db_path) -> int:
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT count(*) FROM turns").fetchone()[0]


def assert_one_line(message: str) -> None:
    assert message.strip() and "\n" not in message.strip(), message
    assert "Traceback" not in message and 'File "' not in message, message


def assert_keeps_serving(handlers, db_path, before: int) -> None:
    """A normal turn right after the bad one succeeds and is logged; earlier rows stay."""
    final = ui_turn(handlers, "What animal is this?", image=CAT)[-1]
    assert final.chatbot[-1]["role"] == "assistant" and final.chatbot[-1]["content"].strip()
    assert final.textbox.interactive is True
    assert count_turns(db_path) == before + 1


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "logs" / "safevlm.db"


@pytest.fixture
def store(db_path):
    store = Store(db_path)
    yield store
    store.close()


@pytest.fixture
def handlers(tiny_engine, store):
    return make_handlers(tiny_engine, store)


@pytest.fixture
def logged_once(handlers, db_path):
    """A log that already holds one turn, so every test can check that it stays."""
    ui_turn(handlers, "What animal is this?", image=CAT)
    assert count_turns(db_path) == 1
    return 1


# --- bad images --------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb(path: Path, side: int = 20000) -> Path:
    """A 20000 x 20000 1-bit PNG of a few kB, written row by row (never held in memory)."""
    compress, row = zlib.compressobj(9), b"\x00" * (1 + side // 8)
    body = b"".join(compress.compress(row) for _ in range(side)) + compress.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )
    return path


def noise(size=(160, 120), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(
        mode
    )


def make_image(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "corrupt":
        path = folder / "corrupt.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif kind == "truncated":
        path = folder / "truncated.jpg"
        noise().save(path, "JPEG", quality=95)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "zero-byte":
        path = folder / "empty.png"
        path.write_bytes(b"")
    elif kind == "non-image":
        path = folder / "notes.png"
        path.write_text("These are meeting notes, not a picture.\n" * 20)
    elif kind == "huge":
        path = decompression_bomb(folder / "bomb.png")
    elif kind == "animated-gif":
        path = folder / "animated.gif"
        frames = [Image.new("RGB", (64, 64), c) for c in ("red", "green", "blue")]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    elif kind == "16-bit-png":
        path = folder / "deep.png"
        ramp = np.tile(np.linspace(0, 65535, 96, dtype=np.uint16), (64, 1))
        Image.fromarray(ramp).save(path)
        with Image.open(path) as check:
            assert check.mode.startswith("I;16") or check.mode == "I"
    elif kind == "cmyk-jpeg":
        path = folder / "print.jpg"
        noise(mode="CMYK").save(path, "JPEG")
    elif kind == "1x1":
        path = folder / "dot.png"
        Image.new("RGB", (1, 1), "purple").save(path)
    else:
        raise ValueError(kind)
    return path


REFUSED_IMAGES = {
    "corrupt": "corrupt|not an image",
    "truncated": "corrupt or truncated",
    "zero-byte": "empty",
    "non-image": "not an image",
    "huge": "too large|too many pixels",
}
ACCEPTED_IMAGES = ("animated-gif", "16-bit-png", "cmyk-jpeg", "1x1")


@pytest.mark.parametrize(("kind", "message"), REFUSED_IMAGES.items())
def test_the_engine_refuses_a_bad_image_with_one_line(tiny_engine, tmp_path, kind, message):
    path = make_image(kind, tmp_path)
    if kind == "huge":  # 400 megapixels in a few kB, or the test proves nothing
        assert path.stat().st_size < 200_000
    with pytest.raises(ImageError, match=message) as error:
        tiny_engine.classify(path, "What is this?")
    assert_one_line(str(error.value))
    with pytest.raises(ImageError, match=message):
        tiny_engine.chat(path, "What is this?")


@pytest.mark.parametrize("kind", ACCEPTED_IMAGES)
def test_the_engine_classifies_an_odd_but_valid_image(tiny_engine, tmp_path, kind):
    verdict = tiny_engine.classify(make_image(kind, tmp_path), "What is this?")
    assert sum(verdict.type_probs.values()) == pytest.approx(1, abs=1e-3)
    assert verdict.decision.action in ("allow", "caution", "refuse")


@pytest.mark.parametrize(("kind", "message"), REFUSED_IMAGES.items())
def test_the_chat_refuses_a_bad_image_with_one_line_and_keeps_serving(
    handlers, db_path, logged_once, tmp_path, kind, message
):
    path = make_image(kind, tmp_path / "upload")
    with pytest.raises(gr.Error, match=message) as error:
        ui_turn(handlers, "What is this?", image=path)
    assert_one_line(error.value.message)
    with pytest.raises(gr.Error, match=message) as error:
        handlers.api.chat(uploaded(path), "What is this?")
    assert_one_line(error.value.message)
    assert count_turns(db_path) == logged_once
    assert_keeps_serving(handlers, db_path, logged_once)


@pytest.mark.parametrize("kind", ACCEPTED_IMAGES)
def test_the_chat_answers_about_an_odd_but_valid_image_and_logs_it(
    handlers, db_path, logged_once, tmp_path, kind
):
    path = make_image(kind, tmp_path / "upload")
    final = ui_turn(handlers, "What is this?", image=path)[-1]
    assert final.chatbot[-1]["role"] == "assistant" and final.chatbot[-1]["content"].strip()
    with Store(db_path) as reopened:
        newest = reopened.list_turns(limit=1)[0]
        assert newest["image_path"] and Path(newest["image_path"]).read_bytes() == path.read_bytes()
    assert count_turns(db_path) == logged_once + 1


# --- bad prompts -------------------------------------------------------------------------------

REFUSED_PROMPTS = {
    "empty": ("", "prompt is empty"),
    "whitespace": ("  \n\t  ", "prompt is empty"),
    "only control characters": ("\x00\x07\u200b\u202e", "prompt is empty"),
    "100k characters": ("why" * 33_333 + "?", "100,000 characters; the limit is 4,000"),
}
CONTROL = "What\x00 is\x07 this\x1b?\u200b\u202e"
MIXED = "這是什麼？ Что это? ما هذا؟ यह क्या है? 🐱 What is this?"


@pytest.mark.parametrize(("prompt", "message"), REFUSED_PROMPTS.values(), ids=REFUSED_PROMPTS)
def test_the_engine_refuses_an_unusable_prompt_with_one_line(tiny_engine, prompt, message):
    with pytest.raises(PromptError, match=message) as error:
        tiny_engine.chat(CAT, prompt)
    assert_one_line(str(error.value))


@pytest.mark.parametrize(("prompt", "message"), REFUSED_PROMPTS.values(), ids=REFUSED_PROMPTS)
def test_the_chat_refuses_an_unusable_prompt_and_keeps_serving(
    handlers, db_path, logged_once, prompt, message
):
    with pytest.raises(gr.Error, match=message) as error:
        ui_turn(handlers, prompt, image=CAT)
    assert_one_line(error.value.message)
    with pytest.raises(gr.Error, match=message) as error:
        handlers.api.chat(uploaded(CAT), prompt)
    assert_one_line(error.value.message)
    assert count_turns(db_path) == logged_once
    assert_keeps_serving(handlers, db_path, logged_once)


@pytest.mark.parametrize(
    ("prompt", "logged"),
    [(CONTROL, "What is this?"), (MIXED, MIXED)],
    ids=["control characters", "mixed scripts"],
)
def test_control_characters_are_dropped_and_mixed_scripts_kept_in_the_log(
    handlers, db_path, tiny_engine, prompt, logged
):
    assert tiny_engine.chat(CAT, prompt, settings=generation_settings(handlers.settings)).text
    final = ui_turn(handlers, prompt, image=CAT)[-1]
    assert final.chatbot[-1]["content"].strip()
    result = handlers.api.chat(uploaded(CAT), prompt)
    assert result["response"]
    with Store(db_path) as reopened:
        assert [t["prompt"] for t in reopened.list_turns()] == [logged, logged]


# --- malformed thresholds ----------------------------------------------------------------------

BAD_THRESHOLDS = {
    "JSON junk": ("{not json", "not valid JSON"),
    "not an object": ("[0.5, 0.5]", "must be a JSON object"),
    "out of range": ('{"level": 2}', r"in \[0, 1\]"),
    "negative": ('{"illegal_risk": -0.1}', r"in \[0, 1\]"),
    "not a number": ('{"types": {"politics": "high"}}', "must be a number"),
    "NaN": ('{"level": NaN}', r"in \[0, 1\]"),
    "unknown type": ('{"weapons": 0.3}', "unknown threshold 'weapons'"),
}


@pytest.mark.parametrize(("text", "message"), BAD_THRESHOLDS.values(), ids=BAD_THRESHOLDS)
def test_the_engine_refuses_malformed_thresholds_with_one_line(tiny_engine, text, message):
    with pytest.raises(ThresholdError, match=message) as error:
        tiny_engine.thresholds(text)
    assert_one_line(str(error.value))


@pytest.mark.parametrize(("text", "message"), BAD_THRESHOLDS.values(), ids=BAD_THRESHOLDS)
def test_the_api_refuses_malformed_thresholds_and_keeps_serving(
    handlers, db_path, logged_once, text, message
):
    with pytest.raises(gr.Error, match=message) as error:
        handlers.api.chat(uploaded(CAT), "What is this?", "", text)
    assert_one_line(error.value.message)
    assert count_turns(db_path) == logged_once
    assert_keeps_serving(handlers, db_path, logged_once)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.__setitem__(0, 1.5), r"in \[0, 1\]"),
        (lambda v: v.__setitem__(-1, -0.2), r"in \[0, 1\]"),
        (lambda v: v.__setitem__(0, float("nan")), r"in \[0, 1\]"),
        (lambda v: v.pop(), "expected .* threshold values"),
    ],
    ids=["above one", "below zero", "NaN", "one slider missing"],
)
def test_the_chat_refuses_bad_slider_values_and_keeps_serving(
    handlers, db_path, logged_once, tiny_engine, change, message
):
    values = slider_values(tiny_engine)
    change(values)
    with pytest.raises(gr.Error, match=message) as error:
        ui_turn(handlers, "What is this?", image=CAT, values=values)
    assert_one_line(error.value.message)
    assert count_turns(db_path) == logged_once
    assert_keeps_serving(handlers, db_path, logged_once)


# --- wrong or corrupt checkpoints --------------------------------------------------------------


@pytest.fixture(scope="module")
def good_checkpoint(tiny_engine, tmp_path_factory):
    return tiny_engine.model.save_safety_modules(tmp_path_factory.mktemp("checkpoint") / "good")


def broken_checkpoint(kind: str, good: Path, folder: Path) -> Path:
    target = folder / kind.replace(" ", "-")
    if kind == "empty folder":
        target.mkdir(parents=True)
        return target
    if kind == "missing folder":
        return target
    shutil.copytree(good, target)
    if kind == "corrupt weights":
        weights = target / WEIGHTS_FILE
        weights.write_bytes(weights.read_bytes()[:100])
    elif kind == "corrupt config":
        (target / CONFIG_FILE).write_text('{"base": "tiny", "num_heads": ')
    elif kind == "corrupt adapter":
        (target / "adapter").mkdir()
        (target / "adapter" / "adapter_config.json").write_text("{not json")
    else:
        config = json.loads((target / CONFIG_FILE).read_text())
        config.update(CONFIG_CHANGES[kind])
        (target / CONFIG_FILE).write_text(json.dumps(config))
    return target


CONFIG_CHANGES = {
    "wrong base": {"base": "llava", "hidden_size": 4096, "vision_channels": 1024},
    "weights of another config": {"num_head_tokens": 5},
    "heads that do not divide the width": {"num_heads": 7},
    "query layer out of range": {"query_layer": 99},
    "an ensemble size that is not a number": {"head_ensemble": "3"},
}


BAD_CHECKPOINTS = {
    "missing folder": "not a SafeVLM checkpoint",
    "empty folder": "not a SafeVLM checkpoint",
    "corrupt weights": "corrupt or unreadable weights",
    "corrupt config": "unreadable config",
    "wrong base": "pass --base llava",
    "weights of another config": "does not fit",
    "heads that do not divide the width": "num_heads",
    "query layer out of range": "query_layer",
    "an ensemble size that is not a number": "head_ensemble",
    "corrupt adapter": "adapter",
}
@pytest.mark.parametrize(("kind", "message"), BAD_CHECKPOINTS.items())
def test_a_bad_checkpoint_raises_a_one_line_checkpoint_error(
    tiny_engine, good_checkpoint, tmp_path, kind, message
):
    path = broken_checkpoint(kind, good_checkpoint, tmp_path)
    with pytest.raises(CheckpointError, match=message) as error:
        ChatEngine.load(tiny_engine.model.base, path)
    assert_one_line(str(error.value))


def test_the_good_checkpoint_loads(tiny_engine, good_checkpoint):
    engine = ChatEngine.load(tiny_engine.model.base, good_checkpoint)
    assert engine.classify(CAT).decision.action in ("allow", "caution", "refuse")


@pytest.fixture
def base_loads_instantly(tiny_engine, monkeypatch):
    """The CLI and the app load a base by name; hand them the loaded one (a bad checkpoint
    is what is under test, not loading the base again)."""
    monkeypatch.setattr("safevlm.engine.load_base", lambda name, **kwargs: tiny_engine.model.base)


@pytest.mark.parametrize(
    ("kind", "message"),
    [(kind, BAD_CHECKPOINTS[kind]) for kind in ("corrupt weights", "wrong base", "query layer out of range")],
)
def test_the_cli_reports_a_bad_checkpoint_in_one_line(
    base_loads_instantly, good_checkpoint, tmp_path, capsys, kind, message
):
    path = broken_checkpoint(kind, good_checkpoint, tmp_path)
    assert cli_main(["classify", str(CAT), "--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert_one_line(err)


@pytest.mark.parametrize(
    ("kind", "message"),
    [(kind, BAD_CHECKPOINTS[kind]) for kind in ("corrupt weights", "wrong base", "query layer out of range")],
)
def test_the_app_refuses_to_start_on_a_bad_checkpoint_with_one_line(
    base_loads_instantly, good_checkpoint, tmp_path, monkeypatch, kind, message
):
    from app import app as app_module

    path = broken_checkpoint(kind, good_checkpoint, tmp_path)
    monkeypatch.setenv("SAFEVLM_CHECKPOINT", str(path))
    monkeypatch.setenv("SAFEVLM_DB", str(tmp_path / "app.db"))
    monkeypatch.setattr(app_module, "build_app", lambda *a, **k: pytest.fail("the app started"))
    with pytest.raises(SystemExit) as exit_:
        app_module.main()
    assert str(exit_.value.code).startswith("safevlm app: ") and message in str(exit_.value.code)
    assert_one_line(str(exit_.value.code))


# --- read-only and locked databases ------------------------------------------------------------


def test_a_read_only_log_lets_the_chat_go_on_with_a_one_line_warning(tiny_engine, db_path):
    with Store(db_path) as writable:
        ui_turn(make_handlers(tiny_engine, writable), "What animal is this?", image=CAT)
    # Root ignores file modes, so a read-only Store (SQLite's mode=ro) stands in for a
    # read-only file or disk: the same SQLITE_READONLY on every write.
    read_only = Store(db_path, read_only=True)
    try:
        handlers = make_handlers(tiny_engine, read_only)
        with pytest.warns(UserWarning, match="not logged: .*read-only") as warned:
            final = ui_turn(handlers, "What animal is this?", image=CAT)[-1]
        assert_one_line(str(warned[0].message))
        assert final.chatbot[-1]["content"].strip() and final.textbox.interactive is True
        assert handlers.api.chat(uploaded(CAT), "What is this?")["response"]
        assert count_turns(db_path) == 1
    finally:
        read_only.close()
    with Store(db_path) as writable:
        assert_keeps_serving(make_handlers(tiny_engine, writable), db_path, 1)


@pytest.fixture
def locked(db_path):
    """Another connection holding the write lock on the log (an open sqlite3 shell)."""

    class Lock:
        holder: sqlite3.Connection | None = None

        def hold(self):
            self.holder = sqlite3.connect(db_path, isolation_level=None)
            self.holder.execute("BEGIN EXCLUSIVE")

        def release(self):
            if self.holder is not None:
                self.holder.close()  # rolls back the open transaction
                self.holder = None

    lock = Lock()
    yield lock
    lock.release()


def test_a_locked_log_lets_the_chat_go_on_then_logs_again_once_released(
    tiny_engine, db_path, locked
):
    store = Store(db_path, busy_timeout=0.3)
    try:
        handlers = make_handlers(tiny_engine, store)
        first = ui_turn(handlers, "What animal is this?", image=CAT)[-1]
        (answer_index,) = first.session.turn_ids
        assert count_turns(db_path) == 1

        locked.hold()
        with pytest.warns(UserWarning, match="not logged: database is locked") as warned:
            final = ui_turn(handlers, "What animal is this?", image=CAT)[-1]
        assert_one_line(str(warned[0].message))
        assert final.chatbot[-1]["content"].strip() and final.textbox.interactive is True
        assert handlers.api.chat(uploaded(CAT), "What is this?")["response"]
        with pytest.raises(gr.Error, match="database is locked") as error:
            handlers.chatlog.feedback(first.session, answer_index, True, "")
        assert_one_line(error.value.message)
        with pytest.raises(gr.Error, match="database is locked") as error:
            handlers.annotation.save_label(TOKEN, 1, "ann", "yes", None, None, 4, "")
        assert_one_line(error.value.message)
        assert len(handlers.annotation.browse(TOKEN, "any", "any", False)) == 1, "reading still works"
        locked.release()

        assert count_turns(db_path) == 1
        assert_keeps_serving(handlers, db_path, 1)
        assert "Saved label" in handlers.annotation.save_label(TOKEN, 1, "ann", "yes", None, None, 4, "")
    finally:
        store.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --- crash safety ------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import io, sys
    from PIL import Image
    from safevlm.store import Store

    store = Store(sys.argv[1])
    session = store.start_session("cli")
    start = int(sys.argv[2])
    for i in range(start, start + 100_000):
        png = io.BytesIO()
        Image.new("RGB", (8, 8), (i % 256, i // 256 % 256, 7)).save(png, "PNG")
        turn_id = store.log_turn(
            session, prompt=f"prompt {i}", response=f"response {i} " + "x" * 500,
            decision="caution", type="privacy", level=1, flagged=True,
            type_probs={"privacy": 0.9, "safe": 0.1}, level_probs=[0.1, 0.9, 0.0, 0.0],
            hint=f"hint {i}", mode="hint", thresholds={"level": 0.5}, base="tiny",
            checkpoint="none", timings={"total": float(i)}, source="cli", image=png.getvalue(),
            reader_text=f"read {i}",
        )
        print(turn_id, i, flush=True)
    """
)


def run_writer_and_kill(
    db_path: Path, start: int, delay: float, committed: int = 25
) -> dict[int, int]:
    """Log turns from another process and SIGKILL it `delay` s after its `committed`th
    commit, mid-way through a later turn; the (turn id -> i) it reported as committed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 90
    try:
        while len(lines) < committed and time.monotonic() < deadline:
            if not (line := proc.stdout.readline()):
                break
            lines.append(line)
    finally:
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        lines += proc.stdout.readlines()  # commits reported between the last read and the kill
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert len(lines) >= committed, f"the writer stopped early: {stderr[-2000:]}"
    pairs = (line.split() for line in lines if line.endswith("\n"))  # a cut last line: not sure
    return {int(turn_id): int(i) for turn_id, i in pairs}


def test_a_writer_killed_mid_run_loses_at_most_the_turn_in_flight(tmp_path):
    db_path = tmp_path / "crash" / "safevlm.db"
    reported: dict[int, int] = {}
    for round_ in range(3):  # kill, reopen, log on, kill again
        reported |= run_writer_and_kill(db_path, start=1000 * round_, delay=0.002 * round_)
        with sqlite3.connect(db_path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        with Store(db_path) as store:
            rows = {t["id"]: t for t in store.list_turns(limit=10_000)}
            # Committed turns are all there, intact; at most one more per killed run.
            assert set(reported) <= set(rows)
            assert len(rows) - len(reported) <= round_ + 1
            for turn_id, i in reported.items():
                row = rows[turn_id]
                assert (row["prompt"], row["hint"], row["reader_text"]) == (
                    f"prompt {i}",
                    f"hint {i}",
                    f"read {i}",
                )
                assert row["response"] == f"response {i} " + "x" * 500
                assert row["timings"] == {"total": float(i)} and row["status"] == "complete"
                with Image.open(row["image_path"]) as img:
                    assert img.getpixel((0, 0)) == (i % 256, i // 256 % 256, 7)


# --- concurrent annotators ---------------------------------------------------------------------


@pytest.mark.parametrize("connections", ["one shared Store", "one Store each"])
def test_two_annotators_at_once_keep_every_label_and_the_latest_wins(tmp_path, connections):
    db_path = tmp_path / "labels.db"
    with Store(db_path) as store:
        session = store.start_session("cli")
        turn_ids = [
            store.log_turn(
                session,
                prompt=f"p{i}",
                response="r",
                decision="allow",
                type="safe",
                level=0,
                flagged=False,
                type_probs=None,
                level_probs=None,
                hint=None,
                mode="hint",
                thresholds=None,
                base="tiny",
                checkpoint=None,
                timings=None,
                source="cli",
            )
            for i in range(5)
        ]
    shared = Store(db_path) if connections == "one shared Store" else None
    rounds, failures = 20, []
    barrier = threading.Barrier(2)

    def annotate(name: str) -> None:
        store = shared or Store(db_path, busy_timeout=30)
        try:
            barrier.wait(timeout=30)
            for r in range(rounds):
                for turn_id in turn_ids:
                    store.annotate(
                        turn_id,
                        annotator=name,
                        true_type="privacy",
                        true_level=r % 4,
                        note=f"{name} round {r}",
                    )
        except Exception as error:  # reported by the main thread
            failures.append(error)
        finally:
            if shared is None:
                store.close()

    threads = [threading.Thread(target=annotate, args=(n,)) for n in ("ann-a", "ann-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if shared is not None:
        shared.close()
    assert not failures and not any(t.is_alive() for t in threads)

    with Store(db_path) as store:
        for turn_id in turn_ids:
            history = store.annotation_history(turn_id)
            assert len(history) == 2 * rounds, "no label is lost"
            assert {h["annotator"] for h in history} == {"ann-a", "ann-b"}
            newest = max(history, key=lambda h: h["id"])
            current = store.get_turn(turn_id)
            assert (current["annotation_id"], current["note"]) == (newest["id"], newest["note"])


# --- one error root ------------------------------------------------------------------------------


def error_classes() -> dict[str, type]:
    from app.api import RequestError
    from safevlm.cli import CLIError
    from safevlm.config import ModeError
    from safevlm.data.schema import DataError
    from safevlm.engine import PromptError
    from safevlm.images import ImageError
    from safevlm.model.bases import BaseError
    from safevlm.model.modeling import CheckpointError
    from safevlm.policy import ThresholdError
    from safevlm.store import StoreError
    from safevlm.taxonomy import TaxonomyError
    from safevlm.tools.eval import EvalError
    from safevlm.tools.scan_inputs import ScanError

    return {c.__name__: c for c in (RequestError, BaseError, CLIError, DataError, ModeError, PromptError,
                                    EvalError, ImageError, CheckpointError, ThresholdError, ScanError,
                                    StoreError, TaxonomyError)}


USERS_TO_FIX = {"RequestError", "ModeError", "PromptError", "ImageError", "ThresholdError"}


@pytest.mark.parametrize("name", sorted(error_classes()))
def test_every_error_has_one_root_and_only_a_persons_input_counts_as_theirs(name):
    from app.errors import USER_ERRORS
    from safevlm.errors import SafeVLMError

    cls = error_classes()[name]
    assert issubclass(cls, SafeVLMError)
    assert issubclass(cls, USER_ERRORS) is (name in USERS_TO_FIX)


def test_a_bare_value_error_in_the_model_is_a_bug_not_the_callers_mistake(
    handlers, db_path, logged_once, monkeypatch
):
    def broken(*args, **kwargs):
        raise ValueError("internal shape mismatch 3 != 4")

    monkeypatch.setattr(handlers.engine, "chat", broken)
    with pytest.raises(gr.Error) as error:
        handlers.api.chat(uploaded(CAT), "What is this?")
    assert error.value.message == "The model failed on this request (ValueError)."
    monkeypatch.undo()
    assert_keeps_serving(handlers, db_path, logged_once)


def test_the_api_refuses_an_unknown_mode_with_one_line(handlers, db_path, logged_once):
    with pytest.raises(gr.Error, match="mode must be one of hint, tokens, both, off") as error:
        handlers.api.chat(uploaded(CAT), "What is this?", "loud")
    assert_one_line(error.value.message)
    assert count_turns(db_path) == logged_once


def test_the_cli_reports_any_safevlm_error_in_one_line(capsys, tmp_path):
    missing = tmp_path / "no-such-data"
    assert cli_main(["eval", "--data", str(missing), "--chat-limit", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err
    assert_one_line(err)
