"""Stage 1 `safety`: the base stays frozen; train the safety projector, both safety token
sets and the safety head. Loss (paper): LM loss + weight x (CE type + CE level).

The head's inputs never pass through set 2 and the LM loss never passes through the head,
so the joint loss splits exactly: phase A fits projector, set 1 and head with the weighted
CE on cached features (seconds per epoch); phase B fits set 2 with the LM loss on flagged
examples in `tokens` mode (the only place set 2 acts).

    python -m train.stage1_safety --data data/gen --out runs/stage1 [--smoke]
    stage1_safety.run(Stage1Config(data=..., out=...))   # what the recipe calls
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from safevlm.config import SafeVLMConfig
from safevlm.model.bases import load_base
from safevlm.model.modeling import SafeVLM
from safevlm.policy import Thresholds
from train.calibrate import apply_thresholds, calibrate_model
from train.features import (
    FeatureCache,
    collate_head,
    collate_lm,
    head_logits,
    lm_loss,
    make_reader,
    shuffled_batches,
    split_examples,
)
from train.loop import (
    StageConfig,
    StageError,
    TrainConfig,
    base_parser,
    config_from_args,
    seed_everything,
    stage_main,
    train,
)

log = logging.getLogger(__name__)

HEAD_DEFAULTS = TrainConfig(epochs=3, lr=2e-3, batch_size=64, warmup_steps=20)
TOKEN_DEFAULTS = TrainConfig(epochs=1, lr=5e-3, batch_size=8, warmup_steps=5, max_steps=40)


@dataclass(kw_only=True)
class Stage1Config(StageConfig):
    """Stage 1's settings; `parser()` documents each as a flag."""
    weight: float | None = None  # the safety loss weight; None: the config's (paper: 10)
    query_source: str | None = None
    ocr_share: float = 1.0
    query_layer: int | None = None
    token_steps: int | None = None
    final_on_train_val: bool = False
    tokens_from: Path | None = None
    head_ensemble: int | None = None


def head_loss(model: SafeVLM, label_smoothing: float = 0.05, member: int | None = None):
    """Phase A's loss on a `collate_head` batch: `SafeVLM.forward` with labels."""
    def loss_fn(batch: dict) -> dict:
        out = model(batch["grid"], batch["queries"], batch["mask"], batch["type"], batch["level"],
                    member=member, label_smoothing=label_smoothing)
        return {"loss": out.loss, "ce_type": out.ce_type, "ce_level": out.ce_level}

    return loss_fn


@torch.no_grad()
def head_accuracy(model: SafeVLM, examples) -> dict:
    """Quick validation numbers for the metrics file (the full report is `safevlm eval`)."""
    if not examples:
        return {}
    safe = model.taxonomy.safe_index
    type_logits, level_logits = head_logits(model, examples)
    pred_type, pred_level = type_logits.argmax(-1), level_logits.argmax(-1)
    true_type = torch.tensor([e.type_index for e in examples])
    true_level = torch.tensor([e.level for e in examples])
    n = len(examples)
    return {"val_type_accuracy": int((pred_type == true_type).sum()) / n,
            "val_level_accuracy": int((pred_level == true_level).sum()) / n,
            "val_risky_vs_safe_accuracy": int(((pred_type != safe) == (true_type != safe)).sum()) / n,
            "val_examples": n}


def build_model(base, config: Stage1Config) -> SafeVLM:
    """The model phase A starts from: `--init`'s checkpoint, or fresh modules for the config."""
    if config.init:
        model = SafeVLM.from_pretrained(base, config.init, load_adapter=False)
        if config.head_ensemble is not None and config.head_ensemble != model.config.head_ensemble:
            raise StageError(f"--init {config.init} has {model.config.head_ensemble} safety classifier(s); "
                             f"--head-ensemble {config.head_ensemble} needs a fresh run (drop --init)")
    else:
        cfg = SafeVLMConfig(base=base.name)
        if config.query_source:
            cfg = cfg.override(query_source=config.query_source)
        if config.query_layer is not None:
            cfg = cfg.override(query_layer=config.query_layer)
        if config.head_ensemble is not None:
            cfg = cfg.override(head_ensemble=config.head_ensemble)
        model = SafeVLM(base, cfg)
    if config.weight is not None:  # the safety loss weight is the config's, saved with it
        model.config = model.config.override(safety_loss_weight=config.weight)
    return model


def fit_head(model: SafeVLM, examples, config: StageConfig, out: Path, suffix: str = "",
             defaults: TrainConfig = HEAD_DEFAULTS) -> float:
    """Phase A: projector, safety tokens set 1 and head on cached features, each ensemble
    member on its own loss, initialisation and batch order (their average is the head).
    Returns the seconds it took."""
    model.safety_tokens_llm.requires_grad_(False)
    head_cfg = config_from_args(config, defaults)
    seconds = 0.0
    for i, member in enumerate(model.members):
        name = ("head" if i == 0 else f"head{i}") + suffix
        result = train(member, shuffled_batches(examples, head_cfg.batch_size, config.seed + i, collate_head),
                       head_loss(model, member=i), head_cfg, out / name, len(examples),
                       f"stage1-{name}", resume=config.resume)
        seconds += result.seconds
    return seconds


def copy_llm_tokens(model: SafeVLM, checkpoint: Path) -> int:
    """Load safety tokens set 2 from another checkpoint of the same base."""
    from safevlm.model.modeling import WEIGHTS_FILE
    from safevlm.model.storage import CheckpointError, read_weights

    path = checkpoint / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(f"{checkpoint}: no {WEIGHTS_FILE} to take safety tokens set 2 from")
    state = {k.removeprefix("safety_tokens_llm."): v for k, v in read_weights(path).items()
             if k.startswith("safety_tokens_llm.")}
    own = model.safety_tokens_llm.state_dict()
    if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
        raise CheckpointError(f"{checkpoint}: its safety tokens set 2 do not fit this model")
    model.safety_tokens_llm.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return len(state)


def parser():
    p = base_parser("Stage 1: safety modules on a frozen base.")
    p.add_argument("--weight", type=float, default=None, help="safety loss weight (paper: 10)")
    p.add_argument("--query-source", choices=["hidden", "embeddings", "paper"], default=None)
    p.add_argument("--query-layer", type=int, default=None,
                   help="LLM layer the head reads (default: two thirds of the depth; see train.probe)")
    p.add_argument("--token-steps", type=int, default=None, help="phase B steps (0 skips set 2)")
    p.add_argument("--tokens-from", default=None,
                   help="take safety tokens set 2 from this checkpoint instead of phase B (set 2 only "
                        "meets the frozen LLM, so a checkpoint of the same base serves)")
    p.add_argument("--ocr-share", type=float, default=Stage1Config.ocr_share,
                   help="share of request-form images read by OCR; the rest use their drawn text")
    p.add_argument("--head-ensemble", type=int, default=None,
                   help="independently trained safety classifiers, probabilities averaged (default 1)")
    p.add_argument("--final-on-train-val", action="store_true",
                   help="after calibrating on val, train the shipped head anew on train+val (same settings) "
                        "and keep the val-calibrated thresholds; the train-only head stays in OUT/train_only")
    return p


def run(config: Stage1Config) -> Path:
    """Phase A (and the final head on train+val when asked), calibration on val, phase B;
    saves the safety modules and stage1.json in `config.out` and returns it."""
    seed_everything(config.seed)
    data, out = config.data, config.out

    base = load_base(config.base)
    model = build_model(base, config)
    limit = 24 if config.smoke else config.limit
    reader = make_reader(model)
    cache = FeatureCache.for_model(data, model)
    train_ex = split_examples(model, data, "train", cache, reader, limit, config.seed, config.ocr_share)
    val_ex = split_examples(model, data, "val", cache, reader, 8 if config.smoke else 0, ocr_share=config.ocr_share)

    # Phase A: projector, safety tokens set 1 and head, on cached features.
    head_seconds = fit_head(model, train_ex, config, out)
    val = head_accuracy(model, val_ex)
    log.info("stage 1 head: %s", val)
    calibration = calibrate_model(model, val_ex)  # default thresholds chosen on val, saved below
    trained_on = "train"
    if config.final_on_train_val and val_ex:
        # The head that ships learns from val's families too; it keeps the temperatures and
        # thresholds calibrated above on val, where the first head had not seen them.
        model.save_safety_modules(out / "train_only", metadata={"stage": "stage1", "trained_on": "train"})
        thresholds, calibrated = Thresholds.default(model.taxonomy), model.config
        seed_everything(config.seed)
        model = build_model(base, config)
        head_seconds += fit_head(model, train_ex + val_ex, config, out, suffix="-final")
        apply_thresholds(model, thresholds)
        model.config = dataclasses.replace(model.config, type_temperature=calibrated.type_temperature,
                                           level_temperature=calibrated.level_temperature)
        trained_on = "train+val"

    # Phase B: safety tokens set 2 with the LM loss, on flagged examples in `tokens` mode.
    model.requires_grad_(False)
    model.safety_tokens_llm.requires_grad_(True)
    risky = [e for e in train_ex if e.type_index != model.taxonomy.safe_index]
    token_cfg = config_from_args(config, TOKEN_DEFAULTS)
    token_cfg.max_steps = 2 if config.smoke else (config.token_steps if config.token_steps is not None
                                               else TOKEN_DEFAULTS.max_steps)
    if config.tokens_from:
        copied = copy_llm_tokens(model, Path(config.tokens_from))
        log.info("safety tokens set 2: %d tensor(s) taken from %s (phase B skipped)", copied, config.tokens_from)
    elif risky and token_cfg.max_steps > 0:
        def collate_tokens(examples):
            return collate_lm(model, examples, [{"tokens": True}] * len(examples))

        train(model, shuffled_batches(risky, token_cfg.batch_size, config.seed, collate_tokens),
              lambda b: {"loss": lm_loss(model, b)}, token_cfg, out / "tokens", len(risky),
              "stage1-tokens", resume=config.resume)
    model.save_safety_modules(out, metadata={"stage": "stage1", **{k: round(v, 4) for k, v in val.items()}})
    (out / "stage1.json").write_text(json.dumps({
        "train_examples": len(train_ex), "val": val, "calibration": calibration, "head_seconds": round(head_seconds, 1),
        "head_ensemble": model.config.head_ensemble, "ocr_share": config.ocr_share, "trained_on": trained_on,
        "weight": model.config.safety_loss_weight, "base": base.id}, indent=2) + "\n")
    log.info("saved stage 1 checkpoint to %s", out)
    return out


def main(argv: list[str] | None = None) -> int:
    return stage_main(parser(), Stage1Config, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
