"""What the app writes to the log about chats: turns from the UI and the API, a page's
opt-out and deletion (with the files it uploaded), and feedback on answers. Runs no turn
(`chat`) and no SQL (`store`)."""

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from app.checkpoints import EngineSlot, OnSlot
from app.errors import shown
from app.served import AnnotationFiles, remove_upload
from app.session import ChatSession
from app.settings import AppSettings
from safevlm.engine import ChatUpdate
from safevlm.errors import one_line
from safevlm.images import LoadedImage
from safevlm.policy import Thresholds
from safevlm.store import Store, StoreError

log = logging.getLogger(__name__)


@dataclass
class ChatLog(OnSlot):
    """Logging of chat turns into one store, tagged with the engine's base and checkpoint
    (the one in use when the turn ran: `slot` may switch to a promoted checkpoint)."""

    slot: EngineSlot
    store: Store
    settings: AppSettings
    base_id: str
    annotation_files: AnnotationFiles = field(default_factory=AnnotationFiles)

    # --- turns -----------------------------------------------------------------------------

    def log_ui_turn(
        self,
        session: ChatSession,
        prompt: str,
        update: ChatUpdate,
        thresholds: Thresholds,
        record: dict,
        status: str,
        error: str | None = None,
    ) -> None:
        """Log one Chat tab turn in the session's store session (started on its first turn),
        if the page logs *now*: a "Don't log" ticked while the answer streamed wins. Sets
        record["turn_id"], or record["log_error"] when the store refused."""
        if not self.store.enabled:
            return
        log_now = session.visit.log_turns
        try:
            if session.store_session is None:
                session.store_session = self.store.start_session(
                    "ui", logging=log_now, settings=self._session_settings()
                )
                session.store_logging = log_now
                session.visit.store_sessions.append(session.store_session)
            elif session.store_logging != log_now:
                self.store.set_session_logging(session.store_session, log_now)
                session.store_logging = log_now
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
        log_this: bool = True,
    ) -> dict:
        """Log one /chat request as a session of its own, deletable with the secret returned
        to this caller only. Returns {"logged": bool, and when logged "session_id", "turn_id",
        "delete_secret"}; a store failure is only logged (and reported as not logged)."""
        if not (self.store.enabled and log_this):
            return {"logged": False}
        secret = secrets.token_urlsafe(32)
        try:
            session_id = self.store.start_session(
                "api", logging=True, settings=self._session_settings(), delete_key=secret
            )
            turn_id = self.store.log_turn(
                session_id,
                source="api",
                image=image.data if image is not None else None,
                **self._turn_fields(prompt, update, thresholds),
            )
        except StoreError as error:
            log.warning("could not log an API turn: %s", error)
            return {"logged": False}
        return {
            "logged": True,
            "session_id": session_id,
            "turn_id": turn_id,
            "delete_secret": secret,
        }

    def delete_api_session(self, session_id: str, delete_secret: str) -> int:
        """Delete an API caller's own session by the secret /chat returned to it."""
        try:
            count = self.store.delete_session_with_key(session_id, delete_secret)
        except StoreError as error:
            raise shown(error) from None
        self.annotation_files.remove_all()  # an export made before could still hold it
        return count

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
        """The "Don't log this chat" box: applies at once, to the turn in flight too. Opting
        out also deletes the files this page uploaded from the server."""
        if not self.store.enabled:
            return "Logging is off on this server."
        log_this_chat = bool(log_this_chat)
        if session is not None:
            session.visit.log_turns = log_this_chat
            if session.store_session is not None:
                try:
                    self.store.set_session_logging(session.store_session, log_this_chat)
                    session.store_logging = log_this_chat
                except StoreError as error:
                    raise shown(error) from None
            if not log_this_chat:
                self.remove_uploads(session)
        return (
            "Turns of this chat are logged for safety research."
            if log_this_chat
            else "This chat is not logged from now on, the answer being written included."
        )

    def forget(self, session: ChatSession | None) -> str:
        """Delete every turn this page logged, in all its chats since it was opened (Clear and
        new images included), their feedback, the images it uploaded and every annotation
        file the app serves (an export made before could still hold these turns)."""
        if session is None:
            return "Nothing of this page's chats is logged."
        visit = session.visit
        chats = list(visit.store_sessions)
        try:
            count = self.store.delete_sessions(chats)
        except StoreError as error:
            raise shown(error) from None
        removed = self.remove_uploads(session)
        if chats:
            self.annotation_files.remove_all()
        visit.store_sessions.clear()
        session.store_session = None
        session.store_logging = None
        session.turn_ids.clear()
        if not chats:
            return "Nothing of this page's chats is logged" + (
                f"; deleted the {removed} image(s) it uploaded." if removed else "."
            )
        return (
            f"Deleted {count} logged turn(s) from {len(chats)} chat(s) on this page"
            + (f", and the {removed} image(s) it uploaded." if removed else ".")
        )

    def remove_uploads(self, session: ChatSession) -> int:
        """Delete the files this page uploaded from Gradio's upload folder (the conversation
        keeps its image in memory); returns how many were deleted."""
        uploads, session.visit.uploads[:] = list(session.visit.uploads), []
        return sum(remove_upload(path) for path in uploads)

    def page_logs(self, session: ChatSession) -> bool:
        """Whether this page's turns are logged now (the server logs and it has not opted out)."""
        return self.store.enabled and session.visit.log_turns

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
