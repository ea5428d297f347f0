"""Shared fixtures: a tiny random Llava built from a config (the llava loading path, no
download), the real offline tiny base, loaded once per session, and an in-memory stand-in
for the Hub that the log sync pushes to."""

import os
import threading
from concurrent.futures import Future
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
    from safevlm.bases import load_smollm2

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
    from safevlm.bases import load_llava_base

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
