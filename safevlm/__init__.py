"""SafeVLM: safety modules (projector, tokens, head) and policy for vision-language chat.

Import the parts you need (`safevlm.engine.ChatEngine`, `safevlm.policy.decide`, ...);
this package init stays light so `policy` and `taxonomy` load without torch.
"""

__version__ = "0.1.0"
