"""`safevlm bench` (`make bench`): measure the model on this machine, write a JSON and print
a short table. Measures only; no target is asserted."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safevlm.cli import CLIError


def cmd_bench(args) -> int:
    from safevlm.tools import bench

    if args.probe_load:  # the fresh process `bench.measure_load` starts
        print(json.dumps(bench._probe_load(args.base, args.checkpoint)))
        return 0
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise CLIError("--max-new-tokens must be >= 1")
    load_kwargs = {"quantization": args.quantization} if args.quantization else {}
    results = bench.run(args.base, args.checkpoint, args.quick, args.max_new_tokens, **load_kwargs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(bench.format_table(results))
    print(f"wrote {out}")
    return 0


def register_cli(sub) -> None:
    """Add `safevlm bench` to the CLI's subparsers."""
    p = sub.add_parser("bench", help="load, classify and chat speed and memory on this machine",
                       description="Load (fresh process), peak memory, classify latency, time to first "
                                   "token and tokens/s per conditioning mode vs the plain base, and "
                                   "scaling with image size, prompt length and turns.")
    p.add_argument("--out", default="bench/results.json", help="where to write the JSON results (= bench.DEFAULT_OUT)")
    p.add_argument("--quick", action="store_true", help="a reduced run (for tests, ~30 s)")
    p.add_argument("--base", default="tiny", help="'tiny' or 'llava:<dir or hub id>'")
    p.add_argument("--checkpoint", default=None, help="safety checkpoint (default: assets/checkpoint)")
    p.add_argument("--quantization", choices=["4bit", "8bit"], default=None, help="LLaVA on CUDA")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--probe-load", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)

