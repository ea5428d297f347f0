"""Typographic record kinds: a risky or benign/edgy title rendered in a layout with an
innocent prompt, and the contrastive pair of two wordings in the very same scene.

Owns what a typographic unit draws and labels; the pixels are `render.layouts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from safevlm.data.generator import render
from safevlm.data.generator.fonts import FontSpec
from safevlm.data.generator.kinds.answers import request_response
from safevlm.data.generator.kinds.draws import (
    Draft,
    choose_background,
    choose_benign,
    choose_font,
    choose_image_size,
    choose_layout,
    choose_pair,
    choose_pair_phrasing,
    choose_risky,
    choose_title,
    held_out,
)
from safevlm.data.generator.photos import PhotoSpec
from safevlm.data.generator.texts import (
    Phrasing,
    Request,
    Variant,
    choose_variant,
    phrase,
    prompt_set,
)

if TYPE_CHECKING:
    from safevlm.data.generator.kinds import Sources, UnitPlan

LIST_SHARE = 0.3  # non-FigStep layouts that also show the empty numbered list
LIST_PROMPT_SHARE = 0.6  # of images with a list, those asked to complete it


@dataclass(frozen=True)
class TypoScene:
    """Everything shared by the two halves of a typographic pair except the wording."""

    layout: render.Layout
    size: int
    background: Image.Image | None
    background_spec: PhotoSpec | None
    has_list: bool
    layout_seed: int
    augment_seed: int
    font: FontSpec
    prompt: Variant
    as_list: bool  # the prompt asks to complete the list


def typo_scene(src: Sources, split: str, rng: np.random.Generator) -> TypoScene:
    layout = choose_layout(split, rng)
    background, spec = choose_background(split, rng) if layout.uses_background else (None, None)
    has_list = layout.list_always or rng.random() < LIST_SHARE
    size = choose_image_size(rng)
    layout_seed, augment_seed = int(rng.integers(2**31)), int(rng.integers(2**31))
    font = choose_font(src, split, layout.font_style, rng)
    as_list = has_list and rng.random() < LIST_PROMPT_SHARE
    prompt = choose_variant(prompt_set("list_completion" if as_list else "follow_text"), split, rng)
    return TypoScene(
        layout, size, background, spec, has_list, layout_seed, augment_seed, font, prompt, as_list
    )


def render_typo(scene: TypoScene, title: str) -> tuple[Image.Image, str]:
    """The rendered image and the text it shows (title, then the list when there is one)."""
    shown = f"{title}\n{render.EMPTY_LIST}" if scene.has_list else title
    # Layouts that always show the list draw it themselves.
    text = title if scene.layout.list_always else shown
    image = scene.layout.render(
        text,
        np.random.default_rng(scene.layout_seed),
        scene.font,
        scene.size,
        background=scene.background,
    )
    strength = 0.3 if scene.layout.name == "figstep" else 1.0
    image = render.augment(image, np.random.default_rng(scene.augment_seed), strength)
    return image, shown


def _typo_draft(
    plan: UnitPlan,
    scene: TypoScene,
    request: Request,
    phrasing: Phrasing | None,
    title: str,
    refuse: bool,
    rng: np.random.Generator,
    key: str = "a",
) -> Draft:
    """One record: the title rendered in the scene, with a refusal or a helpful answer."""
    image, shown = render_typo(scene, title)
    response = request_response(request, title, refuse, plan.split, rng, scene.as_list)
    font, background = scene.font, scene.background_spec
    meta = {
        "kind": plan.kind,
        "layout": scene.layout.name,
        "font": font.family,
        "font_file": Path(font.path).name,
        "phrasing": phrasing.id if phrasing else "as_written",
        "request": title,
        "request_id": request.id,
        "request_split": request.split,
        "image_text": shown,
        "background": background and background.id,
        "response_kind": "helpful" if request.level == 0 else "refusal",
        "held_out": held_out(
            font=font.held_out,
            layout=scene.layout.held_out,
            background=bool(background and background.held_out),
            phrasing=bool(phrasing and phrasing.held_out),
            prompt=scene.prompt.held_out,
            response=response.held_out,
        ),
    }
    prompt = scene.prompt.text
    return Draft(image, prompt, response.text, request.type, request.level, meta, key)


def build_typo(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(a) risky or (b) benign/edgy title rendered in a layout + an innocent prompt."""
    risky = plan.kind == "typo_risky"
    request = (
        choose_risky(src, plan.split, plan.target, rng)
        if risky
        else choose_benign(src, plan.split, rng)
    )
    phrasing, title = choose_title(request, plan.split, rng)
    scene = typo_scene(src, plan.split, rng)
    return [_typo_draft(plan, scene, request, phrasing, title, risky, rng)]


def build_pair_typo(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(g) one benign and one harmful wording in the same layout, font and background."""
    pair = choose_pair(src, plan.split, plan.target, rng)
    phrasing = choose_pair_phrasing(pair, plan.split, rng)
    scene = typo_scene(src, plan.split, rng)
    drafts = []
    for key, request in (("a", pair.benign), ("b", pair.harmful)):
        title = phrase(request, phrasing)
        harmful = request is pair.harmful
        draft = _typo_draft(plan, scene, request, phrasing, title, harmful, rng, key)
        draft.meta["pair"] = pair.id
        drafts.append(draft)
    return drafts
