"""What the app writes to the log about chats: turns from the UI and the API, a chat's
opt-out and deletion, and feedback on answers. Runs no turn (`chat`) and no SQL (`store`)."""

import logging
from typing import Any

from app.errors import one_line, shown
from app.session import ChatSession
from app.settings import AppSettings
from safevlm.engine import ChatEngine, ChatUpdate
from safevlm.images import LoadedImage
from safevlm.policy import Thresholds
from safevlm.store import Store, StoreError

log = logging.getLogger(__name__)


class ChatLog:
    """Logging of chat turns into one store, tagged with the engine's base and checkpoint."""

    def __init__(self, engine: ChatEngine, store: Store, settings: AppSettings, base_id: str):
        self.engine = engine
        self.store = store
        self.settings = settings
        self.base_id = base_id

    # --- turns -----------------------------------------------------------------------------

    def log_ui_turn(
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
        """Log one Chat tab turn in the session's store session (started on its first turn);
        sets record["turn_id"], or record["log_error"] when the store refused."""
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
            record["log_error"] = one_line(store_error)

    def log_api_turn(
        self,
        image: LoadedImage | None,
        prompt: str,
        update: ChatUpdate,
        thresholds: Thresholds,
    ) -> None:
        """Log one /chat request as a session of its own; a store failure is only logged."""
        if not self.store.enabled:
            return
        try:
            session_id = self.store.start_session(
                "api", logging=True, settings=self._session_settings()
            )
            self.store.log_turn(
                session_id,
                source="api",
                image=image.data if image is not None else None,
                **self._turn_fields(prompt, update, thresholds),
            )
        except StoreError as error:
            log.warning("could not log an API turn: %s", error)

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

    # --- a chat's own log: opt-out, deletion, feedback --------------------------------------

    def set_logging(self, log_this_chat: bool, session: ChatSession | None) -> str:
        """The "Don't log this chat" box: applies to this chat's next turns at once."""
        if not self.store.enabled:
            return "Logging is off on this server."
        if session is not None and session.store_session is not None:
            try:
                self.store.set_session_logging(session.store_session, bool(log_this_chat))
                session.log_turns = bool(log_this_chat)
            except StoreError as error:
                raise shown(error) from None
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
            raise shown(error) from None
        session.store_session = None
        session.turn_ids.clear()
        return f"Deleted {count} logged turn(s) of this chat."

    def feedback(
        self, session: ChatSession | None, index: Any, liked: Any, comment: str
    ) -> tuple[str, str]:
        """A thumbs up/down on an answer (Chatbot.like), stored with the comment box's text;
        a second click changes the rating, and clearing it on screen takes it back.
        Returns (status line, new comment box value)."""
        if isinstance(index, list | tuple):
            index = index[0]
        turn_id = session.turn_ids.get(int(index)) if session is not None else None
        if turn_id is None:
            return "This answer was not logged, so there is nothing to attach feedback to.", comment
        rating = (1 if liked else -1) if isinstance(liked, bool) else None
        try:
            self.store.set_feedback(turn_id, rating, (comment or "").strip()[:2000])
        except StoreError as error:
            raise shown(error) from None
        if rating is None:
            return f"Rating removed for answer #{turn_id}.", comment
        return f"Thanks: {'👍' if liked else '👎'} saved for answer #{turn_id}.", ""
