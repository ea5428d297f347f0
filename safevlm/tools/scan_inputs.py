"""The inputs of `safevlm scan`: a folder of images, a JSONL in the training schema or a
LLaVA-style JSON, read into ScanItems with unique keys (resume finds rows by key).

Owns finding and naming the items; not classifying them (`scan`) nor the report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from safevlm.errors import SafeVLMError
from safevlm.taxonomy import Taxonomy

DEFAULT_PROMPT = "Describe this image."  # = safevlm.engine.DEFAULT_PROMPT, without importing torch
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


class ScanError(SafeVLMError, ValueError):
    """An input or output folder the scan cannot use; the message says what to pass instead."""


@dataclass(frozen=True)
class ScanItem:
    """One thing to classify: `key` (a relative path or the dataset's id) names its CSV row."""

    key: str
    image: Path | None
    prompt: str


def find_items(
    path: str | Path,
    prompt: str | None = None,
    image_root: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[ScanItem]:
    """The items of a folder of images (recursive), a JSONL in the training schema or a
    LLaVA-style JSON. `prompt` replaces the records' own prompts (a folder has none: the
    default is "Describe this image."); relative image paths resolve against `image_root`,
    else the file's folder."""
    path = Path(path)
    if path.is_dir():
        items = folder_items(path, prompt)
    elif path.suffix.lower() == ".jsonl":
        items = jsonl_items(path, prompt, image_root, taxonomy)
    elif path.suffix.lower() == ".json":
        items = llava_items(path, prompt, image_root)
    elif not path.exists():
        raise ScanError(f"{path}: not found; pass a folder of images, a .jsonl or a LLaVA .json")
    else:
        raise ScanError(
            f"{path}: expected a folder of images, a .jsonl in the training schema "
            "or a LLaVA-style .json"
        )
    return _unique_keys(items)


def folder_items(folder: Path, prompt: str | None = None) -> list[ScanItem]:
    """Every image file under `folder`, sorted; hidden files and folders (".git", macOS's
    "._name.jpg" twins) are not part of a dataset."""
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    )
    return [ScanItem(p.relative_to(folder).as_posix(), p, prompt or DEFAULT_PROMPT) for p in paths]


def jsonl_items(
    path: Path,
    prompt: str | None = None,
    image_root: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[ScanItem]:
    """Records of `safevlm.data.schema`; a missing image becomes an error row, not a stop.
    Records may share an image (contrastive pairs), so the key adds the record's number."""
    from safevlm.data.schema import read_jsonl

    records = read_jsonl(path, taxonomy, check_images=False)
    return [
        ScanItem(
            f"{r.image}#{n}",
            Path(image_root) / r.image if image_root else r.image_path,
            prompt or r.prompt or DEFAULT_PROMPT,
        )
        for n, r in enumerate(records, start=1)
    ]


def llava_items(
    path: Path, prompt: str | None = None, image_root: str | Path | None = None
) -> list[ScanItem]:
    """A list of {"id", "image", "conversations": [{"from": "human", "value": "<image>\\n..."}]};
    the prompt is the first human turn without its <image> tag. An entry without an image
    (the text-only part of LLaVA's mix) is classified without one."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ScanError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise ScanError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(entries, list):
        raise ScanError(
            f"{path}: expected a LLaVA-style JSON list of "
            '{"id", "image", "conversations"} objects'
        )
    root = Path(image_root) if image_root else path.parent
    items = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ScanError(f"{path}: entry {n} is a {type(entry).__name__}, not an object")
        image = entry.get("image")
        if isinstance(image, list):  # multi-image entries: the head reads one image
            image = image[0] if image else None
        key = str(entry["id"]) if entry.get("id") not in (None, "") else f"{image}#{n}"
        items.append(
            ScanItem(
                key,
                root / str(image) if image else None,
                prompt or _first_human_turn(entry.get("conversations")) or DEFAULT_PROMPT,
            )
        )
    return items


def _first_human_turn(conversations) -> str:
    for message in conversations if isinstance(conversations, list) else ():
        if isinstance(message, dict) and message.get("from") == "human":
            return str(message.get("value") or "").replace("<image>", "").strip()
    return ""


def _unique_keys(items: list[ScanItem]) -> list[ScanItem]:
    """Resume finds rows by key, so two items must never share one (LLaVA mixes repeat ids)."""
    seen: Counter[str] = Counter()
    unique = []
    for item in items:
        seen[item.key] += 1
        if seen[item.key] > 1:
            item = ScanItem(f"{item.key}#dup{seen[item.key]}", item.image, item.prompt)
        unique.append(item)
    return unique
