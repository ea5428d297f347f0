"""The evaluation report: eval.json, eval.md, one confusion-matrix PNG per set, and the
summary table the CLI prints. Formats the `results` of `safevlm.tools.eval.run_eval`; computes
no metric itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

from safevlm.tools.refusal import is_refusal


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "set"


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def plot_confusion(confusion: dict, path: Path, title: str) -> Path:
    """Confusion matrix of true type (rows) against the policy's type (columns): counts,
    coloured by the share of each true row."""
    from matplotlib.figure import Figure

    matrix = confusion["matrix"]
    labels = confusion.get("display_labels") or confusion["labels"]
    n = len(labels)
    shares = [[c / max(sum(row), 1) for c in row] for row in matrix]
    fig = Figure(figsize=(0.8 * n + 3.0, 0.7 * n + 2.0), dpi=120, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=labels, rotation=35, ha="right")
    ax.set_yticks(range(n), labels=[f"{label} (n={sum(row)})" for label, row in zip(labels, matrix, strict=True)])
    for i in range(n):
        for j in range(n):
            if matrix[i][j]:
                ax.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=9,
                        color="white" if shares[i][j] > 0.55 else "black")
    ax.set_xlabel("predicted type (policy)")
    ax.set_ylabel("true type")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true row", shrink=0.8)
    fig.savefig(path)
    return path


def _headline_rows(cls: dict, chat: dict | None) -> list[tuple[str, str, str]]:
    rows = [
        ("head: detection rate on risky (flagged)", "-", _fmt(cls["detection_rate"])),
        (f"head: detection rate on harmful (levels 2-3, n={cls.get('n_harmful')})", "-",
         _fmt(cls.get("detection_rate_harmful"))),
        ("head: false-flag rate on safe", "-", _fmt(cls["false_flag_rate"])),
        ("head: unsafe AUROC, 1 - P(safe type)", "-", _fmt(cls["auroc"]["not_safe_type"])),
        ("head: unsafe AUROC, P(level >= 1)", "-", _fmt(cls["auroc"]["risk_level"])),
    ]
    if chat and chat["n"]:
        off, on = chat["without_safety"], chat["with_safety"]
        rows += [
            (f"chat: refusal rate on risky (n={chat['n_risky']})",
             _fmt(off["refusal_rate_risky"]), _fmt(on["refusal_rate_risky"])),
            ("chat: answered rate on risky", _fmt(off["answered_rate_risky"]), _fmt(on["answered_rate_risky"])),
            (f"chat: answered rate on harmful (levels 2-3, n={chat.get('n_harmful')})",
             _fmt(off.get("answered_rate_harmful")), _fmt(on.get("answered_rate_harmful"))),
            (f"chat: over-refusal rate on safe (n={chat['n_safe']})",
             _fmt(off["over_refusal_rate_safe"]), _fmt(on["over_refusal_rate_safe"])),
            (f"chat: clean answers unchanged (allowed safe, n={chat['clean_unchanged']['n']})", "-",
             _fmt(chat["clean_unchanged"]["rate"])),
        ]
    return rows


def _breakdown_table(title: str, data: dict) -> list[str]:
    lines = []
    for key, groups in data.items():
        if not groups:
            continue
        lines += ["", f"{title} by {key}:", "", f"| {key} | n | flagged | rate |", "|---|---:|---:|---:|"]
        lines += [f"| {value} | {g['n']} | {g['hits']} | {_fmt(g['rate'])} |" for value, g in groups.items()]
    return lines


def _markdown(results: dict, pngs: dict[str, str]) -> str:
    settings, model = results["settings"], results["model"]
    lines = [
        "# SafeVLM evaluation", "",
        f"- base: `{model.get('base')}`",
        f"- checkpoint: `{model.get('checkpoint')}`",
        f"- taxonomy: `{model.get('taxonomy')}`",
        f"- conditioning mode (with safety): `{settings.get('mode')}`",
        f"- thresholds: `{json.dumps(settings.get('thresholds'))}`",
        f"- chat: up to {settings.get('chat_limit')} records per set (half risky, half safe, "
        f"seed {settings.get('seed')}), greedy, max {settings.get('max_new_tokens')} new tokens",
        "- \"without safety\" = mode `off` with thresholds that never flag (the plain base model); "
        "refusals are judged by `safevlm.tools.refusal.is_refusal` (see the end of this report).",
    ]
    for name, entry in results["sets"].items():
        cls, chat = entry["classification"], entry.get("chat")
        lines += ["", f"## {name}", "",
                  f"`{entry['path']}`: {cls['n']} records ({cls['n_risky']} risky, {cls['n_safe']} safe)"
                  + (f", {len(cls['errors'])} unreadable" if cls["errors"] else ""), "",
                  "| metric | without safety | with safety |", "|---|---:|---:|"]
        lines += [f"| {m} | {a} | {b} |" for m, a, b in _headline_rows(cls, chat)]
        lines += ["", f"Type accuracy (policy) {_fmt(cls['type_accuracy'])}, level accuracy (policy) "
                      f"{_fmt(cls['level_accuracy'])}; head argmax: type {_fmt(cls['head_type_accuracy'])}, "
                      f"level {_fmt(cls['head_level_accuracy'])}; macro F1 over present types "
                      f"{_fmt(cls['macro_f1'])}.", "",
                  "| type | precision | recall | F1 | support | predicted | detection rate |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for t, m in cls["per_type"].items():
            det = cls["detection_by_type"].get(t)
            lines.append(f"| {t} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} | "
                         f"{m['support']} | {m['predicted']} | {_fmt(det['rate']) if det else '-'} |")
        lines += _breakdown_table("False flags on safe records", cls["false_flag_by"])
        lines += _breakdown_table("Detection on risky records", cls["detection_by"])
        pairs = cls["pairs"]
        if pairs["n"]:
            lines += ["", f"Contrastive pairs (one safe, one risky record in a group): {pairs['n']}; "
                          f"separated {_fmt(pairs['separated_rate'])} (both flagged {pairs['both_flagged']}, "
                          f"both allowed {pairs['both_allowed']}, inverted {pairs['inverted']})."]
        if chat and chat["n"]:
            lines += ["", f"Chat: conditioning acted on {_fmt(chat['conditioned_rate_risky'])} of risky and "
                          f"{_fmt(chat['conditioned_rate_safe'])} of safe records; every allowed record "
                          f"unchanged: {_fmt(chat['allowed_unchanged']['rate'])} "
                          f"(n={chat['allowed_unchanged']['n']}). Answers are in eval.json."]
        lines += ["", f"![confusion matrix, {name}]({pngs[name]})"]
    doc = (is_refusal.__doc__ or "").strip().splitlines()
    lines += ["", "## Refusal detector", "", *[line.strip() for line in doc], ""]
    return "\n".join(lines)


def write_report(results: dict, out_dir: str | Path) -> Path:
    """Write eval.json (every number and setting; chat answers included), eval.md, one
    confusion_<set>.png and predictions_<set>.jsonl per set into `out_dir`; returns the
    path of eval.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs, stored = {}, {**results, "sets": {}}
    for name, entry in results["sets"].items():
        slug = _slug(name)
        cls = dict(entry["classification"])
        predictions = cls.pop("predictions", [])
        pngs[name] = f"confusion_{slug}.png"
        plot_confusion(cls["confusion"], out / pngs[name], f"{name}: risk type (n={cls['n']})")
        with (out / f"predictions_{slug}.jsonl").open("w", encoding="utf-8") as f:
            for row in predictions:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        stored["sets"][name] = {**entry, "classification": cls, "confusion_png": pngs[name],
                                "predictions": f"predictions_{slug}.jsonl"}
    (out / "eval.json").write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md = out / "eval.md"
    md.write_text(_markdown(results, pngs), encoding="utf-8")
    return md


def _off_on(chat: dict, key: str) -> str:
    if not chat:
        return "-"
    return f"{_fmt(chat['without_safety'][key], 2)}>{_fmt(chat['with_safety'][key], 2)}"


def summary_table(results: dict) -> str:
    """A short plain-text table for the terminal: one line per eval set."""
    head = ("set", "n", "type acc", "AUROC", "detect", "false flag", "refuse risky off>on",
            "over-refuse safe off>on", "clean same")
    rows = [head]
    for name, entry in results["sets"].items():
        cls, chat = entry["classification"], entry.get("chat") or {}
        rows.append((name, str(cls["n"]), _fmt(cls["type_accuracy"], 2),
                     _fmt(cls["auroc"]["not_safe_type"], 2), _fmt(cls["detection_rate"], 2),
                     _fmt(cls["false_flag_rate"], 2), _off_on(chat, "refusal_rate_risky"),
                     _off_on(chat, "over_refusal_rate_safe"),
                     _fmt(chat["clean_unchanged"]["rate"], 2) if chat else "-"))
    widths = [max(len(row[k]) for row in rows) for k in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
