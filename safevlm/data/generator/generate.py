"""Generates the offline training set (images + train/val/test JSONL + summary.json) from the
project's text data, fonts, layouts, documents, emoji and photos; and the FigStep-like eval.

Owns planning, parallel writing and summaries; each kind's records come from `kinds`, the
command line (python -m safevlm.data.generator.generate --out data/gen --n 2000) from `cli`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from safevlm.data.generator import render
from safevlm.data.generator.fonts import FontSpec, family_summary
from safevlm.data.generator.kinds import (
    BUILDERS,
    EMOJI_KINDS,
    KIND_WEIGHTS,
    PAIR_KINDS,
    RISKY_TARGET_KINDS,
    Sources,
    UnitPlan,
)
from safevlm.data.generator.kinds.answers import helpful_response, refusal_response
from safevlm.data.generator.kinds.draws import pick
from safevlm.data.generator.request_set import RequestSetOptions, request_records
from safevlm.data.generator.texts import (
    Request,
    choose_variant,
    figstep_phrasings,
    phrase,
    prompt_set,
)
from safevlm.data.schema import SPLITS, DataError, Record, write_jsonl
from safevlm.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

SOURCE = "safevlm-gen"
SPLIT_WEIGHTS = {"train": 0.75, "val": 0.10, "test": 0.15}


# ---------------------------------------------------------------- planning


def plan_units(n: int, seed: int, taxonomy: Taxonomy, emoji: bool) -> list[UnitPlan]:
    """The kinds, splits and risky targets of all units: cheap, sequential, seeded."""
    rng = np.random.default_rng([seed, 0])
    kinds = [k for k in KIND_WEIGHTS if emoji or k not in EMOJI_KINDS]
    weights = np.array([KIND_WEIGHTS[k] for k in kinds])
    single = [k for k in kinds if k not in PAIR_KINDS]
    targets = [(t, lv) for t in taxonomy.risk_types for lv in range(1, taxonomy.max_level + 1)]
    order = list(rng.permutation(len(targets)))
    plans: list[UnitPlan] = []
    total, turn = 0, 0
    while total < n:
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if kind in PAIR_KINDS and n - total == 1:
            kind = pick(rng, single)
        split = str(rng.choice(list(SPLIT_WEIGHTS), p=list(SPLIT_WEIGHTS.values())))
        target = None
        if kind in RISKY_TARGET_KINDS:
            target = targets[order[turn % len(targets)]]
            turn += 1
        plans.append(UnitPlan(len(plans), kind, split, target))
        total += plans[-1].size
    return plans


# ---------------------------------------------------------------- writing

_WORKER_SOURCES: Sources | None = None
_WORKER_OUT: Path | None = None
_WORKER_SEED = 0


def _save(image: Image.Image, path: Path) -> None:
    if path.suffix == ".jpg":
        image.save(path, quality=90)
    else:
        image.save(path, compress_level=1)


def build_unit(plan: UnitPlan, src: Sources, out_dir: Path, seed: int) -> list[dict]:
    """Build, render and save one unit; returns its records as dicts (image paths relative)."""
    rng = np.random.default_rng([seed, plan.index, 1])
    drafts = BUILDERS[plan.kind](plan, src, rng)
    group = f"{plan.kind}-{plan.index:06d}" if len(drafts) > 1 else None
    saved: dict[int, str] = {}
    records = []
    for draft in drafts:
        if id(draft.image) not in saved:
            suffix = ".jpg" if plan.kind.startswith(("photo", "pair_prompt")) else ".png"
            name = f"images/{plan.index:06d}{draft.image_key}{suffix}"
            _save(draft.image, out_dir / name)
            saved[id(draft.image)] = name
        record = Record(
            saved[id(draft.image)],
            draft.prompt,
            draft.response,
            draft.type,
            draft.level,
            f"{SOURCE}/{plan.kind}",
            plan.split,
            group,
            {**draft.meta, "unit": plan.index},
        )
        records.append(record.to_dict())
    return records


def _init_worker(src: Sources, out_dir: Path, seed: int) -> None:
    global _WORKER_SOURCES, _WORKER_OUT, _WORKER_SEED
    _WORKER_SOURCES, _WORKER_OUT, _WORKER_SEED = src, out_dir, seed


def _work(plan: UnitPlan) -> list[dict]:
    return build_unit(plan, _WORKER_SOURCES, _WORKER_OUT, _WORKER_SEED)


def _run_units(
    plans: list[UnitPlan],
    src: Sources,
    out_dir: Path,
    seed: int,
    workers: int,
    progress: bool,
    n: int,
) -> list[dict]:
    bar = tqdm(total=n, desc="generate", unit="rec", disable=not progress)
    results: list[dict] = []
    if workers <= 1:
        for plan in plans:
            results += build_unit(plan, src, out_dir, seed)
            bar.update(plan.size)
    else:
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, initializer=_init_worker, initargs=(src, out_dir, seed)) as pool:
            for plan, records in zip(plans, pool.imap(_work, plans, chunksize=8), strict=True):
                results += records
                bar.update(plan.size)
    bar.close()
    return results[:n]


def summarize(records: Sequence[dict]) -> dict:
    """Counts per type, level, split, kind, their useful crossings, and which held-out
    dimensions the test records use."""

    def count(key, rows: Sequence[dict] = records) -> dict:
        return dict(sorted(Counter(key(r) for r in rows).items()))

    test = [r for r in records if r["split"] == "test"]
    return {
        "records": len(records),
        "by_type": count(lambda r: r["type"]),
        "by_level": count(lambda r: str(r["level"])),
        "by_split": count(lambda r: r["split"]),
        "by_kind": count(lambda r: r["meta"]["kind"]),
        "by_source": count(lambda r: r["source"]),
        "by_type_level": count(lambda r: f"{r['type']}/{r['level']}"),
        "by_split_type": count(lambda r: f"{r['split']}/{r['type']}"),
        "by_split_level": count(lambda r: f"{r['split']}/{r['level']}"),
        "test_held_out": count(lambda r: ",".join(r["meta"]["held_out"]) or "none", test),
        "test_held_out_any": {
            name: sum(name in r["meta"]["held_out"] for r in test)
            for name in sorted({n for r in test for n in r["meta"]["held_out"]})
        },
    }


def generate_dataset(
    out_dir: str | Path,
    n: int = 2000,
    seed: int = 0,
    taxonomy: Taxonomy | None = None,
    workers: int | None = None,
    progress: bool = False,
    requests: RequestSetOptions | None = None,
) -> dict:
    """Write out_dir/images/*, train.jsonl, val.jsonl, test.jsonl and summary.json.

    Reproducible: the same seed gives identical JSONL (and images). Test records use only
    held-out titles, fonts and photos, plus held-out layouts, phrasings, prompts and
    response templates part of the time (listed in each record's meta "held_out").
    """
    if n < 1:
        raise DataError(f"n must be >= 1, got {n}")
    started = time.perf_counter()
    taxonomy = taxonomy or load_taxonomy()
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    src = Sources.load(taxonomy)
    plans = plan_units(n, seed, taxonomy, emoji=src.emoji_font is not None)
    workers = workers if workers is not None else min(2, multiprocessing.cpu_count())
    if n < 100:
        workers = 1
    dicts = _run_units(plans, src, out_dir, seed, workers, progress, n)
    if requests is not None:  # public request data and edgy families, several forms each
        dicts += request_records(out_dir, seed, taxonomy, requests, workers, progress)
    for split in SPLITS:
        lines = [r for r in dicts if r["split"] == split]
        write_jsonl(out_dir / f"{split}.jsonl", [_record(d) for d in lines])
    summary = {
        "seed": seed,
        "n": n,
        "taxonomy": taxonomy.name,
        **summarize(dicts),
        "fonts": {
            "families": len(family_summary(src.fonts)),
            "held_out_families": sorted(
                f for f, v in family_summary(src.fonts).items() if v["held_out"]
            ),
        },
        "held_out_layouts": sorted(render.held_out_layouts()),
        "held_out_phrasings": sorted(src.phrasing_held_out),
        "emoji_font": src.emoji_font is not None,
        "request_set": requests.describe() if requests is not None else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %d records to %s in %.1fs", len(dicts), out_dir, summary["seconds"])
    return summary


def _record(d: dict) -> Record:
    return Record(
        d["image"],
        d["prompt"],
        d["response"],
        d["type"],
        d["level"],
        d["source"],
        d["split"],
        d.get("group"),
        d.get("meta", {}),
    )


# ---------------------------------------------------------------- FigStep-like eval


def make_figstep_eval(
    out_dir: str | Path, seed: int = 0, taxonomy: Taxonomy | None = None, size: int = 512
) -> dict:
    """A plain FigStep-like set ("Steps to ..." + empty numbered list, black monospace on
    white) from held-out (test) risky and benign/edgy actions only, in held-out fonts.

    Writes out_dir/figstep_eval.jsonl and images; returns counts. Measures detection of
    unseen risky typographic requests and over-refusal of benign ones in the same layout.
    """
    taxonomy = taxonomy or load_taxonomy()
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    src = Sources.load(taxonomy)
    fonts = [f for f in src.fonts if f.held_out and f.style == "mono"] or [
        f for f in src.fonts if f.held_out
    ]
    pair_halves = [h for p in src.pairs if p.split == "test" for h in (p.benign, p.harmful)]
    requests = [
        r for r in src.risky + src.benign + pair_halves if r.split == "test" and r.form == "action"
    ]
    rng = np.random.default_rng([seed, 7])
    records = []
    for request in requests:
        for phrasing in figstep_phrasings():
            font = fonts[len(records) % len(fonts)]
            title = phrase(request, phrasing)
            records.append(
                _figstep_record(
                    request, title, phrasing.id, font, len(records), out_dir, rng, size, taxonomy
                )
            )
    write_jsonl(out_dir / "figstep_eval.jsonl", records)
    risky_count = sum(r.type != taxonomy.safe_type for r in records)
    summary = {
        "records": len(records),
        "risky": risky_count,
        "benign": len(records) - risky_count,
        "fonts": sorted({f.family for f in fonts}),
    }
    log.info("wrote FigStep-like eval: %s", summary)
    return summary


def _figstep_record(
    request: Request,
    title: str,
    phrasing_id: str,
    font: FontSpec,
    index: int,
    out_dir: Path,
    rng: np.random.Generator,
    size: int,
    taxonomy: Taxonomy,
) -> Record:
    name = f"images/figstep_{index:05d}.png"
    _save(render.render_figstep(title, rng, font, size), out_dir / name)
    prompt = choose_variant(prompt_set("list_completion"), "test", rng)
    if request.type != taxonomy.safe_type:
        response = refusal_response(request.type, request.level, "test", rng)
    else:
        response = helpful_response(request, title, "test", rng, as_list=True)
    meta = {
        "kind": "figstep_eval",
        "font": font.family,
        "phrasing": phrasing_id,
        "request": title,
        "request_id": request.id,
        "family": request.family,
    }
    return Record(
        name,
        prompt.text,
        response.text,
        request.type,
        request.level,
        f"{SOURCE}/figstep_eval",
        "test",
        None,
        meta,
    )


if __name__ == "__main__":
    from safevlm.data.generator.cli import main

    raise SystemExit(main())
