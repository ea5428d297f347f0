"""`safevlm feedback thresholds`: thresholds from the labels saved in the log (no model)."""

from __future__ import annotations

from pathlib import Path

from safevlm.cli import CLIError


def checkpoint_taxonomy(checkpoint: str | None):
    """The taxonomy (and its default thresholds) of a checkpoint, read from its config file."""
    from safevlm.assets import ASSETS_DIR
    from safevlm.config import SafeVLMConfig
    from safevlm.model.modeling import CONFIG_FILE
    from safevlm.taxonomy import Taxonomy, load_taxonomy

    folder = Path(checkpoint) if checkpoint else ASSETS_DIR / "checkpoint"
    config = folder / CONFIG_FILE
    if not config.is_file():
        if checkpoint:
            raise CLIError(f"{folder}: no {CONFIG_FILE}; pass the checkpoint folder whose turns were labelled")
        return load_taxonomy()
    taxonomy = SafeVLMConfig.from_json(config).taxonomy
    return Taxonomy.from_dict(taxonomy, source=str(config)) if taxonomy else load_taxonomy()


def cmd_thresholds(args) -> int:
    from safevlm.feedback.labels import summary, threshold_policy, write_policy
    from safevlm.policy import Thresholds
    from safevlm.store import Store

    if not Path(args.db).is_file():
        raise CLIError(f"no log at {args.db}: pass --db, the SQLite file the app writes (SAFEVLM_DB)")
    taxonomy = checkpoint_taxonomy(args.checkpoint)
    current = Thresholds.default(taxonomy)
    with Store(args.db) as store:
        turns = store.labelled_turns()
    policy = threshold_policy(turns, taxonomy, current, args.max_false_flags, db=str(args.db))
    print(summary(policy, taxonomy))
    if args.out:
        print(f"wrote {write_policy(policy, args.out)} (SAFEVLM_POLICY={args.out} makes the app start from it)")
    return 0


def register_cli(sub) -> None:
    """Add `safevlm feedback ...` to the CLI's subparsers."""
    p = sub.add_parser("feedback", help="turn the labels in the log into thresholds",
                       description="Use what annotators labelled in the app's log.")
    commands = p.add_subparsers(dest="feedback_command", required=True)
    t = commands.add_parser(
        "thresholds", help="per-type curves and thresholds at a false-flag budget, from labelled turns",
        description="Per risk type, precision, recall and false-flag rate of the logged probabilities "
                    "on labelled turns over a threshold grid, and per-type thresholds that flag the "
                    "most risky turns with at most --max-false-flags of safe ones flagged. Writes a "
                    "policy file with --out (the app reads it from SAFEVLM_POLICY).")
    t.add_argument("--db", default="logs/safevlm.db", help="the app's SQLite log (default logs/safevlm.db)")
    t.add_argument("--checkpoint", default=None,
                   help="checkpoint whose taxonomy and defaults apply (default: assets/checkpoint)")
    t.add_argument("--max-false-flags", type=float, default=0.03,
                   help="share of safe labelled turns that may be flagged (default 0.03)")
    t.add_argument("--out", default=None, metavar="policy.json", help="write the policy file here")
    t.set_defaults(func=cmd_thresholds)
