"""`safevlm feedback thresholds|queue|export|calibrate`: thresholds, a review queue, training
records and a calibration report from the labels saved in the app's log; none loads the model."""

from __future__ import annotations

from pathlib import Path

from safevlm.cli import CLIError


def checkpoint_taxonomy(checkpoint: str | None):
    """The taxonomy (and its default thresholds) of a checkpoint, read from its config file."""
    from safevlm.assets import ASSETS_DIR
    from safevlm.config import SafeVLMConfig
    from safevlm.model.modeling import CONFIG_FILE
    from safevlm.registry import Registry
    from safevlm.taxonomy import Taxonomy, load_taxonomy

    folder = Path(checkpoint) if checkpoint else ASSETS_DIR / "checkpoint"
    if Registry.is_registry(folder):  # a registry: its promoted checkpoint
        folder = Registry(folder).promoted_path()
    config = folder / CONFIG_FILE
    if not config.is_file():
        if checkpoint:
            raise CLIError(f"{folder}: no {CONFIG_FILE}; pass the checkpoint folder whose turns were labelled")
        return load_taxonomy()
    taxonomy = SafeVLMConfig.from_json(config).taxonomy
    return Taxonomy.from_dict(taxonomy, source=str(config)) if taxonomy else load_taxonomy()


def _check_db(args) -> None:
    if not Path(args.db).is_file():
        raise CLIError(f"no log at {args.db}: pass --db, the SQLite file the app writes (SAFEVLM_DB)")


def _command(commands, func, what: str):
    """The parser of `safevlm feedback NAME` for `cmd_NAME`, whose docstring gives its help
    (first paragraph) and description (the rest), with --db and --checkpoint (every feedback
    command reads the log for one checkpoint's taxonomy)."""
    import inspect

    help_, _, description = inspect.getdoc(func).partition("\n\n")
    p = commands.add_parser(func.__name__.removeprefix("cmd_"), help=help_,
                            description=" ".join(description.split()))
    p.add_argument("--db", default="logs/safevlm.db", help="the app's SQLite log (default logs/safevlm.db)")
    p.add_argument("--checkpoint", default=None, help=f"checkpoint whose {what} (default: assets/checkpoint)")
    p.set_defaults(func=func)
    return p


def cmd_thresholds(args) -> int:
    """Per-type curves and thresholds at a false-flag budget, from labelled turns.

    Per risk type, precision, recall and false-flag rate of the logged probabilities on
    labelled turns over a threshold grid, and per-type thresholds that flag the most risky
    turns with at most --max-false-flags of safe ones flagged. Writes a policy file with
    --out (the app reads it from SAFEVLM_POLICY).
    """
    from safevlm.feedback.labels import summary, threshold_policy, write_policy
    from safevlm.policy import Thresholds
    from safevlm.store import Store

    _check_db(args)
    taxonomy = checkpoint_taxonomy(args.checkpoint)
    current = Thresholds.default(taxonomy)
    with Store(args.db) as store:
        turns = store.labelled_turns()
    policy = threshold_policy(turns, taxonomy, current, args.max_false_flags, db=str(args.db))
    print(summary(policy, taxonomy))
    if args.out:
        print(f"wrote {write_policy(policy, args.out)} (SAFEVLM_POLICY={args.out} makes the app start from it)")
    return 0


def cmd_queue(args) -> int:
    """Unlabelled turns, the ones whose label would help most first.

    Ranks unlabelled turns by how much a label would help: the head's uncertainty (entropy
    of its type probabilities), closeness to a threshold of the checkpoint's policy, and
    visitor disagreement (more thumbs down than up); one sign each in [0, 1].
    """
    import json

    from safevlm.feedback.queue import review_queue, why
    from safevlm.policy import Thresholds
    from safevlm.store import Store

    _check_db(args)
    if args.limit < 1:
        raise CLIError("--limit must be >= 1")
    taxonomy = checkpoint_taxonomy(args.checkpoint)
    with Store(args.db) as store:
        turns = store.list_turns(unlabelled=True, limit=args.pool)
    ranked = review_queue(turns, taxonomy, Thresholds.default(taxonomy))[: args.limit]
    for turn, parts in ranked:
        if args.json:
            print(json.dumps({"id": turn["id"], **parts, "why": why(parts), "decision": turn["decision"],
                              "prompt": turn["prompt"]}, ensure_ascii=False))
        else:
            prompt = " ".join(turn["prompt"].split())
            print(f"{turn['id']:>6}  {parts['score']:.2f}  {turn['decision'] or '-':<8} {why(parts):<40} "
                  f"{prompt[:60]}")
    if not ranked and not args.json:
        print("no unlabelled turns")
    return 0


def cmd_export(args) -> int:
    """Labelled turns as training records, conflicts resolved, agreement reported.

    Writes labelled turns as training-schema JSONL: one record per image and prompt, its
    type the majority of its labels (ties: the most recent), the target a project-written
    refusal for risky labels or a logged answer rated 4-5 for safe ones (else none: the
    record trains the safety head only). Prints annotator agreement (percent and Cohen's
    kappa per type) over turns two annotators labelled.
    """
    import json

    from safevlm.feedback.export import feedback_records, write_records
    from safevlm.store import Store

    _check_db(args)
    taxonomy = checkpoint_taxonomy(args.checkpoint)
    with Store(args.db) as store:
        records, report = feedback_records(store, taxonomy)
    write_records(records, args.out)
    agreement = report["agreement"]
    print(f"wrote {len(records)} training records to {args.out} (targets: {report['targets']}; "
          f"skipped: {report['skipped'] or 'none'})")
    if agreement["pairs"]:
        kappas = ", ".join(f"{t} {k:.2f}" for t, k in agreement["kappa"].items() if k is not None)
        print(f"annotator agreement: {agreement['percent']:.1f}% of {agreement['pairs']} pairs; kappa: {kappas}")
    else:
        print("annotator agreement: no turn was labelled by two annotators")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def cmd_calibrate(args) -> int:
    """Temperature scaling fitted on labelled turns, ECE before/after, reliability plot.

    Fits a temperature for the type and the level distributions on labelled turns (the
    factor on the checkpoint's own temperature) and writes calibration.json and
    reliability.png (accuracy against confidence, before and after) into --out.
    """
    import json

    from safevlm.feedback.calibration import calibrate_labels, plot_reliability
    from safevlm.store import Store

    _check_db(args)
    taxonomy = checkpoint_taxonomy(args.checkpoint)
    with Store(args.db) as store:
        report = calibrate_labels(store.labelled_turns(), taxonomy)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_reliability(report, out / "reliability.png")
    for name in ("type", "level"):
        part = report[name]
        print(f"{name}: temperature x{part['temperature']:g}; ECE {part['ece_before']:.3f} -> {part['ece_after']:.3f}; "
              f"NLL {part['nll_before']:.3f} -> {part['nll_after']:.3f}")
    print(f"on {report['labels']} labelled turns; wrote {out / 'calibration.json'} and {out / 'reliability.png'}")
    return 0


def register_cli(sub) -> None:
    """Add `safevlm feedback ...` to the CLI's subparsers."""
    p = sub.add_parser("feedback", help="turn the labels in the log into thresholds, a queue, records",
                       description="Use what annotators labelled in the app's log.")
    commands = p.add_subparsers(dest="feedback_command", required=True)
    t = _command(commands, cmd_thresholds, "taxonomy and defaults apply")
    t.add_argument("--max-false-flags", type=float, default=0.03,
                   help="share of safe labelled turns that may be flagged (default 0.03)")
    t.add_argument("--out", default=None, metavar="policy.json", help="write the policy file here")
    q = _command(commands, cmd_queue, "thresholds apply")
    q.add_argument("--limit", type=int, default=20, help="turns to print (default 20)")
    q.add_argument("--pool", type=int, default=2000, help="newest unlabelled turns ranked (default 2000)")
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    e = _command(commands, cmd_export, "taxonomy applies")
    e.add_argument("--out", required=True, metavar="FILE.jsonl", help="where to write the records")
    e.add_argument("--report", default=None, metavar="FILE.json", help="also write the full report here")
    c = _command(commands, cmd_calibrate, "taxonomy applies")
    c.add_argument("--out", default="reports/calibration", help="report folder (default reports/calibration)")
