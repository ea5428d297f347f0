"""The one training loop every stage calls: accelerate, tqdm, seeded, resumable, metrics
JSON and a loss-curve PNG. Stages say what they train, how batches are made and the loss;
each stage is `run(config) -> Path` on a `StageConfig` subclass (the recipe calls it), and
its command line (`base_parser` plus its own flags) only builds that config.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from safevlm.errors import SafeVLMError

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: float = 3.0
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 16
    warmup_steps: int = 20
    max_steps: int = 0  # 0: from epochs
    grad_clip: float = 1.0
    seed: int = 0
    save_every: int = 200  # steps between resumable states
    log_every: int = 10


class StageError(SafeVLMError):
    """A stage asked for something it cannot do (a missing --init, a config that clashes with it)."""


@dataclass(kw_only=True)
class StageConfig:
    """What every stage takes: one field per `base_parser` flag, the same defaults (a test
    holds them together). A stage's own config adds its fields."""
    out: Path
    data: Path = Path("data/gen")
    base: str = "tiny"
    init: Path | None = None
    epochs: float | None = None
    lr: float | None = None
    batch_size: int | None = None
    max_steps: int | None = None
    seed: int = 0
    limit: int = 0
    smoke: bool = False
    resume: bool = False

    def __post_init__(self):
        self.out, self.data = Path(self.out), Path(self.data)
        if self.init is not None:
            self.init = Path(self.init)

    @classmethod
    def from_args(cls, args: argparse.Namespace):
        """The config a parsed command line asks for: every flag is a field (other attributes,
        such as the `safevlm` CLI's own, are not the stage's)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})


def base_parser(description: str, init_flags: tuple[str, ...] = ("--init",),
                init_help: str = "checkpoint to start from", add_help: bool = True) -> argparse.ArgumentParser:
    """The arguments every stage shares (defaults -> --key=value, as in nanoGPT)."""
    p = argparse.ArgumentParser(description=description, add_help=add_help)
    p.add_argument("--data", default="data/gen", help="folder with train.jsonl / val.jsonl")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--base", default="tiny")
    p.add_argument(*init_flags, dest="init", default=None, help=init_help)
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="use at most this many training records")
    p.add_argument("--smoke", action="store_true", help="a few steps on a few records (CI)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state if present")
    return p


def stage_main(parser: argparse.ArgumentParser, config_cls: type[StageConfig], run: Callable,
               argv: list[str] | None = None, needs_init: str = "") -> int:
    """A stage's command line: parse, check `--init` when the stage needs one (`needs_init`
    says what it must be), run, and turn a `SafeVLMError` into one line on stderr."""
    args = parser.parse_args(argv)
    if needs_init and not args.init:
        parser.error(f"--init ({needs_init}) is required")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(config_cls.from_args(args))
    except SafeVLMError as e:
        raise SystemExit(f"error: {e}") from None
    return 0


def config_from_args(args, defaults: TrainConfig) -> TrainConfig:
    cfg = TrainConfig(**asdict(defaults))
    for key in ("epochs", "lr", "batch_size", "max_steps"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    cfg.seed = args.seed
    if args.smoke:
        cfg.max_steps = min(cfg.max_steps or 4, 4)
        cfg.batch_size = min(cfg.batch_size, 4)
        cfg.warmup_steps = 1
    return cfg


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)


def train(module: nn.Module, batches: Callable[[int], Iterator], loss_fn: Callable[[object], dict],
          cfg: TrainConfig, out_dir: Path, num_examples: int, name: str,
          resume: bool = False) -> TrainResult:
    """Optimise the trainable parameters of `module`. `batches(epoch)` yields batches;
    `loss_fn(batch)` returns {"loss": tensor, **scalar parts}."""
    from accelerate import Accelerator

    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{name}: nothing to train")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(num_examples / cfg.batch_size))
    total = cfg.max_steps or max(1, int(cfg.epochs * steps_per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps))
        * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    module, optimizer, schedule = accelerator.prepare(module, optimizer, schedule)
    state_dir = out_dir / "state"
    result = TrainResult(0, 0.0)
    metrics_path = out_dir / "metrics.json"
    if resume and state_dir.exists():
        accelerator.load_state(str(state_dir))
        saved = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        result.losses = saved.get("losses", [])
        result.parts = saved.get("parts", {})
        result.steps = len(result.losses)
        log.info("%s: resumed at step %d", name, result.steps)
    t0 = time.perf_counter()
    module.train()
    bar = tqdm(total=total, initial=result.steps, desc=name, unit="step", dynamic_ncols=True)
    epoch = result.steps // steps_per_epoch
    while result.steps < total:
        skip = result.steps - epoch * steps_per_epoch  # resume mid-epoch on the same order
        for i, batch in enumerate(batches(epoch)):
            if i < skip:
                continue
            out = loss_fn(batch)
            accelerator.backward(out["loss"])
            if cfg.grad_clip:
                accelerator.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps += 1
            result.losses.append(float(out["loss"].detach()))
            for key, value in out.items():
                if key != "loss":
                    result.parts.setdefault(key, []).append(float(value))
            bar.update(1)
            if result.steps % cfg.log_every == 0:
                bar.set_postfix(loss=f"{sum(result.losses[-cfg.log_every:]) / cfg.log_every:.4f}")
            if result.steps % cfg.save_every == 0:
                accelerator.save_state(str(state_dir))
                _write_metrics(metrics_path, name, cfg, result, num_examples)
            if result.steps >= total:
                break
        epoch += 1
    bar.close()
    accelerator.save_state(str(state_dir))  # a resumed finished run restarts from its end
    module.eval()
    result.seconds = time.perf_counter() - t0
    _write_metrics(metrics_path, name, cfg, result, num_examples)
    plot_losses(result, out_dir / "loss.png", name)
    return result


def _write_metrics(path: Path, name: str, cfg: TrainConfig, result: TrainResult, n: int) -> None:
    path.write_text(json.dumps({
        "stage": name, "config": asdict(cfg), "examples": n, "steps": result.steps,
        "seconds": round(result.seconds, 1), "final_loss": result.losses[-1] if result.losses else None,
        "losses": result.losses, "parts": result.parts,
    }, indent=1) + "\n")


def plot_losses(result: TrainResult, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(result.losses, label="loss", lw=1)
    for key, values in result.parts.items():
        ax.plot(values, label=key, lw=0.8, alpha=0.7)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
