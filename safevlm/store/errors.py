"""StoreError, the one exception the chat log raises.

Every failure (SQLite, files, bad values) becomes one, with a message that says what to do;
the app and the CLI catch it once and show it as one line.
"""

from safevlm.errors import SafeVLMError


class StoreError(SafeVLMError, RuntimeError):
    """The log cannot do what was asked; the message says why and what to do."""
