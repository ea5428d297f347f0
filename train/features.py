"""Frozen-base work done once per dataset: vision grids and reader text per image, the
safety head's query features per text. Every stage and the eval reuse the cache, so the
head trains without running the vision tower, OCR or the LLM again.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from safevlm.data.decontaminate import clean_records
from safevlm.data.schema import Record, read_jsonl
from safevlm.data.splits import hash_fraction
from safevlm.images import load_image
from safevlm.model.modeling import ImageFeatures, SafeVLM
from safevlm.model.reader import Reader

log = logging.getLogger(__name__)


@dataclass
class Example:
    record: Record
    image_key: str
    grid: torch.Tensor  # (C, h, w)
    reader_text: str
    query: torch.Tensor | None  # (T, D) valid positions only; None without the query pass
    type_index: int
    level: int


class FeatureCache:
    """Image grids + reader text keyed by image sha256 (one file per base checkpoint); query features
    keyed by query text (one file per base and query wiring, so ablations share the OCR)."""

    def __init__(self, images_path: Path | None = None, queries_path: Path | None = None):
        self.images_path, self.queries_path = images_path, queries_path
        self.images: dict[str, dict] = self._load(images_path)
        self.queries: dict[str, torch.Tensor] = self._load(queries_path)

    @staticmethod
    def _load(path: Path | None) -> dict:
        if path and path.exists():
            data = torch.load(path, weights_only=False)
            log.info("feature cache %s: %d entries", path, len(data))
            return data
        return {}

    @classmethod
    def for_model(cls, folder: Path, model: SafeVLM) -> FeatureCache:
        cfg = model.config
        # keyed by the base's id, not its kind: two Llava checkpoints must not share features
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.base.id).strip("-")
        return cls(folder / f"features-{base}-images.pt",
                   folder / f"features-{base}-queries-{cfg.query_source}-{cfg.query_layer}.pt")

    def save(self) -> None:
        for path, data in ((self.images_path, self.images), (self.queries_path, self.queries)):
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(data, path)


def make_reader(model: SafeVLM) -> Reader | None:
    """The OCR reader when the model and its base read image text, else None."""
    return Reader() if model.config.use_reader and model.base.use_reader else None


def load_split(data: Path, split: str, taxonomy, limit: int = 0, seed: int = 0) -> list[Record]:
    """A split's records for training or calibration: never one rewording a benchmark prompt."""
    records = clean_records(read_jsonl(data / f"{split}.jsonl", taxonomy))
    if limit and len(records) > limit:
        records = random.Random(seed).sample(records, limit)
    return records


OWN_READER = object()  # split_examples' default: the reader `make_reader(model)` gives


def split_examples(model: SafeVLM, data: Path, split: str, cache: FeatureCache | None = None,
                   reader: Reader | None | object = OWN_READER, limit: int = 0, seed: int = 0,
                   ocr_share: float = 1.0) -> list[Example]:
    """`build_examples` over a split's clean records (`load_split`); the feature cache of
    `data` and the model's reader unless the caller shares its own across splits."""
    cache = cache or FeatureCache.for_model(data, model)
    reader = make_reader(model) if reader is OWN_READER else reader
    return build_examples(model, load_split(data, split, model.taxonomy, limit, seed), cache, reader,
                          desc=split, ocr_share=ocr_share)


def shuffled_batches(examples, batch_size: int, seed: int, collate):
    """Epoch -> batches of `examples` in an order fixed by (seed, epoch), for `train.loop.train`."""
    def batches(epoch: int):
        order = list(range(len(examples)))
        random.Random(seed * 1000 + epoch).shuffle(order)
        for start in range(0, len(order), batch_size):
            yield collate([examples[i] for i in order[start : start + batch_size]])

    return batches


def rendered_text(record: Record, ocr_share: float, key: str) -> str | None:
    """The text a request-form image was drawn with, standing in for OCR on all but
    `ocr_share` of such images (chosen by image hash); None = read it with OCR."""
    text = (record.meta or {}).get("image_text")
    if text is None or ocr_share >= 1.0 or not (record.meta or {}).get("form"):
        return None
    return None if hash_fraction(f"ocr:{key}") < ocr_share else text


def build_examples(model: SafeVLM, records: list[Record], cache: FeatureCache,
                   reader: Reader | None, batch_size: int = 32, desc: str = "features",
                   with_queries: bool = True, ocr_share: float = 1.0) -> list[Example]:
    """Examples with every frozen feature filled in, computing only what the cache lacks.

    With `reader=None` the examples carry no reader text, whatever the cache holds; an image
    cached without reading (its text None, not "") is read when a reader comes along.
    `with_queries=False` skips the head's query pass (the examples' `query` is None): for
    callers that only need the images and the text read in them. `ocr_share` < 1: the
    request-form images (public and edgy requests drawn by `kinds.forms`, whose drawn text
    is known) are OCR'd only for that share; the rest take the drawn text as their reader
    text (OCR of a page of text is the slowest step; the eval always reads)."""
    keys = []
    todo: dict[str, object] = {}
    stand_in: dict[str, str] = {}
    for r in records:
        loaded = load_image(r.image_path)
        keys.append(loaded.sha256)
        entry = cache.images.get(loaded.sha256)
        unread = entry is not None and reader is not None and entry["reader_text"] is None
        if (entry is None or unread) and loaded.sha256 not in todo:
            todo[loaded.sha256] = loaded
            if reader is not None and (drawn := rendered_text(r, ocr_share, loaded.sha256)) is not None:
                stand_in[loaded.sha256] = drawn
    items = list(todo.items())
    for start in tqdm(range(0, len(items), batch_size), desc=f"{desc}: images", disable=not items):
        chunk = items[start : start + batch_size]
        pixels = torch.stack([model.base.image_transform(img.image) for _, img in chunk])
        grids = model.get_image_features(pixels).grid.half()
        texts: list[str | None] = [stand_in.get(key) for key, _ in chunk]
        to_read = [i for i, t in enumerate(texts) if t is None]
        if reader and to_read:
            for i, text in zip(to_read, reader.read_many([chunk[i][1].image for i in to_read]), strict=True):
                texts[i] = text
        for (key, _), grid, text in zip(chunk, grids, texts, strict=True):
            cache.images[key] = {"grid": grid.clone(), "reader_text": text, "drawn": key in stand_in}
        if (start // batch_size) % 10 == 9:  # OCR is slow: an interrupted run keeps its work
            cache.save()
    def reader_text(key: str) -> str:
        return (cache.images[key]["reader_text"] or "") if reader else ""

    texts = {model.safety_query_text(r.prompt, reader_text(k)) for r, k in zip(records, keys, strict=True)}
    # By length, so each batch pads little (reader text runs from nothing to a page).
    missing = sorted((t for t in texts if t not in cache.queries), key=lambda t: (len(t), t)) if with_queries else []
    for start in tqdm(range(0, len(missing), batch_size), desc=f"{desc}: queries", disable=not missing):
        chunk = missing[start : start + batch_size]
        queries, mask = model.get_safety_queries(chunk)
        for text, q, m in zip(chunk, queries, mask, strict=True):
            cache.queries[text] = q[m].half().clone()
    if todo or missing:
        cache.save()
    tax = model.taxonomy
    out = []
    for r, key in zip(records, keys, strict=True):
        entry, read = cache.images[key], reader_text(key)
        query = cache.queries[model.safety_query_text(r.prompt, read)] if with_queries else None
        out.append(Example(r, key, entry["grid"], read, query,
                           tax.type_index(r.type), r.level))
    return out


def collate_head(examples: list[Example]) -> dict:
    """A batch for the safety head: padded queries with their mask, grids, labels."""
    n = max(e.query.shape[0] for e in examples)
    dim = examples[0].query.shape[1]
    queries = torch.zeros(len(examples), max(n, 1), dim)
    mask = torch.zeros(len(examples), max(n, 1), dtype=torch.bool)
    for i, e in enumerate(examples):
        queries[i, : e.query.shape[0]] = e.query.float()
        mask[i, : e.query.shape[0]] = True
    grid = torch.stack([e.grid.float() for e in examples])
    return {
        "queries": queries, "mask": mask, "grid": grid,
        "type": torch.tensor([e.type_index for e in examples]),
        "level": torch.tensor([e.level for e in examples]),
    }


HEAD_BATCH = 64


@torch.no_grad()
def head_logits(model: SafeVLM, examples: list[Example], batch_size: int = HEAD_BATCH
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Type and level logits (fitted temperatures applied) of cached examples, in batches:
    the one pass that validation, calibration, the ablation and LOSO all score with."""
    model.eval()
    types, levels = [], []
    for start in range(0, len(examples), batch_size):
        batch = collate_head(list(examples[start : start + batch_size]))
        out = model(batch["grid"], batch["queries"], batch["mask"])
        types.append(out.type_logits.float().cpu())
        levels.append(out.level_logits.float().cpu())
    return torch.cat(types), torch.cat(levels)


def head_probabilities(model: SafeVLM, examples: list[Example]) -> list[tuple[list[float], list[float]]]:
    """(type_probs, level_probs) per cached example, in taxonomy order."""
    if not examples:
        return []
    type_logits, level_logits = head_logits(model, examples)
    return list(zip(type_logits.softmax(-1).tolist(), level_logits.softmax(-1).tolist(), strict=True))


def image_features(model: SafeVLM, grid: torch.Tensor) -> ImageFeatures:
    """Base projector over a cached grid (cheap) to get the LLM's image tokens."""
    with torch.no_grad():
        embeds, mask = model.base.projector(grid.to(model.base.device, model.base.dtype))
    return ImageFeatures(grid.float(), embeds, mask)


def collate_lm(model: SafeVLM, examples: list[Example], conditioning: list[dict]) -> dict:
    """A batch for the LM loss: each example's LLM input (image tokens, reader text, and the
    conditioning given for it: {"hint": str|None, "tokens": bool}) with its target answer,
    right-padded. Labels mark only the answers."""
    built = []
    for e, cond in zip(examples, conditioning, strict=True):
        feats = image_features(model, e.grid.unsqueeze(0))
        built.append(model.build_inputs(
            feats, [{"role": "user", "content": e.record.prompt}], reader_text=e.reader_text or None,
            hint=cond.get("hint"), safety_tokens=cond.get("tokens", False), target=e.record.response,
        ))
    n = max(b.inputs_embeds.shape[0] for b in built)
    dim = built[0].inputs_embeds.shape[1]
    embeds = torch.zeros(len(built), n, dim, dtype=built[0].inputs_embeds.dtype)
    labels = torch.full((len(built), n), -100, dtype=torch.long)
    mask = torch.zeros(len(built), n, dtype=torch.long)
    for i, b in enumerate(built):
        t = b.inputs_embeds.shape[0]
        embeds[i, :t], labels[i, :t], mask[i, :t] = b.inputs_embeds, b.labels, 1
    return {"inputs_embeds": embeds, "labels": labels, "attention_mask": mask}


def lm_loss(model: SafeVLM, batch: dict) -> torch.Tensor:
    """`SafeVLM.lm_loss` on a `collate_lm` batch."""
    return model.lm_loss(batch["inputs_embeds"], batch["attention_mask"], batch["labels"])
