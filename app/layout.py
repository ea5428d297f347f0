"""The app's one gr.Blocks: the Chat tab (chat, safety panel, settings) and its events, the
About accordion, the Annotate tab (`annotate_tab`) and the public endpoints /chat and
/delete, with the keyword sets every event takes. Owns components and events only; every
callback calls a method of a `Handlers` part (chat, chatlog, annotation, api)."""

from collections.abc import Callable

import gradio as gr

from app.about import about_markdown
from app.annotate_tab import annotate_tab
from app.api import chat_endpoint, delete_endpoint
from app.handlers import Handlers
from app.panel import badge_html, details_markdown, level_plot, type_plot
from app.safety_settings import default_values
from app.served import CACHE_SWEEP
from app.session import ChatSession
from app.settings import load_examples
from safevlm.config import MODES

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


def about_text(handlers: Handlers) -> str:
    return about_markdown(handlers.engine, handlers.settings, handlers.store.enabled, handlers.slot.registry)


def page_load(handlers: Handlers) -> tuple:
    """A new page: the promoted checkpoint if it changed, its default thresholds and About text."""
    handlers.slot.refresh()
    return (*default_values(handlers.engine), about_text(handlers))


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
                    about = gr.Markdown(about_text(handlers))
            with gr.Tab("Annotate", id="annotate"):
                annotate_tab(handlers.annotation, LOOKUP)

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
        # a page opened after "Apply to new chats" (Annotate tab) starts from the applied
        # thresholds, and after a promotion in the registry from the promoted checkpoint
        demo.load(lambda: page_load(handlers), None, [*sliders, about], **QUICK)

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
