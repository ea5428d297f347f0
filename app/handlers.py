"""The app's handlers: small functions that take plain values, call the library (engine,
policy, store) and return what the layout draws.

Owns the per-browser chat state, logging calls and the annotation guard. Holds no model
logic (that is `safevlm`), no layout (`layout`) and no drawing rules (`panel`).
"""

import hmac
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import pandas as pd
from gradio.utils import get_upload_folder, is_in_or_equal

from app.panel import (
    ACTION_COLOURS,
    IDLE_COLOUR,
    badge_html,
    details_markdown,
    level_frame,
    quote,
    type_frame,
)
from app.settings import AppSettings
from app.worker import ModelWorker, TurnStop
from safevlm.engine import ChatEngine, ChatUpdate, PromptError, clean_prompt
from safevlm.images import ImageError, LoadedImage, load_image
from safevlm.model import GenerationSettings
from safevlm.policy import ThresholdError, Thresholds, decide
from safevlm.store import Store, StoreError

log = logging.getLogger(__name__)

# The one-line errors a person can fix; anything else is a bug, logged and shown generically.
USER_ERRORS = (ImageError, PromptError, ThresholdError, ValueError)


# --- per-browser chat state ----------------------------------------------------------------


@dataclass
class ChatSession:
    """One browser tab's conversation about one image (a gr.State value, never shared)."""

    image: LoadedImage | None = None
    image_path: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # what the model sees next
    last_prompt: str | None = None
    store_session: str | None = None
    log_turns: bool = True
    turn_ids: dict[int, int] = field(default_factory=dict)  # chatbot index of an answer -> turn id
    type_probs: dict[str, float] | None = None  # of the last turn, for the threshold preview
    level_probs: list[float] | None = None


class ChatOutputs(NamedTuple):
    """What one step of a chat turn draws, in the layout's output order; gr.skip() = unchanged."""

    chatbot: Any
    session: Any
    textbox: Any
    badge: Any
    type_plot: Any
    level_plot: Any
    details: Any


def thresholds_from_values(engine: ChatEngine, values: Sequence[float]) -> Thresholds:
    """Slider values (one per risk type in taxonomy order, then the level) -> Thresholds."""
    risk_types = engine.taxonomy.risk_types
    if len(values) != len(risk_types) + 1:
        raise ThresholdError(f"expected {len(risk_types) + 1} threshold values, got {len(values)}")
    overrides = {name: float(v) for name, v in zip(risk_types, values[:-1], strict=True)}
    overrides["level"] = float(values[-1])
    return engine.thresholds(overrides)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _textbox(busy: bool) -> gr.MultimodalTextbox:
    return gr.MultimodalTextbox(value={"text": "", "files": []}, interactive=not busy)


# --- handlers ------------------------------------------------------------------------------


class Handlers:
    """Every callback of the app, bound to one engine, one store and the app settings."""

    def __init__(
        self,
        engine: ChatEngine,
        store: Store,
        settings: AppSettings,
        worker: ModelWorker | None = None,
    ):
        self.engine = engine
        self.store = store
        self.settings = settings
        self.worker = worker or ModelWorker()
        self._stops: dict[str, TurnStop] = {}
        self._stops_lock = threading.Lock()
        about = engine.describe()
        self.base_id = str(about.get("base", settings.base))
        self.default_mode = str(about.get("default_mode", "hint"))

    @property
    def taxonomy(self):
        return self.engine.taxonomy

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.settings.max_new_tokens)

    # --- chat ------------------------------------------------------------------------------

    def respond(
        self,
        message: Mapping | None,
        chatbot: list | None,
        session: ChatSession | None,
        mode: str,
        threshold_values: Sequence[float],
        log_this_chat: bool = True,
        stop_key: str = "",
    ) -> Iterator[ChatOutputs]:
        """One chat turn from the input box: validate, then stream the verdict and the answer.
        A new image starts a new conversation about it. Errors a person can fix raise
        gr.Error with one line before anything changes (and nothing is logged)."""
        message = message or {}
        files = list(message.get("files") or [])
        try:
            prompt = clean_prompt(message.get("text"))
            image = load_image(_file_path(files[0])) if files else None
            thresholds = thresholds_from_values(self.engine, threshold_values)
            mode = self._check_mode(mode)
        except USER_ERRORS as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        session = session or ChatSession()
        chatbot = list(chatbot or [])
        if image is not None:  # a new image: a new conversation about it
            session = ChatSession(
                image=image, image_path=_file_path(files[0]), log_turns=session.log_turns
            )
            chatbot = [{"role": "user", "content": {"path": session.image_path}}]
        chatbot.append({"role": "user", "content": prompt})
        yield from self._turn(
            session,
            chatbot,
            prompt,
            list(session.history),
            mode,
            thresholds,
            log_this_chat,
            stop_key,
        )

    def regenerate(
        self,
        chatbot: list | None,
        session: ChatSession | None,
        mode: str,
        threshold_values: Sequence[float],
        log_this_chat: bool = True,
        stop_key: str = "",
    ) -> Iterator[ChatOutputs]:
        """Re-run the last prompt with the current mode and thresholds; the new answer is
        added below the old one so both can be compared, and replaces it in the context."""
        if session is None or not session.last_prompt:
            raise gr.Error(
                "Nothing to regenerate yet: ask a question first.", print_exception=False
            )
        try:
            thresholds = thresholds_from_values(self.engine, threshold_values)
            mode = self._check_mode(mode)
        except USER_ERRORS as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        context = list(session.history[:-1])  # the new answer replaces the last one
        chatbot = list(chatbot or [])
        chatbot.append(
            {
                "role": "user",
                "content": f"↻ {session.last_prompt}\n\n"
                f"*(regenerated · mode {mode} · {self._thresholds_note(thresholds)})*",
            }
        )
        yield from self._turn(
            session,
            chatbot,
            session.last_prompt,
            context,
            mode,
            thresholds,
            log_this_chat,
            stop_key,
        )

    def stop(self, stop_key: str) -> None:
        """Ask the running turn of this browser session to stop; it ends and is logged as stopped."""
        with self._stops_lock:
            stop = self._stops.get(stop_key)
        if stop is not None:
            stop.request()

    def clear(self) -> tuple:
        """A fresh conversation: empty chat, idle panel (returns chatbot, session, badge,
        type_plot, level_plot, details, preview)."""
        return (
            [],
            None,
            badge_html(None, self.taxonomy),
            type_frame(self.taxonomy),
            level_frame(self.taxonomy),
            details_markdown(None, self.taxonomy),
            "",
        )

    def _turn(
        self,
        session: ChatSession,
        chatbot: list,
        prompt: str,
        history: list[tuple[str, str]],
        mode: str,
        thresholds: Thresholds,
        log_this_chat: bool,
        stop_key: str,
    ) -> Iterator[ChatOutputs]:
        skip = gr.skip()
        stop = TurnStop()
        answer_index = None
        with self._stops_lock:
            self._stops[stop_key] = stop
        try:
            # Old bars stay until the new verdict replaces them: no flash of empty plots.
            yield ChatOutputs(
                list(chatbot),
                session,
                _textbox(busy=True),
                badge_html(None, self.taxonomy, checking=True),
                skip,
                skip,
                skip,
            )
            record: dict = {}
            produce = self._producer(
                session, prompt, history, mode, thresholds, log_this_chat, stop, record
            )
            for update in self.worker.stream(produce, stop.request):
                if answer_index is None:  # the verdict: draw the panel before the first token
                    answer_index = len(chatbot)
                    chatbot.append({"role": "assistant", "content": ""})
                    decision = update.verdict.decision
                    session.type_probs = dict(update.verdict.type_probs)
                    session.level_probs = list(update.verdict.level_probs)
                    yield ChatOutputs(
                        list(chatbot),
                        session,
                        skip,
                        badge_html(decision, self.taxonomy),
                        type_frame(self.taxonomy, update.verdict.type_probs, thresholds),
                        level_frame(self.taxonomy, update.verdict.level_probs),
                        details_markdown(update, self.taxonomy),
                    )
                    continue
                chatbot[answer_index] = {"role": "assistant", "content": update.text}
                if not update.done:
                    yield ChatOutputs(list(chatbot), session, skip, skip, skip, skip, skip)
            status = record.get("status", "complete")
            text = record.get("response", "")
            if status == "stopped":
                chatbot[answer_index] = {
                    "role": "assistant",
                    "content": (text + "\n\n" if text else "") + "*(stopped)*",
                }
            session.history = [*history, (prompt, text)]
            session.last_prompt = prompt
            if record.get("turn_id") is not None:
                session.turn_ids[answer_index] = record["turn_id"]
            if record.get("log_error"):
                gr.Warning(f"This turn was not logged: {record['log_error']}")
            yield ChatOutputs(
                chatbot,
                session,
                _textbox(busy=False),
                skip,
                skip,
                skip,
                details_markdown(record.get("last"), self.taxonomy),
            )
        except Exception as error:
            if isinstance(error, USER_ERRORS):
                gr.Warning(_one_line(error))
            else:  # a bug: keep serving, say so in one line
                log.exception("chat turn failed")
                gr.Warning(f"The model failed on this turn ({type(error).__name__}); try again.")
            badge = badge_html(None, self.taxonomy) if answer_index is None else skip
            yield ChatOutputs(chatbot, session, _textbox(busy=False), badge, skip, skip, skip)
        finally:
            with self._stops_lock:
                if self._stops.get(stop_key) is stop:
                    del self._stops[stop_key]

    def _producer(
        self,
        session: ChatSession,
        prompt: str,
        history: list[tuple[str, str]],
        mode: str,
        thresholds: Thresholds,
        log_this_chat: bool,
        stop: TurnStop,
        record: dict,
    ) -> Callable[[Callable[[Any], None]], None]:
        """The part of a turn that runs on the model thread: stream, then log (also when the
        browser went away), filling `record` with status, response and turn id."""

        def produce(emit: Callable[[Any], None]) -> None:
            last = None
            try:
                for last in self.engine.stream(
                    session.image,
                    prompt,
                    history=history,
                    mode=mode,
                    thresholds=thresholds,
                    settings=self.generation,
                    stop_event=stop.event,
                ):
                    emit(last)
            except USER_ERRORS:
                raise
            except Exception as error:
                if last is not None:
                    self._log(
                        session,
                        prompt,
                        last,
                        thresholds,
                        log_this_chat,
                        record,
                        status="error",
                        error=_one_line(error),
                    )
                raise
            record["status"] = "stopped" if stop.requested else "complete"
            record["response"] = last.text if last is not None else ""
            record["last"] = last
            self._log(
                session, prompt, last, thresholds, log_this_chat, record, status=record["status"]
            )

        return produce

    def _log(
        self,
        session: ChatSession,
        prompt: str,
        update: ChatUpdate,
        thresholds: Thresholds,
        log_this_chat: bool,
        record: dict,
        status: str,
        error: str | None = None,
    ) -> None:
        if not self.store.enabled:
            return
        try:
            if session.store_session is None:
                session.store_session = self.store.start_session(
                    "ui", logging=bool(log_this_chat), settings=self._session_settings()
                )
                session.log_turns = bool(log_this_chat)
            elif session.log_turns != bool(log_this_chat):
                self.store.set_session_logging(session.store_session, bool(log_this_chat))
                session.log_turns = bool(log_this_chat)
            record["turn_id"] = self.store.log_turn(
                session.store_session,
                source="ui",
                status=status,
                error=error,
                image=session.image.data if session.image is not None else None,
                **self._turn_fields(prompt, update, thresholds),
            )
        except StoreError as store_error:
            log.warning("could not log a turn: %s", store_error)
            record["log_error"] = _one_line(store_error)

    def _turn_fields(self, prompt: str, update: ChatUpdate, thresholds: Thresholds) -> dict:
        verdict, decision = update.verdict, update.verdict.decision
        return {
            "prompt": prompt,
            "response": update.text,
            "decision": decision.action,
            "type": decision.type,
            "level": decision.level,
            "flagged": decision.flagged,
            "type_probs": verdict.type_probs,
            "level_probs": verdict.level_probs,
            "hint": decision.hint,
            "mode": update.mode,
            "thresholds": thresholds.to_dict(),
            "base": self.base_id,
            "checkpoint": self.engine.checkpoint_id,
            "timings": update.timings,
            "reader_text": verdict.reader_text,
        }

    def _session_settings(self) -> dict:
        return {
            "max_new_tokens": self.settings.max_new_tokens,
            "base": self.base_id,
            "checkpoint": self.engine.checkpoint_id,
        }

    def _check_mode(self, mode: str | None) -> str:
        mode = (mode or "").strip() or self.default_mode
        if mode not in ("hint", "tokens", "both", "off"):
            raise ValueError(f"mode must be one of hint, tokens, both, off; got {mode!r}")
        return mode

    def _thresholds_note(self, thresholds: Thresholds) -> str:
        default = self.engine.default_thresholds()
        labels = dict(zip(self.taxonomy.types, self.taxonomy.type_labels, strict=True))
        changed = [
            f"{labels[t]} {v:.2f}" for t, v in thresholds.types.items() if v != default.types.get(t)
        ]
        if thresholds.level != default.level:
            changed.append(f"level {thresholds.level:.2f}")
        return "thresholds " + (", ".join(changed) if changed else "default")

    # --- settings panel --------------------------------------------------------------------

    def preview(self, session: ChatSession | None, threshold_values: Sequence[float]) -> str:
        """What the current thresholds would decide for the last turn's probabilities."""
        if session is None or session.type_probs is None:
            return ""
        try:
            thresholds = thresholds_from_values(self.engine, threshold_values)
        except ThresholdError as error:
            return f"⚠ {_one_line(error)}"
        decision = decide(session.type_probs, session.level_probs, self.taxonomy, thresholds)
        colour = ACTION_COLOURS.get(decision.action, IDLE_COLOUR)
        return (
            f"With these thresholds the last input would be "
            f'<b style="color:{colour}">{decision.action.upper()}</b>. '
            f"Press <b>Regenerate</b> to answer with them."
        )

    def set_logging(self, log_this_chat: bool, session: ChatSession | None) -> str:
        """The "Don't log this chat" box: applies to this chat's next turns at once."""
        if not self.store.enabled:
            return "Logging is off on this server."
        if session is not None and session.store_session is not None:
            try:
                self.store.set_session_logging(session.store_session, bool(log_this_chat))
                session.log_turns = bool(log_this_chat)
            except StoreError as error:
                raise gr.Error(_one_line(error), print_exception=False) from None
        return (
            "Turns of this chat are logged for safety research."
            if log_this_chat
            else "This chat's next turns are not logged."
        )

    def forget(self, session: ChatSession | None) -> str:
        """Delete this chat's logged turns (and their feedback) from the store."""
        if session is None or session.store_session is None:
            return "Nothing of this chat is logged."
        try:
            count = self.store.delete_session(session.store_session)
        except StoreError as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        session.store_session = None
        session.turn_ids.clear()
        return f"Deleted {count} logged turn(s) of this chat."

    def feedback(
        self, session: ChatSession | None, index: Any, liked: Any, comment: str
    ) -> tuple[str, str]:
        """A thumbs up/down on an answer (Chatbot.like): stored with the comment box's text.
        Returns (status line, new comment box value)."""
        if isinstance(index, list | tuple):
            index = index[0]
        if liked not in (True, False):
            return "Rating removed on screen; the rating already sent is kept.", comment
        turn_id = session.turn_ids.get(int(index)) if session is not None else None
        if turn_id is None:
            return "This answer was not logged, so there is nothing to attach feedback to.", comment
        try:
            self.store.add_feedback(turn_id, 1 if liked else -1, (comment or "").strip()[:2000])
        except StoreError as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        return f"Thanks: {'👍' if liked else '👎'} saved for answer #{turn_id}.", ""

    # --- the /chat API ---------------------------------------------------------------------

    def api_chat(self, image: Any, prompt: str, mode: str = "", thresholds: str = "") -> dict:
        """One non-streamed turn for API clients: returns the JSON of `safevlm chat --json`
        and logs the turn with source='api'. Errors raise gr.Error with one line."""
        try:
            loaded = load_image(_uploaded_path(image)) if image else None
            prompt = clean_prompt(prompt)
            parsed = self.engine.thresholds(thresholds or None)
            mode = self._check_mode(mode)
        except USER_ERRORS as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        stop = threading.Event()

        def run() -> ChatUpdate:
            return self.engine.chat(
                loaded,
                prompt,
                mode=mode,
                thresholds=parsed,
                settings=self.generation,
                stop_event=stop,
            )

        try:
            update = self.worker.call(run)
        except USER_ERRORS as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        except Exception as error:
            log.exception("API chat failed")
            raise gr.Error(
                f"The model failed on this request ({type(error).__name__}).", print_exception=False
            ) from None
        if self.store.enabled:
            try:
                session_id = self.store.start_session(
                    "api", logging=True, settings=self._session_settings()
                )
                self.store.log_turn(
                    session_id,
                    source="api",
                    image=loaded.data if loaded is not None else None,
                    **self._turn_fields(prompt, update, parsed),
                )
            except StoreError as error:
                log.warning("could not log an API turn: %s", error)
        return update.to_dict()

    # --- annotation (every handler checks the token) ----------------------------------------

    def check_token(self, token: str | None) -> None:
        """Raise gr.Error unless annotation is open to this caller."""
        expected = self.settings.annotation_token
        if expected:
            if not token or not hmac.compare_digest(str(token).encode(), expected.encode()):
                raise gr.Error("Wrong or missing annotation token.", print_exception=False)
        elif self.settings.public:
            raise gr.Error(
                "Annotation is disabled on this public app: no SAFEVLM_ANNOTATION_TOKEN is set.",
                print_exception=False,
            )

    def unlock(self, token: str) -> tuple[Any, str]:
        """(visibility of the annotation panel, status line)."""
        self.check_token(token)
        return gr.Column(visible=True), "Unlocked. Press **Load turns** to browse the log."

    def browse(
        self, token: str, decision: str, type_name: str, unlabelled: bool, limit: int = 100
    ) -> pd.DataFrame:
        """Logged turns, newest first, as a table (filters: decision, predicted type, unlabelled)."""
        self.check_token(token)
        decision = None if decision in (None, "", "any") else decision
        type_name = None if type_name in (None, "", "any") else self._type_name(type_name)
        try:
            turns = self.store.list_turns(
                decision=decision, type=type_name, unlabelled=bool(unlabelled), limit=int(limit)
            )
        except StoreError as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        rows = [
            {
                "id": t["id"],
                "created": (t["created"] or "")[:19].replace("T", " "),
                "decision": t["decision"],
                "type": t["type"],
                "level": t["level"],
                "source": t["source"],
                "status": t["status"],
                "prompt": _shorten(t["prompt"]),
                "answer": _shorten(t["response"]),
                "label": "yes" if t["annotation_id"] is not None else "",
                "👍/👎": f"{t['feedback_up']}/{t['feedback_down']}",
            }
            for t in turns
        ]
        return pd.DataFrame(rows, columns=TURN_COLUMNS)

    def open_turn(self, token: str, turn_id: Any) -> tuple:
        """One turn for labelling: (turn id, image, text, type bars, level bars, decision_correct,
        true type, true level, rating, note)."""
        self.check_token(token)
        turn = self.store.get_turn(_turn_id(turn_id))
        if turn is None:
            raise gr.Error(f"No logged turn with id {turn_id}.", print_exception=False)
        image = None
        if turn.get("image_path") and Path(turn["image_path"]).is_file():
            try:
                image = load_image(turn["image_path"]).image
            except ImageError:
                image = None
        labels = dict(zip(self.taxonomy.types, self.taxonomy.type_labels, strict=True))
        thresholds = None
        if turn.get("thresholds"):
            try:
                thresholds = self.engine.thresholds(turn["thresholds"])
            except ThresholdError:
                thresholds = None
        text = "\n\n".join(
            [
                f"**Turn {turn['id']}** · {turn['created'][:19].replace('T', ' ')} · source {turn['source']}"
                f" · status {turn['status']} · mode {turn['mode']}",
                f"**Decision:** {turn['decision']} · type {labels.get(turn['type'], turn['type'])}"
                f" · level {turn['level']}",
                f"**Prompt:** {quote(turn['prompt'], 2000)}",
                f"**Answer:** {quote(turn['response'], 4000)}",
                f"**Text read in the image:** {quote(turn.get('reader_text') or '') or 'none'}",
                f"**Hint:** {quote(turn.get('hint') or '') or 'none'} · "
                f"**Users:** {turn['feedback_up']} 👍 / {turn['feedback_down']} 👎",
            ]
        )
        correct = {True: "yes", False: "no"}.get(turn["decision_correct"])
        return (
            turn["id"],
            image,
            text,
            type_frame(self.taxonomy, turn.get("type_probs"), thresholds),
            level_frame(self.taxonomy, turn.get("level_probs")),
            correct,
            turn["true_type"],
            turn["true_level"],
            turn["response_rating"],
            turn["note"] or "",
        )

    def save_label(
        self,
        token: str,
        turn_id: Any,
        annotator: str,
        decision_correct: str | None,
        true_type: str | None,
        true_level: Any,
        rating: Any,
        note: str,
    ) -> str:
        self.check_token(token)
        if not (annotator or "").strip():
            raise gr.Error(
                "Enter your name as annotator, so labels can be traced.", print_exception=False
            )
        try:
            annotation_id = self.store.annotate(
                _turn_id(turn_id),
                annotator=annotator.strip(),
                decision_correct={"yes": True, "no": False}.get(decision_correct or ""),
                true_type=self._type_name(true_type) if true_type else None,
                true_level=self._level_index(true_level) if true_level not in (None, "") else None,
                response_rating=int(rating) if rating not in (None, "") else None,
                note=(note or "").strip(),
            )
        except StoreError as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        return f"Saved label #{annotation_id} for turn {_turn_id(turn_id)}."

    def export(self, token: str, kind: str, labelled_only: bool = True) -> str:
        """Write an export (JSONL training records or CSV) to a fresh temp file; its path."""
        self.check_token(token)
        folder = Path(tempfile.mkdtemp(prefix="safevlm-export-"))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            if kind == "jsonl":
                path = folder / f"safevlm-turns-{stamp}.jsonl"
                count = self.store.export_jsonl(path, labelled_only=bool(labelled_only))
            else:
                path = folder / f"safevlm-turns-{stamp}.csv"
                count = self.store.export_csv(path, labelled_only=bool(labelled_only))
        except StoreError as error:
            raise gr.Error(_one_line(error), print_exception=False) from None
        gr.Info(f"Exported {count} turn(s) to {path.name}.")
        return str(path)

    def _type_name(self, value: str) -> str:
        """A type's name from its name or its short label."""
        if value in self.taxonomy.types:
            return value
        labels = dict(zip(self.taxonomy.type_labels, self.taxonomy.types, strict=True))
        if value in labels:
            return labels[value]
        raise gr.Error(f"Unknown type {value!r}.", print_exception=False)

    def _level_index(self, value: Any) -> int:
        for i, (name, label) in enumerate(
            zip(self.taxonomy.levels, self.taxonomy.level_labels, strict=True)
        ):
            if value in (name, label, str(i)) or (isinstance(value, int) and value == i):
                return i
        raise gr.Error(f"Unknown level {value!r}.", print_exception=False)


TURN_COLUMNS = [
    "id",
    "created",
    "decision",
    "type",
    "level",
    "source",
    "status",
    "prompt",
    "answer",
    "label",
    "👍/👎",
]


def _shorten(text: str | None, limit: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _turn_id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise gr.Error(
            "Pick a turn first (click a row or type its id).", print_exception=False
        ) from None


def _file_path(item: Any) -> str:
    """The path of a MultimodalTextbox file entry (a path string or a FileData-like dict)."""
    if isinstance(item, Mapping):
        return str(item.get("path") or "")
    return str(getattr(item, "path", item) or "")


def _uploaded_path(image: Any) -> str:
    """The path of an API upload, accepted only inside Gradio's upload folder: gr.api passes
    payloads through unprocessed, so a raw path would otherwise read any file on the server."""
    path = _file_path(image)
    if not path or not is_in_or_equal(path, get_upload_folder()):
        raise ImageError(
            "send the image as an upload (gradio_client.handle_file(path)), not a server path"
        )
    return path
