"""`make train`: the whole recipe for the shipped default checkpoint, one command.

generate data -> stage 1 (safety modules) -> stage 2 (LoRA) -> eval (and the app's example
photos: its examples, the project's questions about them) -> copy the checkpoint to
assets/checkpoint and write assets/MODEL_CARD.md. Each step is skipped when
its output exists (delete it, or pass --fresh, to redo it); timings go to recipe.json.

    python -m train.recipe [--n 2400] [--out runs/default] [--no-ship] [--smoke]
    python -m train.recipe --base llava:/path/to/llava-1.5-7b-hf --out runs/llava   # GPU host

Only a checkpoint of the offline default base (`tiny`) is shipped to assets/: the app
starts on it. Any other base trains, evaluates and stays in --out.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

from safevlm.assets import ASSETS_DIR
from safevlm.data.generator.request_set import RequestSetOptions
from safevlm.data.public import DEFAULT_SOURCES
from safevlm.model.modeling import ADAPTER_DIR, CONFIG_FILE, WEIGHTS_FILE

log = logging.getLogger(__name__)
SHIPPED = ASSETS_DIR / "checkpoint"
# Chosen with a layer probe on the public request data (docs/experiments.md): layers 14-20
# score alike on held-out sources; 16 was best and costs a fifth less than 20.
TINY_QUERY_LAYER = 16


def run_step(name: str, done: bool, fn, timings: dict, record: Path) -> None:
    """Run a step unless its output exists; record its wall time in `record` right away,
    so an interrupted recipe keeps the timings of the steps it finished."""
    if done:
        log.info("%s: already done, skipping", name)
        return
    t0 = time.perf_counter()
    fn()
    timings[name] = round(time.perf_counter() - t0, 1)
    log.info("%s: %.0f s", name, timings[name])
    saved = json.loads(record.read_text()) if record.exists() else {}
    saved.setdefault("timings_s", {})[name] = timings[name]
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(saved, indent=2) + "\n")


def ship(checkpoint: Path, target: Path | None = None) -> None:
    """Copy only what inference needs (config, safety modules, adapter) into `target`,
    by default SHIPPED, looked up at call time so that a test can point it elsewhere."""
    target = target or SHIPPED
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copy(checkpoint / name, target / name)
    if (checkpoint / ADAPTER_DIR).exists():
        shutil.copytree(checkpoint / ADAPTER_DIR, target / ADAPTER_DIR,
                        ignore=shutil.ignore_patterns("README.md"))


PHOTO_QUESTIONS = "photo_questions.json"  # assets/data/'s questions about the example photos; the run's answers

# What a run in --out was made with; a rerun that asks for other values must not reuse it.
RUN_KEYS = ("base", "head_ensemble", "n", "seed", "data", "stage2_steps", "requests", "query_layer",
            "ocr_share", "llm_parts", "final_on_train_val")


def check_same_run(record: Path, wanted: dict) -> None:
    """Refuse to resume a run whose recorded settings differ from `wanted` (its outputs
    were trained for them: resuming would mix bases or ship the wrong checkpoint)."""
    saved = json.loads(record.read_text()) if record.exists() else {}
    for key in RUN_KEYS:
        if key in saved and saved[key] != wanted[key]:
            raise SystemExit(f"error: {record.parent} holds a run with {key}={saved[key]!r}, not "
                             f"{wanted[key]!r}: pass --fresh to redo it, or another --out")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train the default SafeVLM checkpoint end to end.")
    p.add_argument("--base", default="tiny", help="'tiny' (offline default) or 'llava:<dir or hub id>'")
    p.add_argument("--data", default="data/gen")
    p.add_argument("--n", type=int, default=2400, help="generated records")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/default")
    p.add_argument("--chat-limit", type=int, default=40, help="records judged with the full chat")
    p.add_argument("--head-ensemble", type=int, default=3,
                   help="safety classifiers trained independently and averaged (1 = the paper's single head)")
    p.add_argument("--stage2-steps", type=int, default=None, help="LoRA steps (default: the stage's)")
    p.add_argument("--sources", default=",".join(DEFAULT_SOURCES),
                   help="public request sources (comma-separated, 'none' for none); see data/public/")
    p.add_argument("--alpaca", type=int, default=2500, help="ordinary Alpaca instructions used")
    p.add_argument("--no-edgy", action="store_true", help="leave out the edgy contrastive families")
    p.add_argument("--query-layer", type=int, default=None,
                   help=f"LLM layer the safety head reads (tiny: {TINY_QUERY_LAYER}; others: two thirds of the depth)")
    p.add_argument("--ocr-share", type=float, default=0.15,
                   help="share of drawn request images read by OCR in training (the rest use the drawn text)")
    p.add_argument("--eval-limit", type=int, default=3000, help="records per eval set (0 = all)")
    p.add_argument("--llm-parts-from", default=None,
                   help="reuse safety tokens set 2 and the LoRA adapter of this checkpoint (default for tiny: "
                        "the shipped one, when it has them) instead of phase B and stage 2: both meet only the "
                        "frozen LLM, the hints and the refusal targets, never the safety head")
    p.add_argument("--retrain-llm-parts", action="store_true",
                   help="train set 2 (phase B) and the LoRA adapter (stage 2) anew")
    p.add_argument("--final-on-train-val", action="store_true",
                   help="stage 1 trains the shipped head anew on train+val after calibrating on val")
    p.add_argument("--no-ship", action="store_true", help="do not copy into assets/")
    p.add_argument("--fresh", action="store_true", help="redo every step")
    p.add_argument("--smoke", action="store_true", help="tiny data, a few steps (CI)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from safevlm.data.generator.generate import generate_dataset, make_figstep_eval
    from train import stage1_safety, stage2_finetune

    data, out = Path(args.data), Path(args.out)
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    n = 48 if args.smoke else args.n
    timings: dict[str, float] = {}
    record = out / "recipe.json"
    query_layer = args.query_layer if args.query_layer is not None else (
        TINY_QUERY_LAYER if args.base == "tiny" else 0)
    sources = () if args.sources == "none" else tuple(s for s in args.sources.split(",") if s)
    requests = RequestSetOptions(sources=sources, limits={"alpaca": args.alpaca},
                                 edgy=not args.no_edgy)
    if args.smoke:  # a handful of requests of two sources and of the edgy families
        requests = RequestSetOptions(
            sources=tuple(s for s in ("jailbreakbench", "alpaca") if s in sources),
            limits={"alpaca": 12, "jailbreakbench": 12}, edgy=not args.no_edgy, edgy_limit=12)
    run = {"base": args.base, "head_ensemble": args.head_ensemble, "n": n, "seed": args.seed,
           "data": str(data), "stage2_steps": args.stage2_steps, "requests": requests.describe(),
           "query_layer": query_layer, "ocr_share": args.ocr_share, "final_on_train_val": args.final_on_train_val}
    parts = None
    if not args.retrain_llm_parts and not args.smoke:
        source = Path(args.llm_parts_from) if args.llm_parts_from else (SHIPPED if args.base == "tiny" else None)
        if source is not None and (source / ADAPTER_DIR).exists():
            parts = out / "llm_parts"  # a copy: shipping replaces SHIPPED
            if not parts.exists():
                shutil.copytree(source, parts)
    run["llm_parts"] = "reused" if parts else "trained"
    check_same_run(record, run)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({**(json.loads(record.read_text()) if record.exists() else {}), **run},
                                 indent=2) + "\n")
    run_step("data", (data / "summary.json").exists() and not args.fresh,
             lambda: (generate_dataset(data, n=n, seed=args.seed, progress=True, requests=requests),
                      make_figstep_eval(data / "figstep_eval", args.seed)), timings, record)
    stage1 = stage1_safety.Stage1Config(
        base=args.base, data=data, out=out / "stage1", seed=args.seed, head_ensemble=args.head_ensemble,
        query_layer=query_layer, ocr_share=args.ocr_share, tokens_from=parts,
        final_on_train_val=args.final_on_train_val, smoke=args.smoke)
    run_step("stage1", (out / "stage1" / WEIGHTS_FILE).exists(), lambda: stage1_safety.run(stage1),
             timings, record)

    def reuse_adapter():
        shutil.rmtree(out / "stage2", ignore_errors=True)
        shutil.copytree(out / "stage1", out / "stage2", ignore=shutil.ignore_patterns("head*", "tokens"))
        shutil.copytree(parts / ADAPTER_DIR, out / "stage2" / ADAPTER_DIR)
        (out / "stage2" / "stage2.json").write_text(json.dumps({"reused_from": str(parts)}) + "\n")

    stage2 = stage2_finetune.Stage2Config(base=args.base, init=out / "stage1", data=data, out=out / "stage2",
                                          seed=args.seed, max_steps=args.stage2_steps, smoke=args.smoke)
    run_step("stage2", (out / "stage2" / ADAPTER_DIR).exists(),
             reuse_adapter if parts else lambda: stage2_finetune.run(stage2), timings, record)
    eval_dir = out / "eval"

    @functools.cache
    def checkpoint_engine():
        """The trained checkpoint, loaded once for the steps below that need it."""
        from safevlm.engine import ChatEngine

        return ChatEngine.load(args.base, out / "stage2")

    def evaluate_checkpoint():
        # finds the FigStep-like held-out set beside the data by itself
        from safevlm.tools.eval import DEFAULT_MAX_NEW_TOKENS, evaluate

        evaluate(checkpoint_engine(), data, eval_dir, chat_limit=4 if args.smoke else args.chat_limit,
                 limit=32 if args.smoke else args.eval_limit,
                 max_new_tokens=8 if args.smoke else DEFAULT_MAX_NEW_TOKENS, base_arg=args.base)

    run_step("eval", (eval_dir / "eval.json").exists(), evaluate_checkpoint, timings, record)

    def check_examples():
        from safevlm.tools.eval import evaluate_app_examples

        rows = evaluate_app_examples(checkpoint_engine(), ASSETS_DIR / "examples.json", 8 if args.smoke else 48)
        (out / "examples.json").write_text(json.dumps(rows, indent=2) + "\n")

    run_step("examples", (out / "examples.json").exists(), check_examples, timings, record)

    # redone when the questions change, so the card never reports answers to older ones
    questions = ASSETS_DIR / "data" / PHOTO_QUESTIONS
    questions_sha = hashlib.sha256(questions.read_bytes()).hexdigest()

    def check_photo_questions():
        from safevlm.tools.eval import evaluate_photo_questions

        found = evaluate_photo_questions(checkpoint_engine(), questions, ASSETS_DIR / "examples")
        (out / PHOTO_QUESTIONS).write_text(json.dumps({**found, "questions_sha256": questions_sha}, indent=2) + "\n")

    answered = json.loads((out / PHOTO_QUESTIONS).read_text()) if (out / PHOTO_QUESTIONS).exists() else {}
    run_step("photo_questions", answered.get("questions_sha256") == questions_sha, check_photo_questions,
             timings, record)
    saved = json.loads(record.read_text()) if record.exists() else {}
    saved.update({**run, "out": str(out), "chat_limit": args.chat_limit})
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(saved, indent=2) + "\n")
    if args.base != "tiny" and not args.no_ship:
        log.info("not shipping: assets/ holds the checkpoint of the offline default base only; "
                 "this one is in %s", out / "stage2")
    elif not args.no_ship and not args.smoke:
        ship(out / "stage2")
        from train.model_card import write_model_card

        write_model_card(data, out, ASSETS_DIR / "MODEL_CARD.md")
        log.info("shipped %s and wrote the model card", SHIPPED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
