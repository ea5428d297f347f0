"""Chat turns of the Chat tab: a message or a regenerate request becomes a streamed verdict
and answer (`ChatOutputs`) on the model thread, logged through `chatlog`. No components."""

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import gradio as gr

from app.chatlog import ChatLog
from app.checkpoints import EngineSlot, OnSlot
from app.errors import USER_ERRORS, shown
from app.panel import badge_html, details_markdown, level_frame, type_frame
from app.safety_settings import check_mode, preview_html, thresholds_from_values, thresholds_note
from app.served import in_upload_folder
from app.session import ChatSession
from app.settings import AppSettings
from app.worker import ModelWorker, TurnStop
from safevlm.engine import ChatEngine, clean_prompt
from safevlm.errors import one_line
from safevlm.images import load_image
from safevlm.model.modeling import GenerationSettings
from safevlm.policy import Thresholds

log = logging.getLogger(__name__)


class ChatOutputs(NamedTuple):
    """What one step of a chat turn draws, in the layout's output order; gr.skip() = unchanged."""

    chatbot: Any
    session: Any
    textbox: Any
    badge: Any
    type_plot: Any
    level_plot: Any
    details: Any


def generation_settings(settings: AppSettings) -> GenerationSettings:
    """Fresh generation settings for one turn (a mutable dataclass, so never shared)."""
    return GenerationSettings(max_new_tokens=settings.max_new_tokens)


def file_path(item: Any) -> str:
    """The path of a MultimodalTextbox file entry (a path string or a FileData-like dict)."""
    if isinstance(item, Mapping):
        return str(item.get("path") or "")
    return str(getattr(item, "path", item) or "")


def _textbox(busy: bool) -> gr.MultimodalTextbox:
    return gr.MultimodalTextbox(value={"text": "", "files": []}, interactive=not busy)


class ChatTurns(OnSlot):
    """The Chat tab's turn callbacks, bound to one engine, the model thread and the chat log."""

    def __init__(
        self,
        engine: "ChatEngine | EngineSlot",
        worker: ModelWorker,
        chatlog: ChatLog,
        settings: AppSettings,
        default_mode: str,
    ):
        self.slot = EngineSlot.wrap(engine)
        self.worker = worker
        self.chatlog = chatlog
        self.settings = settings
        self.default_mode = default_mode
        self._stops: dict[str, TurnStop] = {}
        self._stops_lock = threading.Lock()

    def respond(self, message: Mapping | None, chatbot: list | None, session: ChatSession | None, mode: str,
                threshold_values: Sequence[float], log_this_chat: bool = True,
                stop_key: str = "") -> Iterator[ChatOutputs]:
        """One chat turn from the input box: validate, then stream the verdict and the answer.
        A new image starts a new conversation about it. Errors a person can fix raise
        gr.Error with one line before anything changes (and nothing is logged)."""
        self.slot.refresh()  # a newly promoted checkpoint answers from this turn on
        message = message if isinstance(message, Mapping) else {}
        files = list(message.get("files") or [])
        session = session or ChatSession()
        # Every upload is the page's, to delete on opt-out or Delete, even one refused below.
        session.visit.uploads.extend(
            p for p in map(file_path, files) if in_upload_folder(p) and p not in session.visit.uploads
        )
        try:
            prompt = clean_prompt(message.get("text"))
            image = load_image(file_path(files[0])) if files else None
        except USER_ERRORS as error:
            self._drop_unlogged_uploads(session, log_this_chat)
            raise shown(error) from None
        mode, thresholds = self._turn_options(mode, threshold_values)
        chatbot = list(chatbot or [])
        if image is not None:  # a new image: a new conversation about it
            session = session.next_conversation(image, file_path(files[0]))
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

    def regenerate(self, chatbot: list | None, session: ChatSession | None, mode: str,
                   threshold_values: Sequence[float], log_this_chat: bool = True,
                   stop_key: str = "") -> Iterator[ChatOutputs]:
        """Re-run the last prompt with the current mode and thresholds; the new answer is
        added below the old one so both can be compared, and replaces it in the context."""
        if session is None or not session.last_prompt:
            raise gr.Error(
                "Nothing to regenerate yet: ask a question first.", print_exception=False
            )
        mode, thresholds = self._turn_options(mode, threshold_values)
        context = list(session.history[:-1])  # the new answer replaces the last one
        chatbot = list(chatbot or [])
        chatbot.append(
            {
                "role": "user",
                "content": f"↻ {session.last_prompt}\n\n"
                f"*(regenerated · mode {mode} · {thresholds_note(self.engine, thresholds)})*",
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

    def preview(self, session: ChatSession | None, threshold_values: Sequence[float]) -> str:
        """What the current thresholds would decide for the last turn's probabilities."""
        return preview_html(self.engine, session, threshold_values)

    def stop(self, stop_key: str) -> None:
        """Ask the running turn of this browser session to stop; it ends and is logged as stopped."""
        with self._stops_lock:
            stop = self._stops.get(stop_key)
        if stop is not None:
            stop.request()

    def clear(self, session: ChatSession | None = None) -> tuple:
        """A fresh conversation in the same page visit (so Delete still reaches the turns
        before it): empty chat, idle panel (returns chatbot, session, badge, type_plot,
        level_plot, details, preview)."""
        return (
            [],
            session.next_conversation() if session is not None else ChatSession(),
            badge_html(None, self.taxonomy),
            type_frame(self.taxonomy),
            level_frame(self.taxonomy),
            details_markdown(None, self.taxonomy),
            "",
        )

    def _turn_options(self, mode: str, threshold_values: Sequence[float]) -> tuple[str, Thresholds]:
        """(mode, thresholds) of the settings panel, or gr.Error with one line."""
        try:
            thresholds = thresholds_from_values(self.engine, threshold_values)
            return check_mode(mode, self.default_mode), thresholds
        except USER_ERRORS as error:
            raise shown(error) from None

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
        session.visit.log_turns = bool(log_this_chat)  # the box as sent; a later tick wins
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
            produce = self._producer(session, prompt, history, mode, thresholds, stop, record)
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
            self._drop_unlogged_uploads(session)
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
                gr.Warning(one_line(error))
            else:  # a bug: keep serving, say so in one line
                log.exception("chat turn failed")
                gr.Warning(f"The model failed on this turn ({type(error).__name__}); try again.")
            badge = badge_html(None, self.taxonomy) if answer_index is None else skip
            self._drop_unlogged_uploads(session)
            yield ChatOutputs(chatbot, session, _textbox(busy=False), badge, skip, skip, skip)
        finally:
            with self._stops_lock:
                if self._stops.get(stop_key) is stop:
                    del self._stops[stop_key]

    def _drop_unlogged_uploads(self, session: ChatSession, log_this_chat: bool = True) -> None:
        """A page that logs nothing keeps no upload on the server once its turn is over (the
        conversation keeps the image in memory; the browser already shows it)."""
        if not (bool(log_this_chat) and self.chatlog.page_logs(session)):
            self.chatlog.remove_uploads(session)

    def _producer(
        self,
        session: ChatSession,
        prompt: str,
        history: list[tuple[str, str]],
        mode: str,
        thresholds: Thresholds,
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
                    settings=generation_settings(self.settings),
                    stop_event=stop.event,
                ):
                    emit(last)
            except USER_ERRORS:
                raise
            except Exception as error:
                if last is not None:
                    self.chatlog.log_ui_turn(
                        session,
                        prompt,
                        last,
                        thresholds,
                        record,
                        status="error",
                        error=one_line(error),
                    )
                raise
            record["status"] = "stopped" if stop.requested else "complete"
            record["response"] = last.text if last is not None else ""
            record["last"] = last
            self.chatlog.log_ui_turn(
                session, prompt, last, thresholds, record, status=record["status"]
            )

        return produce
