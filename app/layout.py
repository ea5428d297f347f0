"""The app's one gr.Blocks: the Chat tab (chat, safety panel, settings), the Annotate tab
and the About accordion, wired to `handlers`.

Owns components and events only; every callback is a thin wrapper around a `Handlers`
method. Every UI event is private: the one public endpoint is /chat.
"""

import html
import json
from collections.abc import Callable

import gradio as gr

from app.handlers import TURN_COLUMNS, Handlers
from app.panel import (
    LEVEL_COLOURS,
    TYPE_STATUS_COLOURS,
    badge_html,
    details_markdown,
    level_frame,
    type_frame,
)
from app.settings import load_examples

PRIVATE = {"api_visibility": "private"}
MODEL = {"concurrency_id": "model"}  # chat, regenerate and /chat share the one model slot
QUICK = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
LOOKUP = {
    "api_visibility": "private",
    "concurrency_limit": None,
}  # store reads/writes: never wait for the model

CSS = """
.safevlm-panel .block { margin-bottom: 0 !important; }
#safevlm-chatbot { flex-grow: 1; }
footer { display: none !important; }
"""

HEADER = """# 🛡️ SafeVLM
Chat about an image with a vision-language model whose **safety head** rates every image and
question *before* the answer starts (bars on the right). Flagged inputs get a safety hint
and/or safety tokens. A research demo: answers can be wrong or unsafe.
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
    defaults = handlers.engine.default_thresholds()
    gpu = _gpu()

    with gr.Blocks(title="SafeVLM") as demo:
        session = gr.State(None)
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
                                "Delete this chat's logs",
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
                        examples = load_examples()
                        if examples:
                            gr.Examples(
                                examples=[
                                    {"text": e["prompt"], "files": [e["path"]]} for e in examples
                                ],
                                example_labels=[e["label"] for e in examples],
                                inputs=[textbox],
                                label="Examples (click, then press Enter)",
                                api_visibility="private",
                            )
                    with gr.Column(scale=2, min_width=340, elem_classes="safevlm-panel"):
                        badge = gr.HTML(
                            badge_html(None, taxonomy), padding=False, elem_id="safevlm-badge"
                        )
                        type_plot = gr.BarPlot(
                            type_frame(taxonomy),
                            x="type",
                            y="probability",
                            color="status",
                            color_map=TYPE_STATUS_COLOURS,
                            y_lim=[0, 1],
                            sort=list(taxonomy.type_labels),
                            title="Risk type",
                            x_title=" ",
                            y_title="probability",
                            x_label_angle=-30,
                            color_title=" ",
                            height=230,
                            label="Risk type probabilities",
                            show_label=False,
                            elem_id="safevlm-type-plot",
                        )
                        level_plot = gr.BarPlot(
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
                            y_title="probability",
                            height=190,
                            label="Risk level probabilities",
                            show_label=False,
                            elem_id="safevlm-level-plot",
                        )
                        details = gr.Markdown(details_markdown(None, taxonomy))
                        with gr.Accordion("Safety settings (this browser only)", open=True):
                            mode = gr.Radio(
                                ["hint", "tokens", "both", "off"],
                                value=handlers.default_mode,
                                label="Conditioning of flagged inputs",
                                info="hint: add the safety hint · tokens: safety tokens · both · off: none",
                            )
                            gr.Markdown(
                                "A risk type is flagged when its probability reaches its threshold "
                                "**and** P(level ≥ 1) reaches the level threshold."
                            )
                            sliders = []
                            labels = dict(zip(taxonomy.types, taxonomy.type_labels, strict=True))
                            names = [*taxonomy.risk_types, "level"]
                            for start in range(
                                0, len(names), 2
                            ):  # two sliders a row keeps the panel short
                                with gr.Row(equal_height=True):
                                    for name in names[start : start + 2]:
                                        sliders.append(
                                            gr.Slider(
                                                0.0,
                                                1.0,
                                                step=0.05,
                                                min_width=150,
                                                buttons=[],
                                                value=defaults.level
                                                if name == "level"
                                                else defaults.types[name],
                                                label="Level threshold"
                                                if name == "level"
                                                else labels[name],
                                            )
                                        )
                            preview = gr.HTML("", padding=False, elem_id="safevlm-preview")
                            reset_btn = gr.Button("Reset thresholds", size="sm")
                with gr.Accordion("About this model", open=False):
                    gr.Markdown(about_markdown(handlers))
            with gr.Tab("Annotate", id="annotate"):
                _annotate_tab(handlers)

        # --- chat events --------------------------------------------------------------
        chat_outputs = [chatbot, session, textbox, badge, type_plot, level_plot, details]

        @gpu
        def respond(
            message, history, state, mode_value, dont_log_value, request: gr.Request, *values
        ):
            yield from handlers.respond(
                message, history, state, mode_value, values, not dont_log_value, _stop_key(request)
            )

        @gpu
        def regenerate(history, state, mode_value, dont_log_value, request: gr.Request, *values):
            yield from handlers.regenerate(
                history, state, mode_value, values, not dont_log_value, _stop_key(request)
            )

        def stop(request: gr.Request):
            handlers.stop(_stop_key(request))

        def on_like(state, comment_value, data: gr.LikeData):
            return handlers.feedback(state, data.index, data.liked, comment_value)

        def preview_decision(state, *values):
            return handlers.preview(state, values)

        chat_inputs = [session, mode, dont_log]
        textbox.submit(
            respond,
            [textbox, chatbot, *chat_inputs, *sliders],
            chat_outputs,
            show_progress="hidden",
            **MODEL,
            **PRIVATE,
        )
        regenerate_btn.click(
            regenerate,
            [chatbot, *chat_inputs, *sliders],
            chat_outputs,
            show_progress="hidden",
            **MODEL,
            **PRIVATE,
        )
        # The stop button sets the turn's stop event (no `cancels=`): the turn then ends
        # normally, is logged as stopped, and hands the input box back.
        textbox.stop(stop, None, None, **QUICK)
        clear_outputs = [chatbot, session, badge, type_plot, level_plot, details, preview]
        clear_btn.click(handlers.clear, None, clear_outputs, **QUICK)
        chatbot.clear(handlers.clear, None, clear_outputs, **QUICK)
        chatbot.like(on_like, [session, comment], [feedback_status, comment], **LOOKUP)
        dont_log.change(
            lambda value, state: handlers.set_logging(not value, state),
            [dont_log, session],
            feedback_status,
            **LOOKUP,
        )
        forget_btn.click(handlers.forget, session, feedback_status, **LOOKUP)
        for slider in sliders:
            slider.change(
                preview_decision, [session, *sliders], preview, trigger_mode="always_last", **QUICK
            )
        reset_btn.click(
            lambda: [defaults.types[name] for name in taxonomy.risk_types] + [defaults.level],
            None,
            sliders,
            **QUICK,
        )

        # --- the public API ---------------------------------------------------------------
        gr.api(
            gpu(api_chat_fn(handlers)),
            api_name="chat",
            concurrency_id="model",
            api_description="Chat about one image: (image, prompt, mode, thresholds JSON) -> "
            "the verdict and answer as JSON. Turns are logged with source 'api'.",
        )
    return demo


def api_chat_fn(handlers: Handlers) -> Callable:
    """The /chat endpoint with the type hints gr.api turns into its schema."""

    def chat(image: gr.FileData | None, prompt: str, mode: str = "", thresholds: str = "") -> dict:
        """image: an upload (gradio_client.handle_file); mode: hint, tokens, both, off or "" for the
        default; thresholds: JSON such as {"illegal_risk": 0.3, "level": 0.4} or "" for defaults."""
        return handlers.api_chat(image, prompt, mode, thresholds)

    return chat


def _stop_key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def _annotate_tab(handlers: Handlers) -> None:
    settings, taxonomy = handlers.settings, handlers.taxonomy
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
                turn_types = gr.BarPlot(
                    type_frame(taxonomy),
                    x="type",
                    y="probability",
                    color="status",
                    color_map=TYPE_STATUS_COLOURS,
                    y_lim=[0, 1],
                    color_title=" ",
                    sort=list(taxonomy.type_labels),
                    height=210,
                    x_title=" ",
                    x_label_angle=-30,
                    title="Risk type",
                    show_label=False,
                )
                turn_levels = gr.BarPlot(
                    level_frame(taxonomy),
                    x="level",
                    y="probability",
                    color="level",
                    color_map=dict(zip(taxonomy.level_labels, LEVEL_COLOURS, strict=False)),
                    colors_in_legend=[],
                    y_lim=[0, 1],
                    sort=list(taxonomy.level_labels),
                    height=210,
                    x_title=" ",
                    x_label_angle=-30,
                    title="Risk level",
                    show_label=False,
                )
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
        gr.Markdown("### Export")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                labelled_only = gr.Checkbox(label="Labelled turns only", value=True)
                export_jsonl_btn = gr.Button("Export JSONL (training records)")
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
        return handlers.open_turn(token_value, row[0])

    if settings.annotation_token:
        unlock = dict(fn=handlers.unlock, inputs=token, outputs=[panel, status], **LOOKUP)
        unlock_btn.click(**unlock)
        token.submit(**unlock)
    browse = dict(
        fn=handlers.browse,
        inputs=[token, decision_filter, type_filter, unlabelled],
        outputs=table,
        **LOOKUP,
    )
    load_btn.click(**browse)
    table.select(open_selected, token, turn_outputs, **LOOKUP)
    open_btn.click(handlers.open_turn, [token, turn_id], turn_outputs, **LOOKUP)
    save_btn.click(
        handlers.save_label,
        [token, turn_id, annotator, decision_correct, true_type, true_level, rating, note],
        status,
        **LOOKUP,
    ).then(**browse)
    export_jsonl_btn.click(
        lambda t, only: handlers.export(t, "jsonl", only),
        [token, labelled_only],
        export_file,
        **LOOKUP,
    )
    export_csv_btn.click(
        lambda t, only: handlers.export(t, "csv", only),
        [token, labelled_only],
        export_file,
        **LOOKUP,
    )


def about_markdown(handlers: Handlers) -> str:
    about, taxonomy, settings = handlers.engine.describe(), handlers.taxonomy, handlers.settings
    defaults = handlers.engine.default_thresholds()
    rows = "\n".join(
        f"| {label} | `{name}` | {'—' if name == taxonomy.safe_type else f'{defaults.types[name]:.2f}'} "
        f"| {html.escape(taxonomy.descriptions.get(name, ''))} |"
        for name, label in zip(taxonomy.types, taxonomy.type_labels, strict=True)
    )
    levels = " · ".join(taxonomy.level_labels)
    if not handlers.store.enabled:
        logging_note = "Logging is **off** on this server (`SAFEVLM_LOG=off`): no turn is saved."
    else:
        logging_note = (
            f"Turns are logged to a local SQLite file (`{settings.db}`) on this server only; nothing "
            "is uploaded anywhere. Tick *Don't log this chat* to opt out. The browser keeps no chat "
            "history: reloading the page starts a new chat."
        )
        if settings.public:
            logging_note += " On a Space, local files vanish when it restarts."
    config = json.dumps(about.get("config", {}), indent=1)
    return f"""
**Base:** `{about.get("base")}` · **Safety checkpoint:** `{about.get("checkpoint")}` ·
**Text reader (OCR):** {"on" if about.get("reader") else "off"} · **Default mode:** `{about.get("default_mode")}` ·
**Max new tokens:** {settings.max_new_tokens}

**Taxonomy** `{taxonomy.name}` — levels: {levels}; default level threshold {defaults.level:.2f}.

| Type | Name | Default threshold | Covers |
|---|---|---|---|
{rows}

**Logs.** {logging_note}

<details><summary>Safety module config</summary>

```json
{config}
```
</details>
"""
