"""The public API: /chat, one non-streamed turn for API clients (`ChatApi`), and /delete, which
deletes a caller's own logged turn by the secret /chat returned to it; the typed functions
gr.api serves (`chat_endpoint`, `delete_endpoint`). No UI events; logging goes through `chatlog`."""

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder, is_in_or_equal

from app.chat import file_path, generation_settings
from app.chatlog import ChatLog
from app.checkpoints import EngineSlot, OnSlot
from app.errors import USER_ERRORS, shown
from app.safety_settings import check_mode
from app.served import UPLOADS
from app.settings import AppSettings
from app.worker import ModelWorker
from safevlm.engine import ChatUpdate, clean_prompt
from safevlm.errors import UserError
from safevlm.images import ImageError, load_image
from safevlm.policy import ThresholdError

logger = logging.getLogger(__name__)  # not `log`: /chat has a parameter of that name

MAX_THRESHOLDS_CHARS = 4000  # a few dozen names and numbers; anything longer is not thresholds


class RequestError(UserError, ValueError):
    """A /chat or /delete request with a value of the wrong type."""


@dataclass
class ChatApi(OnSlot):
    """The /chat and /delete handlers, bound to one engine, the model thread and the chat log."""

    slot: EngineSlot
    worker: ModelWorker
    chatlog: ChatLog
    settings: AppSettings
    default_mode: str

    def chat(
        self, image: Any, prompt: Any, mode: Any = "", thresholds: Any = "", log: Any = True
    ) -> dict:
        """One non-streamed turn for API clients: the JSON of `safevlm chat --json` plus "log"
        ({"logged": false}, or the session and turn ids and the secret that deletes them).
        The upload is deleted from the server when the call ends, unless another call sent the
        same bytes and still needs them (`UploadClaims`). Errors raise gr.Error with one line."""
        try:
            try:
                return self._chat(image, prompt, mode, thresholds, log)
            finally:
                path = file_path(image) if image else ""
                if path and is_in_or_equal(path, get_upload_folder()):
                    UPLOADS.release(path)
        except gr.Error:
            raise
        except USER_ERRORS as error:
            raise shown(error) from None
        except Exception as error:  # a bug: one line for the caller, the traceback in the log
            logger.exception("API chat failed")
            raise gr.Error(
                f"The model failed on this request ({type(error).__name__}).", print_exception=False
            ) from None

    def _chat(self, image: Any, prompt: Any, mode: Any, thresholds: Any, log_this: Any) -> dict:
        _check_type("prompt", prompt, str, "a string")
        _check_type("mode", mode, str, 'a string: hint, tokens, both, off or ""')
        _check_type("thresholds", thresholds, str, 'a JSON string such as {"level": 0.4}, or ""')
        _check_type("log", log_this, bool, "true or false")
        self.slot.refresh()
        loaded = load_image(uploaded_path(image)) if image else None
        prompt = clean_prompt(prompt)
        parsed = self.engine.thresholds(parse_thresholds(thresholds))
        mode = check_mode(mode, self.default_mode)
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

        update = self.worker.call(run)
        logged = self.chatlog.log_api_turn(loaded, prompt, update, parsed, log_this)
        return {**update.to_dict(), "log": logged}

    def delete(self, session_id: Any, delete_secret: Any) -> dict:
        """Delete the turn of one /chat call by the secret that call returned."""
        try:
            _check_type("session_id", session_id, str, "the session_id /chat returned")
            _check_type("delete_secret", delete_secret, str, "the delete_secret /chat returned")
        except RequestError as error:
            raise shown(error) from None
        return {"deleted": self.chatlog.delete_api_session(session_id, delete_secret)}


def _check_type(name: str, value: Any, kind: type, expected: str) -> None:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise RequestError(f"{name} must be {expected}; got {type(value).__name__} {value!r:.60}")


def parse_thresholds(text: str) -> dict | None:
    """The thresholds JSON of a request as a mapping for `ChatEngine.thresholds` (None for
    ""), or ThresholdError: not an object, "types" not an object, too long or too deep."""
    if not text.strip():
        return None
    if len(text) > MAX_THRESHOLDS_CHARS:
        raise ThresholdError(f"thresholds are longer than {MAX_THRESHOLDS_CHARS} characters")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ThresholdError(f"thresholds are not valid JSON: {error}") from None
    except RecursionError:
        raise ThresholdError("thresholds are nested too deeply") from None
    if not isinstance(value, Mapping):
        raise ThresholdError('thresholds must be a JSON object, e.g. {"illegal_risk": 0.3}')
    if "types" in value and not isinstance(value["types"], Mapping):
        raise ThresholdError(
            'thresholds "types" must be an object of type names and numbers, '
            'e.g. {"types": {"illegal_risk": 0.3}}'
        )
    return dict(value)


def chat_endpoint(api: ChatApi) -> Callable:
    """The /chat endpoint with the type hints gr.api turns into its schema."""

    def chat(
        image: gr.FileData | None,
        prompt: str,
        mode: str = "",
        thresholds: str = "",
        log: bool = True,
    ) -> dict:
        """image: an upload (gradio_client.handle_file); mode: hint, tokens, both, off or "" for the
        default; thresholds: JSON such as {"illegal_risk": 0.3, "level": 0.4} or "" for defaults;
        log: false to log nothing. Returns the verdict and answer, and "log": the session_id,
        turn_id and delete_secret that /delete takes (only this caller gets the secret)."""
        return api.chat(image, prompt, mode, thresholds, log)

    return chat


def delete_endpoint(api: ChatApi) -> Callable:
    """The /delete endpoint: a caller's own /chat turn, by its secret; no token needed."""

    def delete(session_id: str, delete_secret: str) -> dict:
        """Delete the logged turn of one /chat call (its image too, unless another turn uses
        it): pass the "log" session_id and delete_secret that call returned."""
        return api.delete(session_id, delete_secret)

    return delete


def uploaded_path(image: Any) -> str:
    """The path of an API upload, accepted only inside Gradio's upload folder: gr.api passes
    payloads through unprocessed, so a raw path would otherwise read any file on the server."""
    path = file_path(image)
    if not path or not is_in_or_equal(path, get_upload_folder()):
        raise ImageError(
            "send the image as an upload (gradio_client.handle_file(path)), not a server path"
        )
    return path
