"""Which unlabelled turn to label next: the ones whose label would teach the most, not the
newest. Three signs, each in [0, 1], summed: how unsure the head was (entropy of its type
probabilities), how close the input sat to a threshold of the policy that decided it (a small
move of the threshold flips it), and whether the visitor disagreed with what they got (more
thumbs down than up). Pure: store rows and thresholds in, an ordered list out."""

from __future__ import annotations

import math
from collections.abc import Sequence

from safevlm.policy import Thresholds
from safevlm.taxonomy import Taxonomy

MARGIN_SCALE = 0.2  # a probability this far from its threshold counts as far


def usefulness(turn: dict, taxonomy: Taxonomy, thresholds: Thresholds) -> dict:
    """The three signs and their sum for one logged turn (a list_turns() row)."""
    type_probs, level_probs = turn.get("type_probs") or {}, turn.get("level_probs") or []
    values = [max(0.0, float(type_probs.get(t, 0.0))) for t in taxonomy.types]
    total = sum(values) or 1.0
    entropy = -sum(v / total * math.log(v / total) for v in values if v > 0) / math.log(len(taxonomy.types))
    distances = [abs(float(type_probs.get(t, 0.0)) - thresholds.types.get(t, 0.5)) for t in taxonomy.risk_types]
    if level_probs:
        distances.append(abs(1.0 - float(level_probs[0]) - thresholds.level))
    closeness = max(0.0, 1.0 - min(distances) / MARGIN_SCALE) if type_probs else 0.0
    disagreement = 1.0 if (turn.get("feedback_down") or 0) > (turn.get("feedback_up") or 0) else 0.0
    return {"score": round(entropy + closeness + disagreement, 4), "entropy": round(entropy, 4),
            "closeness": round(closeness, 4), "disagreement": disagreement}


def why(parts: dict) -> str:
    """The signs that put a turn high in the queue, in words."""
    reasons = [text for key, text in (("disagreement", "visitor disagreed"), ("closeness", "near a threshold"),
                                      ("entropy", "head unsure")) if parts[key] >= 0.5]
    return ", ".join(reasons) or "-"


def review_queue(turns: Sequence[dict], taxonomy: Taxonomy, thresholds: Thresholds) -> list[tuple[dict, dict]]:
    """Unlabelled `turns` with their signs, most useful first (ties: newest first)."""
    scored = [(t, usefulness(t, taxonomy, thresholds)) for t in turns if t.get("annotation_id") is None]
    return sorted(scored, key=lambda pair: (-pair[1]["score"], -int(pair[0].get("id") or 0)))
