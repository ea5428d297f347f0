"""The seeded draws every record kind shares: a request, pair, phrasing, font, layout,
background, image size or prompt group for a split; and the `Draft` a kind returns.

Owns choosing from the loaded sources (held-out items only in test); not what a kind does
with them (the kind modules) nor the target answers (`answers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from safevlm.data.generator import render
from safevlm.data.generator.fonts import FontSpec
from safevlm.data.generator.photos import PhotoSpec, backgrounds_for_split, load_photo
from safevlm.data.generator.texts import (
    Pair,
    Phrasing,
    Request,
    choose_phrasing,
    phrase,
    prompt_set,
)
from safevlm.data.schema import DataError

if TYPE_CHECKING:
    from safevlm.data.generator.kinds import Sources

PREFERRED_STYLE_SHARE = 0.75
IMAGE_SIZES = (320, 512)


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


def held_out(**flags: bool) -> list[str]:
    """The names of the held-out dimensions a record uses, for its meta "held_out"."""
    return sorted(name for name, on in flags.items() if on)


def pick(rng: np.random.Generator, options: Sequence):
    """A uniformly drawn item; DataError for an empty pool."""
    if not options:
        raise DataError("nothing to choose from (an empty source pool)")
    return options[int(rng.integers(len(options)))]


def in_split(items: Sequence, split: str) -> list:
    """Items of a split; val falls back to train when a small source has no val items."""
    chosen = [item for item in items if item.split == split]
    if not chosen and split == "val":
        chosen = [item for item in items if item.split == "train"]
    return chosen


# ---------------------------------------------------------------- requests and wording


def choose_risky(
    src: Sources, split: str, target: tuple[str, int] | None, rng: np.random.Generator
) -> Request:
    pool = in_split(src.risky, split)
    if target:
        exact = [r for r in pool if (r.type, r.level) == target]
        same_type = [r for r in pool if r.type == target[0]]
        pool = exact or same_type or pool
    return pick(rng, pool)


def choose_benign(src: Sources, split: str, rng: np.random.Generator) -> Request:
    family = "edgy" if rng.random() < 0.5 else "everyday"
    return pick(rng, [r for r in in_split(src.benign, split) if r.family == family])


def choose_pair(
    src: Sources, split: str, target: tuple[str, int] | None, rng: np.random.Generator
) -> Pair:
    pool = in_split(src.pairs, split)
    if target:
        pool = [p for p in pool if p.type == target[0]] or pool
    return pick(rng, pool)


def choose_title(
    request: Request, split: str, rng: np.random.Generator
) -> tuple[Phrasing | None, str]:
    """A phrasing for the request (None for titles) and the title it gives."""
    phrasing = choose_phrasing(request, split, rng)
    return phrasing, phrase(request, phrasing) if phrasing else request.text


def choose_pair_phrasing(pair: Pair, split: str, rng: np.random.Generator) -> Phrasing:
    """One phrasing for both halves, chosen so that the longer wording still fits."""
    longer = max((pair.benign, pair.harmful), key=lambda r: len(r.text))
    return choose_phrasing(longer, split, rng)


def request_meta(request: Request, title: str, phrasing: Phrasing | None) -> dict:
    return {
        "request": title,
        "request_id": request.id,
        "request_split": request.split,
        "phrasing": phrasing.id if phrasing else "as_written",
    }


def choose_prompt_group(
    set_name: str, rng: np.random.Generator, safe_only: bool
) -> tuple[str, dict]:
    """A named prompt group of prompts.json[set_name]; only "safe_ok" ones when asked."""
    groups = {k: v for k, v in prompt_set(set_name).items() if not k.startswith("_")}
    names = [k for k, v in groups.items() if v["safe_ok"] or not safe_only]
    name = pick(rng, names)
    return name, groups[name]


# ---------------------------------------------------------------- pixels


def choose_font(src: Sources, split: str, style: str | None, rng: np.random.Generator) -> FontSpec:
    pool = [f for f in src.fonts if f.held_out == (split == "test")]
    if style and rng.random() < PREFERRED_STYLE_SHARE:
        pool = [f for f in pool if f.style == style] or pool
    return pick(rng, pool)


def choose_layout(split: str, rng: np.random.Generator) -> render.Layout:
    layouts = render.layouts_for_split(split)
    # FigStep's plain layout is the attack to beat: give it a larger share.
    weights = np.array([3.0 if lay.name == "figstep" else 1.0 for lay in layouts])
    if split == "test":
        weights = np.array(
            [w * (2.0 if lay.held_out else 1.0) for w, lay in zip(weights, layouts, strict=True)]
        )
    return layouts[int(rng.choice(len(layouts), p=weights / weights.sum()))]


def choose_background(
    split: str, rng: np.random.Generator
) -> tuple[Image.Image | None, PhotoSpec | None]:
    pool = backgrounds_for_split(split)
    if not pool:
        return None, None
    spec = pick(rng, pool)
    return load_photo(spec.id), spec


def choose_image_size(rng: np.random.Generator) -> int:
    return int(rng.integers(IMAGE_SIZES[0] // 32, IMAGE_SIZES[1] // 32 + 1)) * 32
