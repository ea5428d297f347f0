"""Pillow renderers for generated data, each a pure function of its inputs and an rng:
typographic `layouts`, synthetic `documents`, emoji and photo `scenes`, `augmentation`.

Owns pixels only: no labels, splits or file writing (that is `kinds` and `generate`).
"""

from safevlm.data.generator.render.augmentation import augment
from safevlm.data.generator.render.documents import (
    DOCUMENT_RENDERERS,
    DocumentContent,
    render_document,
)
from safevlm.data.generator.render.layouts import (
    EMPTY_LIST,
    LAYOUTS,
    Layout,
    held_out_layouts,
    layouts_for_split,
    render_chat_bubble,
    render_figstep,
    render_handwritten_note,
    render_photo_overlay,
    render_poster,
    render_sign,
    render_slide,
    render_sticky_note,
    render_whiteboard,
)
from safevlm.data.generator.render.scenes import render_emoji_scene, render_photo

__all__ = [
    "DOCUMENT_RENDERERS",
    "EMPTY_LIST",
    "LAYOUTS",
    "DocumentContent",
    "Layout",
    "augment",
    "held_out_layouts",
    "layouts_for_split",
    "render_chat_bubble",
    "render_document",
    "render_emoji_scene",
    "render_figstep",
    "render_handwritten_note",
    "render_photo",
    "render_photo_overlay",
    "render_poster",
    "render_sign",
    "render_slide",
    "render_sticky_note",
    "render_whiteboard",
]
