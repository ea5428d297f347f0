"""The SafeVLM Gradio app. `app.app` is the entry point (`build_app`, `main`), `app.layout`
the one gr.Blocks, `app.handlers` its callbacks, `app.panel` the safety panel's values,
`app.settings` the environment and examples, `app.worker` the model thread. No model logic."""
