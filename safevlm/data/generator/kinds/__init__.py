"""Record kinds of the generated set and their mix: typographic requests, photos with
prompts, documents, emoji scenes and their contrastive pairs, one builder each.

Owns the sources a unit draws from, the plan of one unit and the kind registry; not
planning many units or writing files (`generate`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from safevlm.data.generator import documents as docs
from safevlm.data.generator.fonts import FontSpec, discover_fonts, emoji_font_path
from safevlm.data.generator.kinds.document import build_document
from safevlm.data.generator.kinds.draws import Draft
from safevlm.data.generator.kinds.emoji import EmojiScene, build_emoji, load_emoji_scenes
from safevlm.data.generator.kinds.photo import (
    build_pair_prompt,
    build_photo_benign,
    build_photo_risky,
)
from safevlm.data.generator.kinds.typographic import build_pair_typo, build_typo
from safevlm.data.generator.texts import (
    Pair,
    Request,
    check_text_data,
    load_benign_requests,
    load_pairs,
    load_phrasings,
    load_risky_requests,
)
from safevlm.data.schema import DataError, load_data_file
from safevlm.taxonomy import Taxonomy

log = logging.getLogger(__name__)

# Per generation unit; pair kinds yield two records that share a `group`.
KIND_WEIGHTS = {
    "typo_risky": 0.22,
    "typo_benign": 0.15,
    "pair_typo": 0.11,
    "photo_risky": 0.09,
    "photo_benign": 0.09,
    "pair_prompt": 0.05,
    "document": 0.09,
    "pair_document": 0.05,
    "emoji": 0.10,
    "emoji_pair": 0.05,
}
PAIR_KINDS = {"pair_typo", "pair_prompt", "pair_document", "emoji_pair"}
EMOJI_KINDS = {"emoji", "emoji_pair"}
RISKY_TARGET_KINDS = {"typo_risky", "photo_risky"}


@dataclass
class Sources:
    """Everything a unit draws from, loaded once and indexed by split."""

    taxonomy: Taxonomy
    risky: list[Request]
    benign: list[Request]
    pairs: list[Pair]
    fonts: tuple[FontSpec, ...]
    emoji_font: str | None
    emoji_scenes: list[EmojiScene]
    doc_kinds: list[docs.DocumentKind]
    phrasing_held_out: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, taxonomy: Taxonomy) -> Sources:
        check_text_data(taxonomy)
        document_type = load_data_file("documents.json")["risk_type"]
        if document_type not in taxonomy.risk_types:
            raise DataError(
                f"documents.json: risk_type {document_type!r} is not a risk type of "
                f"taxonomy {taxonomy.name!r}"
            )
        emoji = emoji_font_path()
        if emoji is None:
            log.warning("no colour emoji font (Debian fonts-noto-color-emoji): no emoji scenes")
        return cls(
            taxonomy=taxonomy,
            risky=load_risky_requests(taxonomy),
            benign=load_benign_requests(taxonomy),
            pairs=load_pairs(taxonomy),
            fonts=discover_fonts(),
            emoji_font=str(emoji) if emoji else None,
            emoji_scenes=load_emoji_scenes(taxonomy),
            doc_kinds=docs.document_kinds(),
            phrasing_held_out={p.id for p in load_phrasings() if p.held_out},
        )


@dataclass(frozen=True)
class UnitPlan:
    index: int
    kind: str
    split: str
    target: tuple[str, int] | None  # (type, level) asked of single risky kinds, round-robin

    @property
    def size(self) -> int:
        return 2 if self.kind in PAIR_KINDS else 1


Builder = Callable[[UnitPlan, Sources, np.random.Generator], list[Draft]]

BUILDERS: dict[str, Builder] = {
    "typo_risky": build_typo,
    "typo_benign": build_typo,
    "pair_typo": build_pair_typo,
    "photo_risky": build_photo_risky,
    "photo_benign": build_photo_benign,
    "pair_prompt": build_pair_prompt,
    "document": build_document,
    "pair_document": build_document,
    "emoji": build_emoji,
    "emoji_pair": build_emoji,
}
