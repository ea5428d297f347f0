"""Command line of the offline data generator: parses arguments, sets up logging, runs
`generate_dataset` (and the FigStep-like eval) and prints a short summary as JSON.

Owns argument parsing and printing only; the work is in `safevlm.data.generator.generate`.
Usage: python -m safevlm.data.generator.generate --out data/gen --n 2000 --seed 0 [--figstep-eval]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from safevlm.data.generator.generate import generate_dataset, make_figstep_eval
from safevlm.data.generator.request_set import RequestSetOptions
from safevlm.data.public import DEFAULT_SOURCES
from safevlm.data.schema import DataError

PRINTED_KEYS = ("records", "by_split", "by_type", "by_level", "by_kind", "seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m safevlm.data.generator.generate",
        description="Generate the SafeVLM offline training set (images + JSONL).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=2000, help="number of records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    parser.add_argument(
        "--figstep-eval",
        action="store_true",
        help="also write the FigStep-like eval set into OUT/figstep_eval",
    )
    parser.add_argument("--requests", action="store_true",
                        help="add the public request data and the edgy families, in several forms")
    parser.add_argument("--sources", default=",".join(DEFAULT_SOURCES),
                        help="public sources (comma-separated; 'none' for none); see data/public/")
    parser.add_argument("--alpaca", type=int, default=2500, help="ordinary Alpaca instructions used")
    parser.add_argument("--no-edgy", action="store_true", help="leave out the edgy families")
    return parser


def request_options(args) -> RequestSetOptions | None:
    if not args.requests:
        return None
    sources = () if args.sources == "none" else tuple(s for s in args.sources.split(",") if s)
    return RequestSetOptions(sources=sources, limits={"alpaca": args.alpaca}, edgy=not args.no_edgy)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = generate_dataset(
            args.out, n=args.n, seed=args.seed, workers=args.workers, progress=True,
            requests=request_options(args),
        )
        if args.figstep_eval:
            summary["figstep_eval"] = make_figstep_eval(Path(args.out) / "figstep_eval", args.seed)
    except DataError as e:
        parser.exit(2, f"error: {e}\n")
    print(json.dumps({k: summary[k] for k in PRINTED_KEYS if k in summary}, indent=2))
    if "figstep_eval" in summary:
        print(json.dumps({"figstep_eval": summary["figstep_eval"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
