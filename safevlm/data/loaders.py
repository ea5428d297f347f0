"""Loaders for public data formats a user brings, mapped onto our taxonomy through
assets/data/category_map.json: VLGuard-style JSON and the paper's conversation JSONL.

Owns reading those formats and mapping their categories; unknown categories raise DataError.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from safevlm.data.schema import (
    DATA_DIR,
    DataError,
    Record,
    check_labels,
    read_json_file,
    read_lines,
)
from safevlm.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

DEFAULT_MAPPING_PATH = DATA_DIR / "category_map.json"
IMAGE_TOKEN = "<image>"


def normalize_name(name: str) -> str:
    """Case, spaces, underscores and hyphens do not matter in category names."""
    return re.sub(r"[\s_\-]+", " ", str(name)).strip().lower()


def load_mapping(path: str | Path | None = None) -> dict:
    path = Path(path) if path else DEFAULT_MAPPING_PATH
    return read_json_file(path, missing=f"category map not found: {path}")


@dataclass(frozen=True)
class _Settings:
    """What every entry of one loaded file is read with."""

    root: Path  # folder that relative image paths are resolved against
    taxonomy: Taxonomy
    mapping: dict
    split: str
    check_images: bool


def _settings(
    path: Path,
    image_root: str | Path | None,
    taxonomy: Taxonomy | None,
    mapping: dict | None,
    split: str,
    check_images: bool,
) -> _Settings:
    root = Path(image_root) if image_root else path.parent
    return _Settings(
        root, taxonomy or load_taxonomy(), mapping or load_mapping(), split, check_images
    )


def _resolve_image(image: str, root: Path, where: str, check_images: bool) -> str:
    path = Path(image)
    path = path if path.is_absolute() else root / path
    if check_images and not path.is_file():
        raise DataError(f"{where}: image file not found: {path}")
    return str(path)


def _checked(type_name: str, level: int, taxonomy: Taxonomy, where: str) -> tuple[str, int]:
    problem = check_labels(type_name, level, taxonomy)
    if problem:
        raise DataError(
            f"{where}: mapped label is not valid for taxonomy "
            f"{taxonomy.name!r}: {problem}; fix the category map"
        )
    return type_name, level


# ---------------------------------------------------------------- VLGuard-style JSON


def vlguard_label(
    category: str | None, subcategory: str | None, mapping: dict, where: str
) -> tuple[str, int]:
    """(type, level) for a VLGuard category/subcategory: 'cat/sub', then 'sub', then 'cat'."""
    table = {normalize_name(k): v for k, v in mapping["vlguard"]["categories"].items()}
    cat, sub = normalize_name(category or ""), normalize_name(subcategory or "")
    for key in (f"{cat}/{sub}" if cat and sub else None, sub or None, cat or None):
        if key and key in table:
            return table[key]["type"], int(table[key]["level"])
    shown = "/".join(x for x in (category, subcategory) if x) or "<none>"
    raise DataError(
        f"{where}: unknown VLGuard category {shown!r}; add it to the category map "
        "(vlguard.categories)"
    )


def load_vlguard(path: str | Path, image_root: str | Path | None = None, taxonomy: Taxonomy | None = None,
                 mapping: dict | None = None, split: str = "train", check_images: bool = True) -> list[Record]:
    """Records from a VLGuard-style JSON list.

    Each entry: {"id", "image", "safe": bool, "harmful_category", "harmful_subcategory",
    "instr-resp": [{"safe_instruction" | "unsafe_instruction" | "instruction", "response"}]}.
    A safe instruction on a safe image is type safe; anything on an unsafe image takes the
    image's category; an unsafe instruction on a safe image takes its category when given,
    else the map's `unsafe_instruction_on_safe_image` label (meta type_guessed = true).
    Image paths are resolved against image_root (default: the JSON's folder).
    """
    path = Path(path)
    settings = _settings(path, image_root, taxonomy, mapping, split, check_images)
    entries = read_json_file(path)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of entries")
    records = []
    for number, entry in enumerate(entries):
        records += _vlguard_entry(entry, f"{path}[{number}]", settings)
    log.info("loaded %d records from %s", len(records), path)
    return records


def _vlguard_entry(entry: dict, where: str, settings: _Settings) -> list[Record]:
    try:
        image, safe_image, pairs = entry["image"], bool(entry["safe"]), entry["instr-resp"]
    except (KeyError, TypeError) as e:
        raise DataError(f"{where}: missing key {e}") from None
    image = _resolve_image(image, settings.root, where, settings.check_images)
    category, subcategory = entry.get("harmful_category"), entry.get("harmful_subcategory")
    records = []
    for turn, item in enumerate(pairs):
        here = f"{where}.instr-resp[{turn}]"
        instruction, kind = _vlguard_instruction(item, here)
        type_name, level, guessed = _vlguard_turn_label(
            kind, safe_image, category, subcategory, settings.mapping, settings.taxonomy, here
        )
        meta = {
            "id": entry.get("id"),
            "instruction_kind": kind,
            "category": category,
            "subcategory": subcategory,
        }
        if guessed:
            meta["type_guessed"] = True
        records.append(
            Record(
                image,
                instruction,
                str(item.get("response", "")),
                type_name,
                level,
                "vlguard",
                settings.split,
                str(entry.get("id", where)),
                meta,
            )
        )
    return records


def _vlguard_instruction(item: dict, where: str) -> tuple[str, str]:
    for kind in ("safe_instruction", "unsafe_instruction", "instruction"):
        if isinstance(item, dict) and kind in item:
            return str(item[kind]), kind
    raise DataError(f"{where}: no safe_instruction, unsafe_instruction or instruction key")


def _vlguard_turn_label(
    kind: str,
    safe_image: bool,
    category,
    subcategory,
    mapping: dict,
    taxonomy: Taxonomy,
    where: str,
) -> tuple[str, int, bool]:
    if safe_image and kind == "safe_instruction":
        return taxonomy.safe_type, 0, False
    if not safe_image or category or subcategory:
        return (
            *_checked(*vlguard_label(category, subcategory, mapping, where), taxonomy, where),
            False,
        )
    default = mapping["vlguard"].get("unsafe_instruction_on_safe_image")
    if not default:
        raise DataError(
            f"{where}: unsafe instruction on a safe image has no category and the "
            "map has no vlguard.unsafe_instruction_on_safe_image label"
        )
    return (*_checked(default["type"], int(default["level"]), taxonomy, where), True)


# ---------------------------------------------------------------- the paper's JSONL


def paper_type(safe_type: str | int, mapping: dict, taxonomy: Taxonomy, where: str) -> str:
    """Our type for the paper's safe_type, given as a name or as an index."""
    paper = mapping["paper"]
    if isinstance(safe_type, bool):
        raise DataError(f"{where}: safe_type must be a name or an index, got {safe_type!r}")
    if isinstance(safe_type, int) or (isinstance(safe_type, str) and safe_type.isdigit()):
        index = int(safe_type)
        order = paper["type_order"]
        if not 0 <= index < len(order):
            raise DataError(f"{where}: safe_type index {index} out of range 0..{len(order) - 1}")
        name = order[index]
    else:
        name = str(safe_type)
    table = {normalize_name(k): v for k, v in paper["types"].items()}
    mapped = table.get(normalize_name(name))
    if mapped is None:
        raise DataError(
            f"{where}: unknown safe_type {name!r}; add it to the category map (paper.types)"
        )
    if mapped not in taxonomy.types:
        raise DataError(
            f"{where}: safe_type {name!r} maps to {mapped!r}, which taxonomy "
            f"{taxonomy.name!r} does not have; fix the category map"
        )
    return mapped


def _conversation_turns(conversations: object, where: str) -> list[tuple[str, str]]:
    if not isinstance(conversations, list):
        raise DataError(f"{where}: 'conversations' must be a list")
    turns, pending = [], None
    for message in conversations:
        speaker = message.get("from") if isinstance(message, dict) else None
        if speaker == "human":
            pending = str(message.get("value", "")).replace(IMAGE_TOKEN, "").strip()
        elif speaker == "gpt" and pending is not None:
            turns.append((pending, str(message.get("value", ""))))
            pending = None
    if not turns:
        raise DataError(f"{where}: no human/gpt turn pair in 'conversations'")
    return turns


def load_paper_jsonl(path: str | Path, image_root: str | Path | None = None, taxonomy: Taxonomy | None = None,
                     mapping: dict | None = None, split: str = "train", check_images: bool = True) -> list[Record]:
    """Records from the paper's JSONL: {"image", "safe_type" (name or index), "safe_level",
    "conversations": [{"from": "human", "value"}, {"from": "gpt", "value"}, ...]}.

    One record per human/gpt turn pair; turns of one line share a `group`.
    """
    path = Path(path)
    settings = _settings(path, image_root, taxonomy, mapping, split, check_images)
    records = []
    for number, line in enumerate(read_lines(path), start=1):
        if line.strip():
            records += _paper_line(line, f"{path}:{number}", f"{path.stem}:{number}", settings)
    log.info("loaded %d records from %s", len(records), path)
    return records


def _paper_line(line: str, where: str, group: str, settings: _Settings) -> list[Record]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    try:
        image, safe_type, level = data["image"], data["safe_type"], data["safe_level"]
        conversations = data["conversations"]
    except (KeyError, TypeError) as e:
        raise DataError(f"{where}: missing key {e}") from None
    type_name = paper_type(safe_type, settings.mapping, settings.taxonomy, where)
    try:
        level = int(level)
    except (TypeError, ValueError):
        raise DataError(f"{where}: safe_level must be an integer, got {level!r}") from None
    _checked(type_name, level, settings.taxonomy, where)
    image = _resolve_image(str(image), settings.root, where, settings.check_images)
    return [
        Record(
            image,
            prompt,
            response,
            type_name,
            level,
            "paper",
            settings.split,
            group,
            {"paper_safe_type": safe_type},
        )
        for prompt, response in _conversation_turns(conversations, where)
    ]
