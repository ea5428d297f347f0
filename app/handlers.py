"""The app's parts bound to one engine, one store and the settings (`Handlers`): the chat
turn (`chat`), this chat's log (`chatlog`), the Annotate tab (`annotation`) and the /chat and
/delete API (`api`). The layout and the tests call those parts' methods directly."""

from app.annotate import AnnotationHandlers
from app.api import ChatApi
from app.chat import ChatTurns
from app.chatlog import ChatLog
from app.checkpoints import EngineSlot, OnSlot
from app.served import AnnotationFiles
from app.settings import AppSettings
from app.worker import ModelWorker
from safevlm.engine import ChatEngine
from safevlm.store import Store


class Handlers(OnSlot):
    """Every callback of the app, grouped by the part of the page it serves. The parts share
    one `EngineSlot`: a checkpoint promoted in the registry SAFEVLM_CHECKPOINT names reaches
    all of them at once."""

    def __init__(self, engine: "ChatEngine | EngineSlot", store: Store, settings: AppSettings,
                 worker: ModelWorker | None = None):
        self.slot = engine if isinstance(engine, EngineSlot) else EngineSlot.for_settings(engine, settings)
        self.store, self.settings = store, settings
        self.worker = worker or ModelWorker()
        about = self.engine.describe()
        self.base_id = str(about.get("base", settings.base))
        self.default_mode = str(about.get("default_mode", "hint"))
        self.annotation_files = AnnotationFiles()
        self.chatlog = ChatLog(self.slot, store, settings, self.base_id, self.annotation_files)
        self.chat = ChatTurns(self.slot, self.worker, self.chatlog, settings, self.default_mode)
        self.api = ChatApi(self.slot, self.worker, self.chatlog, settings, self.default_mode)
        self.annotation = AnnotationHandlers(self.slot, store, settings, self.annotation_files)

