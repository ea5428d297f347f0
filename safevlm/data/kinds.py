"""Record kinds of the generated set, one builder each: typographic requests, photos with
prompts, documents, emoji scenes and their contrastive pairs; labels and target answers.

Owns what one generation unit draws, renders and labels; not planning or files (`generate`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from safevlm.data import documents as docs
from safevlm.data import render
from safevlm.data.fonts import FontSpec, discover_fonts, emoji_font_path
from safevlm.data.photos import PhotoSpec, backgrounds_for_split, load_photo, photos_for_split
from safevlm.data.schema import DataError
from safevlm.data.texts import (
    Pair,
    Request,
    Variant,
    check_text_data,
    choose_phrasing,
    choose_variant,
    fill_template,
    load_benign_requests,
    load_data_file,
    load_pairs,
    load_phrasings,
    load_risky_requests,
    phrase,
    prompt_set,
    refusal_variants,
    response_set,
    second_person,
    stratified_splits,
)
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
LIST_SHARE = 0.3  # non-FigStep layouts that also show the empty numbered list
PREFERRED_STYLE_SHARE = 0.75
IMAGE_SIZES = (320, 512)


# ---------------------------------------------------------------- sources


@dataclass(frozen=True)
class EmojiScene:
    id: str
    emojis: tuple[str, ...]
    names: tuple[str, ...]
    type: str  # the safe type for everyday and edgy scenes
    split: str


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


def load_emoji_scenes(taxonomy: Taxonomy) -> list[EmojiScene]:
    """Emoji scenes of emoji.json; each group is split (test or train) by rank of hash."""
    data = load_data_file("emoji.json")
    scenes = []
    for group in ("risky", "everyday", "edgy"):
        splits = stratified_splits([f"emoji:{item['id']}" for item in data[group]])
        for item, split in zip(data[group], splits, strict=True):
            type_name = item.get("type", taxonomy.safe_type)
            if type_name not in taxonomy.types:
                raise DataError(f"emoji.json: scene {item['id']!r} has unknown type {type_name!r}")
            names = tuple(data["names"][e] for e in item["emojis"])
            # Scenes are few: val shares the train scenes.
            split = "test" if split == "test" else "train"
            scenes.append(EmojiScene(item["id"], tuple(item["emojis"]), names, type_name, split))
    return scenes


def pick(rng: np.random.Generator, options: Sequence):
    """A uniformly drawn item; DataError for an empty pool."""
    if not options:
        raise DataError("nothing to choose from (an empty source pool)")
    return options[int(rng.integers(len(options)))]


def _in_split(items: Sequence, split: str) -> list:
    """Items of a split; val falls back to train when a small source has no val items."""
    chosen = [item for item in items if item.split == split]
    if not chosen and split == "val":
        chosen = [item for item in items if item.split == "train"]
    return chosen


# ---------------------------------------------------------------- units


@dataclass(frozen=True)
class UnitPlan:
    index: int
    kind: str
    split: str
    target: tuple[str, int] | None  # (type, level) asked of single risky kinds, round-robin

    @property
    def size(self) -> int:
        return 2 if self.kind in PAIR_KINDS else 1


# ---------------------------------------------------------------- building blocks


@dataclass
class Draft:
    """A record before its image is saved; `image` may be shared by both halves of a pair."""

    image: Image.Image
    prompt: str
    response: str
    type: str
    level: int
    meta: dict
    image_key: str = "a"


def _held_out(**flags: bool) -> list[str]:
    return sorted(name for name, on in flags.items() if on)


def _choose_risky(
    src: Sources, split: str, target: tuple[str, int] | None, rng: np.random.Generator
) -> Request:
    pool = _in_split(src.risky, split)
    if target:
        exact = [r for r in pool if (r.type, r.level) == target]
        same_type = [r for r in pool if r.type == target[0]]
        pool = exact or same_type or pool
    return pick(rng, pool)


def _choose_benign(src: Sources, split: str, rng: np.random.Generator) -> Request:
    family = "edgy" if rng.random() < 0.5 else "everyday"
    return pick(rng, [r for r in _in_split(src.benign, split) if r.family == family])


def _choose_pair(
    src: Sources, split: str, target: tuple[str, int] | None, rng: np.random.Generator
) -> Pair:
    pool = _in_split(src.pairs, split)
    if target:
        pool = [p for p in pool if p.type == target[0]] or pool
    return pick(rng, pool)


def _choose_font(src: Sources, split: str, style: str | None, rng) -> FontSpec:
    pool = [f for f in src.fonts if f.held_out == (split == "test")]
    if style and rng.random() < PREFERRED_STYLE_SHARE:
        pool = [f for f in pool if f.style == style] or pool
    return pick(rng, pool)


def _choose_layout(split: str, rng: np.random.Generator) -> render.Layout:
    layouts = render.layouts_for_split(split)
    # FigStep's plain layout is the attack to beat: give it a larger share.
    weights = np.array([3.0 if lay.name == "figstep" else 1.0 for lay in layouts])
    if split == "test":
        weights = np.array(
            [w * (2.0 if lay.held_out else 1.0) for w, lay in zip(weights, layouts, strict=True)]
        )
    return layouts[int(rng.choice(len(layouts), p=weights / weights.sum()))]


def _choose_background(
    split: str, rng: np.random.Generator
) -> tuple[Image.Image | None, PhotoSpec | None]:
    pool = backgrounds_for_split(split)
    if not pool:
        return None, None
    spec = pick(rng, pool)
    return load_photo(spec.id), spec


def _image_size(rng: np.random.Generator) -> int:
    return int(rng.integers(IMAGE_SIZES[0] // 32, IMAGE_SIZES[1] // 32 + 1)) * 32


def _response(variants, split: str, rng, **values: str) -> Variant:
    chosen = choose_variant(variants, split, rng)
    return Variant(fill_template(chosen.text, values), chosen.held_out)


def refusal_response(type_name: str, level: int, split: str, rng) -> Variant:
    return choose_variant(refusal_variants(type_name, level), split, rng)


def helpful_response(request: Request, title: str, split: str, rng, as_list: bool) -> Variant:
    if request.form == "action":
        name = "list_completion" if as_list else "helpful_action"
        return _response(response_set(name), split, rng, action=second_person(request.text))
    return _response(response_set("helpful_title"), split, rng, title=title)


# ---------------------------------------------------------------- typographic kinds


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


def _typo_scene(split: str, rng: np.random.Generator) -> TypoScene:
    layout = _choose_layout(split, rng)
    background, spec = _choose_background(split, rng) if layout.uses_background else (None, None)
    has_list = layout.list_always or rng.random() < LIST_SHARE
    return TypoScene(
        layout,
        _image_size(rng),
        background,
        spec,
        has_list,
        int(rng.integers(2**31)),
        int(rng.integers(2**31)),
    )


def _render_typo(scene: TypoScene, font: FontSpec, title: str) -> tuple[Image.Image, str]:
    """The rendered image and the text it shows (title, then the list when there is one)."""
    shown = f"{title}\n{render.EMPTY_LIST}" if scene.has_list else title
    # Layouts that always show the list draw it themselves.
    text = title if scene.layout.list_always else shown
    image = scene.layout.render(
        text,
        np.random.default_rng(scene.layout_seed),
        font,
        scene.size,
        background=scene.background,
    )
    strength = 0.3 if scene.layout.name == "figstep" else 1.0
    image = render.augment(image, np.random.default_rng(scene.augment_seed), strength)
    return image, shown


def _typo_prompt(scene: TypoScene, split: str, rng) -> tuple[Variant, bool]:
    as_list = scene.has_list and rng.random() < 0.6
    return choose_variant(
        prompt_set("list_completion" if as_list else "follow_text"), split, rng
    ), as_list


def _typo_meta(
    kind: str,
    scene: TypoScene,
    font: FontSpec,
    request: Request,
    phrasing,
    title: str,
    shown: str,
    prompt: Variant,
    response: Variant,
) -> dict:
    return {
        "kind": kind,
        "layout": scene.layout.name,
        "font": font.family,
        "font_file": Path(font.path).name,
        "phrasing": phrasing.id if phrasing else "as_written",
        "request": title,
        "request_id": request.id,
        "request_split": request.split,
        "image_text": shown,
        "background": scene.background_spec and scene.background_spec.id,
        "response_kind": "helpful" if request.level == 0 else "refusal",
        "held_out": _held_out(
            font=font.held_out,
            layout=scene.layout.held_out,
            background=bool(scene.background_spec and scene.background_spec.held_out),
            phrasing=bool(phrasing and phrasing.held_out),
            prompt=prompt.held_out,
            response=response.held_out,
        ),
    }


def build_typo(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(a) risky or (b) benign/edgy title rendered in a layout + an innocent prompt."""
    risky = plan.kind == "typo_risky"
    request = (
        _choose_risky(src, plan.split, plan.target, rng)
        if risky
        else _choose_benign(src, plan.split, rng)
    )
    phrasing = choose_phrasing(request, plan.split, rng)
    title = phrase(request, phrasing) if phrasing else request.text
    scene = _typo_scene(plan.split, rng)
    font = _choose_font(src, plan.split, scene.layout.font_style, rng)
    image, shown = _render_typo(scene, font, title)
    prompt, as_list = _typo_prompt(scene, plan.split, rng)
    response = (
        refusal_response(request.type, request.level, plan.split, rng)
        if risky
        else helpful_response(request, title, plan.split, rng, as_list)
    )
    meta = _typo_meta(plan.kind, scene, font, request, phrasing, title, shown, prompt, response)
    return [Draft(image, prompt.text, response.text, request.type, request.level, meta)]


def build_pair_typo(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(g) one benign and one harmful wording in the same layout, font and background."""
    pair = _choose_pair(src, plan.split, plan.target, rng)
    phrasing = choose_phrasing(
        max((pair.benign, pair.harmful), key=lambda r: len(r.text)), plan.split, rng
    )
    scene = _typo_scene(plan.split, rng)
    font = _choose_font(src, plan.split, scene.layout.font_style, rng)
    prompt, as_list = _typo_prompt(scene, plan.split, rng)
    drafts = []
    for key, request in (("a", pair.benign), ("b", pair.harmful)):
        title = phrase(request, phrasing)
        image, shown = _render_typo(scene, font, title)
        harmful = request is pair.harmful
        response = (
            refusal_response(request.type, request.level, plan.split, rng)
            if harmful
            else helpful_response(request, title, plan.split, rng, as_list)
        )
        meta = _typo_meta(plan.kind, scene, font, request, phrasing, title, shown, prompt, response)
        meta["pair"] = pair.id
        drafts.append(
            Draft(
                image, prompt.text, response.text, request.type, request.level, meta, image_key=key
            )
        )
    return drafts


# ---------------------------------------------------------------- photo kinds


def _photo_image(split: str, rng: np.random.Generator) -> tuple[Image.Image, PhotoSpec]:
    spec = pick(rng, photos_for_split(split))
    image = render.render_photo(load_photo(spec.id), rng, _image_size(rng))
    return render.augment(image, rng, 0.4), spec


def _photo_meta(kind: str, spec: PhotoSpec, extra: dict, held_out: dict[str, bool]) -> dict:
    return {
        "kind": kind,
        "photo": spec.id,
        **extra,
        "held_out": _held_out(photo=spec.held_out, **held_out),
    }


def build_photo_risky(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(c) a clean photo with a risky request as the text prompt."""
    image, spec = _photo_image(plan.split, rng)
    request = _choose_risky(src, plan.split, plan.target, rng)
    phrasing = choose_phrasing(request, plan.split, rng)
    title = phrase(request, phrasing) if phrasing else request.text
    response = refusal_response(request.type, request.level, plan.split, rng)
    meta = _photo_meta(
        plan.kind,
        spec,
        {
            "request": title,
            "request_id": request.id,
            "request_split": request.split,
            "phrasing": phrasing.id if phrasing else "as_written",
            "response_kind": "refusal",
        },
        {"phrasing": bool(phrasing and phrasing.held_out), "response": response.held_out},
    )
    return [Draft(image, title, response.text, request.type, request.level, meta)]


def build_photo_benign(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(d) a clean photo with an ordinary prompt (caption answer) or a benign request."""
    image, spec = _photo_image(plan.split, rng)
    safe = src.taxonomy.safe_type
    if rng.random() < 0.6:
        prompt = choose_variant(prompt_set("ordinary"), plan.split, rng)
        caption = spec.caption or "A photo."
        response = _response(
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
    request = _choose_benign(src, plan.split, rng)
    phrasing = choose_phrasing(request, plan.split, rng)
    title = phrase(request, phrasing) if phrasing else request.text
    response = helpful_response(request, title, plan.split, rng, as_list=False)
    meta = _photo_meta(
        plan.kind,
        spec,
        {
            "request": title,
            "request_id": request.id,
            "request_split": request.split,
            "phrasing": phrasing.id if phrasing else "as_written",
            "response_kind": "helpful",
        },
        {"phrasing": bool(phrasing and phrasing.held_out), "response": response.held_out},
    )
    return [Draft(image, title, response.text, safe, 0, meta)]


def build_pair_prompt(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(g) the same photo asked once with the benign and once with the harmful wording."""
    image, spec = _photo_image(plan.split, rng)
    pair = _choose_pair(src, plan.split, plan.target, rng)
    phrasing = choose_phrasing(
        max((pair.benign, pair.harmful), key=lambda r: len(r.text)), plan.split, rng
    )
    drafts = []
    for request in (pair.benign, pair.harmful):
        title = phrase(request, phrasing)
        harmful = request is pair.harmful
        response = (
            refusal_response(request.type, request.level, plan.split, rng)
            if harmful
            else helpful_response(request, title, plan.split, rng, as_list=False)
        )
        meta = _photo_meta(
            plan.kind,
            spec,
            {
                "request": title,
                "request_id": request.id,
                "request_split": request.split,
                "phrasing": phrasing.id,
                "pair": pair.id,
                "response_kind": "refusal" if harmful else "helpful",
            },
            {"phrasing": phrasing.held_out, "response": response.held_out},
        )
        drafts.append(Draft(image, title, response.text, request.type, request.level, meta))
    return drafts


# ---------------------------------------------------------------- documents


def _doc_prompt_group(rng: np.random.Generator, safe_only: bool) -> tuple[str, dict]:
    groups = {k: v for k, v in prompt_set("document").items() if not k.startswith("_")}
    names = [k for k, v in groups.items() if v["safe_ok"] or not safe_only]
    name = pick(rng, names)
    return name, groups[name]


def _render_doc(
    content: render.DocumentContent,
    src: Sources,
    split: str,
    seed: int,
    size: int,
    background: Image.Image | None,
) -> tuple[Image.Image, FontSpec]:
    rng = np.random.default_rng(seed)
    font = _choose_font(src, split, "sans", rng)
    image = render.render_document(content, rng, font, size, background)
    return render.augment(image, rng, 0.6), font


def _personal_draft(
    kind: docs.DocumentKind,
    group_name: str,
    group: dict,
    prompt: Variant,
    plan: UnitPlan,
    src: Sources,
    rng,
    scene: tuple,
) -> Draft:
    privacy = load_data_file("documents.json")["risk_type"]
    level = min(int(group["level"]), src.taxonomy.max_level)
    content = docs.personal_document(kind, rng)
    image, font = _render_doc(content, src, plan.split, *scene)
    response = _response(
        response_set("document_privacy")[str(level)],
        plan.split,
        rng,
        doc_name=kind.name,
        doc_article=kind.article,
    )
    meta = {
        "kind": plan.kind,
        "document": kind.key,
        "personal_data": True,
        "prompt_group": group_name,
        "font": font.family,
        "response_kind": "refusal",
        "held_out": _held_out(
            font=font.held_out, prompt=prompt.held_out, response=response.held_out
        ),
    }
    return Draft(image, prompt.text, response.text, privacy, level, meta)


def _safe_doc_draft(
    kind: docs.DocumentKind,
    group_name: str,
    prompt: Variant,
    plan: UnitPlan,
    src: Sources,
    rng,
    scene: tuple,
    key: str = "a",
) -> Draft:
    safe = docs.safe_document(kind, rng)
    image, font = _render_doc(safe.content, src, plan.split, *scene)
    content = docs.describe_content(safe.content, safe.blank)
    set_name = "document_blank" if safe.blank else "document_safe"
    response = _response(
        response_set(set_name),
        plan.split,
        rng,
        doc_name=safe.name,
        doc_article=safe.article,
        content=content,
    )
    meta = {
        "kind": plan.kind,
        "document": kind.key,
        "personal_data": False,
        "blank": safe.blank,
        "prompt_group": group_name,
        "font": font.family,
        "response_kind": "read_out",
        "held_out": _held_out(
            font=font.held_out, prompt=prompt.held_out, response=response.held_out
        ),
    }
    return Draft(image, prompt.text, response.text, src.taxonomy.safe_type, 0, meta, key)


def build_document(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(e) a document with invented personal data (privacy) or without (safe); as a pair,
    both in the same layout with the same prompt."""
    kind = pick(rng, src.doc_kinds)
    pair = plan.kind == "pair_document"
    personal = pair or rng.random() < 0.55
    group_name, group = _doc_prompt_group(rng, safe_only=pair or not personal)
    prompt = choose_variant(group, plan.split, rng)
    background = _choose_background(plan.split, rng)[0] if rng.random() < 0.5 else None
    scene = (int(rng.integers(2**31)), _image_size(rng), background)
    drafts = []
    if personal:
        drafts.append(_personal_draft(kind, group_name, group, prompt, plan, src, rng, scene))
    if pair or not personal:
        drafts.append(
            _safe_doc_draft(
                kind, group_name, prompt, plan, src, rng, scene, key="b" if pair else "a"
            )
        )
    return drafts


# ---------------------------------------------------------------- emoji


def _emoji_group(rng: np.random.Generator, safe_only: bool) -> tuple[str, dict]:
    groups = {k: v for k, v in prompt_set("emoji").items() if not k.startswith("_")}
    names = [k for k, v in groups.items() if v["safe_ok"] or not safe_only]
    name = pick(rng, names)
    return name, groups[name]


def _emoji_draft(
    scene: EmojiScene,
    group_name: str,
    group: dict,
    prompt: Variant,
    plan: UnitPlan,
    src: Sources,
    rng,
    seed: int,
    size: int,
    key: str,
) -> Draft:
    image = render.render_emoji_scene(
        scene.emojis, np.random.default_rng(seed), src.emoji_font, size
    )
    items = (
        ", ".join(scene.names[:-1]) + (" and " if len(scene.names) > 1 else "") + scene.names[-1]
    )
    if scene.type == src.taxonomy.safe_type:
        level, response = 0, _response(response_set("emoji_safe"), plan.split, rng, items=items)
    else:
        level = min(int(group["level"]), src.taxonomy.max_level)
        response = (
            _response(response_set("emoji_risky_describe"), plan.split, rng, items=items)
            if level == 1
            else refusal_response(scene.type, level, plan.split, rng)
        )
    meta = {
        "kind": plan.kind,
        "scene": scene.id,
        "prompt_group": group_name,
        "response_kind": "refusal" if level else "describe",
        "held_out": _held_out(
            scene=scene.split == "test", prompt=prompt.held_out, response=response.held_out
        ),
    }
    return Draft(image, prompt.text, response.text, scene.type, level, meta, key)


def build_emoji(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(f) emoji scenes: risky combinations (weapons, drugs) or everyday/edgy ones; as a pair,
    a risky and a safe scene asked the same question."""
    scenes = _in_split(src.emoji_scenes, "test" if plan.split == "test" else "train")
    risky = [s for s in scenes if s.type != src.taxonomy.safe_type]
    safe = [s for s in scenes if s.type == src.taxonomy.safe_type]
    pair = plan.kind == "emoji_pair"
    chosen = (
        [pick(rng, risky), pick(rng, safe)]
        if pair
        else [pick(rng, risky if rng.random() < 0.55 else safe)]
    )
    only_safe_prompts = pair or chosen[0].type == src.taxonomy.safe_type
    group_name, group = _emoji_group(rng, only_safe_prompts)
    prompt = choose_variant(group, plan.split, rng)
    seed, size = int(rng.integers(2**31)), _image_size(rng)
    return [
        _emoji_draft(scene, group_name, group, prompt, plan, src, rng, seed, size, key)
        for scene, key in zip(chosen, "ab"[: len(chosen)], strict=True)
    ]


BUILDERS = {
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
