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


def type_plot(taxonomy, **options) -> gr.BarPlot:
    """Bars of the risk type probabilities in taxonomy order, coloured by threshold status."""
    return gr.BarPlot(
        type_frame(taxonomy),
        x="type",
        y="probability",
        color="status",
        color_map=TYPE_STATUS_COLOURS,
        y_lim=[0, 1],
        sort=list(taxonomy.type_labels),
        title="Risk type",
        x_title=" ",
        x_label_angle=-30,
        color_title=" ",
        show_label=False,
        **options,
    )


def level_plot(taxonomy, **options) -> gr.BarPlot:
    """Bars of the risk level probabilities, one colour per level."""
    return gr.BarPlot(
        level_frame(taxonomy),
        x="level",
        y="probability",
        color="level",
        color_map=dict(zip(taxonomy.level_labels, LEVEL_COLOURS, strict=False)),
        colors_in_legend=[],
        y_lim=[0, 1],
        sort=list(taxonomy.level_labels),
        title="Risk level",
        x_title=" ",
        show_label=False,
        **options,
    )
