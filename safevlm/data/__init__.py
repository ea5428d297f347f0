"""Training data: the JSONL record schema (`schema`), hash splits (`splits`), public request
data (`vendor` fetches once, `public` loads and maps it), loaders for public formats,
decontamination against evaluation benchmarks, external benchmark sets (`external_eval`),
and the offline generator (`generator/`).

Nothing here imports torch; models and training read the JSONL this package writes.
"""
