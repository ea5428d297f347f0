"""Thresholds from labelled probabilities: the policy's operating points chosen on data
where the truth is known (the validation split in training, annotated turns in the
feedback loop). Pure: probabilities and labels in, `Thresholds` and plain reports out.

`calibrate` picks one shared type threshold and the level threshold (the recipe's way);
`type_curves` gives, per risk type, precision, recall and the false-flag rate over a
threshold grid; `suggest_thresholds` lowers each type's threshold where it buys the most
recall per false flag, keeping all flags on safe inputs within a budget.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from safevlm.policy import Thresholds, decide
from safevlm.taxonomy import Taxonomy

log = logging.getLogger(__name__)

GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95

Probs = Sequence[tuple[Mapping[str, float], Sequence[float]]]  # (type probs, level probs) per input


def rates(probs, risky: Sequence[bool], taxonomy: Taxonomy, thresholds: Thresholds,
          groups: Sequence[str] | None = None) -> tuple[float, dict[str, float]] | tuple[float, float]:
    """(share of risky flagged, share of safe flagged) under `thresholds`; with `groups`
    (one name per example), the safe share per group instead of one number."""
    flags = [decide(t, lv, taxonomy, thresholds).flagged for t, lv in probs]
    n_risky = sum(risky)
    hit = sum(f for f, r in zip(flags, risky, strict=True) if r)
    if groups is None:
        n_safe = len(risky) - n_risky
        false = sum(f for f, r in zip(flags, risky, strict=True) if not r)
        return hit / max(n_risky, 1), false / max(n_safe, 1)
    per: dict[str, list[bool]] = {}
    for f, r, g in zip(flags, risky, groups, strict=True):
        if not r:
            per.setdefault(g, []).append(f)
    return hit / max(n_risky, 1), {g: sum(v) / len(v) for g, v in sorted(per.items())}


def calibrate(probs, risky: Sequence[bool], taxonomy: Taxonomy, max_false_flags: float = 0.03,
              groups: Sequence[str] | None = None,
              limits: dict[str, float] | None = None) -> tuple[Thresholds, dict]:
    """The thresholds with the highest risky recall whose safe false-flag rate stays within
    `max_false_flags` (or, with `groups`, each group's within its own `limits` entry,
    `max_false_flags` for groups not named); falls back to the least excess over the
    limits when none does."""
    best, best_key = None, None
    responses = dict(taxonomy.default_responses)
    for t in GRID:
        for level in GRID:
            thr = Thresholds(dict.fromkeys(taxonomy.risk_types, t), level, responses)
            if groups is None:
                recall, false = rates(probs, risky, taxonomy, thr)
                excess = max(0.0, false - max_false_flags)
            else:
                recall, per = rates(probs, risky, taxonomy, thr, groups)
                excess = sum(max(0.0, v - (limits or {}).get(g, max_false_flags)) for g, v in per.items())
            within = excess == 0.0
            key = (within, recall if within else -excess, t + level)
            if best_key is None or key > best_key:
                best, best_key = thr, key
    report = {"type_threshold": best.types[taxonomy.risk_types[0]], "level_threshold": best.level,
              "max_false_flags": max_false_flags, "val_examples": len(risky)}
    if groups is None:
        recall, false = rates(probs, risky, taxonomy, best)
        report.update(val_risky_flagged=round(recall, 4), val_safe_flagged=round(false, 4),
                      met=false <= max_false_flags)
    else:
        recall, per = rates(probs, risky, taxonomy, best, groups)
        report.update(val_risky_flagged=round(recall, 4),
                      val_safe_flagged={g: round(v, 4) for g, v in per.items()},
                      limits={g: (limits or {}).get(g, max_false_flags) for g in per},
                      met=all(v <= (limits or {}).get(g, max_false_flags) for g, v in per.items()))
    log.info("calibrated thresholds: %s", report)
    return best, report


def _level_ok(level_probs: Sequence[float], level_threshold: float) -> bool:
    return level_threshold <= 0 or 1.0 - level_probs[0] >= level_threshold


def type_curves(probs: Probs, truths: Sequence[str], taxonomy: Taxonomy, level_threshold: float) -> dict:
    """Per risk type, one row per grid threshold: inputs of that true type flagged for it
    (recall), flags for it that were right (precision) and safe inputs it flags (false-flag
    rate), with the level threshold held at `level_threshold`. `truths`: a type name per input."""
    safe = [i for i, t in enumerate(truths) if t == taxonomy.safe_type]
    curves = {}
    for name in taxonomy.risk_types:
        positives = [i for i, t in enumerate(truths) if t == name]
        rows = []
        for thr in GRID:
            flags = [probs[i][0].get(name, 0.0) >= thr and _level_ok(probs[i][1], level_threshold)
                     for i in range(len(truths))]
            tp = sum(flags[i] for i in positives)
            fp = sum(flags[i] for i, t in enumerate(truths) if t != name)
            false = sum(flags[i] for i in safe)
            rows.append({"threshold": thr, "tp": tp, "fp": fp, "positives": len(positives),
                         "recall": tp / len(positives) if positives else None,
                         "precision": tp / (tp + fp) if tp + fp else None,
                         "false_flags": false / len(safe) if safe else None})
        curves[name] = rows
    return curves


def _greedy_types(probs: Probs, safe: list[int], risky: list[int], level: float, seen: set[str],
                  kept: Mapping[str, float], taxonomy: Taxonomy, budget: int) -> tuple[dict, int, int, bool]:
    """`suggest_thresholds`' pass at one level threshold: (grid index per seen type, risky
    flagged, safe flagged, whether the budget holds)."""
    steps = {name: len(GRID) - 1 for name in taxonomy.risk_types if name in seen}  # index into GRID

    def flagged(i: int, at: Mapping[str, int]) -> bool:
        tp, lp = probs[i]
        return _level_ok(lp, level) and (any(tp.get(n, 0.0) >= GRID[k] for n, k in at.items())
                                         or any(tp.get(n, 0.0) >= v for n, v in kept.items()))

    def counts(at: Mapping[str, int]) -> tuple[int, int]:
        return sum(flagged(i, at) for i in risky), sum(flagged(i, at) for i in safe)

    hits, false = counts(steps)
    if false > budget:  # the kept types alone exceed the budget at this level
        return steps, hits, false, False
    while True:
        best = None
        for name, k in steps.items():
            for lower in range(k - 1, -1, -1):  # lowering further only adds flags
                trial = {**steps, name: lower}
                h, f = counts(trial)
                if f > budget:
                    break
                if h <= hits:
                    continue
                key = ((h - hits) / (f - false + 1), GRID[lower])  # ties: the higher threshold
                if best is None or key > best[0]:
                    best = (key, trial, h, f)
        if best is None:
            return steps, hits, false, True
        _, steps, hits, false = best


def suggest_thresholds(probs: Probs, truths: Sequence[str], taxonomy: Taxonomy, current: Thresholds,
                       max_false_flags: float = 0.03) -> tuple[Thresholds, dict]:
    """Per-type thresholds and the level threshold (responses kept from `current`) that flag
    as many risky inputs as possible while at most `max_false_flags` of the safe ones are
    flagged. For each level threshold of the grid (and the current one), a greedy pass: from
    the top of the grid, repeatedly move the one type threshold down to the value that flags
    the most new risky inputs per new false flag, while the budget holds; the level with the
    most risky inputs flagged wins (ties: the current level, then the higher one). A type no
    labelled risky input has keeps its current threshold: labels that never show it say
    nothing about where it should be."""
    safe = [i for i, t in enumerate(truths) if t == taxonomy.safe_type]
    risky = [i for i, t in enumerate(truths) if t != taxonomy.safe_type]
    seen = {truths[i] for i in risky}
    kept = {name: current.types.get(name, 0.5) for name in taxonomy.risk_types if name not in seen}
    budget = int(max_false_flags * len(safe) + 1e-9)
    best = None
    for level in sorted({current.level, *GRID}):
        steps, hits, false, within = _greedy_types(probs, safe, risky, level, seen, kept, taxonomy, budget)
        key = (within, hits if within else -false, level == current.level, level)
        if best is None or key > best[0]:
            best = (key, level, steps, hits, false)
    _, level, steps, hits, false = best
    thresholds = Thresholds({n: GRID[steps[n]] if n in steps else kept[n] for n in taxonomy.risk_types},
                            level, dict(current.responses), current.review)
    report = {"labelled": len(truths), "risky": len(risky), "safe": len(safe), "max_false_flags": max_false_flags,
              "kept_without_labels": sorted(kept), "level": level,
              "risky_flagged": hits / len(risky) if risky else None,
              "safe_flagged": false / len(safe) if safe else None}
    return thresholds, report
