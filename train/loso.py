"""Leave-one-source-out evaluation of the safety head on the public request data.

For each public harmful source S: train the safety head (stage 1, phase A, on cached
features) on the train split without S and without any request of another source that
rewords one of S's (word Jaccard >= 0.7), calibrate temperatures and thresholds on val
without S as the recipe does, then report S's flagged rate over all of its records in every
form, beside the false-flag rates of held-out (test split) ordinary requests and held-out
edgy benign requests (whole families never seen in training), by form. Numbers at the fold's own calibrated
thresholds and at the shipped checkpoint's thresholds.

    python -m train.loso --data data/gen --init runs/default/stage1 --out reports/loso
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from safevlm.data.public import PublicRequest, load_map, near_duplicates
from safevlm.errors import SafeVLMError
from safevlm.files import write_atomically
from safevlm.model.bases import load_base
from safevlm.model.modeling import SafeVLM
from safevlm.policy import Thresholds, decide
from train.calibrate import calibrate_model
from train.features import (
    FeatureCache,
    collate_head,
    head_probabilities,
    make_reader,
    shuffled_batches,
    split_examples,
)
from train.loop import TrainConfig, seed_everything, train
from train.stage1_safety import HEAD_DEFAULTS, head_loss

log = logging.getLogger(__name__)
MIN_HELD = 150  # smaller sources are held out together, as one fold


def _source(e) -> str:
    return e.record.source.split("/", 1)[1] if e.record.source.startswith("public/") else ""


def _is_edgy(e) -> bool:
    return e.record.source.startswith("safevlm-edgy/")


def _request(e) -> PublicRequest:
    m = e.record.meta
    return PublicRequest(m.get("request_id", ""), m.get("request", e.record.prompt), e.record.type,
                         e.record.level, _source(e), e.record.split)


def folds(examples, taxonomy) -> dict[str, set[str]]:
    """Held-out groups: every harmful public source with enough records alone."""
    rules = load_map()["sources"]
    counts: dict[str, int] = defaultdict(int)
    for e in examples:
        s = _source(e)
        if s and rules.get(s, {}).get("kind") == "harmful" and e.level >= 2:
            counts[s] += 1
    big = sorted(s for s, n in counts.items() if n >= MIN_HELD)
    small = sorted(s for s, n in counts.items() if n < MIN_HELD)
    out = {s: {s} for s in big}
    if small:
        out["+".join(small)] = set(small)
    return out


def flag_rates(model, examples, thresholds: Thresholds) -> dict:
    """Flagged share overall, per form and per risk type for a list of examples."""
    if not examples:
        return {}
    probs = head_probabilities(model, examples)
    flags = [decide(t, lv, model.taxonomy, thresholds).flagged for t, lv in probs]
    groups: dict[str, list[bool]] = defaultdict(list)
    for e, f in zip(examples, flags, strict=True):
        groups[f"form_{e.record.meta.get('form', 'other')}"].append(f)
        groups[f"type_{e.record.type}"].append(f)
    out = {"all": round(sum(flags) / len(flags), 4), "n": len(flags)}
    out.update({k: round(sum(v) / len(v), 4) for k, v in sorted(groups.items())})
    out["n_by_type"] = {k.removeprefix("type_"): len(v) for k, v in sorted(groups.items()) if k.startswith("type_")}
    return out


def run_fold(name: str, held: set[str], model_factory, train_ex, val_ex, test_ex, all_ex,
             shipped: Thresholds | None, cfg: TrainConfig, out: Path, seed: int) -> dict:
    t0 = time.perf_counter()
    held_ex = [e for e in all_ex if _source(e) in held and e.level >= 2]
    held_requests = list({r.text: r for r in map(_request, held_ex)}.values())
    others = [e for e in train_ex if _source(e) and _source(e) not in held]
    dup_ids = near_duplicates([_request(e) for e in others], held_requests)
    keep = [e for e in train_ex if _source(e) not in held and _request(e).id not in dup_ids]
    model = model_factory()
    train(model.members[0], shuffled_batches(keep, cfg.batch_size, seed, collate_head),
          head_loss(model), cfg, out / name, len(keep),
          f"loso-{name}")
    val = [e for e in val_ex if _source(e) not in held]
    # as the recipe does: temperatures, then thresholds within each safe group's budget
    calib = calibrate_model(model, val)
    thresholds = Thresholds.default(model.taxonomy)
    ordinary = [e for e in test_ex if e.level == 0 and not _is_edgy(e)]
    edgy = [e for e in test_ex if e.level == 0 and _is_edgy(e)]
    result = {"held_out": sorted(held), "train_examples": len(keep),
              "near_duplicates_dropped": len(dup_ids), "calibration": calib}
    for label, thr in (("fold_thresholds", thresholds), ("shipped_thresholds", shipped)):
        if thr is None:
            continue
        result[label] = {
            "held_harmful_flagged": flag_rates(model, held_ex, thr),
            "ordinary_test_flagged": flag_rates(model, ordinary, thr),
            "edgy_benign_test_flagged": flag_rates(model, edgy, thr),
        }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("fold %s: %s", name, json.dumps(result["fold_thresholds"]))
    return result


class LosoError(SafeVLMError):
    """A report that cannot be extended; the message says what to do."""


def earlier_folds(path: Path, settings: dict) -> dict:
    """Folds an earlier run wrote to the same report, kept when it ran with the same settings
    (data, shipped thresholds, epochs, seed, OCR share): folds run one at a time (`--only`) add
    up to one table. A report of other settings is never overwritten: that is an error."""
    if not path.exists():
        return {}
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise LosoError(f"{path}: unreadable report ({e}); move it away or pass another --out") from None
    differ = sorted(k for k in settings if earlier.get("settings", {}).get(k) != settings[k])
    if differ:
        raise LosoError(f"{path} holds folds run with other settings ({', '.join(differ)} differ); "
                        "pass another --out or move it away")
    return earlier.get("folds", {})


def markdown(results: dict) -> str:
    lines = ["# Leave-one-source-out: the safety head on public requests it never saw", "",
             "Flagged share at each fold's val-calibrated thresholds (as the recipe calibrates: at most 5% "
             "of edgy benign, 2% of ordinary and 8% of generated safe val inputs flagged); "
             "held-out harmful = the source's level 2-3 records in every form (text about a photo, "
             "typographic, split between image and text).", "",
             *([f"Each fold trains one safety head; the checkpoint the shipped thresholds come from "
                f"averages {results['init_head_ensemble']}, so these folds measure its members, "
                "not the average itself.", ""] if results.get("init_head_ensemble", 1) > 1 else []),
             "| held-out source | harmful flagged | text | typo | split | weakest risk type | ordinary test flagged | "
             "edgy benign test flagged | shipped thr: harmful / ordinary / edgy |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["folds"].items():
        f = r["fold_thresholds"]
        h = f["held_harmful_flagged"]
        s = r.get("shipped_thresholds")
        shipped = (f"{s['held_harmful_flagged']['all']:.3f} / {s['ordinary_test_flagged']['all']:.3f} / "
                   f"{s['edgy_benign_test_flagged']['all']:.3f}") if s else "-"
        types = {k.removeprefix("type_"): v for k, v in h.items() if k.startswith("type_")}
        weak = min(types, key=types.get) if types else None
        weakest = f"{weak} {types[weak]:.3f} (n={h['n_by_type'][weak]})" if weak else "-"
        lines.append(f"| {name} (n={h['n']}) | {h['all']:.3f} | {h.get('form_text', float('nan')):.3f} | "
                     f"{h.get('form_typo', float('nan')):.3f} | {h.get('form_split', float('nan')):.3f} | {weakest} | "
                     f"{f['ordinary_test_flagged']['all']:.3f} | {f['edgy_benign_test_flagged']['all']:.3f} | "
                     f"{shipped} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/gen")
    p.add_argument("--init", required=True, help="a stage-1 checkpoint: its config (and thresholds)")
    p.add_argument("--out", default="reports/loso")
    p.add_argument("--base", default="tiny")
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--only", default="", help="comma-separated fold names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ocr-share", type=float, default=0.15,
                   help="share of drawn request images read by OCR (as in training; the rest use the drawn text)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    seed_everything(args.seed)
    data, out = Path(args.data), Path(args.out)
    base = load_base(args.base)
    shipped_model = SafeVLM.from_pretrained(base, args.init, load_adapter=False)
    cfg_model = shipped_model.config
    shipped = Thresholds.default(shipped_model.taxonomy)
    reader = make_reader(shipped_model)
    cache = FeatureCache.for_model(data, shipped_model)
    tax = shipped_model.taxonomy
    split_ex = {s: split_examples(shipped_model, data, s, cache, reader, ocr_share=args.ocr_share)
                for s in ("train", "val", "test")}
    all_ex = [e for s in ("train", "val", "test") for e in split_ex[s]]
    cfg = replace(HEAD_DEFAULTS, epochs=args.epochs or HEAD_DEFAULTS.epochs)

    def factory():
        seed_everything(args.seed)
        return SafeVLM(base, cfg_model.override(head_ensemble=1))

    wanted = {f for f in args.only.split(",") if f}
    settings = {"data": str(data.resolve()), "shipped_thresholds": shipped.to_dict(), "epochs": cfg.epochs,
                "seed": args.seed, "ocr_share": args.ocr_share}
    try:
        earlier = earlier_folds(out / "loso.json", settings)
    except LosoError as e:
        log.error("%s", e)
        return 2
    results = {"data": str(data), "init": args.init, "init_head_ensemble": cfg_model.head_ensemble,
               "settings": settings, "folds": earlier}
    out.mkdir(parents=True, exist_ok=True)
    for name, held in folds(all_ex, tax).items():
        if wanted and name not in wanted:
            continue
        results["folds"][name] = run_fold(name, held, factory, split_ex["train"], split_ex["val"],
                                          split_ex["test"], all_ex, shipped, cfg, out / "runs", args.seed)
        results["folds"][name]["shipped_thresholds_from"] = args.init
        # a killed run leaves the previous report whole
        write_atomically(out / "loso.json", json.dumps(results, indent=2) + "\n")
        write_atomically(out / "loso.md", markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
