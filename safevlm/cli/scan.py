"""`safevlm scan`: the safety head over a dataset, as CSV + HTML."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from safevlm.cli import CLIError, add_model_args, load_engine
from safevlm.tools.scan import scan
from safevlm.tools.scan_inputs import find_items
from safevlm.tools.scan_report import THUMBS_DIR

log = logging.getLogger(__name__)


def cmd_scan(args) -> int:
    if args.batch_size < 1 or args.top < 0 or args.limit < 0:
        raise CLIError("--batch-size must be >= 1, --top and --limit >= 0")
    items = find_items(args.path, args.prompt, args.image_root)  # checked before the model loads
    thumbs = (Path(args.out) / THUMBS_DIR).resolve()
    items = [i for i in items if i.image is None or thumbs not in i.image.resolve().parents]
    if args.limit:
        items = items[: args.limit]
    engine = load_engine(args)
    thresholds = engine.thresholds(args.thresholds)
    if args.no_ocr:
        engine.reader = None
    source = {
        "input": str(Path(args.path).resolve()),
        "prompt": args.prompt,
        "image_root": str(Path(args.image_root).resolve()) if args.image_root else None,
    }
    result = scan(
        engine,
        items,
        args.out,
        thresholds,
        batch_size=args.batch_size,
        top=args.top,
        progress=not args.no_progress,
        source=json.dumps(source, sort_keys=True),
    )
    print(result.summary())
    log.info("scan result: %s", asdict(result))
    return 0


def register_cli(sub) -> None:
    """Add `safevlm scan` to the CLI's subparsers."""
    p = sub.add_parser(
        "scan",
        help="find risky content in a dataset: classify every image, write CSV + HTML",
        description="Classify every item of a folder of images (recursive: jpg, png, webp, gif, "
        "bmp), a JSONL in the training schema or a LLaVA-style JSON with the safety "
        "head and policy. Writes OUT/scan.csv (one row per item, appended as it goes: "
        "a rerun skips items already in it) and OUT/scan.html (counts per type and "
        "level, flagged share, the top items with thumbnails).",
    )
    p.add_argument("path", metavar="PATH", help="a folder of images, a .jsonl or a LLaVA .json")
    p.add_argument(
        "--prompt",
        default=None,
        help="the request the head reads with each image (default: the record's own "
        'prompt; for a folder "Describe this image.")',
    )
    p.add_argument(
        "--image-root",
        default=None,
        metavar="DIR",
        help="folder that relative image paths of a JSONL/JSON resolve against "
        "(default: the file's folder)",
    )
    p.add_argument("--out", default="reports/scan", help="report folder (default reports/scan)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="items per LLM query pass and safety-head pass (default 16)",
    )
    p.add_argument(
        "--no-ocr", action="store_true", help="skip the reader (faster, misses text in images)"
    )
    p.add_argument("--limit", type=int, default=0, help="scan only the first N items (default all)")
    p.add_argument("--top", type=int, default=50, help="items shown in scan.html (default 50)")
    add_model_args(p, json_output=False)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_scan)
