"""The app's parts bound to one engine, one store and the settings (`Handlers`): the chat
turn (`chat`), this chat's log (`chatlog`), the Annotate tab (`annotation`) and the /chat and
/delete API (`api`). The layout and the tests call those parts' methods directly."""

from app.annotate import AnnotationHandlers
from app.api import ChatApi
from app.chat import ChatTurns
from app.chatlog import ChatLog
from app.served import AnnotationFiles
from app.settings import AppSettings
from app.worker import ModelWorker
from safevlm.engine import ChatEngine
from safevlm.store import Store


class Handlers:
    """Every callback of the app, grouped by the part of the page it serves."""

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

    @property
    def taxonomy(self):
        return self.engine.taxonomy
