"""How an error reaches the person: which exceptions are theirs to fix (`USER_ERRORS`) and
the one line the browser shows for them. Decides no edge itself: the handlers catch."""

import gradio as gr

from safevlm.engine import PromptError
from safevlm.images import ImageError
from safevlm.policy import ThresholdError

# The one-line errors a person can fix; anything else is a bug, logged and shown generically.
USER_ERRORS = (ImageError, PromptError, ThresholdError, ValueError)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def shown(error: BaseException) -> gr.Error:
    """`error` as the one-line gr.Error the browser shows; raise it `from None`."""
    return gr.Error(one_line(error), print_exception=False)
