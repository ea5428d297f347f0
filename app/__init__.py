"""The SafeVLM Gradio app. `app.app` is the entry point, `app.layout` the one gr.Blocks
(with `annotate_tab`, `components`, `about`), `app.handlers` the callbacks (`chat`, `chatlog`,
`safety_settings`, `annotate`, `api`) over `panel`, `session`, `settings`, `worker`. No model logic."""
