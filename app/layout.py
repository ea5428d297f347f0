"""The app's one gr.Blocks: the Chat tab (chat, safety panel, settings) and its events, the
About accordion, the Annotate tab and the public endpoints /chat and /delete, with the bar
plots both tabs draw and the keyword sets every event takes. Owns components and events
only; every callback calls a method of a `Handlers` part (chat, chatlog, annotation, api)."""

from collections.abc import Callable

import gradio as gr

from app.about import about_markdown
from app.annotate import TURN_COLUMNS, AnnotationHandlers, curve_frame
from app.api import chat_endpoint, delete_endpoint
from app.handlers import Handlers
from app.panel import (
    LEVEL_COLOURS,
    TYPE_STATUS_COLOURS,
    badge_html,
    details_markdown,
    level_frame,
    type_frame,
)
from app.safety_settings import default_values
from app.served import CACHE_SWEEP
from app.session import ChatSession
from app.settings import load_examples
from safevlm.config import MODES

CURVE_COLOURS = {"recall": "#b91c1c", "precision": "#2563eb", "false flags": "#ca8a04",
                 "current": "#6b7280", "suggested": "#15803d"}
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


CSS = """
.safevlm-panel .block { margin-bottom: 0 !important; }
#safevlm-chatbot { flex-grow: 1; }
footer { display: none !important; }
"""

HEADER = """# 🛡️ SafeVLM
Chat about an image with a vision-language model whose **safety head** rates every image and
question *before* the answer starts (bars on the right). Clearly harmful requests get a written
refusal; other flagged inputs are answered with a safety hint and/or safety tokens. A research
demo: the safety head misses things and answers can be wrong or unsafe.
"""


def _gpu() -> Callable:
    """`spaces.GPU` on Hugging Face ZeroGPU hardware (a no-op elsewhere); identity without it."""
    try:
        import spaces  # optional: only installed on Spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU


def build_layout(handlers: Handlers) -> gr.Blocks:
    taxonomy = handlers.taxonomy
    gpu = _gpu()

    with gr.Blocks(title="SafeVLM", delete_cache=CACHE_SWEEP) as demo:
        # A value, not None: the "Don't log" box and a turn in flight then share one visit.
        session = gr.State(ChatSession())
        gr.Markdown(HEADER)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=380):
                        chatbot = gr.Chatbot(
                            label="Chat",
                            show_label=False,
                            elem_id="safevlm-chatbot",
                            height=470,
                            buttons=["copy"],
                            feedback_options=("Like", "Dislike"),
                            placeholder="**Upload an image** (📎) or pick an example below, then ask about it.",
                        )
                        textbox = gr.MultimodalTextbox(
                            file_types=["image"],
                            stop_btn=True,
                            sources=["upload"],
                            show_label=False,
                            elem_id="safevlm-input",
                            placeholder="Ask about the image… (a new image starts a new chat)",
                        )
                        with gr.Row():
                            regenerate_btn = gr.Button("↻ Regenerate", size="sm", scale=1)
                            clear_btn = gr.Button("🗑 Clear chat", size="sm", scale=1)
                            dont_log = gr.Checkbox(
                                label="Don't log this chat",
                                value=False,
                                scale=2,
                                visible=handlers.store.enabled,
                            )
                            forget_btn = gr.Button(
                                "Delete my logged chats",
                                size="sm",
                                scale=1,
                                visible=handlers.store.enabled,
                            )
                        comment = gr.Textbox(
                            label="Comment (optional)",
                            max_lines=2,
                            placeholder="Type a comment, then press 👍 or 👎 under an answer to send both.",
                        )
                        feedback_status = gr.Markdown(elem_id="safevlm-feedback")
                        _examples(textbox)
                    with gr.Column(scale=2, min_width=340, elem_classes="safevlm-panel"):
                        badge = gr.HTML(
                            badge_html(None, taxonomy), padding=False, elem_id="safevlm-badge"
                        )
                        type_bars = type_plot(
                            taxonomy,
                            y_title="probability",
                            height=230,
                            label="Risk type probabilities",
                            elem_id="safevlm-type-plot",
                        )
                        level_bars = level_plot(
                            taxonomy,
                            y_title="probability",
                            height=190,
                            label="Risk level probabilities",
                            elem_id="safevlm-level-plot",
                        )
                        details = gr.Markdown(details_markdown(None, taxonomy))
                        with gr.Accordion("Safety settings (this browser only)", open=True):
                            mode = gr.Radio(
                                list(MODES),
                                value=handlers.default_mode,
                                label="Conditioning of flagged inputs",
                                info="hint: add the safety hint · tokens: safety tokens · both · off: none",
                            )
                            gr.Markdown(
                                "A risk type is flagged when its probability reaches its threshold "
                                "**and** P(level ≥ 1) reaches the level threshold."
                            )
                            sliders = _threshold_sliders(handlers)
                            preview = gr.HTML("", padding=False, elem_id="safevlm-preview")
                            reset_btn = gr.Button("Reset safety settings", size="sm")
                with gr.Accordion("About this model", open=False):
                    gr.Markdown(
                        about_markdown(handlers.engine, handlers.settings, handlers.store.enabled)
                    )
            with gr.Tab("Annotate", id="annotate"):
                annotate_tab(handlers.annotation)

        # --- chat events --------------------------------------------------------------
        chat_outputs = [chatbot, session, textbox, badge, type_bars, level_bars, details]

        @gpu
        def respond(
            message, history, state, mode_value, dont_log_value, request: gr.Request, *values
        ):
            yield from handlers.chat.respond(
                message, history, state, mode_value, values, not dont_log_value, _stop_key(request)
            )

        @gpu
        def regenerate(history, state, mode_value, dont_log_value, request: gr.Request, *values):
            yield from handlers.chat.regenerate(
                history, state, mode_value, values, not dont_log_value, _stop_key(request)
            )

        def stop(request: gr.Request):
            handlers.chat.stop(_stop_key(request))

        def on_like(state, comment_value, data: gr.LikeData):
            return handlers.chatlog.feedback(state, data.index, data.liked, comment_value)

        def preview_decision(state, *values):
            return handlers.chat.preview(state, values)

        def set_logging(dont_log_value, state):
            return handlers.chatlog.set_logging(not dont_log_value, state)

        chat_inputs = [session, mode, dont_log]
        turn = dict(outputs=chat_outputs, show_progress="hidden", **MODEL, **PRIVATE)
        textbox.submit(respond, [textbox, chatbot, *chat_inputs, *sliders], **turn)
        regenerate_btn.click(regenerate, [chatbot, *chat_inputs, *sliders], **turn)
        # The stop button sets the turn's stop event (no `cancels=`): the turn then ends
        # normally, is logged as stopped, and hands the input box back.
        textbox.stop(stop, None, None, **QUICK)
        clear_outputs = [chatbot, session, badge, type_bars, level_bars, details, preview]
        clear_btn.click(handlers.chat.clear, session, clear_outputs, **QUICK)
        chatbot.clear(handlers.chat.clear, session, clear_outputs, **QUICK)
        chatbot.like(on_like, [session, comment], [feedback_status, comment], **LOOKUP)
        dont_log.change(set_logging, [dont_log, session], feedback_status, **LOOKUP)
        forget_btn.click(handlers.chatlog.forget, session, feedback_status, **LOOKUP)
        for slider in sliders:
            slider.change(
                preview_decision, [session, *sliders], preview, trigger_mode="always_last", **QUICK
            )
        reset_btn.click(lambda: default_values(handlers.engine), None, sliders, **QUICK)
        # a page opened after "Apply to new chats" (Annotate tab) starts from the applied thresholds
        demo.load(lambda: default_values(handlers.engine), None, sliders, **QUICK)

        # --- the public API ---------------------------------------------------------------
        gr.api(
            gpu(chat_endpoint(handlers.api)),
            api_name="chat",
            concurrency_id="model",
            api_description="Chat about one image: (image, prompt, mode, thresholds JSON, log) -> "
            "the verdict and answer as JSON. Turns are logged with source 'api' unless log is "
            "false; 'log' in the answer holds the ids and the secret that /delete takes.",
        )
        gr.api(
            delete_endpoint(handlers.api),
            api_name="delete",
            concurrency_limit=None,
            api_description="Delete the logged turn of one /chat call: (session_id, "
            "delete_secret) from that call's 'log' -> {\"deleted\": number of turns}.",
        )
    return demo


def _examples(textbox: gr.MultimodalTextbox) -> None:
    """The example images of assets/examples.json, filling the input box when clicked."""
    examples = load_examples()
    if examples:
        gr.Examples(
            examples=[{"text": e["prompt"], "files": [e["path"]]} for e in examples],
            example_labels=[e["label"] for e in examples],
            inputs=[textbox],
            label="Examples (click, then press Enter)",
            api_visibility="private",
        )


def _threshold_sliders(handlers: Handlers) -> list[gr.Slider | gr.CheckboxGroup]:
    """One slider per risk type, then the level threshold, two a row to keep the panel short,
    then the levels answered by the refusal template; their order is the one
    `safety_settings.thresholds_from_values` reads."""
    taxonomy = handlers.taxonomy
    names = [*taxonomy.risk_types, "level"]
    labels = dict(zip(taxonomy.types, taxonomy.type_labels, strict=True))
    labels["level"] = "Level threshold"
    values = dict(zip(names, default_values(handlers.engine)[: len(names)], strict=True))
    sliders = []
    for start in range(0, len(names), 2):
        with gr.Row(equal_height=True):
            for name in names[start : start + 2]:
                sliders.append(
                    gr.Slider(
                        0.0,
                        1.0,
                        step=0.05,
                        min_width=150,
                        buttons=[],
                        value=values[name],
                        label=labels[name],
                    )
                )
    levels = [(taxonomy.level_labels[lv], lv) for lv in range(1, taxonomy.max_level + 1)]
    sliders.append(gr.CheckboxGroup(
        levels, value=default_values(handlers.engine)[-1], label="Refuse with the template at levels",
        info="flagged inputs at these levels get the project's refusal, no generation; "
             "other levels are answered by the model, conditioned",
        elem_id="safevlm-responses"))
    return sliders


def _stop_key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


# --- the Annotate tab ---------------------------------------------------------------

def annotate_tab(annotation: AnnotationHandlers) -> None:
    """Draw the tab's content inside the current gr.Tab (a notice only when annotation is off)."""
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
                policy_file = gr.File(label="Policy file (SAFEVLM_POLICY)", interactive=False, height=100)
            with gr.Column(scale=2, min_width=320):
                curve = gr.LinePlot(
                    curve_frame(None, ""), x="threshold", y="value", color="series", y_lim=[0, 1],
                    x_lim=[0, 1], color_map=CURVE_COLOURS, title="Labelled turns by threshold",
                    elem_id="safevlm-curve", height=260,
                )
                suggestion = gr.Markdown(elem_id="safevlm-suggestion")
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
        unlock = dict(fn=annotation.unlock, inputs=token, outputs=[panel, status], **LOOKUP)
        unlock_btn.click(**unlock)
        token.submit(**unlock)
    browse = dict(
        fn=annotation.browse,
        inputs=[token, decision_filter, type_filter, unlabelled, gr.State(100), order],
        outputs=table,
        **LOOKUP,
    )
    load_btn.click(**browse)
    table.select(open_selected, token, turn_outputs, **LOOKUP)
    open_btn.click(annotation.open_turn, [token, turn_id], turn_outputs, **LOOKUP)
    save_btn.click(
        annotation.save_label,
        [token, turn_id, annotator, decision_correct, true_type, true_level, rating, note],
        status,
        **LOOKUP,
    ).then(**browse)

    suggest_btn.click(
        annotation.suggest, [token, budget, curve_type], [suggestion, curve, policy_state, policy_file], **LOOKUP
    )
    curve_type.change(annotation.curve, [policy_state, curve_type], curve, **LOOKUP)
    apply_btn.click(annotation.apply, [token, policy_state], status, **LOOKUP)

    def export_to(kind: str):
        return lambda t, only: annotation.export(t, kind, only)

    for button, kind in ((export_jsonl_btn, "jsonl"), (export_csv_btn, "csv")):
        button.click(
            export_to(kind), [token, labelled_only], export_file, api_name=f"export_{kind}", **LOOKUP
        )
