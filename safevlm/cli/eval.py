"""`safevlm eval`: classification metrics and refusal rates with and without safety."""

from __future__ import annotations

from safevlm.cli import CLIError, add_model_args, load_engine
from safevlm.config import MODES
from safevlm.tools.eval import DEFAULT_CHAT_LIMIT, DEFAULT_MAX_NEW_TOKENS, evaluate
from safevlm.tools.eval_report import summary_table


def cmd_eval(args) -> int:
    if not args.data and not args.extra:
        raise CLIError("pass --data DIR (reads DIR/<split>.jsonl) and/or --extra FILE.jsonl")
    if args.chat_limit < 0 or args.max_new_tokens < 1:
        raise CLIError("--chat-limit must be >= 0 and --max-new-tokens >= 1")
    engine = load_engine(args)  # parses --thresholds
    results, report = evaluate(engine, args.data, args.out, split=args.split, extra=args.extra or [],
                               thresholds=args.thresholds, limit=args.limit, chat_limit=args.chat_limit,
                               max_new_tokens=args.max_new_tokens, seed=args.seed, mode=args.mode,
                               progress=not args.no_progress, base_arg=args.base)
    print(summary_table(results))
    print(f"report: {report}")
    return 0


def register_cli(sub) -> None:
    """Add `safevlm eval` to the CLI's subparsers."""
    p = sub.add_parser(
        "eval", help="classification metrics and refusal rates with and without safety",
        description="Evaluate the safety head + policy on labelled JSONL sets and compare chat "
                    "answers with and without the safety modules. Writes eval.json, eval.md, "
                    "confusion_<set>.png and predictions_<set>.jsonl into --out.")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="dataset folder: reads DIR/<split>.jsonl (plus DIR/figstep_eval/"
                        "figstep_eval.jsonl or DIR/figstep/eval.jsonl when present)")
    p.add_argument("--split", default="test", help="split file to read from --data (default: test)")
    p.add_argument("--extra", nargs="+", action="extend", default=[], metavar="JSONL",
                   help="more eval sets, each reported separately (PATH or NAME=PATH)")
    add_model_args(p, json_output=False)
    p.add_argument("--mode", choices=MODES, default=None,
                   help="conditioning for the 'with safety' answers (default: the checkpoint's)")
    p.add_argument("--chat-limit", type=int, default=DEFAULT_CHAT_LIMIT,
                   help=f"records answered per set, half risky, half safe (default {DEFAULT_CHAT_LIMIT}; 0 skips chat)")
    p.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    p.add_argument("--limit", type=int, default=0,
                   help="classify at most N records per set (seeded sample; default all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the chat and --limit samples")
    p.add_argument("--out", default="reports/eval", help="report folder (default reports/eval)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_eval)
