"""SafeVLMConfig: the sizes and switches of the safety modules, in one place.

Holds what the paper varies (token counts, heads, loss weight, query wiring); widths are
derived from the base at build time and stored so a checkpoint can be checked against
the base it is loaded onto. Saved as JSON beside the safety weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path

from safevlm.errors import UserError

QUERY_SOURCES = ("hidden", "embeddings", "paper")


class ModeError(UserError, ValueError):
    """A conditioning mode that is not one of `MODES`."""


class Mode(StrEnum):
    """How the answer to a flagged input is conditioned (the paper's ablation): the policy's
    hint in the prompt, safety tokens set 2 in the LLM input, both, or neither. A `Mode` is
    a `str`, so JSON, the store and the UI take it as its name."""

    HINT = "hint"
    TOKENS = "tokens"
    BOTH = "both"
    OFF = "off"

    @property
    def uses_hint(self) -> bool:
        return self in (Mode.HINT, Mode.BOTH)

    @property
    def uses_tokens(self) -> bool:
        return self in (Mode.TOKENS, Mode.BOTH)

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        """The mode named `value`; anything else raises ModeError with the names."""
        try:
            return cls(value)
        except ValueError:
            raise ModeError(f"mode must be one of {', '.join(MODES)}, got {value!r}") from None


MODES = tuple(m.value for m in Mode)


@dataclass
class SafeVLMConfig:
    base: str = "tiny"
    # Paper: K1 = K2 = 64 tokens at the full width of LLaVA-1.5-7B; scaled down for the tiny base.
    num_head_tokens: int = 16  # safety tokens set 1: keys/values of the safety head
    num_llm_tokens: int = 8  # safety tokens set 2: inserted into the LLM input
    num_heads: int = 8  # cross-attention heads of the safety head (paper: 8)
    projector_grid: int = 4  # the safety projector pools the patch grid to grid x grid tokens
    projector_width: int = 0  # 0: derived, min(hidden_size, vision_channels)
    safety_loss_weight: float = 10.0  # paper: x10 on top of the LM loss
    # Independently trained safety classifiers (projector + tokens set 1 + head) whose
    # probabilities are averaged; 1 = the paper's single head.
    head_ensemble: int = 1
    # Queries of the safety head: "hidden" = mean-pooled hidden states of a text-only pass
    # of the frozen LLM at `query_layer`; "embeddings" = raw token embeddings (mean-pooled);
    # "paper" = the authors' wiring (first position of raw embeddings), an ablation.
    query_source: str = "hidden"
    query_layer: int = 0  # 0: derived, two thirds of the LLM's depth
    tokens_always: bool = False  # paper: insert set 2 for every input (ablation)
    default_mode: str = "hint"
    use_reader: bool = True  # feed OCR text of the image to the head and the LLM
    # Temperature scaling of the model's type and level logits (fitted on val by
    # train.calibrate); members in training always see temperature 1.
    type_temperature: float = 1.0
    level_temperature: float = 1.0
    taxonomy: dict = field(default_factory=dict)  # the taxonomy the head was trained for
    # Derived from the base at build time; checked when a checkpoint is loaded.
    hidden_size: int = 0
    vision_channels: int = 0

    def __post_init__(self) -> None:
        if self.query_source not in QUERY_SOURCES:
            raise ValueError(f"query_source must be one of {QUERY_SOURCES}, got {self.query_source!r}")
        if isinstance(self.head_ensemble, bool) or not isinstance(self.head_ensemble, int) or self.head_ensemble < 1:
            raise ValueError(f"head_ensemble must be a whole number >= 1, got {self.head_ensemble!r}")
        if self.default_mode not in MODES:
            raise ValueError(f"default_mode must be one of {MODES}, got {self.default_mode!r}")
        self.default_mode = str(self.default_mode)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> SafeVLMConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**data)

    def override(self, **kwargs) -> SafeVLMConfig:
        data = asdict(self)
        for key, value in kwargs.items():
            if key not in data:
                raise ValueError(f"unknown config key {key!r}")
            data[key] = value
        return SafeVLMConfig(**data)
