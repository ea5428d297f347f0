"""The SafeVLM Gradio app. `app.app` is the entry point; `app.layout` the one gr.Blocks (the Chat
tab, every event; with `annotate_tab` and `about`); `app.handlers.Handlers` binds the parts whose
methods the events call: `chat` (turns), `chatlog` (this chat's log), `annotate` (the Annotate
tab) and `api` (/chat, /delete), over `panel`, `safety_settings`, `session`, `errors`,
`settings`, `served` and `worker`. No model logic."""
