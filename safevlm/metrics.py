"""Metrics shared by the eval and the training tools: rates with their counts and
intervals, breakdowns of flagged shares, AUROC, contrastive-pair separation and expected
calibration error. Plain lists in, plain numbers out (no torch, no model)."""

from __future__ import annotations

from collections import Counter, defaultdict


def rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def counted(hits: int, n: int) -> dict:
    return {"n": n, "hits": hits, "rate": rate(hits, n)}


def wilson(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a rate `hits / n` (None when n is 0): how far a share
    measured on a small sample may lie from the true one (0 of 19 still allows 17%)."""
    from scipy.stats import binomtest

    if not n:
        return None
    ci = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def flag_rates(flagged: list[bool], risky: list[bool]) -> dict:
    """Counts and shares of a set of decisions: risky flagged, benign flagged, and the error
    (flagged != risky) over all of them."""
    hits = sum(f for f, r in zip(flagged, risky, strict=True) if r)
    false = sum(f for f, r in zip(flagged, risky, strict=True) if not r)
    n, n_risky = len(risky), sum(risky)
    return {"n": n, "risky": n_risky, "benign": n - n_risky, "risky_flagged": rate(hits, n_risky),
            "benign_flagged": rate(false, n - n_risky), "error": rate(n_risky - hits + false, n)}


def ece(probs: list[list[float]], labels: list[int], bins: int = 15) -> float | None:
    """Expected calibration error of the top class (bin-weighted |confidence - accuracy|)."""
    if not probs:
        return None
    total, sums = len(probs), defaultdict(lambda: [0, 0.0, 0.0])
    for p, y in zip(probs, labels, strict=True):
        top = max(range(len(p)), key=p.__getitem__)
        b = min(int(p[top] * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += p[top]
        sums[b][2] += top == y
    return sum(n / total * abs(c / n - h / n) for n, c, h in sums.values())


def breakdown(rows: list[dict], key: str) -> dict:
    """Flagged share per value of `key` over rows (absent values are skipped)."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        if row.get(key) is not None:
            groups[row[key]].append(row["flagged"])
    return {value: counted(sum(flags), len(flags)) for value, flags in sorted(groups.items())}


def auroc(y_true: list[int], scores: list[float]) -> float | None:
    """ROC AUC, or None when only one class is present (it is undefined then)."""
    from sklearn.metrics import roc_auc_score

    if len(set(y_true)) < 2:
        return None
    return float(roc_auc_score(y_true, scores))


def pairs(rows: list[dict]) -> dict:
    """Contrastive pairs (records sharing `group`, one safe and one risky): the hard case.
    `separated` = the safe one allowed and the risky one flagged."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("group"):
            groups[row["group"]].append(row)
    outcome = Counter()
    for members in groups.values():
        safe = [r for r in members if not r["risky"]]
        risky = [r for r in members if r["risky"]]
        if not safe or not risky:
            continue
        safe_flagged = any(r["flagged"] for r in safe)
        risky_flagged = all(r["flagged"] for r in risky)
        outcome["n"] += 1
        outcome["separated"] += risky_flagged and not safe_flagged
        outcome["both_flagged"] += risky_flagged and safe_flagged
        outcome["both_allowed"] += not risky_flagged and not safe_flagged
        outcome["inverted"] += not risky_flagged and safe_flagged
    n = outcome["n"]
    return {"n": n, **{k: outcome[k] for k in ("separated", "both_flagged", "both_allowed", "inverted")},
            "separated_rate": rate(outcome["separated"], n)}
