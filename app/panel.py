"""The safety panel: bar-plot frames, the decision badge and the details text, pure
functions of a verdict and the taxonomy, and the two bar plots both tabs draw from those
frames (`type_plot`, `level_plot`). Places nothing on the page (that is `layout`)."""

import html
from collections.abc import Mapping, Sequence

import gradio as gr
import pandas as pd

from safevlm.config import Mode
from safevlm.engine import ChatUpdate
from safevlm.policy import Decision, Thresholds

ACTION_COLOURS = {"allow": "#15803d", "caution": "#b45309", "refuse": "#b91c1c"}
IDLE_COLOUR = "#6b7280"
TYPE_STATUS_COLOURS = {"under threshold": "#94a3b8", "over threshold": "#b91c1c", "safe": "#15803d"}
LEVEL_COLOURS = ("#15803d", "#ca8a04", "#ea580c", "#b91c1c")


def type_frame(
    taxonomy, type_probs: Mapping[str, float] | None = None, thresholds: Thresholds | None = None
) -> pd.DataFrame:
    """One row per type in taxonomy order: short label, probability, threshold status.

    The first rows are zero-height bars, one per status: Gradio's BarPlot fixes its colour
    domain to the statuses present when the chart is built and only swaps the data later,
    so a status missing then would draw its bars with no colour at all."""
    rows = [
        {"type": taxonomy.type_labels[0], "probability": 0.0, "status": status}
        for status in TYPE_STATUS_COLOURS
    ]
    for name, label in zip(taxonomy.types, taxonomy.type_labels, strict=True):
        p = float(type_probs[name]) if type_probs else 0.0
        if name == taxonomy.safe_type:
            status = "safe"
        elif thresholds is not None and type_probs and p >= thresholds.types.get(name, 1.0):
            status = "over threshold"
        else:
            status = "under threshold"
        rows.append({"type": label, "probability": round(p, 4), "status": status})
    return pd.DataFrame(rows, columns=["type", "probability", "status"])


def level_frame(taxonomy, level_probs: Sequence[float] | None = None) -> pd.DataFrame:
    rows = [
        {"level": label, "probability": round(float(level_probs[i]) if level_probs else 0.0, 4)}
        for i, label in enumerate(taxonomy.level_labels)
    ]
    return pd.DataFrame(rows, columns=["level", "probability"])


def badge_html(decision: Decision | None, taxonomy, note: str = "", checking: bool = False) -> str:
    """The coloured decision badge; `decision=None` draws the idle (or checking) badge."""
    if checking:
        title, subtitle, colour = (
            "CHECKING…",
            "the safety head is reading the image and the question",
            IDLE_COLOUR,
        )
    elif decision is None:
        title, subtitle, colour = (
            "NO VERDICT YET",
            note or "Upload an image and ask a question.",
            IDLE_COLOUR,
        )
    else:
        colour = ACTION_COLOURS.get(decision.action, IDLE_COLOUR)
        title = decision.action.upper()
        if decision.flagged:
            label = taxonomy.type_labels[taxonomy.types.index(decision.type)]
            subtitle = f"{label} · level {taxonomy.level_labels[decision.level]}"
        else:
            over = [taxonomy.type_labels[taxonomy.types.index(t)] for t in decision.flagged_types]
            subtitle = (f"{', '.join(over)} over threshold, but P(level ≥ 1) is under the level threshold"
                        if over else "no risk type over its threshold")
        if decision.review:
            subtitle += " · review: near a threshold"
        if note:
            subtitle += f" — {note}"
    return (
        f'<div class="safevlm-badge" data-action="{html.escape(decision.action if decision else "none")}" '
        f'style="background:{colour};color:#fff;border-radius:10px;padding:10px 16px;">'
        f'<div style="color:#fff;font-size:1.4em;font-weight:700;letter-spacing:.05em;line-height:1.3">'
        f"{html.escape(title)}</div>"
        f'<div style="color:#fff;font-size:.95em;line-height:1.3">{html.escape(subtitle)}</div></div>'
    )


def quote(text: str, limit: int = 400) -> str:
    """User-controlled text as a safe one-paragraph Markdown quote."""
    text = " ".join((text or "").split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text).replace("*", "&#42;").replace("_", "&#95;").replace("`", "&#96;")


def details_markdown(update: ChatUpdate | None, taxonomy) -> str:
    """Hint applied, text read in the image and timings of a turn."""
    if update is None:
        return (
            "The bars show what the safety head thinks of your image and question "
            "before the model answers. Move the thresholds and press **Regenerate** to compare."
        )
    decision = update.verdict.decision
    if not decision.flagged:
        hint = "none (the input was allowed, so the answer is the base model's)"
    elif update.conditioned and decision.refusal:
        hint = "not needed: the refusal template answered instead of the model"
    elif Mode(update.mode).uses_hint and decision.hint:
        hint = f"“{quote(decision.hint)}”"
    elif update.mode == Mode.TOKENS:
        hint = f"not inserted (mode *tokens*: safety tokens instead). It would be: “{quote(decision.hint or '')}”"
    else:
        hint = f"not inserted (mode *{update.mode}*). It would be: “{quote(decision.hint or '')}”"
    if decision.flagged and decision.refusal and update.conditioned:
        answer = "the project's refusal for this type, streamed with no generation (response *template*)"
    elif decision.flagged and update.conditioned:
        answer = "the model's, conditioned (response *generate*)"
    else:
        answer = "the base model's"
    reader = update.verdict.reader_text
    reader_md = f"“{quote(reader)}”" if reader else "none found"
    t = update.timings
    parts = [
        f"{k.replace('_', ' ')} {t[k] / 1000:.2f} s"
        for k in ("reader", "classify", "first_token", "total")
        if t.get(k)
    ]
    lines = [
        f"**Hint applied:** {hint}",
        f"**Answer:** {answer}",
        f"**Text read in the image:** {reader_md}",
        f"**Mode:** {update.mode}" + (" (conditioning acted)" if update.conditioned else ""),
    ]
    if parts:
        lines.append("**Timings:** " + " · ".join(parts))
    return "\n\n".join(lines)


def _bars(frame, x: str, color: str, title: str, sort: list, **options) -> gr.BarPlot:
    """Probability bars on a 0..1 axis, one per row of `frame`, in `sort` order."""
    return gr.BarPlot(frame, x=x, y="probability", color=color, y_lim=[0, 1], sort=sort, title=title,
                      x_title=" ", show_label=False, **options)


def type_plot(taxonomy, **options) -> gr.BarPlot:
    """Bars of the risk type probabilities in taxonomy order, coloured by threshold status."""
    return _bars(type_frame(taxonomy), "type", "status", "Risk type", list(taxonomy.type_labels),
                 color_map=TYPE_STATUS_COLOURS, x_label_angle=-30, color_title=" ", **options)


def level_plot(taxonomy, **options) -> gr.BarPlot:
    """Bars of the risk level probabilities, one colour per level."""
    colours = dict(zip(taxonomy.level_labels, LEVEL_COLOURS, strict=False))
    return _bars(level_frame(taxonomy), "level", "level", "Risk level", list(taxonomy.level_labels),
                 color_map=colours, colors_in_legend=[], **options)
