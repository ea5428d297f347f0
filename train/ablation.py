"""The query ablation the design asks for: the same safety head trained with the prompt
read as (a) hidden states of a frozen text pass, (b) raw token embeddings, (c) the
authors' wiring (first position of raw embeddings). Head only, on cached features; reports
AUROC, detection and false flags at the default thresholds, and contrastive-pair splits.

    python -m train.ablation --data data/gen --out runs/ablation
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from safevlm.config import QUERY_SOURCES, SafeVLMConfig
from safevlm.metrics import auroc
from safevlm.model.bases import load_base
from safevlm.model.modeling import SafeVLM
from safevlm.model.reader import Reader
from safevlm.policy import Thresholds, decide
from train.features import (
    FeatureCache,
    collate_head,
    head_probabilities,
    shuffled_batches,
    split_examples,
)
from train.loop import base_parser, config_from_args, seed_everything, train
from train.stage1_safety import HEAD_DEFAULTS, head_loss

log = logging.getLogger(__name__)


@torch.no_grad()
def score(model: SafeVLM, examples) -> dict:
    tax, thr = model.taxonomy, Thresholds.default(model.taxonomy)
    risky, p_unsafe, flagged, groups = [], [], [], {}
    for e, (tp, lp) in zip(examples, head_probabilities(model, examples), strict=True):
        is_risky = e.type_index != tax.safe_index
        d = decide(tp, lp, tax, thr)
        risky.append(int(is_risky))
        p_unsafe.append(1 - tp[tax.safe_index])
        flagged.append(d.flagged)
        if e.record.group:
            groups.setdefault(e.record.group, []).append((is_risky, d.flagged))
    n_risky, n_safe = sum(risky), len(risky) - sum(risky)
    pairs = [g for g in groups.values() if len(g) == 2 and g[0][0] != g[1][0]]
    separated = sum(all(r == f for r, f in g) for g in pairs)
    return {
        "n": len(risky),
        "auroc": auroc(list(risky), list(p_unsafe)),
        "detection_rate": sum(f for r, f in zip(risky, flagged, strict=True) if r) / max(1, n_risky),
        "false_flag_rate": sum(f for r, f in zip(risky, flagged, strict=True) if not r) / max(1, n_safe),
        "pairs": len(pairs), "pairs_separated_rate": separated / len(pairs) if pairs else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = base_parser("Ablation of the safety head's queries.")
    p.add_argument("--sources", nargs="+", default=list(QUERY_SOURCES), choices=QUERY_SOURCES)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data, out = Path(args.data), Path(args.out)
    base = load_base(args.base)
    reader = Reader() if base.use_reader else None
    limit = 24 if args.smoke else args.limit
    results = {}
    for source in args.sources:
        seed_everything(args.seed)
        model = SafeVLM(base, SafeVLMConfig(base=base.name, query_source=source))
        cache = FeatureCache.for_model(data, model)
        train_ex = split_examples(model, data, "train", cache, reader, limit, args.seed)
        cfg = config_from_args(args, HEAD_DEFAULTS)
        model.safety_tokens_llm.requires_grad_(False)
        train(model, shuffled_batches(train_ex, cfg.batch_size, args.seed, collate_head),
              head_loss(model), cfg, out / source, len(train_ex),
              f"ablation-{source}")
        results[source] = {split: score(model, split_examples(model, data, split, cache, reader,
                                                              8 if args.smoke else 0))
                           for split in ("val", "test")}
        log.info("%s: %s", source, results[source])
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| queries | split | AUROC | detection | false flags | pairs separated |", "|---|---|---|---|---|---|"]
    for source, by_split in results.items():
        for split, m in by_split.items():
            fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(f"| {source} | {split} | {fmt(m['auroc'])} | {fmt(m['detection_rate'])} | "
                         f"{fmt(m['false_flag_rate'])} | {fmt(m['pairs_separated_rate'])} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
