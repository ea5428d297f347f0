"""One browser tab's chat state (`ChatSession`, a gr.State value that is never shared).
Plain data: the chat turns fill it, the chat log and the settings panel read it."""

from dataclasses import dataclass, field

from safevlm.images import LoadedImage


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
