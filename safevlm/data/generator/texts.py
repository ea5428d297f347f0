"""Project-written text sources in assets/data/: request titles (risky, benign, edgy),
contrastive pairs, phrasing templates, prompts and response templates, each with its split.

Owns reading and checking those files and `fill_responses`; not images (the hash splits
are `safevlm.data.splits`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from safevlm.data.schema import DataError, Record, check_labels, load_data_file
from safevlm.data.splits import stratified_splits
from safevlm.taxonomy import Taxonomy, load_taxonomy

MAX_TITLE_CHARS = 90
# Test records draw a held-out variant (phrasing, prompt, response) this often.
HELD_OUT_SHARE = 0.5


@dataclass(frozen=True)
class Request:
    """One request source item: an action (verb phrase) or a complete title."""

    id: str
    text: str
    form: str  # "action" | "title"
    type: str
    level: int
    family: str  # "risky" | "everyday" | "edgy" | "pair"
    split: str
    pair_id: str | None = None


@dataclass(frozen=True)
class Pair:
    id: str
    type: str
    level: int
    benign: Request
    harmful: Request
    split: str


@dataclass(frozen=True)
class Phrasing:
    id: str
    text: str
    held_out: bool


@dataclass(frozen=True)
class Variant:
    """A chosen prompt or response text and whether it came from a held-out set."""

    text: str
    held_out: bool


def _short_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def _checked(request: Request, taxonomy: Taxonomy, source: str) -> Request:
    problem = check_labels(request.type, request.level, taxonomy)
    if problem:
        raise DataError(f"{source}: {request.text!r}: {problem}")
    return request


def load_risky_requests(taxonomy: Taxonomy | None = None) -> list[Request]:
    """Every risky title of risky_requests.json, checked against the taxonomy; split
    stratified per (type, level)."""
    taxonomy = taxonomy or load_taxonomy()
    data = load_data_file("risky_requests.json")
    out = []
    for type_name, forms in data["types"].items():
        strata: dict[int, list[tuple[str, str]]] = {}
        for form_key, form in (("actions", "action"), ("titles", "title")):
            for level, texts in forms.get(form_key, {}).items():
                strata.setdefault(int(level), []).extend((text, form) for text in texts)
        for level, items in sorted(strata.items()):
            splits = stratified_splits([text for text, _ in items])
            for (text, form), split in zip(items, splits, strict=True):
                request = Request(
                    id=f"risky:{type_name}:{_short_id(text)}",
                    text=text,
                    form=form,
                    type=type_name,
                    level=level,
                    family="risky",
                    split=split,
                )
                out.append(_checked(request, taxonomy, "risky_requests.json"))
    return out


def load_benign_requests(taxonomy: Taxonomy | None = None) -> list[Request]:
    """Everyday and edgy benign titles (type safe, level 0); split stratified per family."""
    taxonomy = taxonomy or load_taxonomy()
    data = load_data_file("benign_requests.json")
    out = []
    for family in ("everyday", "edgy"):
        items = [
            (text, form)
            for form_key, form in (("actions", "action"), ("titles", "title"))
            for text in data[family][form_key]
        ]
        splits = stratified_splits([text for text, _ in items])
        for (text, form), split in zip(items, splits, strict=True):
            out.append(
                Request(
                    id=f"{family}:{_short_id(text)}",
                    text=text,
                    form=form,
                    type=taxonomy.safe_type,
                    level=0,
                    family=family,
                    split=split,
                )
            )
    return out


def load_pairs(taxonomy: Taxonomy | None = None) -> list[Pair]:
    """Contrastive pairs: one benign and one harmful action on the same topic; split
    stratified per risk type."""
    taxonomy = taxonomy or load_taxonomy()
    items = load_data_file("contrastive_pairs.json")["pairs"]
    split_of_pair: dict[str, str] = {}
    for type_name in sorted({item["type"] for item in items}):
        ids = [item["id"] for item in items if item["type"] == type_name]
        split_of_pair.update(zip(ids, stratified_splits([f"pair:{i}" for i in ids]), strict=True))
    pairs = []
    for item in items:
        split = split_of_pair[item["id"]]
        common = {"form": "action", "family": "pair", "split": split, "pair_id": item["id"]}
        benign = Request(
            id=f"pair:{item['id']}:benign",
            text=item["benign"],
            type=taxonomy.safe_type,
            level=0,
            **common,
        )
        harmful = _checked(
            Request(
                id=f"pair:{item['id']}:harmful",
                text=item["harmful"],
                type=item["type"],
                level=int(item["level"]),
                **common,
            ),
            taxonomy,
            "contrastive_pairs.json",
        )
        pairs.append(Pair(item["id"], harmful.type, harmful.level, benign, harmful, split))
    return pairs


def load_phrasings() -> list[Phrasing]:
    data = load_data_file("phrasings.json")
    return [
        Phrasing(p["id"], p["text"], held_out=key == "held_out")
        for key in ("shared", "held_out")
        for p in data[key]
    ]


def figstep_phrasings() -> list[Phrasing]:
    return [
        Phrasing(p["id"], p["text"], held_out=False)
        for p in load_data_file("phrasings.json")["figstep_eval"]
    ]


def held_out_phrasing_ids() -> set[str]:
    return {p.id for p in load_phrasings() if p.held_out}


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """`template.format(**values)` with a DataError naming a missing placeholder."""
    try:
        return template.format_map(dict(values))
    except KeyError as e:
        raise DataError(f"template {template!r} needs placeholder {e}") from None


def action_values(action: str) -> dict[str, str]:
    return {"action": action, "Action": action[:1].upper() + action[1:]}


_SECOND_PERSON = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "i'm": "you're",
    "i've": "you've",
    "our": "your",
    "us": "you",
}


def second_person(text: str) -> str:
    """Turn the user's "my bike" into the answer's "your bike"."""
    return " ".join(_SECOND_PERSON.get(word.lower(), word) for word in text.split(" "))


def phrase(request: Request, phrasing: Phrasing) -> str:
    """The title shown for a request: actions go through the phrasing template."""
    if request.form == "title":
        return request.text
    return fill_template(phrasing.text, action_values(request.text))


def choose_phrasing(request: Request, split: str, rng: np.random.Generator) -> Phrasing | None:
    """A phrasing allowed in `split` whose title stays within MAX_TITLE_CHARS (None for titles)."""
    if request.form == "title":
        return None
    fits = [p for p in load_phrasings() if len(phrase(request, p)) <= MAX_TITLE_CHARS]
    shared = [p for p in fits if not p.held_out]
    held_out = [p for p in fits if p.held_out]
    pool = held_out if split == "test" and held_out and rng.random() < HELD_OUT_SHARE else shared
    return pool[int(rng.integers(len(pool)))]


def choose_variant(variants: Mapping, split: str, rng: np.random.Generator) -> Variant:
    """Pick from a {"shared": [...], "held_out": [...]} set; held-out ones only in test."""
    shared, held_out = list(variants.get("shared", [])), list(variants.get("held_out", []))
    if not shared:
        raise DataError(f"variant set has no 'shared' entries: {variants!r:.80}")
    if split == "test" and held_out and rng.random() < HELD_OUT_SHARE:
        return Variant(held_out[int(rng.integers(len(held_out)))], True)
    return Variant(shared[int(rng.integers(len(shared)))], False)


def prompt_set(name: str) -> Mapping:
    return load_data_file("prompts.json")[name]


def response_set(name: str) -> Mapping:
    return load_data_file("responses.json")[name]


def refusal_variants(type_name: str, level: int) -> Mapping:
    """The cautious-answer / refusal set for a risky (type, level)."""
    try:
        return load_data_file("responses.json")["refusal"][type_name][str(level)]
    except KeyError:
        raise DataError(
            f"responses.json has no refusal templates for type {type_name!r} level {level}; "
            "add them under 'refusal'"
        ) from None


def check_text_data(taxonomy: Taxonomy) -> None:
    """Fail early when the text data does not cover the taxonomy's risky (type, level)s."""
    for type_name in taxonomy.risk_types:
        for level in range(1, taxonomy.max_level + 1):
            refusal_variants(type_name, level)
    load_risky_requests(taxonomy)
    load_pairs(taxonomy)


def fill_responses(
    records: Iterable[Record], answer_fn: Callable[[str], str], taxonomy: Taxonomy | None = None
) -> list[Record]:
    """Replace the template answers of safe records by `answer_fn(request_text)`.

    Only records whose response came from a generic helpful template are replaced
    (meta "response_kind" == "helpful"); captions and document read-outs are kept.
    The request text is the title shown in the image (meta "request") or the prompt.
    """
    taxonomy = taxonomy or load_taxonomy()
    out = []
    for record in records:
        if record.type == taxonomy.safe_type and record.meta.get("response_kind") == "helpful":
            request = record.meta.get("request") or record.prompt
            meta = {**record.meta, "response_kind": "answer_fn"}
            record = replace(record, response=answer_fn(request), meta=meta)
        out.append(record)
    return out
