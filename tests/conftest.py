"""Shared fixtures: a tiny random Llava built from a config (the llava loading path, no
download), the real offline tiny base, loaded once per session, and an in-memory stand-in
for the Hub that the log sync pushes to."""

import os
import socket
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("NO_PROXY", "localhost,127.0.0.1")

import pytest  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import CommitOperationAdd, CommitOperationDelete  # noqa: E402
from PIL import Image  # noqa: E402


class FakeHub:
    """The HfApi calls of the log sync (`LogSync`, `restore_log`) on one in-memory dataset:
    `files` is what it holds now, `commits` what each commit added and deleted. Queued pushes
    wait until `run()`, or run when queued once `run_now` is set."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.private: bool | None = None  # None: the repo does not exist yet
        self.repos, self.commits, self.pending = [], [], []
        self.run_now = False
        self.queued, self._lock = threading.Event(), threading.Lock()

    def create_repo(self, repo_id, private=None, repo_type=None, exist_ok=False):
        self.repos.append({"repo_id": repo_id, "private": private, "repo_type": repo_type})
        if self.private is None:  # like the Hub: a repo that exists keeps its visibility
            self.private = bool(private)
        return SimpleNamespace(repo_id=repo_id)

    def repo_info(self, repo_id, repo_type=None, **_):
        return SimpleNamespace(id=repo_id, private=self.private)

    def file_exists(self, repo_id, filename, repo_type=None, **_):
        return filename in self.files

    def list_repo_files(self, repo_id, repo_type=None, revision=None, **_):
        return sorted(self.files)

    def hf_hub_download(self, repo_id, filename, repo_type=None, local_dir=None, **_):
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.files[filename])
        return str(target)

    def create_commit(self, repo_id, operations, commit_message, repo_type=None, revision=None):
        added = {op.path_in_repo: op.path_or_fileobj.read() for op in operations
                 if isinstance(op, CommitOperationAdd)}
        deleted = [op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)]
        self.files.update(added)
        for path in deleted:
            del self.files[path]
        self.commits.append(SimpleNamespace(added=added, deleted=deleted))
        return "commit"

    def run_as_future(self, fn):
        future = Future()
        if self.run_now:
            future.set_result(fn())
            return future
        with self._lock:
            self.pending.append((fn, future))
            self.queued.set()
        return future

    def run(self, timeout: float = 10):
        """Run the queued pushes, first waiting for one: the scheduler queues its first push
        from its own thread, which may not have run yet on a busy machine."""
        assert self.queued.wait(timeout), f"no push was queued within {timeout} s"
        with self._lock:
            pending, self.pending = self.pending, []
            self.queued.clear()
        for fn, future in pending:
            future.set_result(fn())


@pytest.fixture
def hub():
    return FakeHub()


@pytest.fixture(scope="session")
def smol_tokenizer():
    from safevlm.model.bases import load_smollm2

    _, tokenizer = load_smollm2()
    return tokenizer


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory, smol_tokenizer):
    """A randomly initialised LlavaForConditionalGeneration, saved like a hub checkpoint."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    torch.manual_seed(0)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, image_size=32, patch_size=8)
    text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2,
                       vocab_size=len(smol_tokenizer), max_position_embeddings=1024,
                       pad_token_id=smol_tokenizer.pad_token_id or 0)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=len(smol_tokenizer) - 1,
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    model = LlavaForConditionalGeneration(config).eval()
    out = tmp_path_factory.mktemp("tiny-llava")
    model.save_pretrained(out)
    smol_tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def toy_base(tiny_llava_dir):
    from safevlm.model.bases import load_llava_base

    return load_llava_base(str(tiny_llava_dir))


@pytest.fixture(scope="session")
def tiny_engine():
    """The real offline default (SmolLM2 + EfficientNet-Lite0 + RapidOCR), untrained or
    with the shipped checkpoint."""
    from safevlm.engine import ChatEngine

    return ChatEngine.load("tiny")


@pytest.fixture(scope="session")
def photo_path(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture(scope="session")
def text_image_path(tmp_path_factory):
    from PIL import ImageDraw, ImageFont

    img = Image.new("RGB", (480, 240), "white")
    ImageDraw.Draw(img).text((20, 30), "Steps to bake bread at home.\n1.\n2.\n3.", fill="black",
                             font=ImageFont.load_default(26))
    path = tmp_path_factory.mktemp("img") / "bread.png"
    img.save(path)
    return path


class GatedEngine:
    """A real engine whose streamed answers pause after the verdict until `release` is set:
    a turn stays in flight for as long as a test needs (to tick a box, press a button).
    `in_flight` is set while a turn waits. Everything else is the wrapped engine's."""

    def __init__(self, engine, released: bool = True):
        self._engine = engine
        self.release, self.in_flight = threading.Event(), threading.Event()
        if released:
            self.release.set()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def stream(self, *args, **kwargs):
        for index, update in enumerate(self._engine.stream(*args, **kwargs)):
            yield update
            if index == 0:
                self.in_flight.set()
                assert self.release.wait(60), "the test never released the turn"
                self.in_flight.clear()


class PageError(Exception):
    """The one-line error a browser page would show for an event."""


class BrowserPage:
    """One page of a served app driven over HTTP the way its browser does: uploads to
    /gradio_api/upload, events joined to the queue under one session hash, their results read
    from the page's event stream. Events are named by their api_name (private ones too)."""

    def __init__(self, url: str):
        import uuid

        import httpx

        self.url = url.rstrip("/") + "/"
        self.http = httpx.Client(base_url=self.url, timeout=120)
        self.session_hash = uuid.uuid4().hex[:11]
        config = self.http.get("config").json()
        self.fns = {dep["api_name"]: dep["id"] for dep in config["dependencies"]}
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}
        self._results: dict[str, dict] = {}
        self._reader = None

    def upload(self, path) -> dict:
        with open(path, "rb") as handle:
            response = self.http.post("gradio_api/upload", files={"files": (Path(path).name, handle)})
        response.raise_for_status()
        (server_path,) = response.json()
        return {"path": server_path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}

    def fetch(self, server_path: str):
        """What anyone holding the file's URL gets: GET /gradio_api/file=<path>."""
        return self.http.get(f"gradio_api/file={server_path}")

    def call(self, name: str, *data) -> list:
        """An event that skips the queue (queue=False), posted as the browser posts it."""
        response = self.http.post(
            "gradio_api/run/predict",
            json={"data": list(data), "event_data": None, "fn_index": self.fns[name],
                  "trigger_id": None, "session_hash": self.session_hash},
        )
        response.raise_for_status()
        return response.json()["data"]

    def join(self, name: str, *data, event_data: dict | None = None) -> str:
        response = self.http.post(
            "gradio_api/queue/join",
            json={"data": list(data), "event_data": event_data, "fn_index": self.fns[name],
                  "trigger_id": None, "session_hash": self.session_hash},
        )
        response.raise_for_status()
        event_id = response.json()["event_id"]
        with self._lock:
            self._pending.setdefault(event_id, threading.Event())
            if self._reader is None:
                self._reader = threading.Thread(target=self._read, daemon=True)
                self._reader.start()
        return event_id

    def result(self, event_id: str, timeout: float = 120) -> list:
        with self._lock:
            done = self._pending.setdefault(event_id, threading.Event())
        assert done.wait(timeout), f"event {event_id} did not complete in {timeout} s"
        message = self._results[event_id]
        if not message.get("success"):
            raise PageError(message.get("output", {}).get("error"))
        return message["output"]["data"]

    def run(self, name: str, *data, event_data: dict | None = None) -> list:
        return self.result(self.join(name, *data, event_data=event_data))

    def _read(self) -> None:
        import json

        while True:
            with self.http.stream(
                "GET", f"gradio_api/queue/data?session_hash={self.session_hash}", timeout=None
            ) as response:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line[5:])
                    if message.get("msg") == "close_stream":
                        break
                    if message.get("msg") == "process_completed":
                        with self._lock:
                            self._results[message["event_id"]] = message
                            self._pending.setdefault(message["event_id"], threading.Event()).set()
            with self._lock:
                if all(event.is_set() for event in self._pending.values()):
                    self._reader = None
                    return


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(engine, store, settings):
    """The whole app on a free loopback port, as `app.py` launches it; yields its URL."""
    from app.app import build_app, launch_options

    demo = build_app(engine, store, settings)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                            quiet=True, **launch_options(settings))
    try:
        yield url
    finally:
        demo.close()
