"""The Annotate tab's components and events, wired to `AnnotationHandlers`: token, filters
and order, the turns table, one opened turn, the label form, thresholds from labels (curves,
suggestion, apply) and exports. Every event is private."""

import gradio as gr

from app.annotate import TURN_COLUMNS, AnnotationHandlers, curve_frame
from app.panel import level_plot, type_plot

TURN_WIDTHS = {"id": "56px", "why": "220px", "created": "150px", "type": "130px", "level": "60px", "prompt": "260px",
               "answer": "260px", "label": "64px", "👍/👎": "70px", "comment": "180px"}
CURVE_COLOURS = {"recall": "#b91c1c", "precision": "#2563eb", "false flags": "#ca8a04",
                 "current": "#6b7280", "suggested": "#15803d"}


def annotate_tab(annotation: AnnotationHandlers, lookup: dict) -> None:
    """Draw the tab's content inside the current gr.Tab (a notice only when annotation is off);
    every event takes `lookup`, the layout's keyword set for store reads and writes."""
    settings, taxonomy = annotation.settings, annotation.taxonomy
    if not settings.annotation_open:
        gr.Markdown(
            "### Annotation is disabled\nThis app is public and no `SAFEVLM_ANNOTATION_TOKEN` "
            "is set, so logged turns cannot be browsed, labelled or exported here."
        )
        return
    if settings.annotation_token:
        with gr.Row():
            token = gr.Textbox(
                label="Annotation token",
                type="password",
                scale=4,
                placeholder="SAFEVLM_ANNOTATION_TOKEN",
            )
            unlock_btn = gr.Button("Unlock", scale=1)
    else:
        token = gr.State("")
        gr.Markdown(
            "⚠️ No `SAFEVLM_ANNOTATION_TOKEN` is set: anyone who can open this page can read "
            "and label the log. Set one before exposing the app beyond your machine."
        )
    status = gr.Markdown(elem_id="safevlm-annotate-status")
    type_choices = [
        (label, name) for name, label in zip(taxonomy.types, taxonomy.type_labels, strict=True)
    ]
    level_choices = [(label, i) for i, label in enumerate(taxonomy.level_labels)]
    with gr.Column(visible=not settings.annotation_token) as panel:
        with gr.Row(equal_height=False):
            decision_filter = gr.Dropdown(
                ["any", "allow", "caution", "refuse"], value="any", label="Decision", scale=1
            )
            type_filter = gr.Dropdown(
                [("any", "any"), *type_choices], value="any", label="Predicted type", scale=1
            )
            unlabelled = gr.Checkbox(label="Unlabelled only", value=False, scale=1)
            order = gr.Radio(
                [("newest first", "newest"), ("most useful to label first", "useful")], value="newest",
                label="Order", scale=2,
                info="useful: unlabelled turns where the head was unsure, the input sat near a threshold, "
                     "or the visitor gave more 👎 than 👍 (column 'why')",
            )
            load_btn = gr.Button("Load turns", variant="primary", scale=1)
        table = gr.Dataframe(
            headers=TURN_COLUMNS,
            # narrow columns for short values, room for the reason, the prompt and the answer
            column_widths=[TURN_WIDTHS.get(c, "110px") for c in TURN_COLUMNS],
            interactive=False,
            wrap=True,
            max_height=320,
            label="Logged turns (click a row to open it)",
            elem_id="safevlm-turns",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                with gr.Row(equal_height=True):
                    turn_id = gr.Number(
                        label="Turn id",
                        value=None,
                        precision=0,
                        minimum=1,
                        scale=2,
                        placeholder="click a row",
                    )
                    open_btn = gr.Button("Open", scale=1)
                image = gr.Image(
                    label="Image",
                    show_label=False,
                    type="pil",
                    interactive=False,
                    height=260,
                    buttons=[],
                )
            with gr.Column(scale=2, min_width=320):
                turn_text = gr.Markdown(
                    "Open a turn to see its prompt, answer and probabilities.",
                    elem_id="safevlm-turn",
                )
            with gr.Column(scale=2, min_width=300):
                turn_types = type_plot(taxonomy, height=210)
                turn_levels = level_plot(taxonomy, height=210, x_label_angle=-30)
            with gr.Column(scale=1, min_width=260):
                annotator = gr.Textbox(label="Annotator", placeholder="your name")
                decision_correct = gr.Radio(
                    ["yes", "no"], label="Decision correct?", elem_id="safevlm-correct"
                )
                true_type = gr.Dropdown(type_choices, label="True type", value=None)
                true_level = gr.Dropdown(level_choices, label="True level", value=None)
                rating = gr.Radio([1, 2, 3, 4, 5], label="Answer rating (1 bad – 5 good)")
                note = gr.Textbox(label="Note", lines=2)
                save_btn = gr.Button("Save label", variant="primary")
        gr.Markdown(
            "### Thresholds from labels\nPer risk type, how the logged probabilities of the "
            "labelled turns rank: recall and precision on the labels and the share of safe "
            "labelled turns flagged, over thresholds; and per-type thresholds that flag the most "
            "labelled risky turns with at most the chosen share of safe ones flagged."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                budget = gr.Slider(0, 20, value=3, step=0.5, label="Safe turns flagged at most (%)")
                risk_choices = [(label, name) for label, name in type_choices if name in taxonomy.risk_types]
                curve_type = gr.Dropdown(risk_choices, value=risk_choices[0][1], label="Curve of type")
                suggest_btn = gr.Button("Suggest thresholds", variant="primary")
                apply_btn = gr.Button("Apply to new chats")
                suggestion = gr.Markdown(elem_id="safevlm-suggestion")
                with gr.Column(visible=False) as file_box:  # shown once there is a suggestion
                    policy_file = gr.File(label="Policy file (SAFEVLM_POLICY)", interactive=False, height=100)
            with gr.Column(scale=2, min_width=320, visible=False) as curve_box:
                curve = gr.LinePlot(
                    curve_frame(None, ""), x="threshold", y="value", color="series", y_lim=[0, 1],
                    x_lim=[0, 1], color_map=CURVE_COLOURS, title="Labelled turns by threshold",
                    elem_id="safevlm-curve", height=260,
                )
        policy_state = gr.State(None)
        gr.Markdown("### Export")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                export_jsonl_btn = gr.Button("Export JSONL (training records)")
                gr.Markdown("One record per image and prompt: the majority label (ties: the newest); "
                            "risky labels get the project's refusal as the target, never the logged answer; "
                            "safe ones the logged answer only when rated 4-5.")
                labelled_only = gr.Checkbox(label="CSV: labelled turns only", value=True)
                export_csv_btn = gr.Button("Export CSV (all columns)")
            export_file = gr.File(
                label="Download", interactive=False, elem_id="safevlm-export", height=120, scale=2
            )

    turn_outputs = [
        turn_id,
        image,
        turn_text,
        turn_types,
        turn_levels,
        decision_correct,
        true_type,
        true_level,
        rating,
        note,
    ]

    def open_selected(token_value, evt: gr.SelectData):
        row = evt.row_value or []
        if not row:
            raise gr.Error("Click a row of the table.", print_exception=False)
        return annotation.open_turn(token_value, row[0])

    if settings.annotation_token:
        unlock = dict(fn=annotation.unlock, inputs=token, outputs=[panel, status], **lookup)
        unlock_btn.click(**unlock)
        token.submit(**unlock)
    browse = dict(
        fn=annotation.browse,
        inputs=[token, decision_filter, type_filter, unlabelled, gr.State(100), order],
        outputs=table,
        **lookup,
    )
    load_btn.click(**browse)
    table.select(open_selected, token, turn_outputs, **lookup)
    open_btn.click(annotation.open_turn, [token, turn_id], turn_outputs, **lookup)
    save_btn.click(
        annotation.save_label,
        [token, turn_id, annotator, decision_correct, true_type, true_level, rating, note],
        status,
        **lookup,
    ).then(**browse)

    suggest_btn.click(
        annotation.suggest, [token, budget, curve_type], [suggestion, curve, policy_state, policy_file], **lookup
    ).then(lambda policy: (gr.Column(visible=policy is not None),) * 2, policy_state, [file_box, curve_box],
           **lookup)
    curve_type.change(annotation.curve, [policy_state, curve_type], curve, **lookup)
    apply_btn.click(annotation.apply, [token, policy_state], status, **lookup)

    def export_to(kind: str):
        return lambda t, only: annotation.export(t, kind, only)

    for button, kind in ((export_jsonl_btn, "jsonl"), (export_csv_btn, "csv")):
        button.click(
            export_to(kind), [token, labelled_only], export_file, api_name=f"export_{kind}", **lookup
        )
