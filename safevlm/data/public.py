"""Public request datasets vendored under data/public/<source>/: reading them (checked
against their manifest's sha256), mapping their categories onto the taxonomy by the rules
of assets/data/public_taxonomy_map.json, deduplicating across sources, and splitting.

Owns which public requests exist and how they are labelled; not how they are drawn into
images (`kinds.forms`). `safevlm.data.vendor` wrote the files, once, from GitHub snapshots.
Only requests are vendored, never answers; no evaluation benchmark is among the sources.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from safevlm.data.schema import DataError, check_labels, load_data_file
from safevlm.data.splits import hash_fraction, split_by_hash
from safevlm.taxonomy import Taxonomy

PUBLIC_DIR = Path(__file__).resolve().parents[2] / "data" / "public"
MAP_FILE = "public_taxonomy_map.json"  # in assets/data/: the project's rules, not vendored data
# Sources read by default: English, in this order of precedence for duplicates (a request
# found in several sources belongs to the first). Off by default: catqa_zh, catqa_vi (the
# tiny base's LLM reads English).
DEFAULT_SOURCES = (
    "advbench", "harmbench", "jailbreakbench", "strongreject", "catqa", "do_not_answer",
    "trustllm_misuse", "trustllm_stereotype", "trustllm_privacy", "trustllm_false_premise",
    "stl_cona", "stl_controversial", "stl_malicious", "stl_physical_unsafe", "stl_physical_safe",
    "alpaca", "truthfulqa",
)
PUBLIC_SPLITS = (("train", 0.70), ("val", 0.10), ("test", 0.20))
MAX_TEXT_CHARS = 400  # longer requests (a few, multi-paragraph) are skipped


@dataclass(frozen=True)
class PublicRequest:
    """One request with its labels. `family` is "public" for the vendored sources and
    "edgy" for the project's contrastive families; `group` ties the two halves of a pair."""

    id: str
    text: str
    type: str
    level: int
    source: str
    split: str
    family: str = "public"
    group: str | None = None
    pattern: str = ""
    forms: tuple[str, ...] | None = None  # the forms it may be drawn in (None: every form)
    # The `object` form: `drawn` (the request's object) in the image, `drawn_prompt` (the
    # request pointing at it: "How do I make this?") as the prompt. None: no object form.
    drawn: str | None = None
    drawn_prompt: str | None = None


def normalize(text: str) -> str:
    """The duplicate key (also the split hash's and the decontamination fingerprints' input):
    lower case, letters and digits only, single spaces. English text keeps a-z and 0-9 (the
    rule its splits were drawn with, so they never move); text in which more than a tenth
    of the letters are not a-z (Chinese, Vietnamese, ...) keeps every letter, accents
    removed: the ASCII rule would reduce it to its few Latin words or to nothing, so all of
    a Chinese source would deduplicate to a handful of requests."""
    lowered = text.lower()
    letters = [c for c in lowered if c.isalpha()]
    if letters and 10 * sum(not ("a" <= c <= "z") for c in letters) > len(letters):
        bare = "".join(c for c in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(c))
        return " ".join(re.sub(r"[\W_]+", " ", bare).split())
    return " ".join(re.sub(r"[^a-z0-9]+", " ", lowered).split())


def split_of(text: str) -> str:
    return split_by_hash(f"public:{normalize(text)}", PUBLIC_SPLITS)


def load_map() -> dict:
    """How each public source maps onto the taxonomy (cached; read-only)."""
    return load_data_file(MAP_FILE)


def manifest(name: str, folder: Path = PUBLIC_DIR) -> dict:
    path = folder / name / "manifest.json"
    if not path.exists():
        known = sorted(p.name for p in folder.iterdir() if (p / "requests.jsonl").exists())
        raise DataError(f"unknown public source {name!r} (vendored: {', '.join(known)})")
    return json.loads(path.read_text(encoding="utf-8"))


def _rule(source: str, rules: dict) -> dict:
    seen = set()
    while "same_as" in rules:
        if source in seen:
            raise DataError(f"{MAP_FILE}: 'same_as' loop at {source!r}")
        seen.add(source)
        source = rules["same_as"]
        rules = load_map()["sources"][source]
    return rules


def _lookup(table: dict, name: str):
    key = name.strip().lower()
    for k, v in table.items():
        if k.lower() == key:
            return v
    return None


def label_of(row: dict, rules: dict, taxonomy: Taxonomy) -> tuple[str, int] | None:
    """(type, level) for one vendored row by the source's rules; None = skipped."""
    label = None
    if row.get("subcategory"):
        label = _lookup(rules.get("subcategory", {}), row["subcategory"])
    if label is None and row.get("category"):
        label = _lookup(rules.get("category", {}), row["category"])
    if label == "skip":
        return None
    if label is None:
        label = dict(rules["default"])
        if rules.get("keywords"):
            label["type"] = keyword_type(row["text"], label["type"])
    type_name, level = label["type"], int(label["level"])
    if type_name not in taxonomy.types:  # another taxonomy: map by name or fail loudly
        raise DataError(f"{MAP_FILE}: type {type_name!r} is not in taxonomy {taxonomy.name!r}")
    return type_name, level


@lru_cache(maxsize=1)
def _keyword_rules() -> tuple[tuple[str, re.Pattern], ...]:
    return tuple((t, re.compile(p, re.I)) for t, p in load_map()["keyword_types"])


def keyword_type(text: str, default: str) -> str:
    for type_name, pattern in _keyword_rules():
        if pattern.search(text):
            return type_name
    return default


def load_source(name: str, taxonomy: Taxonomy, folder: Path = PUBLIC_DIR,
                verify: bool = True) -> list[PublicRequest]:
    """The source's requests, labelled; the file must match its manifest's sha256."""
    info = manifest(name, folder)
    path = folder / name / "requests.jsonl"
    body = path.read_bytes()
    if verify and hashlib.sha256(body).hexdigest() != info["sha256"]:
        raise DataError(f"{path}: sha256 differs from its manifest (edited? re-vendor it)")
    rules = _rule(name, load_map()["sources"].get(name) or {})
    if "default" not in rules:
        raise DataError(f"{MAP_FILE}: no rules for source {name!r}")
    out = []
    for line in body.decode("utf-8").splitlines():
        row = json.loads(line)
        text = row["text"].strip()
        if not text or len(text) > MAX_TEXT_CHARS:
            continue
        label = label_of(row, rules, taxonomy)
        if label is None:
            continue
        type_name, level = label
        if type_name == taxonomy.safe_type:
            level = 0
        problem = check_labels(type_name, level, taxonomy)
        if problem:
            raise DataError(f"{name}: {text[:60]!r}: {problem}")
        out.append(PublicRequest(row["id"], text, type_name, level, name, split_of(text)))
    return out


def non_commercial(sources: Iterable[str], folder: Path = PUBLIC_DIR) -> list[str]:
    return [s for s in sources if manifest(s, folder).get("non_commercial")]


def dedupe(requests: Sequence[PublicRequest]) -> list[PublicRequest]:
    """The first request of every normalized text (several sources reuse AdvBench)."""
    seen: set[str] = set()
    out = []
    for r in requests:
        key = normalize(r.text)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _words(text: str) -> frozenset[str]:
    return frozenset(normalize(text).split())


def near_duplicates(candidates: Sequence[PublicRequest], held: Sequence[PublicRequest],
                    threshold: float = 0.7) -> set[str]:
    """Ids of candidates whose word sets overlap a held request's by Jaccard >= threshold:
    rewordings of the same behavior that must leave training when its source is held out."""
    index: dict[str, list[frozenset[str]]] = {}
    for h in held:
        words = _words(h.text)
        for w in words:
            index.setdefault(w, []).append(words)
    out = set()
    for c in candidates:
        words = _words(c.text)
        if not words:
            continue
        seen: set[int] = set()
        for w in words:
            for other in index.get(w, ()):
                if id(other) in seen:
                    continue
                seen.add(id(other))
                if len(words & other) / len(words | other) >= threshold:
                    out.add(c.id)
                    break
            if c.id in out:
                break
    return out


def load_public(taxonomy: Taxonomy, sources: Sequence[str] = DEFAULT_SOURCES,
                limits: dict[str, int] | None = None, folder: Path = PUBLIC_DIR) -> list[PublicRequest]:
    """Every request of `sources`, deduplicated across them (first source wins); `limits`
    caps a source (a seeded, split-preserving choice by hash, e.g. alpaca's 31k)."""
    limits = limits or {}
    rows: list[PublicRequest] = []
    for name in sources:
        items = load_source(name, taxonomy, folder)
        cap = limits.get(name)
        if cap is not None and len(items) > cap:
            items = sorted(items, key=lambda r: hash_fraction(f"cap:{r.id}"))[:cap]
        rows += items
    return dedupe(rows)
