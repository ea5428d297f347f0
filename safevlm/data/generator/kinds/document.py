"""Document record kinds: an ID card, bank card, form or label with invented personal data
(privacy) or without it (safe), alone or as a pair in the same layout and prompt.

Owns what a document unit draws and labels; contents are `documents`, pixels `render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from safevlm.data.generator import documents as docs
from safevlm.data.generator import render
from safevlm.data.generator.fonts import FontSpec
from safevlm.data.generator.kinds.answers import filled_response
from safevlm.data.generator.kinds.draws import (
    Draft,
    choose_background,
    choose_font,
    choose_image_size,
    choose_prompt_group,
    held_out,
    pick,
)
from safevlm.data.generator.texts import Variant, choose_variant, response_set
from safevlm.data.schema import load_data_file

if TYPE_CHECKING:
    from safevlm.data.generator.kinds import Sources, UnitPlan


@dataclass(frozen=True)
class DocumentScene:
    """What both halves of a document pair share besides the prompt."""

    kind: docs.DocumentKind
    group_name: str
    group: dict
    prompt: Variant
    seed: int
    size: int
    background: Image.Image | None


def _render_doc(
    content: render.DocumentContent, scene: DocumentScene, src: Sources, split: str
) -> tuple[Image.Image, FontSpec]:
    rng = np.random.default_rng(scene.seed)
    font = choose_font(src, split, "sans", rng)
    image = render.render_document(content, rng, font, scene.size, scene.background)
    return render.augment(image, rng, 0.6), font


def _doc_meta(
    plan: UnitPlan, scene: DocumentScene, font: FontSpec, response: Variant, blank: bool | None
) -> dict:
    """Meta of a document record; `blank` is None for the one with personal data."""
    personal = blank is None
    meta = {"kind": plan.kind, "document": scene.kind.key, "personal_data": personal}
    if not personal:
        meta["blank"] = blank
    return meta | {
        "prompt_group": scene.group_name,
        "font": font.family,
        "response_kind": "refusal" if personal else "read_out",
        "held_out": held_out(
            font=font.held_out, prompt=scene.prompt.held_out, response=response.held_out
        ),
    }


def _personal_draft(
    scene: DocumentScene, plan: UnitPlan, src: Sources, rng: np.random.Generator
) -> Draft:
    privacy = load_data_file("documents.json")["risk_type"]
    level = min(int(scene.group["level"]), src.taxonomy.max_level)
    content = docs.personal_document(scene.kind, rng)
    image, font = _render_doc(content, scene, src, plan.split)
    response = filled_response(
        response_set("document_privacy")[str(level)],
        plan.split,
        rng,
        doc_name=scene.kind.name,
        doc_article=scene.kind.article,
    )
    meta = _doc_meta(plan, scene, font, response, blank=None)
    return Draft(image, scene.prompt.text, response.text, privacy, level, meta)


def _safe_doc_draft(
    scene: DocumentScene, plan: UnitPlan, src: Sources, rng: np.random.Generator, key: str
) -> Draft:
    safe = docs.safe_document(scene.kind, rng)
    image, font = _render_doc(safe.content, scene, src, plan.split)
    response = filled_response(
        response_set("document_blank" if safe.blank else "document_safe"),
        plan.split,
        rng,
        doc_name=safe.name,
        doc_article=safe.article,
        content=docs.describe_content(safe.content, safe.blank),
    )
    meta = _doc_meta(plan, scene, font, response, blank=safe.blank)
    return Draft(image, scene.prompt.text, response.text, src.taxonomy.safe_type, 0, meta, key)


def build_document(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(e) a document with invented personal data (privacy) or without (safe); as a pair,
    both in the same layout with the same prompt."""
    kind = pick(rng, src.doc_kinds)
    pair = plan.kind == "pair_document"
    personal = pair or rng.random() < 0.55
    group_name, group = choose_prompt_group("document", rng, safe_only=pair or not personal)
    prompt = choose_variant(group, plan.split, rng)
    background = choose_background(plan.split, rng)[0] if rng.random() < 0.5 else None
    seed, size = int(rng.integers(2**31)), choose_image_size(rng)
    scene = DocumentScene(kind, group_name, group, prompt, seed, size, background)
    drafts = []
    if personal:
        drafts.append(_personal_draft(scene, plan, src, rng))
    if pair or not personal:
        drafts.append(_safe_doc_draft(scene, plan, src, rng, key="b" if pair else "a"))
    return drafts
