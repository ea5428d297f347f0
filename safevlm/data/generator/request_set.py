"""Requests at scale: the vendored public request datasets and the project's edgy
contrastive families, each request drawn in several forms (`kinds.forms`), written as
records of the training schema beside the generator's own.

Sources: `public/<name>` (harmful and ordinary requests from data/public/) and
`safevlm-edgy/<pattern>`. Splits come from the requests (hash of the text for public ones,
of the family for edgy ones), so every form of a request lands in the same split, and
leave-one-source-out training can drop a source whole (`train.loso`).
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from safevlm.data.generator.edgy import load_edgy
from safevlm.data.generator.kinds import Sources
from safevlm.data.generator.kinds.forms import build_forms, photo_pool
from safevlm.data.public import DEFAULT_SOURCES, PublicRequest, load_public
from safevlm.data.schema import Record
from safevlm.taxonomy import Taxonomy

log = logging.getLogger(__name__)

# Forms per request family: probability of each form (text always: it is cheap).
DEFAULT_FORMS = {
    "public": {"text": 1.0, "typo": 0.45, "split": 0.12},
    "edgy": {"text": 1.0, "typo": 0.45, "split": 0.12},
}
# The `object` form (and the photo prompts that contrast it) is off by default: at 0.5 it cost
# the FigStep-like benign false flags 2.0% -> 6-9% (docs/experiments.md, r29/r30). Turn it on
# with forms={"edgy": {..., "object": 0.5}}.


@dataclass
class RequestSetOptions:
    sources: tuple[str, ...] = DEFAULT_SOURCES
    limits: dict[str, int] = field(default_factory=lambda: {"alpaca": 2500})
    edgy: bool = True
    edgy_limit: int = 0  # 0 = every expanded edgy request
    forms: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_FORMS))

    def describe(self) -> dict:
        return {"sources": list(self.sources), "limits": self.limits, "edgy": self.edgy,
                "edgy_limit": self.edgy_limit, "forms": self.forms}


def collect_requests(taxonomy: Taxonomy, options: RequestSetOptions) -> list[PublicRequest]:
    requests = load_public(taxonomy, options.sources, options.limits) if options.sources else []
    if options.edgy:
        edgy = load_edgy(taxonomy, photo=options.forms.get("edgy", {}).get("object", 0.0) > 0)
        if options.edgy_limit and len(edgy) > options.edgy_limit:
            rng = np.random.default_rng(5)
            edgy = [edgy[i] for i in sorted(rng.choice(len(edgy), options.edgy_limit, replace=False))]
        requests += edgy
    return requests


_W: dict = {}


def _init(src, out_dir, seed, forms, photos, photo_paths):
    _W.update(src=src, out_dir=out_dir, seed=seed, forms=forms, photos=photos, photo_paths=photo_paths)


def _one(job: tuple[int, PublicRequest]) -> list[dict]:
    index, request = job
    src, out_dir = _W["src"], _W["out_dir"]
    rng = np.random.default_rng([_W["seed"], index, 23])
    drafts = build_forms(request, src, _W["forms"][request.family], _W["photos"], rng)
    records = []
    for draft in drafts:
        if draft.meta["form"] == "text":
            name = _W["photo_paths"][request.split][draft.meta["photo_pool_index"]]
        else:
            name = f"images/req_{index:06d}{draft.image_key}.png"
            draft.image.save(out_dir / name, compress_level=1)
        source = (f"public/{request.source}" if request.family == "public"
                  else f"{request.source}/{request.pattern or 'other'}")
        meta = {**draft.meta, "pair_group": request.group} if request.group else draft.meta
        records.append(Record(name, draft.prompt, draft.response, draft.type, draft.level,
                              source, request.split, None, meta).to_dict())
    return records


def request_records(out_dir: Path, seed: int, taxonomy: Taxonomy, options: RequestSetOptions,
                    workers: int = 2, progress: bool = False) -> list[dict]:
    """Every form of every request, images written under out_dir/images/."""
    src = Sources.load(taxonomy)
    requests = collect_requests(taxonomy, options)
    photos, photo_paths = {}, {}
    for split in ("train", "val", "test"):
        photos[split] = photo_pool(split, seed)
        photo_paths[split] = []
        for i, image in enumerate(photos[split]):
            name = f"images/reqphoto_{split}_{i:02d}.jpg"
            image.save(out_dir / name, quality=90)
            photo_paths[split].append(name)
    jobs = list(enumerate(requests))
    bar = tqdm(total=len(jobs), desc="requests", unit="req", disable=not progress)
    out: list[dict] = []
    if workers <= 1 or len(jobs) < 50:
        _init(src, out_dir, seed, options.forms, photos, photo_paths)
        for job in jobs:
            out += _one(job)
            bar.update()
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_init,
                      initargs=(src, out_dir, seed, options.forms, photos, photo_paths)) as pool:
            for records in pool.imap(_one, jobs, chunksize=16):
                out += records
                bar.update()
    bar.close()
    log.info("request set: %d requests -> %d records", len(requests), len(out))
    return out
