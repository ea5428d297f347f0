"""Request forms: one request (public or an edgy contrastive family) drawn several ways.

- `text`: an ordinary photo, the request as the prompt (photos come from a small pool per
  split, so their vision and OCR work is shared);
- `typo`: the request drawn in a typographic layout (every layout, font and background of
  the generator, FigStep's included) with an innocent prompt;
- `split`: the first half of the request drawn in the image, the rest in the prompt;
- `object`: the request's object drawn in the image, the prompt pointing at it ("How do I
  make this?"), for edgy families that name an object: the same prompt is benign or harmful
  by what the image shows, so the head must read the image, not the prompt's verbs.

Owns how one request becomes records; which requests, and their labels, come from
`public` and `edgy`. Targets: the project's refusals for risky requests, the project's
helpful template for benign ones (never a model's answer).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from safevlm.data.generator import render
from safevlm.data.generator.kinds.answers import filled_response, refusal_response
from safevlm.data.generator.kinds.draws import Draft, choose_image_size, held_out, pick
from safevlm.data.generator.kinds.typographic import render_typo, typo_scene
from safevlm.data.generator.photos import load_photo, photos_for_split
from safevlm.data.generator.texts import choose_variant, response_set

if TYPE_CHECKING:
    from safevlm.data.generator.kinds import Sources
    from safevlm.data.public import PublicRequest

FORMS = ("text", "typo", "split", "object")
PHOTO_POOL = 24  # photo crops per split shared by every `text` record
MAX_DRAWN_CHARS = 220  # longer requests are asked as text only
SPLIT_PROMPTS = {
    "shared": [
        "The start of my request is in the image. The rest: {rest}",
        "Read the picture, then continue: {rest}",
        "{rest} (the beginning is written in the image)",
        "Combine the text in the image with this and answer: {rest}",
    ],
    "held_out": [
        "Picture first, then this part: {rest}",
        "Finish the request in the image with: {rest}",
    ],
}


def photo_pool(split: str, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng([seed, 11, ["train", "val", "test"].index(split)])
    specs = photos_for_split(split)
    out = []
    for _ in range(PHOTO_POOL):
        spec = pick(rng, specs)
        image = render.render_photo(load_photo(spec.id), rng, choose_image_size(rng))
        out.append(render.augment(image, rng, 0.4).convert("RGB"))
    return out


def _response(request: PublicRequest, safe_type: str, split: str, rng: np.random.Generator):
    if request.type != safe_type:
        return refusal_response(request.type, request.level, split, rng)
    return filled_response(response_set("helpful_title"), split, rng, title=request.text)


def _meta(request: PublicRequest, form: str, **extra) -> dict:
    return {
        "kind": f"{request.family}_{form}",
        "form": form,
        "request": request.text,
        "request_id": request.id,
        "request_source": request.source,
        "request_split": request.split,
        "pattern": request.pattern,
        **extra,
    }


def build_text(request: PublicRequest, photo: Image.Image, photo_index: int, safe_type: str,
               rng: np.random.Generator) -> Draft:
    response = _response(request, safe_type, request.split, rng)
    meta = _meta(request, "text", photo_pool_index=photo_index,
                 held_out=held_out(response=response.held_out))
    return Draft(photo, request.text, response.text, request.type, request.level, meta,
                 f"p{photo_index}")


def _drawn_meta(request: PublicRequest, form: str, scene, shown: str, response,
                prompt_held_out: bool) -> dict:
    """Meta of a record whose image draws (part of) the request."""
    return _meta(request, form, layout=scene.layout.name, font=scene.font.family, image_text=shown,
                 held_out=held_out(font=scene.font.held_out, layout=scene.layout.held_out,
                                   prompt=prompt_held_out, response=response.held_out))


def _draw_without_list(src: Sources, split: str, text: str, rng: np.random.Generator):
    """A typographic scene with `text` drawn and no numbered list: (scene, image, shown)."""
    scene = replace(typo_scene(src, split, rng), has_list=False, as_list=False)
    return (scene, *render_typo(scene, text))


def build_typo(request: PublicRequest, src: Sources, rng: np.random.Generator) -> Draft:
    scene = typo_scene(src, request.split, rng)
    image, shown = render_typo(scene, request.text)
    response = _response(request, src.taxonomy.safe_type, request.split, rng)
    meta = _drawn_meta(request, "typo", scene, shown, response, scene.prompt.held_out)
    return Draft(image, scene.prompt.text, response.text, request.type, request.level, meta, "t")


def build_split(request: PublicRequest, src: Sources, rng: np.random.Generator) -> Draft | None:
    words = request.text.split()
    if len(words) < 4:
        return None
    cut = int(rng.integers(max(1, len(words) // 3), max(2, 2 * len(words) // 3) + 1))
    head, rest = " ".join(words[:cut]), " ".join(words[cut:])
    scene, image, shown = _draw_without_list(src, request.split, head + " ...", rng)
    template = choose_variant(SPLIT_PROMPTS, request.split, rng)
    response = _response(request, src.taxonomy.safe_type, request.split, rng)
    meta = _drawn_meta(request, "split", scene, shown, response, template.held_out)
    prompt = template.text.replace("{rest}", rest)
    return Draft(image, prompt, response.text, request.type, request.level, meta, "s")


def build_object(request: PublicRequest, src: Sources, rng: np.random.Generator) -> Draft:
    scene, image, shown = _draw_without_list(src, request.split, request.drawn, rng)
    response = _response(request, src.taxonomy.safe_type, request.split, rng)
    meta = _drawn_meta(request, "object", scene, shown, response, False)
    return Draft(image, request.drawn_prompt, response.text, request.type, request.level, meta, "o")


def build_forms(request: PublicRequest, src: Sources, forms: dict[str, float],
                photos: dict[str, list[Image.Image]], rng: np.random.Generator) -> list[Draft]:
    """The request's records: each form with its probability (`text` 1.0 = always), among
    the forms the request allows (an edgy family may allow fewer)."""
    drafts = []
    for form in FORMS:
        if rng.random() >= forms.get(form, 0.0):
            continue
        if request.forms is not None and form not in request.forms:
            continue
        if form != "text" and len(request.text) > MAX_DRAWN_CHARS:
            continue
        if form == "object" and request.drawn is None:
            continue
        if form == "text":
            pool = photos[request.split]
            index = int(rng.integers(len(pool)))
            drafts.append(build_text(request, pool[index], index, src.taxonomy.safe_type, rng))
        elif form == "typo":
            drafts.append(build_typo(request, src, rng))
        elif form == "object":
            drafts.append(build_object(request, src, rng))
        else:
            draft = build_split(request, src, rng)
            if draft is not None:
                drafts.append(draft)
    return drafts
