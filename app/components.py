"""What the Chat and Annotate tabs build alike: the risk type and risk level bar plots, and
the keyword sets every event takes. Draws no tab itself (`layout`, `annotate_tab`)."""

import gradio as gr

from app.panel import LEVEL_COLOURS, TYPE_STATUS_COLOURS, level_frame, type_frame

PRIVATE = {"api_visibility": "private"}
MODEL = {"concurrency_id": "model"}  # chat, regenerate and /chat share the one model slot
QUICK = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
LOOKUP = {
    "api_visibility": "private",
    "concurrency_limit": None,
}  # store reads/writes: never wait for the model


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
