"""Emoji record kinds: risky emoji combinations (weapons, drugs) or everyday/edgy scenes
from emoji.json, alone or as a risky/safe pair asked the same question.

Owns the emoji scenes' loading, splits and labels; the pixels are `render.scenes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from safevlm.data.generator import render
from safevlm.data.generator.kinds.answers import filled_response, refusal_response
from safevlm.data.generator.kinds.draws import (
    Draft,
    choose_image_size,
    choose_prompt_group,
    held_out,
    in_split,
    pick,
)
from safevlm.data.generator.texts import Variant, choose_variant, response_set
from safevlm.data.schema import DataError, load_data_file
from safevlm.data.splits import stratified_splits
from safevlm.taxonomy import Taxonomy

if TYPE_CHECKING:
    from safevlm.data.generator.kinds import Sources, UnitPlan


@dataclass(frozen=True)
class EmojiScene:
    id: str
    emojis: tuple[str, ...]
    names: tuple[str, ...]
    type: str  # the safe type for everyday and edgy scenes
    split: str


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


def _emoji_draft(
    scene: EmojiScene,
    group_name: str,
    group: dict,
    prompt: Variant,
    plan: UnitPlan,
    src: Sources,
    rng: np.random.Generator,
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
        level = 0
        response = filled_response(response_set("emoji_safe"), plan.split, rng, items=items)
    else:
        level = min(int(group["level"]), src.taxonomy.max_level)
        response = (
            filled_response(response_set("emoji_risky_describe"), plan.split, rng, items=items)
            if level == 1
            else refusal_response(scene.type, level, plan.split, rng)
        )
    meta = {
        "kind": plan.kind,
        "scene": scene.id,
        "prompt_group": group_name,
        "response_kind": "refusal" if level else "describe",
        "held_out": held_out(
            scene=scene.split == "test", prompt=prompt.held_out, response=response.held_out
        ),
    }
    return Draft(image, prompt.text, response.text, scene.type, level, meta, key)


def build_emoji(plan: UnitPlan, src: Sources, rng: np.random.Generator) -> list[Draft]:
    """(f) emoji scenes: risky combinations (weapons, drugs) or everyday/edgy ones; as a pair,
    a risky and a safe scene asked the same question."""
    scenes = in_split(src.emoji_scenes, "test" if plan.split == "test" else "train")
    risky = [s for s in scenes if s.type != src.taxonomy.safe_type]
    safe = [s for s in scenes if s.type == src.taxonomy.safe_type]
    pair = plan.kind == "emoji_pair"
    chosen = (
        [pick(rng, risky), pick(rng, safe)]
        if pair
        else [pick(rng, risky if rng.random() < 0.55 else safe)]
    )
    only_safe_prompts = pair or chosen[0].type == src.taxonomy.safe_type
    group_name, group = choose_prompt_group("emoji", rng, only_safe_prompts)
    prompt = choose_variant(group, plan.split, rng)
    seed, size = int(rng.integers(2**31)), choose_image_size(rng)
    return [
        _emoji_draft(scene, group_name, group, prompt, plan, src, rng, seed, size, key)
        for scene, key in zip(chosen, "ab"[: len(chosen)], strict=True)
    ]
