"""One browser tab's chat state: the conversation about one image (`ChatSession`, a gr.State
value that is never shared) and what the whole page has left on the server (`PageVisit`).
Plain data: the chat turns fill it, the chat log and the settings panel read it."""

from dataclasses import dataclass, field

from safevlm.images import LoadedImage


@dataclass
class PageVisit:
    """What one opened page left on the server, shared by all its conversations (Clear and a
    new image start a new conversation, not a new visit): the store sessions it logged into,
    the files it uploaded, and whether it logs now. "Delete" and "Don't log" act on all of it;
    the box's newest value is read when a turn is logged, also for the turn in flight."""

    log_turns: bool = True
    store_sessions: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)


@dataclass
class ChatSession:
    """One browser tab's conversation about one image (a gr.State value, never shared)."""

    image: LoadedImage | None = None
    image_path: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # what the model sees next
    last_prompt: str | None = None
    store_session: str | None = None
    store_logging: bool | None = None  # the store session's logging flag as last written
    turn_ids: dict[int, int] = field(default_factory=dict)  # chatbot index of an answer -> turn id
    type_probs: dict[str, float] | None = None  # of the last turn, for the threshold preview
    level_probs: list[float] | None = None
    visit: PageVisit = field(default_factory=PageVisit)

    @property
    def log_turns(self) -> bool:
        return self.visit.log_turns

    def next_conversation(
        self, image: LoadedImage | None = None, image_path: str | None = None
    ) -> "ChatSession":
        """A fresh conversation (after Clear, or about a new image) in the same page visit."""
        return ChatSession(image=image, image_path=image_path, visit=self.visit)
