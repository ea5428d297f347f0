"""The offline data generator: project-written texts (`texts`, `edgy`), fonts, photos,
documents, renderers (`render/`) and record kinds (`kinds/`) that `generate` turns into a
JSONL training set with images; `request_set` adds the public request data in every form.
Used by training only (`python -m safevlm.data.generator`); the runtime never imports it."""
