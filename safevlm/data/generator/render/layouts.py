"""Typographic layouts: the same text drawn as a FigStep list, a sign, notes, a chat, a
poster, a photo caption, a whiteboard or a slide; and which layouts are held out for test.

Owns the pixels of text scenes only; the text itself and its labels come from `kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from safevlm.data.generator.fonts import FontSpec, load_font
from safevlm.data.generator.render.canvas import (
    INK_COLORS,
    PAPER_COLORS,
    Backdrop,
    Color,
    Renderer,
    canvas_size,
    contrast_ink,
    draw_block,
    fit_text,
    gradient,
    jitter,
    paste_rotated,
    pick,
    plain_background,
    write_in_box,
)

EMPTY_LIST = "1.\n2.\n3."

NOTE_COLORS: tuple[Color, ...] = (
    (255, 240, 120), (255, 205, 210), (200, 240, 200), (190, 225, 255), (255, 220, 170)
)
POSTER_COLORS: tuple[Color, ...] = (
    (220, 60, 60), (40, 110, 200), (30, 150, 110), (240, 170, 30), (130, 70, 170), (30, 30, 40),
    (240, 240, 235), (0, 130, 140)
)
SIGN_COLORS: tuple[Color, ...] = (
    (255, 255, 255), (250, 210, 40), (20, 110, 60), (25, 70, 150), (200, 40, 40),
    (245, 245, 230)
)
MARKER_COLORS: tuple[Color, ...] = ((20, 20, 20), (20, 60, 170), (190, 30, 30), (20, 120, 50))


def render_figstep(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """Black monospace text on white: the title, then an empty numbered list."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    margin = int(size * rng.uniform(0.05, 0.09))
    content = text if text.rstrip().endswith("3.") else f"{text}\n{EMPTY_LIST}"
    inner = size - 2 * margin
    draw = ImageDraw.Draw(image)
    box = (margin, margin, inner, inner)
    write_in_box(draw, content, font, box, (0, 0, 0), int(size * 0.085), spacing=0.35)
    return image


def render_sign(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """A flat sign board with a border, on a photo or gradient background."""
    width, height = canvas_size(rng, size, (1.0, 1.33, 0.8))
    image = plain_background(width, height, rng, background)
    draw = ImageDraw.Draw(image)
    board = pick(rng, SIGN_COLORS)
    sw, sh = int(width * rng.uniform(0.7, 0.9)), int(height * rng.uniform(0.45, 0.65))
    x0, y0 = (width - sw) // 2 + int(rng.integers(-10, 11)), int(height * rng.uniform(0.08, 0.2))
    pole = (90, 90, 95)
    draw.rectangle((x0 + sw // 2 - 6, y0 + sh, x0 + sw // 2 + 6, height), fill=pole)
    border = contrast_ink(board)
    draw.rounded_rectangle(
        (x0, y0, x0 + sw, y0 + sh),
        radius=int(sw * 0.04),
        fill=board,
        outline=border,
        width=max(3, sw // 60),
    )
    pad = int(sw * 0.08)
    block = fit_text(text, font, sw - 2 * pad, sh - 2 * pad, max_size=int(sh * 0.3))
    ty = y0 + (sh - block.height) / 2
    draw_block(draw, block, x0 + pad, ty, sw - 2 * pad, contrast_ink(board), align="center")
    return image


def render_sticky_note(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """A square coloured note, slightly turned, on a desk-like background."""
    image = plain_background(size, size, rng, background)
    note_side = int(size * rng.uniform(0.62, 0.8))
    layer = Image.new("RGBA", (note_side, note_side), jitter(pick(rng, NOTE_COLORS), rng) + (255,))
    pad = int(note_side * 0.09)
    box = (pad, pad, note_side - 2 * pad, note_side - 2 * pad)
    ink = pick(rng, INK_COLORS)
    write_in_box(ImageDraw.Draw(layer), text, font, box, ink, int(note_side * 0.16))
    paste_rotated(
        image,
        layer,
        (size / 2 + rng.uniform(-12, 12), size / 2 + rng.uniform(-12, 12)),
        angle=rng.uniform(-8, 8),
    )
    return image


def render_handwritten_note(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """Lined paper with the text written along the lines in ink."""
    width, height = canvas_size(rng, size, (0.75, 0.8, 1.0))
    image = Image.new("RGB", (width, height), pick(rng, PAPER_COLORS))
    draw = ImageDraw.Draw(image)
    margin_x = int(width * 0.16)
    pad = int(width * 0.06)
    block = fit_text(
        text, font, width - margin_x - pad, height * 0.78, max_size=int(height * 0.09), spacing=0.55
    )
    top = int(height * 0.1)
    for y in range(top + block.line_h, height, block.line_h):
        draw.line((0, y, width, y), fill=(170, 195, 230), width=1)
    draw.line((margin_x - pad // 2, 0, margin_x - pad // 2, height), fill=(225, 120, 120), width=2)
    # Pillow draws from the top of the ascent: put each baseline just above its rule.
    first_top = top + block.line_h - block.font.getmetrics()[0] - 3
    ink = pick(rng, INK_COLORS)
    draw_block(draw, block, margin_x, first_top, width - margin_x - pad, ink)
    return image


def render_chat_bubble(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """A phone screenshot: status bar, contact header and the text in a chat bubble."""
    height, width = size, int(size * rng.uniform(0.5, 0.62))
    dark = rng.random() < 0.3
    screen = (
        (18, 18, 22) if dark else pick(rng, ((255, 255, 255), (236, 229, 221), (242, 242, 247)))
    )
    image = Image.new("RGB", (width, height), screen)
    draw = ImageDraw.Draw(image)
    bar_h = int(height * 0.1)
    header = pick(rng, ((7, 94, 84), (0, 122, 255), (60, 60, 70), (88, 86, 214)))
    draw.rectangle((0, 0, width, bar_h), fill=header)
    small = load_font(font.path, max(10, bar_h // 3))
    hour, minute = int(rng.integers(7, 23)), int(rng.integers(0, 60))
    draw.text((8, 4), f"{hour}:{minute:02d}", font=small, fill=(255, 255, 255))
    contact = pick(rng, ("Alex", "Sam", "Mum", "Jo", "Kim"))
    draw.text((int(width * 0.2), bar_h // 2), contact, font=small, fill=(255, 255, 255))
    bubble_w = int(width * 0.82)
    pad = max(8, width // 28)
    block = fit_text(text, font, bubble_w - 2 * pad, height * 0.62, max_size=int(width * 0.11))
    bw, bh = block.width + 2 * pad, block.height + 2 * pad
    outgoing = rng.random() < 0.6
    x0 = width - bw - pad if outgoing else pad
    y0 = int(bar_h + rng.uniform(0.08, 0.2) * height)
    fill = (
        pick(rng, ((220, 248, 198), (0, 122, 255), (52, 199, 89)))
        if outgoing
        else ((58, 58, 60) if dark else (255, 255, 255))
    )
    draw.rounded_rectangle(
        (x0, y0, x0 + bw, y0 + bh),
        radius=pad * 2,
        fill=fill,
        outline=(200, 200, 200) if not dark else None,
    )
    draw_block(draw, block, x0 + pad, y0 + pad, bw - 2 * pad, contrast_ink(fill))
    return image


def render_poster(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """A coloured poster with big centred text and simple shapes."""
    width, height = canvas_size(rng, size, (0.75, 0.8, 1.0))
    base = pick(rng, POSTER_COLORS)
    image = gradient(width, height, base, jitter(base, rng, 40))
    draw = ImageDraw.Draw(image)
    accent = jitter(pick(rng, POSTER_COLORS), rng)
    for _ in range(int(rng.integers(1, 4))):
        r = int(rng.uniform(0.1, 0.3) * width)
        cx, cy = (
            rng.uniform(0, width),
            rng.choice([rng.uniform(0, 0.15), rng.uniform(0.85, 1)]) * height,
        )
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=accent)
    pad = int(width * 0.1)
    shown = text.upper() if rng.random() < 0.4 else text
    block = fit_text(
        shown, font, width - 2 * pad, height * 0.55, max_size=int(height * 0.12), spacing=0.15
    )
    ty = (height - block.height) / 2
    stroke = 2 if rng.random() < 0.3 else 0
    draw_block(
        draw, block, pad, ty, width - 2 * pad, contrast_ink(base), "center", stroke, (128, 128, 128)
    )
    return image


def render_photo_overlay(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """Text on a real photo, in a translucent box or with an outline."""
    width, height = canvas_size(rng, size, (1.0, 1.33, 0.75))
    image = plain_background(width, height, rng, background).convert("RGBA")
    pad = int(width * 0.07)
    block = fit_text(text, font, width - 4 * pad, height * 0.5, max_size=int(height * 0.1))
    y = int(height * pick(rng, (0.08, 0.3, 0.55)))
    y = max(pad // 2, min(y, height - block.height - pad))
    boxed = rng.random() < 0.65
    box_color = pick(rng, ((0, 0, 0), (255, 255, 255)))
    if boxed:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        ImageDraw.Draw(overlay).rectangle(
            (pad, y - pad // 2, width - pad, y + block.height + pad // 2),
            fill=box_color + (int(rng.uniform(150, 215)),),
        )
        image = Image.alpha_composite(image, overlay)
    draw = ImageDraw.Draw(image)
    ink = contrast_ink(box_color) if boxed else (255, 255, 255)
    stroke = 0 if boxed else 3
    draw_block(draw, block, 2 * pad, y, width - 4 * pad, ink, "center", stroke, (0, 0, 0))
    return image.convert("RGB")


def render_whiteboard(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """A whiteboard with a metal frame and marker writing (held-out layout)."""
    width, height = canvas_size(rng, size, (1.33, 1.5))
    image = plain_background(width, height, rng, background)
    draw = ImageDraw.Draw(image)
    frame = int(width * 0.03)
    x0, y0, x1, y1 = frame * 2, frame * 2, width - frame * 2, height - frame * 3
    draw.rectangle((x0 - frame, y0 - frame, x1 + frame, y1 + frame), fill=(175, 178, 182))
    draw.rectangle((x0, y0, x1, y1), fill=jitter((246, 247, 248), rng, 6))
    draw.rectangle((x0, y1 + frame, x1, y1 + frame * 2), fill=(150, 150, 155))
    pad = int(width * 0.05)
    box = (x0 + pad, y0 + pad, x1 - x0 - 2 * pad, y1 - y0 - 2 * pad)
    ink = pick(rng, MARKER_COLORS)
    write_in_box(draw, text, font, box, ink, int(height * 0.16), spacing=0.3)
    return image


def render_slide(
    text: str, rng: np.random.Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    """A presentation slide (held-out layout): the first line as the heading in a coloured
    bar and the rest (the numbered list) as the body; a single line makes a title slide."""
    width, height = size, int(size * 0.5625)
    theme = pick(rng, POSTER_COLORS[:6])
    image = Image.new("RGB", (width, height), pick(rng, PAPER_COLORS))
    draw = ImageDraw.Draw(image)
    heading, _, rest = text.partition("\n")
    pad = int(width * 0.05)
    if not rest:
        draw.rectangle((0, 0, width, int(height * 0.06)), fill=theme)
        title = fit_text(heading, font, width - 4 * pad, height * 0.6, max_size=int(height * 0.14))
        ty = (height - title.height) / 2
        draw_block(draw, title, 2 * pad, ty, width - 4 * pad, (30, 30, 30), align="center")
    else:
        bar_h = int(height * 0.34)
        draw.rectangle((0, 0, width, bar_h), fill=theme)
        head = fit_text(
            heading, font, width - 2 * pad, bar_h * 0.85, max_size=int(bar_h * 0.4), spacing=0.1
        )
        draw_block(draw, head, pad, (bar_h - head.height) / 2, width - 2 * pad, contrast_ink(theme))
        box = (pad * 1.5, bar_h + pad, width - 3 * pad, height - bar_h - 2 * pad)
        write_in_box(draw, rest, font, box, (30, 30, 30), int(height * 0.11))
    draw.rectangle((0, height - 6, width, height), fill=theme)
    return image


# ---------------------------------------------------------------- the layout registry


@dataclass(frozen=True)
class Layout:
    name: str
    render: Renderer
    held_out: bool = False  # used ONLY for the test split
    font_style: str | None = None  # preferred font style
    uses_background: bool = False
    list_always: bool = False  # always shows the empty numbered list


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("figstep", render_figstep, font_style="mono", list_always=True),
        Layout("sign", render_sign, uses_background=True),
        Layout("sticky_note", render_sticky_note, font_style="handwriting", uses_background=True),
        Layout("handwritten_note", render_handwritten_note, font_style="handwriting"),
        Layout("chat_bubble", render_chat_bubble, font_style="sans"),
        Layout("poster", render_poster),
        Layout("photo_overlay", render_photo_overlay, uses_background=True),
        Layout(
            "whiteboard",
            render_whiteboard,
            held_out=True,
            font_style="handwriting",
            uses_background=True,
        ),
        Layout("slide", render_slide, held_out=True, font_style="sans"),
    )
}


def layouts_for_split(split: str) -> list[Layout]:
    """Train/val: the shared layouts; test: every layout (held-out ones included)."""
    return [layout for layout in LAYOUTS.values() if split == "test" or not layout.held_out]


def held_out_layouts() -> set[str]:
    return {name for name, layout in LAYOUTS.items() if layout.held_out}
