"""The training-data record: one JSONL line `{image, prompt, response, type, level, source,
split}` (+ optional `group` and `meta`), with validation against the taxonomy.

Owns reading (data files raise DataError naming the file), checking and writing records,
and reading the project's JSON files in assets/data/ (`load_data_file`);
not how they are made (`generate`, `loaders`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from safevlm.assets import ASSETS_DIR
from safevlm.errors import SafeVLMError
from safevlm.taxonomy import Taxonomy, load_taxonomy

SPLITS = ("train", "val", "test")
REQUIRED_KEYS = ("image", "prompt", "response", "type", "level", "source", "split")


class DataError(SafeVLMError, ValueError):
    """Data that cannot be used; the message names the file (and line) and the problem."""


@dataclass
class Record:
    image: str
    prompt: str
    response: str
    type: str
    level: int
    source: str
    split: str
    group: str | None = None
    meta: dict = field(default_factory=dict)
    # Folder that a relative `image` is resolved against; not written to JSONL.
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    @property
    def image_path(self) -> Path:
        """The image file: `image` resolved against the JSONL's folder."""
        path = Path(self.image)
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    def to_dict(self) -> dict:
        out = {key: getattr(self, key) for key in REQUIRED_KEYS}
        if self.group is not None:
            out["group"] = self.group
        if self.meta:
            out["meta"] = self.meta
        return out


def check_labels(type_name: str, level: int, taxonomy: Taxonomy) -> str | None:
    """The problem with a (type, level) label, or None when the taxonomy accepts it."""
    if type_name not in taxonomy.types:
        return f"unknown type {type_name!r} (known: {', '.join(taxonomy.types)})"
    if isinstance(level, bool) or not isinstance(level, int):
        return f"level must be an integer, got {level!r}"
    if not 0 <= level <= taxonomy.max_level:
        return f"level {level} out of range 0..{taxonomy.max_level}"
    if type_name == taxonomy.safe_type and level > 0:
        return f"type {type_name!r} is the safe type but level is {level} (must be 0)"
    if type_name != taxonomy.safe_type and level == 0:
        return f"risky type {type_name!r} has level 0 (must be >= 1)"
    return None


def record_from_dict(data: object, taxonomy: Taxonomy, base_dir: Path | None = None) -> Record:
    """Build and validate one record; raises DataError with the problem (no location)."""
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DataError(f"missing key(s) {', '.join(missing)}")
    for key in ("image", "prompt", "response", "type", "source", "split"):
        if not isinstance(data[key], str):
            raise DataError(f"{key!r} must be a string, got {type(data[key]).__name__}")
    if not data["image"]:
        raise DataError("'image' is empty")
    problem = check_labels(data["type"], data["level"], taxonomy)
    if problem:
        raise DataError(problem)
    if data["split"] not in SPLITS:
        raise DataError(f"unknown split {data['split']!r} (known: {', '.join(SPLITS)})")
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError("'meta' must be an object")
    group = data.get("group")
    return Record(
        image=data["image"],
        prompt=data["prompt"],
        response=data["response"],
        type=data["type"],
        level=data["level"],
        source=data["source"],
        split=data["split"],
        group=None if group is None else str(group),
        meta=meta,
        base_dir=base_dir,
    )


def read_json_file(path: Path, missing: str | None = None) -> object:
    """The parsed JSON of a file; DataError `missing` (default "PATH: file not found") when it
    does not exist, and one naming the file when it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(missing or f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def read_lines(path: Path) -> list[str]:
    """The lines of a text file (UTF-8); DataError naming the file when it does not exist."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None


def read_jsonl(
    path: str | Path, taxonomy: Taxonomy | None = None, check_images: bool = True
) -> list[Record]:
    """Read and validate a JSONL file; image paths are relative to the file's folder.

    Raises DataError naming the file, the line and the problem (bad JSON, missing key,
    unknown type, level out of range, safe/risky level mismatch, missing image file).
    """
    path = Path(path)
    taxonomy = taxonomy or load_taxonomy()
    records = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        records.append(_parse_line(path, number, line, taxonomy, check_images))
    return records


def _parse_line(
    path: Path, number: int, line: str, taxonomy: Taxonomy, check_images: bool
) -> Record:
    where = f"{path}:{number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    try:
        record = record_from_dict(data, taxonomy, base_dir=path.parent)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    if check_images and not record.image_path.is_file():
        raise DataError(f"{where}: image file not found: {record.image_path}")
    return record


def write_jsonl(path: str | Path, records: Iterable[Record]) -> Path:
    """Write records as JSONL (UTF-8, one object per line, keys in schema order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
    return path


DATA_DIR = ASSETS_DIR / "data"


@lru_cache(maxsize=32)
def load_data_file(name: str, data_dir: Path = DATA_DIR) -> dict:
    """Read one JSON file of assets/data/ (cached; treat the result as read-only)."""
    path = Path(data_dir) / name
    return read_json_file(path, missing=f"data file not found: {path}")
