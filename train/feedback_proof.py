"""The feedback loop measured end to end: a family of requests the checkpoint gets wrong,
simulated annotators who label part of it through the store API the app uses, then (a)
thresholds from those labels and (b) a retrain with the promotion gate; the error on the
family's held-out part before and after each.

    python -m train.feedback_proof --checkpoint assets/checkpoint --data data/gen \
        --family edgy-definition-drug-slang --out runs/feedback_proof [--results bench/results.json]

The family is every record of the data whose request id starts with `--family` (all forms:
text, typographic, split), split by request (a hash of its id) into the part annotators see
and a held-out part: no request is on both sides. Choose a family of the test split, so that
neither the replay (train) nor the gate's fixed set (val) holds any of it. The simulated
annotators label by the record's true type and level: the first labels every turn, the
second a quarter of them (so the export's agreement has pairs). Verdicts come from the
engine, as in the app, at the checkpoint's thresholds (or the policy's, for (a)).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from safevlm.data.schema import Record, read_jsonl
from safevlm.data.splits import hash_fraction
from safevlm.engine import ChatEngine
from safevlm.feedback.export import feedback_records, write_records
from safevlm.feedback.labels import threshold_policy, write_policy
from safevlm.images import load_image
from safevlm.metrics import flag_rates
from safevlm.policy import Thresholds
from safevlm.registry import Registry
from safevlm.store import Store
from train import retrain

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def family_records(data: Path, prefix: str, taxonomy) -> list[Record]:
    out = []
    for split in SPLITS:
        if (data / f"{split}.jsonl").exists():
            out += [r for r in read_jsonl(data / f"{split}.jsonl", taxonomy)
                    if str((r.meta or {}).get("request_id", "")).startswith(prefix)]
    if not out:
        raise SystemExit(f"error: no record of {data} has a request id starting with {prefix!r}")
    return out


def split_family(records: list[Record], held_out: float) -> tuple[list[Record], list[Record]]:
    """(annotated, held out), by request: every form of one request lands on the same side."""
    annotated, held = [], []
    for r in records:
        key = f"proof:{(r.meta or {}).get('request_id', r.prompt)}"
        (held if hash_fraction(key) < held_out else annotated).append(r)
    return annotated, held


def family_error(engine: ChatEngine, records: list[Record], thresholds: Thresholds | None = None) -> dict:
    """`safevlm.metrics.flag_rates` of the engine's decisions on `records` (error: flagged != risky)."""
    verdicts = engine.classify_batch([load_image(r.image_path) for r in records], [r.prompt for r in records],
                                     thresholds) if records else []
    return flag_rates([v.decision.flagged for v in verdicts], [r.type != engine.taxonomy.safe_type for r in records])


def simulate_annotators(engine: ChatEngine, store: Store, records: list[Record]) -> int:
    """Log each record as an app turn (the engine's verdict, the image saved by the store)
    and label it; returns the number of labels written."""
    session = store.start_session("ui", settings={"simulated": "feedback_proof"})
    thresholds = engine.default_thresholds()
    labels = 0
    for r in records:
        v = engine.classify(r.image_path, r.prompt, thresholds)
        d = v.decision
        turn = store.log_turn(
            session, prompt=r.prompt, response="(not generated: simulated turn)", decision=d.action,
            type=d.type, level=d.level, flagged=d.flagged, type_probs=v.type_probs, level_probs=v.level_probs,
            hint=d.hint, mode="hint", thresholds=thresholds.to_dict(), base=str(engine.describe().get("base")),
            checkpoint=engine.checkpoint_id, timings=v.ms, source="ui", image=r.image_path,
            reader_text=v.reader_text)
        annotators = ["sim-1"] + (["sim-2"] if hash_fraction(f"second:{r.prompt}:{r.image}") < 0.25 else [])
        for name in annotators:
            store.annotate(turn, annotator=name, decision_correct=d.flagged == (r.type != engine.taxonomy.safe_type),
                           true_type=r.type, true_level=r.level)
            labels += 1
    return labels


def run(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    engine = ChatEngine.load(args.base, args.checkpoint)
    family = family_records(Path(args.data), args.family, engine.taxonomy)
    annotated, held = split_family(family, args.held_out)
    if args.n:
        annotated = annotated[: args.n]
    before = family_error(engine, held)
    timings["load_and_measure"] = time.perf_counter() - t0

    t = time.perf_counter()
    with Store(out / "log.db") as store:
        labels = simulate_annotators(engine, store, annotated)
        timings["annotate"] = time.perf_counter() - t
        # (a) thresholds from the labels, no training
        t = time.perf_counter()
        policy = threshold_policy(store.labelled_turns(), engine.taxonomy, engine.default_thresholds(),
                                  args.max_false_flags, db=str(out / "log.db"))
        write_policy(policy, out / "policy.json")
        with_policy = family_error(engine, held, engine.thresholds(policy["thresholds"]))
        timings["thresholds"] = time.perf_counter() - t
        records, export_report = feedback_records(store, engine.taxonomy)
    write_records(records, out / "feedback.jsonl")

    # (b) retrain into a registry beside the proof, gate, promote
    t = time.perf_counter()
    registry_dir = out / "registry"
    config = retrain.RetrainConfig(
        feedback=out / "feedback.jsonl", init=Path(args.checkpoint), data=Path(args.data),
        out=registry_dir / f"retrain-{time.strftime('%Y%m%d-%H%M%S')}", base=args.base, seed=args.seed,
        replay=args.replay, feedback_share=args.feedback_share, lr=args.lr, holdout=args.feedback_holdout, eval_limit=args.eval_limit, epochs=args.epochs,
        risky_tolerance=args.risky_tolerance, benign_tolerance=args.benign_tolerance, smoke=args.smoke,
        recalibrate=args.recalibrate)
    new = retrain.run(config)
    timings["retrain"] = time.perf_counter() - t
    report = json.loads((new / "retrain_report.json").read_text())
    promoted = Registry(registry_dir).promoted_path()
    after = family_error(ChatEngine.load(args.base, new), held)  # the retrained one, promoted or not
    result = {
        "family": args.family, "data": str(args.data), "checkpoint": str(args.checkpoint),
        "labelled_records": len(annotated), "labels": labels, "held_out_records": len(held),
        "exported": export_report["records"], "agreement": export_report["agreement"]["percent"],
        "before": before, "thresholds_from_labels": {**with_policy, "thresholds": policy["thresholds"]},
        "after_retrain": after, "promoted": report["promoted"], "promoted_checkpoint": promoted.name,
        "gate": report["gate"], "fixed_set": {"before": report["before"]["fixed"], "after": report["after"]["fixed"]},
        "error_halved": {"thresholds": _halved(before, with_policy), "retrain": _halved(before, after)},
        "seconds": {k: round(v, 1) for k, v in timings.items()} | {"total": round(time.perf_counter() - t0, 1)},
    }
    (out / "proof.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.results:
        path = Path(args.results)
        saved = json.loads(path.read_text()) if path.exists() else {}
        saved.setdefault("feedback_loop", {})[args.family] = result
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    return result


def _halved(before: dict, after: dict) -> bool | None:
    if before["error"] is None or after["error"] is None:
        return None
    return after["error"] <= before["error"] / 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="assets/checkpoint")
    p.add_argument("--base", default="tiny")
    p.add_argument("--data", default="data/gen")
    p.add_argument("--family", required=True, help="request id prefix of the family (e.g. edgy-definition-drug-slang)")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=0, help="at most this many records annotated (0: all of that part)")
    p.add_argument("--held-out", type=float, default=0.4, help="share of the family's requests held out")
    p.add_argument("--feedback-holdout", type=float, default=0.3, help="retrain's own held-out share of the labels")
    p.add_argument("--max-false-flags", type=float, default=0.03)
    p.add_argument("--replay", type=int, default=retrain.RetrainConfig.replay)
    p.add_argument("--eval-limit", type=int, default=retrain.RetrainConfig.eval_limit)
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--feedback-share", type=float, default=retrain.RetrainConfig.feedback_share)
    p.add_argument("--risky-tolerance", type=float, default=retrain.RetrainConfig.risky_tolerance)
    p.add_argument("--benign-tolerance", type=float, default=retrain.RetrainConfig.benign_tolerance)
    p.add_argument("--recalibrate", action="store_true",
                   help="the retrained checkpoint gets thresholds calibrated on half of val (default: the parent's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results", default=None,
                   help="also write the result under 'feedback_loop' -> FAMILY in this JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = run(parser().parse_args(argv))
    print(json.dumps({k: result[k] for k in ("labelled_records", "held_out_records", "before",
                                             "thresholds_from_labels", "after_retrain", "promoted", "seconds")},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
