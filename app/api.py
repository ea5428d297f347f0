"""The public /chat endpoint: one non-streamed turn for API clients (`ChatApi`) and the typed
function gr.api serves (`chat_endpoint`). No UI events; logging goes through `chatlog`."""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder, is_in_or_equal

from app.chat import file_path, generation_settings
from app.chatlog import ChatLog
from app.errors import USER_ERRORS, shown
from app.safety_settings import check_mode
from app.settings import AppSettings
from app.worker import ModelWorker
from safevlm.engine import ChatEngine, ChatUpdate, clean_prompt
from safevlm.images import ImageError, load_image

log = logging.getLogger(__name__)


@dataclass
class ChatApi:
    """The /chat handler, bound to one engine, the model thread and the chat log."""

    engine: ChatEngine
    worker: ModelWorker
    chatlog: ChatLog
    settings: AppSettings
    default_mode: str

    def chat(self, image: Any, prompt: str, mode: str = "", thresholds: str = "") -> dict:
        """One non-streamed turn for API clients: returns the JSON of `safevlm chat --json`
        and logs the turn with source='api'. Errors raise gr.Error with one line."""
        try:
            loaded = load_image(uploaded_path(image)) if image else None
            prompt = clean_prompt(prompt)
            parsed = self.engine.thresholds(thresholds or None)
            mode = check_mode(mode, self.default_mode)
        except USER_ERRORS as error:
            raise shown(error) from None
        stop = threading.Event()

        def run() -> ChatUpdate:
            return self.engine.chat(
                loaded,
                prompt,
                mode=mode,
                thresholds=parsed,
                settings=generation_settings(self.settings),
                stop_event=stop,
            )

        try:
            update = self.worker.call(run)
        except USER_ERRORS as error:
            raise shown(error) from None
        except Exception as error:
            log.exception("API chat failed")
            raise gr.Error(
                f"The model failed on this request ({type(error).__name__}).", print_exception=False
            ) from None
        self.chatlog.log_api_turn(loaded, prompt, update, parsed)
        return update.to_dict()


def chat_endpoint(api: ChatApi) -> Callable:
    """The /chat endpoint with the type hints gr.api turns into its schema."""

    def chat(image: gr.FileData | None, prompt: str, mode: str = "", thresholds: str = "") -> dict:
        """image: an upload (gradio_client.handle_file); mode: hint, tokens, both, off or "" for the
        default; thresholds: JSON such as {"illegal_risk": 0.3, "level": 0.4} or "" for defaults."""
        return api.chat(image, prompt, mode, thresholds)

    return chat


def uploaded_path(image: Any) -> str:
    """The path of an API upload, accepted only inside Gradio's upload folder: gr.api passes
    payloads through unprocessed, so a raw path would otherwise read any file on the server."""
    path = file_path(image)
    if not path or not is_in_or_equal(path, get_upload_folder()):
        raise ImageError(
            "send the image as an upload (gradio_client.handle_file(path)), not a server path"
        )
    return path
