"""How an error reaches the person: which exceptions are theirs to fix (`USER_ERRORS`) and
the one line the browser shows for them. Decides no edge itself: the handlers catch."""

import gradio as gr

from safevlm.errors import UserError, one_line

# The one-line errors a person can fix (an image, a prompt, thresholds, a mode, a request);
# anything else, a bare ValueError included, is a bug: logged and shown generically.
USER_ERRORS = (UserError,)


def shown(error: BaseException) -> gr.Error:
    """`error` as the one-line gr.Error the browser shows; raise it `from None`."""
    return gr.Error(one_line(error), print_exception=False)
