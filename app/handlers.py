"""Every callback of the app behind one object (`Handlers`), as the layout and the tests call
them; the work is in `chat`, `chatlog`, `safety_settings`, `annotate` and `api`."""

from collections.abc import Sequence

from app.annotate import TURN_COLUMNS, AnnotationHandlers
from app.api import ChatApi
from app.chat import ChatOutputs, ChatTurns, generation_settings
from app.chatlog import ChatLog
from app.safety_settings import preview_html
from app.served import AnnotationFiles
from app.session import ChatSession
from app.settings import AppSettings
from app.worker import ModelWorker
from safevlm.engine import ChatEngine
from safevlm.model import GenerationSettings
from safevlm.store import Store

__all__ = ["TURN_COLUMNS", "ChatOutputs", "ChatSession", "Handlers"]


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
        about = engine.describe()
        self.base_id = str(about.get("base", settings.base))
        self.default_mode = str(about.get("default_mode", "hint"))
        self.annotation_files = AnnotationFiles()
        self.chatlog = ChatLog(engine, store, settings, self.base_id, self.annotation_files)
        self.chat = ChatTurns(engine, self.worker, self.chatlog, settings, self.default_mode)
        self.api = ChatApi(engine, self.worker, self.chatlog, settings, self.default_mode)
        self.annotation = AnnotationHandlers(engine, store, settings, self.annotation_files)

        # the chat turn
        self.respond = self.chat.respond
        self.regenerate = self.chat.regenerate
        self.stop = self.chat.stop
        self.clear = self.chat.clear
        # this chat's log
        self.set_logging = self.chatlog.set_logging
        self.forget = self.chatlog.forget
        self.feedback = self.chatlog.feedback
        # the Annotate tab
        self.check_token = self.annotation.check_token
        self.unlock = self.annotation.unlock
        self.browse = self.annotation.browse
        self.open_turn = self.annotation.open_turn
        self.save_label = self.annotation.save_label
        self.export = self.annotation.export
        # the /chat and /delete API
        self.api_chat = self.api.chat
        self.api_delete = self.api.delete

    @property
    def taxonomy(self):
        return self.engine.taxonomy

    @property
    def generation(self) -> GenerationSettings:
        return generation_settings(self.settings)

    def preview(self, session: ChatSession | None, threshold_values: Sequence[float]) -> str:
        """What the current thresholds would decide for the last turn's probabilities."""
        return preview_html(self.engine, session, threshold_values)
