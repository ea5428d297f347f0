"""Stage 2 `finetune`: safety modules frozen; LoRA (peft) on the LLM's linear layers,
trained with the LM loss on risky and clean data (paper: r=256, alpha=16, dropout 0.05 on
7B; scaled down for the tiny base).

Risky examples are conditioned the way inference conditions flagged inputs (the hint for
their type and level, safety tokens set 2, or both, drawn per example) and target the
project's refusal or cautious answer; clean examples carry their helpful answer. At
inference the adapter acts only on flagged inputs, so allowed inputs keep the base answer.

    python -m train.stage2_finetune --init runs/stage1 --data data/gen --out runs/stage2 [--smoke]
    stage2_finetune.run(Stage2Config(init=..., data=..., out=...))   # what the recipe calls
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from safevlm.config import Mode
from safevlm.model.bases import load_base
from safevlm.model.modeling import ADAPTER_DIR, CONFIG_FILE, WEIGHTS_FILE, SafeVLM
from train import loop
from train.features import collate_lm, lm_loss, shuffled_batches, split_examples
from train.loop import StageConfig, StageError, TrainConfig, stage_main

log = logging.getLogger(__name__)

DEFAULTS = TrainConfig(epochs=1, lr=3e-4, batch_size=8, warmup_steps=10, max_steps=100)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CONDITIONINGS = (Mode.HINT, Mode.TOKENS, Mode.BOTH)


@dataclass(kw_only=True)
class Stage2Config(StageConfig):
    """Stage 2's settings (`init`, a stage 1 checkpoint, is required); `parser()` documents them."""
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    clean_fraction: float = 0.35


def conditioning_for(example, taxonomy, rng: random.Random) -> dict:
    """How inference would condition this example if the head flagged it correctly."""
    if example.type_index == taxonomy.safe_index:
        return {}
    mode = rng.choice(CONDITIONINGS)
    hint = taxonomy.hint(example.record.type, example.record.level) if mode.uses_hint else None
    return {"hint": hint, "tokens": mode.uses_tokens}


def lora_targets(base) -> str:
    """A peft target regex for the LLM's linear layers only: on LLaVA the CLIP tower's
    attention has q_proj/k_proj/v_proj too, and it must stay as stage 1 saw it."""
    prefix = next(name for name, module in base.lm.named_modules() if module is base.text_model)
    return rf"{re.escape(prefix)}\..*\.({'|'.join(LORA_TARGETS)})"


def half_precision(path: Path) -> None:
    """Store the adapter in fp16 (peft casts it back on load): half the shipped size."""
    from safetensors.torch import load_file, save_file

    save_file({k: v.half().contiguous() for k, v in load_file(str(path)).items()}, str(path))


def parser():
    p = loop.base_parser("Stage 2: LoRA fine-tuning with the safety modules frozen.")
    p.add_argument("--rank", type=int, default=Stage2Config.rank)
    p.add_argument("--alpha", type=int, default=Stage2Config.alpha)
    p.add_argument("--dropout", type=float, default=Stage2Config.dropout)
    p.add_argument("--clean-fraction", type=float, default=Stage2Config.clean_fraction,
                   help="share of clean examples in the stage 2 mix")
    return p


def run(config: Stage2Config) -> Path:
    """LoRA on the stage 1 checkpoint `config.init`; saves the adapter (fp16), the safety
    modules and stage2.json in `config.out` and returns it."""
    if config.init is None:
        raise StageError("stage 2 needs --init, a stage 1 checkpoint")
    loop.seed_everything(config.seed)
    from peft import LoraConfig, get_peft_model

    data, out, init = config.data, config.out, config.init
    base = load_base(config.base)
    model = SafeVLM.from_pretrained(base, init, load_adapter=False)
    model.requires_grad_(False)
    limit = 16 if config.smoke else config.limit
    examples = split_examples(model, data, "train", limit=limit, seed=config.seed)
    rng = random.Random(config.seed)
    risky = [e for e in examples if e.type_index != model.taxonomy.safe_index]
    clean = [e for e in examples if e.type_index == model.taxonomy.safe_index]
    n_clean = min(len(clean), int(len(risky) * config.clean_fraction / max(1e-6, 1 - config.clean_fraction)))
    mix = risky + rng.sample(clean, n_clean)
    conditioning = {id(e): conditioning_for(e, model.taxonomy, rng) for e in mix}

    targets = lora_targets(base)
    base.lm = get_peft_model(base.lm, LoraConfig(
        r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
        target_modules=targets, task_type="CAUSAL_LM",
    ))
    cfg = loop.config_from_args(config, DEFAULTS)

    def collate(batch):
        return collate_lm(model, batch, [conditioning[id(e)] for e in batch])

    result = loop.train(base.lm, shuffled_batches(mix, cfg.batch_size, config.seed, collate),
                   lambda b: {"loss": lm_loss(model, b)}, cfg, out / "lora", len(mix), "stage2-lora",
                   resume=config.resume)
    out.mkdir(parents=True, exist_ok=True)
    base.lm.save_pretrained(str(out / ADAPTER_DIR))
    half_precision(out / ADAPTER_DIR / "adapter_model.safetensors")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copy(init / name, out / name)
    (out / "stage2.json").write_text(json.dumps({
        "examples": len(mix), "risky": len(risky), "clean": n_clean, "steps": result.steps,
        "seconds": round(result.seconds, 1), "final_loss": result.losses[-1],
        "lora": {"r": config.rank, "alpha": config.alpha, "dropout": config.dropout, "targets": targets},
        "base": base.id}, indent=2) + "\n")
    log.info("saved stage 2 checkpoint (safety modules + adapter) to %s", out)
    return out


def main(argv: list[str] | None = None) -> int:
    return stage_main(parser(), Stage2Config, run, argv, needs_init="a stage 1 checkpoint")


if __name__ == "__main__":
    raise SystemExit(main())
