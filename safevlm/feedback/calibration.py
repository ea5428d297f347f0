"""How well the logged probabilities match the labels, and the temperature that would match
them better: temperature scaling of the type and level distributions fitted on labelled
turns (log-probabilities / T, softmax), expected calibration error before and after, and a
reliability diagram. The logged probabilities already carry the checkpoint's temperature
T0; the fitted T multiplies it (set `type_temperature` / `level_temperature` to T0 x T)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from safevlm.feedback.labels import FeedbackError, truth
from safevlm.metrics import ece
from safevlm.taxonomy import Taxonomy

TEMPERATURES = tuple(round(0.25 * 1.06 ** i, 4) for i in range(0, 61))  # 0.25 .. ~8.2; train.calibrate's too
BINS = 10


def scaled(probs: Sequence[float], temperature: float) -> list[float]:
    """softmax(log p / T): the distribution a temperature T on the logits would have given."""
    logs = [math.log(max(p, 1e-12)) / temperature for p in probs]
    top = max(logs)
    exp = [math.exp(v - top) for v in logs]
    total = sum(exp)
    return [v / total for v in exp]


def nll(probs: Sequence[Sequence[float]], labels: Sequence[int], temperature: float) -> float:
    return -sum(math.log(max(scaled(p, temperature)[y], 1e-12)) for p, y in zip(probs, labels, strict=True)) / len(labels)


def fit_temperature(probs: Sequence[Sequence[float]], labels: Sequence[int]) -> float:
    """The grid temperature with the lowest negative log-likelihood of the labels."""
    return min(TEMPERATURES, key=lambda t: nll(probs, labels, t))


def reliability(probs: Sequence[Sequence[float]], labels: Sequence[int], bins: int = BINS) -> list[dict]:
    """Per confidence bin of the top class: count, mean confidence and accuracy."""
    rows = [{"low": i / bins, "high": (i + 1) / bins, "n": 0, "confidence": 0.0, "accuracy": 0.0} for i in range(bins)]
    for p, y in zip(probs, labels, strict=True):
        top = max(range(len(p)), key=p.__getitem__)
        row = rows[min(int(p[top] * bins), bins - 1)]
        row["n"] += 1
        row["confidence"] += p[top]
        row["accuracy"] += top == y
    for row in rows:
        if row["n"]:
            row["confidence"] /= row["n"]
            row["accuracy"] /= row["n"]
    return rows


def calibrate_labels(turns: Sequence[dict], taxonomy: Taxonomy) -> dict:
    """For the type and the level distribution: the fitted temperature, ECE and NLL before
    and after, and the reliability rows before and after, on labelled `turns`."""
    type_probs, type_labels, level_probs, level_labels = [], [], [], []
    for turn in turns:
        label = truth(turn, taxonomy)
        if label is None or not turn.get("type_probs") or not turn.get("level_probs"):
            continue
        type_probs.append([float(turn["type_probs"].get(t, 0.0)) for t in taxonomy.types])
        type_labels.append(taxonomy.types.index(label))
        level = 0 if label == taxonomy.safe_type else turn.get("true_level") or turn.get("level") or 1
        level_probs.append([float(v) for v in turn["level_probs"]])
        level_labels.append(int(level))
    if len(type_labels) < 2:
        raise FeedbackError(f"{len(type_labels)} labelled turn(s) with a true type: calibration needs more")
    report = {"labels": len(type_labels)}
    for name, probs, labels in (("type", type_probs, type_labels), ("level", level_probs, level_labels)):
        t = fit_temperature(probs, labels)
        after = [scaled(p, t) for p in probs]
        report[name] = {"temperature": t, "ece_before": ece(probs, labels, BINS), "ece_after": ece(after, labels, BINS),
                        "nll_before": nll(probs, labels, 1.0), "nll_after": nll(probs, labels, t),
                        "reliability_before": reliability(probs, labels), "reliability_after": reliability(after, labels)}
    return report


def plot_reliability(report: dict, path: str | Path) -> Path:
    """Reliability diagrams (type, level): accuracy against confidence per bin, before and
    after the fitted temperature, with the diagonal of perfect calibration."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), dpi=110, layout="constrained")
    for ax, name in zip(fig.subplots(1, 2), ("type", "level"), strict=True):
        part = report[name]
        ax.plot([0, 1], [0, 1], color="#9ca3af", linestyle="--", linewidth=1)
        for key, colour, label in (("reliability_before", "#b91c1c", "logged"),
                                   ("reliability_after", "#15803d", f"T = {part['temperature']:g}")):
            rows = [r for r in part[key] if r["n"]]
            ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", color=colour,
                    label=f"{label} (ECE {part[key.replace('reliability', 'ece')]:.3f})")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence of the top class", ylabel="accuracy",
               title=f"{name} ({report['labels']} labelled turns)")
        ax.legend(loc="upper left", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
