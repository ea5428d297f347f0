"""The root of every error SafeVLM raises on purpose. `SafeVLMError`: one line that says what
is wrong and what to pass instead, shown to whoever ran the command (the CLI catches this one
class). `UserError`: of those, the ones a person sending a chat input can fix (an image, a
prompt, thresholds, a mode); the app shows exactly these and treats anything else as a bug.
Each module keeps its own subclass, next to the code that raises it."""


class SafeVLMError(Exception):
    """An error with a message meant for a person: what is wrong and what to do."""


class UserError(SafeVLMError):
    """An input a person sent that cannot be used (image, prompt, thresholds, mode, request)."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, cut to `limit` characters: for one-line CLI/app errors."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
