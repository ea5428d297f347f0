"""Training data: the JSONL record schema, project-written text sources, fonts, photos,
renderers, the offline generator and loaders for public formats.

Nothing here imports torch; models and training read the JSONL this package writes.
"""
