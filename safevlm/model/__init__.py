"""The model the runtime serves: `modeling` (SafeVLM: a frozen base plus the safety
modules, forward -> SafeVLMOutput, checkpoints), `modules` (safety projector, tokens, head),
`bases` (the offline `tiny` base and LLaVA) and `reader` (OCR of text in an image).
Import from the module you need; this init stays empty so `reader` loads without torch's
model code."""
