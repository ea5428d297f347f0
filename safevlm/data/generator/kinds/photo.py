"""Photo record kinds: a clean real photo asked a risky request, an ordinary question or a
benign request, and the pair that asks the same photo both wordings of a request.

Owns what a photo unit draws and labels; the crops are `render.scenes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from safevlm.data.generator import render
from safevlm.data.generator.kinds.answers import filled_response, request_response
from safevlm.data.generator.kinds.draws import (
    Draft,
    choose_benign,
    choose_image_size,
    choose_pair,
    choose_pair_phrasing,
    choose_risky,
    choose_title,
    held_out,
    pick,
    request_meta,
)
from safevlm.data.generator.photos import PhotoSpec, load_photo, photos_for_split
from safevlm.data.generator.texts import (
    Phrasing,
    Request,
    choose_variant,
    phrase,
    prompt_set,
    response_set,
)

if TYPE_CHECKING:
    from safevlm.data.generator.kinds import Sources, UnitPlan


def _photo_image(split: str, rng: np.random.Generator) -> tuple[Image.Image, PhotoSpec]:
    spec = pick(rng, photos_for_split(split))
    image = render.render_photo(load_photo(spec.id), rng, choose_image_size(rng))
    return render.augment(image, rng, 0.4), spec


def _photo_meta(kind: str, spec: PhotoSpec, extra: dict, held_out_flags: dict[str, bool]) -> dict:
    return {
        "kind": kind,
        "photo": spec.id,
        **extra,
        "held_out": held_out(photo=spec.held_out, **held_out_flags),
    }


def _request_draft(
    plan: UnitPlan,
    photo: tuple[Image.Image, PhotoSpec],
    request: Request,
    phrasing: Phrasing | None,
    title: str,
    refuse: bool,
    labels: tuple[str, int],
    rng: np.random.Generator,
    extra: dict | None = None,
) -> Draft:
    """The photo with the request as its prompt, answered with a refusal or helpfully."""
    image, spec = photo
    response = request_response(request, title, refuse, plan.split, rng, as_list=False)
    meta = _photo_meta(
        plan.kind,
        spec,
        {
            **request_meta(request, title, phrasing),
            **(extra or {}),
            "response_kind": "refusal" if refuse else "helpful",
        },
        {"phrasing": bool(phrasing and phrasing.held_out), "response": response.held_out},
    )
    return Draft(image, title, response.text, *labels, meta)


def build_photo_risky(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(c) a clean photo with a risky request as the text prompt."""
    photo = _photo_image(plan.split, rng)
    request = choose_risky(src, plan.split, plan.target, rng)
    phrasing, title = choose_title(request, plan.split, rng)
    labels = (request.type, request.level)
    return [_request_draft(plan, photo, request, phrasing, title, True, labels, rng)]


def build_photo_benign(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(d) a clean photo with an ordinary prompt (caption answer) or a benign request."""
    image, spec = photo = _photo_image(plan.split, rng)
    safe = src.taxonomy.safe_type
    if rng.random() < 0.6:
        prompt = choose_variant(prompt_set("ordinary"), plan.split, rng)
        caption = spec.caption or "A photo."
        response = filled_response(
            response_set("describe_photo"),
            plan.split,
            rng,
            caption=caption,
            caption_lc=caption[:1].lower() + caption[1:],
        )
        meta = _photo_meta(
            plan.kind,
            spec,
            {"response_kind": "caption"},
            {"prompt": prompt.held_out, "response": response.held_out},
        )
        return [Draft(image, prompt.text, response.text, safe, 0, meta)]
    request = choose_benign(src, plan.split, rng)
    phrasing, title = choose_title(request, plan.split, rng)
    return [_request_draft(plan, photo, request, phrasing, title, False, (safe, 0), rng)]


def build_pair_prompt(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(g) the same photo asked once with the benign and once with the harmful wording."""
    photo = _photo_image(plan.split, rng)
    pair = choose_pair(src, plan.split, plan.target, rng)
    phrasing = choose_pair_phrasing(pair, plan.split, rng)
    drafts = []
    for request in (pair.benign, pair.harmful):
        title = phrase(request, phrasing)
        harmful = request is pair.harmful
        labels = (request.type, request.level)
        extra = {"pair": pair.id}
        drafts.append(
            _request_draft(plan, photo, request, phrasing, title, harmful, labels, rng, extra)
        )
    return drafts
