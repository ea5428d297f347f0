"""The feedback loop, step 1: thresholds from the labels annotators saved in the log.

Each labelled turn carries the probabilities the head gave it when it was logged and the
annotator's truth; `truth` reads that truth, `threshold_policy` turns the labelled turns
into per-type curves and a suggested operating point (`feedback.thresholds`), written as a
policy file that `policy.load_policy` (and the app, via SAFEVLM_POLICY) reads back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from safevlm.errors import SafeVLMError
from safevlm.feedback.thresholds import rates, suggest_thresholds, type_curves
from safevlm.files import write_atomically
from safevlm.policy import Thresholds
from safevlm.taxonomy import Taxonomy


class FeedbackError(SafeVLMError):
    """Labels that cannot give thresholds (none, unknown types); the message says which."""


def truth(turn: dict, taxonomy: Taxonomy) -> str | None:
    """The true type of a labelled turn: the annotator's true type (safe when its level is
    0); else, when the annotator only said the decision was right, the decision itself (the
    predicted type if flagged, safe if allowed); else None (a wrong decision with no type
    says what the input is not, not what it is)."""
    true_type, level = turn.get("true_type"), turn.get("true_level")
    if true_type is not None:
        if true_type not in taxonomy.types:
            raise FeedbackError(f"turn {turn.get('id')}: unknown true type {true_type!r}; "
                                f"this checkpoint's types: {', '.join(taxonomy.types)}")
        return taxonomy.safe_type if level == 0 else true_type
    if turn.get("decision_correct") is True:
        return turn["type"] if turn.get("flagged") and turn.get("type") in taxonomy.risk_types else taxonomy.safe_type
    return None


def threshold_policy(turns: list[dict], taxonomy: Taxonomy, current: Thresholds,
                     max_false_flags: float = 0.03, db: str = "") -> dict:
    """The policy file's content for labelled `turns` (Store.labelled_turns()): suggested
    thresholds, where they came from, the current point's rates and per-type curves."""
    if not 0 <= max_false_flags < 1:
        raise FeedbackError(f"max false flags must be in [0, 1), got {max_false_flags}")
    used, skipped = [], 0
    for turn in turns:
        label = truth(turn, taxonomy)
        if label is None or not turn.get("type_probs") or not turn.get("level_probs"):
            skipped += 1
            continue
        used.append((turn, label))
    if not used:
        raise FeedbackError(f"no labelled turn with a true type{' in ' + db if db else ''} "
                            f"({len(turns)} labelled, {skipped} without a type): label turns in "
                            "the Annotate tab (true type and level) first")
    probs = [(t["type_probs"], t["level_probs"]) for t, _ in used]
    truths = [label for _, label in used]
    risky = [label != taxonomy.safe_type for label in truths]
    if all(risky) or not any(risky):
        raise FeedbackError(f"the {len(used)} usable labels are all {'risky' if all(risky) else 'safe'}: "
                            "thresholds need both safe and risky labelled turns")
    suggested, report = suggest_thresholds(probs, truths, taxonomy, current, max_false_flags)
    now_risky, now_safe = rates(probs, risky, taxonomy, current)
    checkpoints = sorted({str(t.get("checkpoint")) for t, _ in used})
    return {
        "thresholds": suggested.to_dict(),
        "source": {"db": db, "labels": len(used), "risky": sum(risky), "safe": len(used) - sum(risky),
                   "skipped": skipped, "date": datetime.now(UTC).isoformat(timespec="seconds"),
                   "checkpoints": checkpoints, "max_false_flags": max_false_flags},
        "current": {"thresholds": current.to_dict(), "risky_flagged": now_risky, "safe_flagged": now_safe},
        "suggested": report,
        "curves": type_curves(probs, truths, taxonomy, current.level),
    }


def write_policy(policy: dict, path: str | Path) -> Path:
    """The policy file, written atomically."""
    return write_atomically(path, json.dumps(policy, indent=2) + "\n")


def summary(policy: dict, taxonomy: Taxonomy) -> str:
    """A short table: per type the current and suggested threshold and, at the suggested
    one, recall and precision on the labels; then the overall rates before and after."""
    now, new = policy["current"]["thresholds"]["types"], policy["thresholds"]["types"]

    def pct(v):
        return "  -  " if v is None else f"{100 * v:5.1f}%"

    lines = [f"{'type':<18} {'now':>5} {'new':>5} {'recall':>7} {'precision':>9}  (labels: "
             f"{policy['source']['risky']} risky, {policy['source']['safe']} safe)"]
    for name in taxonomy.risk_types:
        row = next(r for r in policy["curves"][name] if r["threshold"] == new[name])
        lines.append(f"{name:<18} {now[name]:5.2f} {new[name]:5.2f} {pct(row['recall']):>7} {pct(row['precision']):>9}"
                     f"  ({row['positives']} labelled)")
    cur, sug = policy["current"], policy["suggested"]
    lines.append(f"risky flagged {pct(cur['risky_flagged'])} -> {pct(sug['risky_flagged'])}; "
                 f"safe flagged {pct(cur['safe_flagged'])} -> {pct(sug['safe_flagged'])} "
                 f"(budget {100 * policy['source']['max_false_flags']:.1f}%)")
    if len(policy["source"]["checkpoints"]) > 1:
        lines.append("note: the labelled turns come from several checkpoints "
                     f"({', '.join(policy['source']['checkpoints'])}); their probabilities differ")
    return "\n".join(lines)
