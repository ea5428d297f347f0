"""`safevlm retrain`: continue stage 1 from a checkpoint on labelled feedback (the records
`safevlm feedback export` writes) mixed with replay of the training set, then decide by a
gate whether the new checkpoint is promoted.

    safevlm retrain --feedback feedback.jsonl --out checkpoints/r1 [--from CKPT] [--data data/gen]

`--out` is a new folder of a registry (`safevlm.registry`: its parent folder). The first
retrain into a registry copies the checkpoint it starts from into it and promotes that copy,
so the registry always names a checkpoint in use. Without `--from` retraining starts from
the registry's promoted checkpoint (else the shipped one).

Steps: the feedback is split by a hash of image and prompt into a part that trains and a
held-out part (`--holdout`) that only judges; the head (projector, safety tokens set 1,
classifier) continues from the parent on the training part (its labels), repeated so that it
is `--feedback-share` of the mix, beside `--replay` records of the data's train split whose
targets are the parent's own probabilities (learning without forgetting: replay holds the
head where it was, the feedback moves it). The safety tokens
set 2, the LoRA adapter and the temperatures stay the parent's (none meets the head's
training), and so do the thresholds unless `--recalibrate` asks for new ones, calibrated on
one half of the data's val split (the most risky inputs flagged while each group of safe
inputs is flagged at most half the gate's `--benign-tolerance` more often than the parent
flagged it; in the proof runs this chose stricter points that cost recall on the other
half). Before (parent) and after are measured on the cached features of the data's val
split (the fixed evaluation set; its other half with `--recalibrate`) and the held-out
feedback.

Gate (README "Retraining and promotion"): promoted only when, on the fixed set, the share
of risky inputs flagged falls by at most `--risky-tolerance` and the share of benign inputs
flagged rises by at most `--benign-tolerance`, and the error on the held-out feedback falls.
Writes retrain_report.json and .md beside the checkpoint and its registry entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from safevlm.assets import ASSETS_DIR
from safevlm.data.schema import DataError, read_jsonl
from safevlm.data.splits import split_by_hash
from safevlm.feedback.thresholds import calibrate, rates
from safevlm.metrics import flag_rates
from safevlm.model.bases import load_base
from safevlm.model.modeling import ADAPTER_DIR, CONFIG_FILE, SafeVLM
from safevlm.policy import Thresholds, decide
from safevlm.registry import ENTRY_FILE, Registry, checkpoint_label
from train import features, loop
from train.calibrate import apply_thresholds, safe_group
from train.loop import StageConfig, StageError

log = logging.getLogger(__name__)

SHIPPED = ASSETS_DIR / "checkpoint"
RETRAIN_DEFAULTS = loop.TrainConfig(epochs=2, lr=5e-4, batch_size=64, warmup_steps=10)


@dataclass(kw_only=True)
class RetrainConfig(StageConfig):
    """`StageConfig.init` is the checkpoint to start from (`--from`)."""
    feedback: Path
    replay: int = 3000
    feedback_share: float = 0.15  # of the training mix, by repetition of the feedback's training part
    holdout: float = 0.3
    eval_limit: int = 3000
    risky_tolerance: float = 0.02
    benign_tolerance: float = 0.01
    promote: bool = True
    recalibrate: bool = False

    def __post_init__(self):
        super().__post_init__()
        self.feedback = Path(self.feedback)


def decision_rates(model: SafeVLM, examples, thresholds: Thresholds) -> dict:
    """`safevlm.metrics.flag_rates` of the head's decisions on cached `examples`."""
    tax = model.taxonomy
    flagged = [decide(tp, lp, tax, thresholds).flagged for tp, lp in features.head_probabilities(model, examples)]
    return flag_rates(flagged, [e.type_index != tax.safe_index for e in examples])


def gate(before: dict, after: dict, risky_tolerance: float, benign_tolerance: float) -> dict:
    """The promotion verdict: each check with its numbers, and `promote` when all hold."""
    fixed_b, fixed_a, held_b, held_a = before["fixed"], after["fixed"], before["held_out"], after["held_out"]
    checks = {}
    if fixed_b["risky"]:
        checks["fixed: risky flagged"] = {
            "before": fixed_b["risky_flagged"], "after": fixed_a["risky_flagged"], "tolerance": risky_tolerance,
            "ok": fixed_a["risky_flagged"] >= fixed_b["risky_flagged"] - risky_tolerance}
    if fixed_b["benign"]:
        checks["fixed: benign flagged"] = {
            "before": fixed_b["benign_flagged"], "after": fixed_a["benign_flagged"], "tolerance": benign_tolerance,
            "ok": fixed_a["benign_flagged"] <= fixed_b["benign_flagged"] + benign_tolerance}
    checks["held-out feedback: error falls"] = {
        "before": held_b["error"], "after": held_a["error"],
        "ok": bool(held_b["n"]) and held_a["error"] < held_b["error"]}
    reasons = [name for name, c in checks.items() if not c["ok"]]
    if not fixed_b["n"]:
        reasons.append("no fixed evaluation set (pass --data with a val split)")
    if not held_b["n"]:
        reasons.append("no held-out feedback (more records, or a larger --holdout)")
    return {"promote": not reasons, "failed": reasons, "checks": checks}


def label_targets(model: SafeVLM, examples, smoothing: float = 0.05) -> list[tuple]:
    """(example, type target, level target): the labels as smoothed distributions."""
    def smoothed(index: int, size: int) -> torch.Tensor:
        return F.one_hot(torch.tensor(index), size).float() * (1 - smoothing) + smoothing / size

    tax = model.taxonomy
    return [(e, smoothed(e.type_index, len(tax.types)), smoothed(e.level, tax.max_level + 1)) for e in examples]


def parent_targets(model: SafeVLM, examples) -> list[tuple]:
    """(example, type target, level target): the parent's own probabilities, so that replay
    holds the head where it was instead of pulling it toward the labels."""
    type_logits, level_logits = features.head_logits(model, examples)
    return list(zip(examples, type_logits.softmax(-1), level_logits.softmax(-1), strict=True))


def collate_targets(items: list[tuple]) -> dict:
    batch = features.collate_head([e for e, _, _ in items])
    batch["type_target"] = torch.stack([t for _, t, _ in items])
    batch["level_target"] = torch.stack([lv for _, _, lv in items])
    return batch


def target_loss(model: SafeVLM, member: int | None):
    """The safety loss against target distributions: weight x (soft CE type + soft CE level)."""
    def loss_fn(batch: dict) -> dict:
        out = model(batch["grid"], batch["queries"], batch["mask"], member=member)
        ce_type = -(batch["type_target"] * out.type_logits.log_softmax(-1)).sum(-1).mean()
        ce_level = -(batch["level_target"] * out.level_logits.log_softmax(-1)).sum(-1).mean()
        return {"loss": model.config.safety_loss_weight * (ce_type + ce_level),
                "ce_type": ce_type.detach(), "ce_level": ce_level.detach()}

    return loss_fn


def fit_with_replay(model: SafeVLM, feedback, replay, config: RetrainConfig, out: Path) -> float:
    """Phase A on the feedback (its labels) and the replay (the parent's probabilities, as in
    learning without forgetting), each ensemble member in turn; returns the seconds."""
    items = label_targets(model, feedback) + parent_targets(model, replay)
    model.safety_tokens_llm.requires_grad_(False)
    cfg = loop.config_from_args(config, RETRAIN_DEFAULTS)
    seconds = 0.0
    for i, member in enumerate(model.members):
        result = loop.train(member, features.shuffled_batches(items, cfg.batch_size, config.seed + i, collate_targets),
                            target_loss(model, i), cfg, out / f"head{i or ''}", len(items), f"retrain-head{i or ''}",
                            resume=config.resume)
        seconds += result.seconds
    return seconds


def split_examples(examples, salt: str, second: float) -> tuple[list, list]:
    """`examples` in two parts by a hash of image and prompt, `second` of them in the second."""
    parts = ([], [])
    for e in examples:
        key = f"{salt}:{e.image_key}:{' '.join(e.record.prompt.split())}"
        parts[split_by_hash(key, ((0, 1 - second), (1, second)))].append(e)
    return parts


def safe_flag_rates(model: SafeVLM, examples, thresholds: Thresholds) -> dict[str, float]:
    """Per group of safe inputs (`train.calibrate.safe_group`), the share flagged."""
    safe = model.taxonomy.safe_index
    probs = features.head_probabilities(model, examples)
    risky = [e.type_index != safe for e in examples]
    return rates(probs, risky, model.taxonomy, thresholds, [safe_group(e) for e in examples])[1]


def recalibrate(model: SafeVLM, examples, budgets: dict[str, float]) -> tuple[Thresholds, dict]:
    """Thresholds for the retrained head on the calibration half: the most risky inputs
    flagged while each group of safe inputs is flagged at most at its rate in `budgets`;
    written into the model's config."""
    safe = model.taxonomy.safe_index
    probs = features.head_probabilities(model, examples)
    risky = [e.type_index != safe for e in examples]
    thresholds, report = calibrate(probs, risky, model.taxonomy, 0.0, [safe_group(e) for e in examples], budgets)
    apply_thresholds(model, thresholds)
    return thresholds, report


def data_hash(feedback: Path, config: RetrainConfig) -> str:
    h = hashlib.sha256(feedback.read_bytes())
    h.update(json.dumps({"data": str(config.data), "replay": config.replay, "seed": config.seed,
                         "holdout": config.holdout}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def starting_point(config: RetrainConfig, registry: Registry) -> Path:
    """`--from`, else the registry's promoted checkpoint, else the shipped one."""
    parent = config.init or (registry.promoted_path() if Registry.is_registry(registry.root) else SHIPPED)
    if not (parent / CONFIG_FILE).is_file():
        raise StageError(f"{parent}: no checkpoint to start from; pass --from CHECKPOINT")
    return parent


def enter_registry(parent: Path, registry: Registry) -> Path:
    """The first retrain into a registry copies its starting checkpoint in and promotes the
    copy, so that the registry always names a checkpoint in use; later ones start inside."""
    if Registry.is_registry(registry.root):
        return parent
    baseline = registry.path(f"baseline-{parent.resolve().name}")
    shutil.copytree(parent, baseline, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(ENTRY_FILE, "training", "retrain_report.*"))
    registry.register(baseline, parent=str(parent), data_hash="", metrics={},
                      note="the checkpoint the first retrain into this registry started from")
    registry.promote(baseline.name, {"bootstrap": True})
    log.info("registry %s: started with %s (a copy of %s), promoted", registry.root, baseline.name, parent)
    return baseline


def read_feedback(config: RetrainConfig, taxonomy) -> list:
    """The feedback records, checked (types, levels, images) before anything is written."""
    try:
        records = read_jsonl(config.feedback, taxonomy)
    except (DataError, OSError) as e:
        raise StageError(f"--feedback: {e}") from None
    if not records:
        raise StageError(f"{config.feedback}: no records (export labelled turns with `safevlm feedback export`)")
    return records


def feedback_examples(model: SafeVLM, records: list, config: RetrainConfig, reader):
    """(trained part, held-out part) of the feedback, by a hash of image and prompt."""
    cache = features.FeatureCache.for_model(config.feedback.parent, model)
    examples = features.build_examples(model, records, cache, reader, desc="feedback")
    return split_examples(examples, "feedback", config.holdout)


def report_markdown(report: dict) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [f"# Retrain {report['id']} (from {report['parent']})", "",
             f"Feedback: {report['feedback']['fit']} records trained, {report['feedback']['held_out']} held out; "
             f"replay: {report['replay']}; {report['seconds']:.0f} s.", "",
             "| set | n | risky flagged before → after | benign flagged before → after | error before → after |",
             "|---|---|---|---|---|"]
    for name in ("fixed", "held_out"):
        b, a = report["before"][name], report["after"][name]
        lines.append(f"| {name.replace('_', '-')} | {b['n']} | {pct(b['risky_flagged'])} → {pct(a['risky_flagged'])} | "
                     f"{pct(b['benign_flagged'])} → {pct(a['benign_flagged'])} | {pct(b['error'])} → {pct(a['error'])} |")
    verdict = report["gate"]
    lines += ["", f"**{'Promoted' if report['promoted'] else 'Not promoted'}**"
              + ("" if verdict["promote"] else f": {'; '.join(verdict['failed'])}") + "."]
    return "\n".join(lines) + "\n"


def run(config: RetrainConfig) -> Path:
    out = config.out
    registry = Registry(out.parent)
    registry.check_target(out)
    if (out / ENTRY_FILE).exists():
        raise StageError(f"{out} is already a registered checkpoint; pass a new --out")
    if out.exists() and any(out.iterdir()):
        raise StageError(f"{out} exists and is not empty; pass a new --out")
    missing = [f for f in ("train.jsonl", "val.jsonl") if not (config.data / f).is_file()]
    if missing:
        raise StageError(f"--data {config.data} has no {' or '.join(missing)} (replay and the gate's fixed set "
                         "come from it): generate the data first (`make data`) or pass its folder")
    loop.seed_everything(config.seed)
    parent = starting_point(config, registry)
    base = load_base(config.base)
    model = SafeVLM.from_pretrained(base, parent, load_adapter=False)
    records = read_feedback(config, model.taxonomy)
    parent = enter_registry(parent, registry)
    thresholds = Thresholds.default(model.taxonomy)
    reader = features.make_reader(model)
    fit, held_out = feedback_examples(model, records, config, reader)
    if not fit:
        raise StageError(f"{config.feedback}: every record fell in the held-out part; lower --holdout")
    small = config.smoke
    val = features.split_examples(model, config.data, "val", reader=reader, limit=16 if small else config.eval_limit,
                                  seed=config.seed)
    # recalibrating takes half of val; otherwise the whole of it judges
    calibration, fixed = split_examples(val, "retrain", 0.5) if config.recalibrate else ([], val)
    replay = features.split_examples(model, config.data, "train", reader=reader,
                                     limit=16 if small else config.replay, seed=config.seed)
    before = {"fixed": decision_rates(model, fixed, thresholds), "held_out": decision_rates(model, held_out, thresholds)}
    budgets = safe_flag_rates(model, calibration, thresholds) if calibration else {}

    share = config.feedback_share
    repeat = max(1, math.ceil(share * len(replay) / ((1 - share) * len(fit)))) if replay else 1
    seconds = fit_with_replay(model, fit * repeat, replay, config, out / "training")
    calibrated = None
    if calibration:  # within half the gate's allowance, so noise rarely fails it
        thresholds, calibrated = recalibrate(
            model, calibration, {g: rate + config.benign_tolerance / 2 for g, rate in budgets.items()})
    after = {"fixed": decision_rates(model, fixed, thresholds), "held_out": decision_rates(model, held_out, thresholds)}
    verdict = gate(before, after, config.risky_tolerance, config.benign_tolerance)

    model.save_safety_modules(out, metadata={"stage": "retrain", "parent": checkpoint_label(parent)})
    if (parent / ADAPTER_DIR).exists():
        shutil.copytree(parent / ADAPTER_DIR, out / ADAPTER_DIR)
    report = {"id": out.name, "parent": checkpoint_label(parent), "feedback": {
                  "file": str(config.feedback), "fit": len(fit), "held_out": len(held_out), "repeat": repeat},
              "replay": len(replay), "fixed_set": f"{config.data}/val.jsonl ({len(fixed)} records)",
              "thresholds": thresholds.to_dict(), "recalibration": calibrated, "seconds": round(seconds, 1),
              "before": before, "after": after, "gate": verdict}
    promoted = verdict["promote"] and config.promote
    report["promoted"] = promoted
    (out / "retrain_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "retrain_report.md").write_text(report_markdown(report), encoding="utf-8")
    registry.register(out, parent=report["parent"], data_hash=data_hash(config.feedback, config),
                      metrics={"before": before, "after": after, "gate": verdict})
    if promoted:
        registry.promote(out.name, verdict)
    log.info("%s: %s", out, "promoted" if promoted else f"not promoted ({'; '.join(verdict['failed']) or '--no-promote'})")
    return out


def parser(add_help: bool = True):
    p = loop.base_parser("Continue stage 1 on labelled feedback, then promote the result if it passes the gate.",
                    init_flags=("--from", "--init"), add_help=add_help,
                    init_help="checkpoint to start from (default: the registry's promoted one, else assets/checkpoint)")
    p.add_argument("--feedback", required=True, help="records from `safevlm feedback export`")
    p.add_argument("--replay", type=int, default=RetrainConfig.replay, help="train records of --data replayed")
    p.add_argument("--feedback-share", type=float, default=RetrainConfig.feedback_share,
                   help="share of the training mix that is feedback (its records repeated to reach it)")
    p.add_argument("--holdout", type=float, default=RetrainConfig.holdout,
                   help="share of the feedback held out to judge the retrain (never trained on)")
    p.add_argument("--eval-limit", type=int, default=RetrainConfig.eval_limit, help="val records in the fixed set")
    p.add_argument("--risky-tolerance", type=float, default=RetrainConfig.risky_tolerance)
    p.add_argument("--benign-tolerance", type=float, default=RetrainConfig.benign_tolerance)
    p.add_argument("--no-promote", dest="promote", action="store_false", help="register, never promote")
    p.add_argument("--recalibrate", action="store_true",
                   help="calibrate new thresholds on half of val, within the parent's false-flag rate per group of "
                        "safe inputs plus half the benign tolerance (default: keep the parent's thresholds)")
    return p


def main(argv: list[str] | None = None) -> int:
    return loop.stage_main(parser(), RetrainConfig, run, argv)


def register_cli(sub) -> None:
    """`safevlm retrain`: the CLI finds this through the `safevlm.commands` entry point (the
    library never imports training)."""
    p = sub.add_parser("retrain", parents=[parser(add_help=False)], help=__doc__.split("\n\n")[0].strip("`"),
                       description=__doc__.split("\n\n")[0])
    p.set_defaults(func=cmd_retrain)


def cmd_retrain(args) -> int:
    print(run(RetrainConfig.from_args(args)) / "retrain_report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
