"""The `safevlm` command line (also `python -m safevlm`): classify and chat here; eval, scan
and bench in this package's modules. Catches library errors once and prints one line.

Output contract: with --json, one JSON object per line; see README "CLI".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from safevlm.config import MODES
from safevlm.errors import SafeVLMError, UserError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CLIError(SafeVLMError):
    """An error to print as one line and exit non-zero."""


def add_model_args(p: argparse.ArgumentParser, json_output: bool = True) -> None:
    """--base, --checkpoint, --quantization, --thresholds (and --json): every model command."""
    p.add_argument("--base", default="tiny", help="'tiny' (offline default) or 'llava:<dir or hub id>'")
    p.add_argument("--checkpoint", default=None,
                   help="safety checkpoint directory (default: assets/checkpoint if present)")
    p.add_argument("--quantization", choices=["4bit", "8bit", "none"], default=None,
                   help="LLaVA only, needs CUDA")
    p.add_argument("--thresholds", default=None,
                   help='JSON overrides, e.g. \'{"illegal_risk": 0.3, "level": 0.4}\'')
    if json_output:
        p.add_argument("--json", action="store_true", help="one JSON object per line")


def load_engine(args):
    """The engine the model arguments name. --thresholds is parsed here, once, before any
    image is read: `args.thresholds` becomes a `Thresholds` (or stays None)."""
    from safevlm.engine import ChatEngine

    kwargs = {}
    if args.quantization and args.quantization != "none":
        kwargs["quantization"] = args.quantization
    engine = ChatEngine.load(args.base, args.checkpoint, **kwargs)
    if args.thresholds:
        args.thresholds = engine.thresholds(args.thresholds)
    return engine


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _human_verdict(image: str, verdict) -> str:
    d = verdict.decision
    top = max(verdict.type_probs.items(), key=lambda kv: kv[1])
    extra = f" type={d.type} level={d.level}" if d.flagged else ""
    return f"{image}: {d.action.upper()}{extra} (top {top[0]} {top[1]:.2f}, {sum(verdict.ms.values()):.0f} ms)"


def cmd_classify(args) -> int:
    from safevlm.images import ImageError

    engine = load_engine(args)
    failed = 0
    for image in args.images:
        try:
            verdict = engine.classify(image, args.prompt, args.thresholds)
        except ImageError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            _emit({"image": image, **verdict.to_dict()})
        else:
            print(_human_verdict(image, verdict))
    return EXIT_ERROR if failed else EXIT_OK


def _read_batch(path: str) -> list[dict]:
    items = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CLIError(f"cannot read batch file {path}: {e.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise CLIError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(item, dict) or "prompt" not in item:
            raise CLIError(f'{path}:{n}: expected {{"image": PATH, "prompt": TEXT}}')
        image = item.get("image")
        if image and not Path(image).is_absolute():
            image = str(Path(path).parent / image) if not Path(image).exists() else image
        items.append({**item, "image": image})
    return items


def cmd_chat(args) -> int:
    from safevlm.model.modeling import GenerationSettings

    if bool(args.batch) == bool(args.prompt):
        raise CLIError("pass either --prompt (with --image) or --batch FILE.jsonl")
    items = _read_batch(args.batch) if args.batch else [{"image": args.image, "prompt": args.prompt}]
    engine = load_engine(args)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    failed = 0
    for item in items:
        try:
            thresholds = engine.thresholds(item["thresholds"]) if "thresholds" in item else args.thresholds
            kwargs = dict(mode=item.get("mode", args.mode), thresholds=thresholds, settings=settings)
            if args.json or args.batch:
                result = engine.chat(item["image"], item["prompt"], **kwargs)
                _emit({"image": item["image"], "prompt": item["prompt"], **result.to_dict()})
            else:
                _stream_human(engine, item, kwargs)
        except UserError as e:  # this item's image, prompt, mode or thresholds
            failed += 1
            if args.batch:
                _emit({"image": item["image"], "prompt": item["prompt"], "error": str(e)})
            print(f"error: {e}", file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def _stream_human(engine, item: dict, kwargs: dict) -> None:
    stop = threading.Event()
    shown = 0
    try:
        for update in engine.stream(item["image"], item["prompt"], stop_event=stop, **kwargs):
            if shown == 0 and not update.text and not update.done:
                print(f"[{_human_verdict(item['image'] or '-', update.verdict)}; mode={update.mode}]",
                      file=sys.stderr)
            sys.stdout.write(update.text[shown:] if not update.done else "")
            sys.stdout.flush()
            shown = max(shown, len(update.text))
        sys.stdout.write("\n")
    except KeyboardInterrupt:
        stop.set()
        sys.stdout.write("\n[stopped]\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safevlm", description="Safety-aligned vision-language chat.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--verbose", action="store_true", help="info logs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="safety verdicts for images (no answer generated)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--prompt", default=None,
                   help='the request the head reads with each image (default: "Describe this image.")')
    add_model_args(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("chat", help="answer a prompt about an image, with the safety modules")
    p.add_argument("--image", default=None)
    p.add_argument("--prompt", default=None)
    p.add_argument("--batch", default=None, metavar="FILE.jsonl",
                   help='one {"image": PATH, "prompt": TEXT} per line; the model loads once')
    p.add_argument("--mode", choices=MODES, default=None,
                   help="safety conditioning for flagged inputs (default: the checkpoint's)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    add_model_args(p)
    p.set_defaults(func=cmd_chat)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable]:
    """Commands with a module of their own in this package (eval, scan, bench, feedback), then
    those other installed packages plug in through the `safevlm.commands` entry point group
    (`retrain`, from the project's `train` package, which the library never imports)."""
    from importlib.metadata import entry_points

    own = [__import__(module, fromlist=["register_cli"]).register_cli
           for module in ("safevlm.cli.eval", "safevlm.cli.scan", "safevlm.cli.bench", "safevlm.cli.feedback")]
    return own + [ep.load() for ep in sorted(entry_points(group="safevlm.commands"), key=lambda ep: ep.name)]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not args.debug:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except SafeVLMError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
