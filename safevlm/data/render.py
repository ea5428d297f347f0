"""Pillow renderers for generated data: typographic layouts, synthetic documents, emoji
scenes and photo crops. Each is a pure function of its inputs and an rng.

Owns pixels only: no labels, splits or file writing (that is `generate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from safevlm.data.fonts import EMOJI_FONT_SIZE, FontSpec, load_font

Color = tuple[int, int, int]
EMPTY_LIST = "1.\n2.\n3."

PAPER_COLORS: tuple[Color, ...] = ((255, 255, 255), (250, 247, 238), (244, 244, 240))
NOTE_COLORS: tuple[Color, ...] = (
    (255, 240, 120),
    (255, 205, 210),
    (200, 240, 200),
    (190, 225, 255),
    (255, 220, 170),
)
INK_COLORS: tuple[Color, ...] = ((20, 20, 20), (25, 45, 140), (40, 40, 80), (10, 70, 40))
POSTER_COLORS: tuple[Color, ...] = (
    (220, 60, 60),
    (40, 110, 200),
    (30, 150, 110),
    (240, 170, 30),
    (130, 70, 170),
    (30, 30, 40),
    (240, 240, 235),
    (0, 130, 140),
)
SIGN_COLORS: tuple[Color, ...] = (
    (255, 255, 255),
    (250, 210, 40),
    (20, 110, 60),
    (25, 70, 150),
    (200, 40, 40),
    (245, 245, 230),
)
MARKER_COLORS: tuple[Color, ...] = ((20, 20, 20), (20, 60, 170), (190, 30, 30), (20, 120, 50))


# ---------------------------------------------------------------- text helpers


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def luminance(color: Color) -> float:
    r, g, b = color
    return 0.299 * r + 0.587 * g + 0.114 * b


def contrast_ink(background: Color) -> Color:
    return (20, 20, 20) if luminance(background) > 140 else (250, 250, 250)


def wrap_lines(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Greedy word wrap; explicit newlines start new lines."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if current and font.getlength(candidate) > max_width:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return lines


def line_height(font: ImageFont.FreeTypeFont, spacing: float = 0.25) -> int:
    # From the ink of tall and deep letters, not the font's ascent/descent: some
    # handwriting fonts declare twice the room they use.
    top, bottom = font.getbbox("Ahgjy")[1::2]
    return max(1, int((bottom - top) * (1.1 + spacing)))


@dataclass
class TextBlock:
    font: ImageFont.FreeTypeFont
    lines: list[str]
    line_h: int

    @property
    def height(self) -> int:
        return self.line_h * len(self.lines)

    @property
    def width(self) -> int:
        return int(max((self.font.getlength(line) for line in self.lines), default=0))


def _block(text: str, path: str, size: int, width: float, spacing: float) -> TextBlock:
    font = load_font(path, size)
    return TextBlock(font, wrap_lines(text, font, width), line_height(font, spacing))


def fit_text(
    text: str,
    font: FontSpec,
    box_w: float,
    box_h: float,
    max_size: int,
    min_size: int = 12,
    spacing: float = 0.25,
) -> TextBlock:
    """The largest font size (binary search) whose wrapped text fits the box."""
    low, high = min_size, max(min_size, max_size)
    best = _block(text, font.path, low, box_w, spacing)
    while low <= high:
        mid = (low + high) // 2
        block = _block(text, font.path, mid, box_w, spacing)
        if block.width <= box_w and block.height <= box_h:
            best, low = block, mid + 1
        else:
            high = mid - 1
    return best


def draw_block(
    draw: ImageDraw.ImageDraw,
    block: TextBlock,
    x: float,
    y: float,
    box_w: float,
    fill: Color,
    align: str = "left",
    stroke: int = 0,
    stroke_fill: Color | None = None,
) -> None:
    for i, line in enumerate(block.lines):
        width = block.font.getlength(line)
        dx = {"left": 0, "center": (box_w - width) / 2, "right": box_w - width}[align]
        draw.text(
            (x + dx, y + i * block.line_h),
            line,
            font=block.font,
            fill=fill,
            stroke_width=stroke,
            stroke_fill=stroke_fill,
        )


# ---------------------------------------------------------------- canvas helpers


def cover(photo: Image.Image, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A random crop of `photo` with the canvas aspect, resized to fill it."""
    aspect = width / height
    pw, ph = photo.size
    crop_w, crop_h = (pw, pw / aspect) if pw / ph < aspect else (ph * aspect, ph)
    scale = rng.uniform(0.7, 1.0)
    crop_w, crop_h = crop_w * scale, crop_h * scale
    x0 = rng.uniform(0, pw - crop_w)
    y0 = rng.uniform(0, ph - crop_h)
    box = (int(x0), int(y0), int(x0 + crop_w), int(y0 + crop_h))
    return photo.crop(box).resize((width, height), Image.Resampling.BILINEAR)


def gradient(width: int, height: int, top: Color, bottom: Color) -> Image.Image:
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    rows = (1 - t) * np.array(top, float) + t * np.array(bottom, float)
    return Image.fromarray(np.repeat(rows, width, axis=1).astype(np.uint8), "RGB")


def _jitter(color: Color, rng: np.random.Generator, amount: int = 18) -> Color:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def plain_background(
    width: int, height: int, rng: np.random.Generator, background: Image.Image | None
) -> Image.Image:
    """The photo behind a layout when given, else a soft gradient."""
    if background is not None:
        return cover(background, width, height, rng)
    base = _jitter(
        _pick(
            rng, ((200, 190, 170), (170, 185, 200), (215, 215, 210), (150, 120, 90), (60, 70, 80))
        ),
        rng,
    )
    return gradient(width, height, base, _jitter(base, rng, 30))


def _canvas_size(rng: np.random.Generator, size: int, aspects: Sequence[float]) -> tuple[int, int]:
    aspect = float(_pick(rng, aspects))
    return (size, int(size / aspect)) if aspect >= 1 else (int(size * aspect), size)


def paste_rotated(
    canvas: Image.Image,
    layer: Image.Image,
    center: tuple[float, float],
    angle: float,
    shadow: bool = True,
) -> None:
    """Paste an RGBA layer rotated about its centre, with an optional soft shadow."""
    rotated = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    x = int(center[0] - rotated.width / 2)
    y = int(center[1] - rotated.height / 2)
    if shadow:
        alpha = rotated.getchannel("A").point(lambda a: a * 0.45)
        blurred = alpha.filter(ImageFilter.GaussianBlur(6))
        canvas.paste((0, 0, 0), (x + 6, y + 8), blurred)
    canvas.paste(rotated, (x, y), rotated)


# ---------------------------------------------------------------- typographic layouts


def render_figstep(
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """Black monospace text on white: the title, then an empty numbered list."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    margin = int(size * rng.uniform(0.05, 0.09))
    content = text if text.rstrip().endswith("3.") else f"{text}\n{EMPTY_LIST}"
    block = fit_text(
        content,
        font,
        size - 2 * margin,
        size - 2 * margin,
        max_size=int(size * 0.085),
        spacing=0.35,
    )
    draw_block(ImageDraw.Draw(image), block, margin, margin, size - 2 * margin, (0, 0, 0))
    return image


def render_sign(
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """A flat sign board with a border, on a photo or gradient background."""
    width, height = _canvas_size(rng, size, (1.0, 1.33, 0.8))
    image = plain_background(width, height, rng, background)
    draw = ImageDraw.Draw(image)
    board = _pick(rng, SIGN_COLORS)
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
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """A square coloured note, slightly turned, on a desk-like background."""
    image = plain_background(size, size, rng, background)
    note_side = int(size * rng.uniform(0.62, 0.8))
    layer = Image.new(
        "RGBA", (note_side, note_side), _jitter(_pick(rng, NOTE_COLORS), rng) + (255,)
    )
    draw = ImageDraw.Draw(layer)
    pad = int(note_side * 0.09)
    block = fit_text(
        text, font, note_side - 2 * pad, note_side - 2 * pad, max_size=int(note_side * 0.16)
    )
    draw_block(draw, block, pad, pad, note_side - 2 * pad, _pick(rng, INK_COLORS))
    paste_rotated(
        image,
        layer,
        (size / 2 + rng.uniform(-12, 12), size / 2 + rng.uniform(-12, 12)),
        angle=rng.uniform(-8, 8),
    )
    return image


def render_handwritten_note(
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """Lined paper with the text written along the lines in ink."""
    width, height = _canvas_size(rng, size, (0.75, 0.8, 1.0))
    image = Image.new("RGB", (width, height), _pick(rng, PAPER_COLORS))
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
    ascent = block.font.getmetrics()[0]
    draw_block(
        draw,
        block,
        margin_x,
        top + block.line_h - ascent - 3,
        width - margin_x - pad,
        _pick(rng, INK_COLORS),
    )
    return image


def render_chat_bubble(
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """A phone screenshot: status bar, contact header and the text in a chat bubble."""
    height, width = size, int(size * rng.uniform(0.5, 0.62))
    dark = rng.random() < 0.3
    screen = (
        (18, 18, 22) if dark else _pick(rng, ((255, 255, 255), (236, 229, 221), (242, 242, 247)))
    )
    image = Image.new("RGB", (width, height), screen)
    draw = ImageDraw.Draw(image)
    bar_h = int(height * 0.1)
    header = _pick(rng, ((7, 94, 84), (0, 122, 255), (60, 60, 70), (88, 86, 214)))
    draw.rectangle((0, 0, width, bar_h), fill=header)
    small = load_font(font.path, max(10, bar_h // 3))
    hour, minute = int(rng.integers(7, 23)), int(rng.integers(0, 60))
    draw.text((8, 4), f"{hour}:{minute:02d}", font=small, fill=(255, 255, 255))
    draw.text(
        (int(width * 0.2), bar_h // 2),
        _pick(rng, ("Alex", "Sam", "Mum", "Jo", "Kim")),
        font=small,
        fill=(255, 255, 255),
    )
    bubble_w = int(width * 0.82)
    pad = max(8, width // 28)
    block = fit_text(text, font, bubble_w - 2 * pad, height * 0.62, max_size=int(width * 0.11))
    bw, bh = block.width + 2 * pad, block.height + 2 * pad
    outgoing = rng.random() < 0.6
    x0 = width - bw - pad if outgoing else pad
    y0 = int(bar_h + rng.uniform(0.08, 0.2) * height)
    fill = (
        _pick(rng, ((220, 248, 198), (0, 122, 255), (52, 199, 89)))
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
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """A coloured poster with big centred text and simple shapes."""
    width, height = _canvas_size(rng, size, (0.75, 0.8, 1.0))
    base = _pick(rng, POSTER_COLORS)
    image = gradient(width, height, base, _jitter(base, rng, 40))
    draw = ImageDraw.Draw(image)
    accent = _jitter(_pick(rng, POSTER_COLORS), rng)
    for _ in range(int(rng.integers(1, 4))):
        r = int(rng.uniform(0.1, 0.3) * width)
        cx, cy = (
            rng.uniform(0, width),
            rng.choice([rng.uniform(0, 0.15), rng.uniform(0.85, 1)]) * height,
        )
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=accent)
    pad = int(width * 0.1)
    block = fit_text(
        text.upper() if rng.random() < 0.4 else text,
        font,
        width - 2 * pad,
        height * 0.55,
        max_size=int(height * 0.12),
        spacing=0.15,
    )
    ty = (height - block.height) / 2
    ink = contrast_ink(base)
    stroke = 2 if rng.random() < 0.3 else 0
    draw_block(
        draw,
        block,
        pad,
        ty,
        width - 2 * pad,
        ink,
        align="center",
        stroke=stroke,
        stroke_fill=(128, 128, 128),
    )
    return image


def render_photo_overlay(
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """Text on a real photo, in a translucent box or with an outline."""
    width, height = _canvas_size(rng, size, (1.0, 1.33, 0.75))
    image = plain_background(width, height, rng, background).convert("RGBA")
    pad = int(width * 0.07)
    block = fit_text(text, font, width - 4 * pad, height * 0.5, max_size=int(height * 0.1))
    y = int(height * _pick(rng, (0.08, 0.3, 0.55)))
    y = max(pad // 2, min(y, height - block.height - pad))
    boxed = rng.random() < 0.65
    box_color = _pick(rng, ((0, 0, 0), (255, 255, 255)))
    if boxed:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        ImageDraw.Draw(overlay).rectangle(
            (pad, y - pad // 2, width - pad, y + block.height + pad // 2),
            fill=box_color + (int(rng.uniform(150, 215)),),
        )
        image = Image.alpha_composite(image, overlay)
    draw = ImageDraw.Draw(image)
    ink = contrast_ink(box_color) if boxed else (255, 255, 255)
    draw_block(
        draw,
        block,
        2 * pad,
        y,
        width - 4 * pad,
        ink,
        align="center",
        stroke=0 if boxed else 3,
        stroke_fill=(0, 0, 0),
    )
    return image.convert("RGB")


def render_whiteboard(
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """A whiteboard with a metal frame and marker writing (held-out layout)."""
    width, height = _canvas_size(rng, size, (1.33, 1.5))
    image = plain_background(width, height, rng, background)
    draw = ImageDraw.Draw(image)
    frame = int(width * 0.03)
    x0, y0, x1, y1 = frame * 2, frame * 2, width - frame * 2, height - frame * 3
    draw.rectangle((x0 - frame, y0 - frame, x1 + frame, y1 + frame), fill=(175, 178, 182))
    draw.rectangle((x0, y0, x1, y1), fill=_jitter((246, 247, 248), rng, 6))
    draw.rectangle((x0, y1 + frame, x1, y1 + frame * 2), fill=(150, 150, 155))
    pad = int(width * 0.05)
    block = fit_text(
        text, font, x1 - x0 - 2 * pad, y1 - y0 - 2 * pad, max_size=int(height * 0.16), spacing=0.3
    )
    draw_block(draw, block, x0 + pad, y0 + pad, x1 - x0 - 2 * pad, _pick(rng, MARKER_COLORS))
    return image


def render_slide(
    text: str,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """A presentation slide (held-out layout): the first line as the heading in a coloured
    bar and the rest (the numbered list) as the body; a single line makes a title slide."""
    width, height = size, int(size * 0.5625)
    theme = _pick(rng, POSTER_COLORS[:6])
    image = Image.new("RGB", (width, height), _pick(rng, PAPER_COLORS))
    draw = ImageDraw.Draw(image)
    heading, _, rest = text.partition("\n")
    pad = int(width * 0.05)
    if not rest:
        draw.rectangle((0, 0, width, int(height * 0.06)), fill=theme)
        title = fit_text(heading, font, width - 4 * pad, height * 0.6, max_size=int(height * 0.14))
        draw_block(
            draw,
            title,
            2 * pad,
            (height - title.height) / 2,
            width - 4 * pad,
            (30, 30, 30),
            align="center",
        )
    else:
        bar_h = int(height * 0.34)
        draw.rectangle((0, 0, width, bar_h), fill=theme)
        head = fit_text(
            heading, font, width - 2 * pad, bar_h * 0.85, max_size=int(bar_h * 0.4), spacing=0.1
        )
        draw_block(draw, head, pad, (bar_h - head.height) / 2, width - 2 * pad, contrast_ink(theme))
        body = fit_text(
            rest, font, width - 3 * pad, height - bar_h - 2 * pad, max_size=int(height * 0.11)
        )
        draw_block(draw, body, pad * 1.5, bar_h + pad, width - 3 * pad, (30, 30, 30))
    draw.rectangle((0, height - 6, width, height), fill=theme)
    return image


Renderer = Callable[..., Image.Image]


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


# ---------------------------------------------------------------- augmentation


def augment(image: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """Small random rotation, crop, blur, brightness and noise; strength 0 leaves it as is."""
    if strength <= 0:
        return image
    width, height = image.size
    if rng.random() < 0.5 * strength:
        fill = image.getpixel((0, 0))
        image = image.rotate(
            rng.uniform(-4, 4) * strength, resample=Image.Resampling.BICUBIC, fillcolor=fill
        )
    if rng.random() < 0.5 * strength:
        dx, dy = (int(rng.uniform(0, 0.05) * width) for _ in range(2))
        ex, ey = (int(rng.uniform(0, 0.05) * height) for _ in range(2))
        image = image.crop((dx, ex, width - dy, height - ey)).resize((width, height))
    if rng.random() < 0.3 * strength:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    array = np.asarray(image, dtype=np.float32)
    if rng.random() < 0.4 * strength:
        array = array * rng.uniform(0.85, 1.1) + rng.uniform(-12, 12)
    if rng.random() < 0.4 * strength:
        array = array + rng.normal(0, rng.uniform(2, 7), array.shape)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------- documents


@dataclass(frozen=True)
class DocumentContent:
    kind: str  # id_card | bank_card | form | shipping_label
    title: str
    issuer: str
    rows: tuple[tuple[str, str], ...]  # (label, value); empty values draw blank lines
    portrait: bool = False  # draw a face placeholder (ID cards with a person)


def _card_canvas(rng: np.random.Generator, size: int, background: Image.Image | None):
    width, height = size, int(size * rng.uniform(0.7, 0.85))
    image = plain_background(width, height, rng, background)
    card_w = int(width * rng.uniform(0.78, 0.9))
    card_h = int(card_w / 1.586)
    x0, y0 = (width - card_w) // 2, (height - card_h) // 2
    return image, (x0, y0, card_w, card_h)


def _draw_rows(
    draw: ImageDraw.ImageDraw,
    rows,
    font: FontSpec,
    x: int,
    y: int,
    w: int,
    h: int,
    ink: Color,
    rule: Color,
) -> None:
    row_h = h / max(1, len(rows))
    label_font = load_font(font.path, max(9, int(row_h * 0.28)))
    value_size = max(10, int(row_h * 0.42))
    for i, (label, value) in enumerate(rows):
        top = y + i * row_h
        draw.text((x, top), label.upper(), font=label_font, fill=(110, 110, 110))
        value_top = top + row_h * 0.36
        if value:
            block = fit_text(value, font, w, row_h * 0.6, max_size=value_size, min_size=9)
            draw.text((x, value_top), block.lines[0], font=block.font, fill=ink)
        else:
            draw.line((x, top + row_h * 0.9, x + w, top + row_h * 0.9), fill=rule, width=1)


def _portrait(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=_jitter((200, 210, 220), rng))
    cx, w, h = (x0 + x1) / 2, x1 - x0, y1 - y0
    skin = _pick(rng, ((241, 194, 125), (224, 172, 105), (141, 85, 36), (198, 134, 66)))
    draw.ellipse((cx - w * 0.22, y0 + h * 0.15, cx + w * 0.22, y0 + h * 0.55), fill=skin)
    draw.chord(
        (cx - w * 0.42, y0 + h * 0.6, cx + w * 0.42, y1 + h * 0.35),
        180,
        360,
        fill=_pick(rng, ((40, 60, 120), (60, 60, 60), (120, 40, 40))),
    )


def render_id_card(
    doc: DocumentContent,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    image, (x0, y0, cw, ch) = _card_canvas(rng, size, background)
    draw = ImageDraw.Draw(image)
    card = _jitter((235, 240, 245), rng, 12)
    band = _pick(rng, ((30, 80, 150), (150, 40, 60), (20, 110, 80), (90, 60, 140)))
    draw.rounded_rectangle((x0, y0, x0 + cw, y0 + ch), radius=cw // 25, fill=card)
    draw.rounded_rectangle((x0, y0, x0 + cw, y0 + ch * 0.2), radius=cw // 25, fill=band)
    head = fit_text(
        f"{doc.issuer}  {doc.title}", font, cw * 0.9, ch * 0.14, max_size=int(ch * 0.09), min_size=9
    )
    draw_block(draw, head, x0 + cw * 0.05, y0 + ch * 0.04, cw * 0.9, (255, 255, 255))
    photo_w = int(cw * 0.28)
    photo_box = (
        x0 + int(cw * 0.04),
        y0 + int(ch * 0.27),
        x0 + int(cw * 0.04) + photo_w,
        y0 + int(ch * 0.27) + int(photo_w * 1.25),
    )
    if doc.portrait:
        _portrait(draw, photo_box, rng)
    else:
        draw.rectangle(photo_box, outline=(150, 150, 150), width=2)
    fx = photo_box[2] + int(cw * 0.04)
    _draw_rows(
        draw,
        doc.rows,
        font,
        fx,
        y0 + int(ch * 0.25),
        x0 + cw - fx - int(cw * 0.04),
        int(ch * 0.7),
        (20, 20, 30),
        (150, 150, 150),
    )
    return image


def render_bank_card(
    doc: DocumentContent,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    image, (x0, y0, cw, ch) = _card_canvas(rng, size, background)
    top = _pick(rng, ((20, 40, 90), (10, 10, 10), (120, 20, 40), (20, 100, 90), (180, 150, 60)))
    layer = gradient(cw, ch, top, _jitter(top, rng, 50))
    mask = Image.new("L", (cw, ch), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, cw - 1, ch - 1), radius=cw // 18, fill=255)
    image.paste(layer, (x0, y0), mask)
    draw = ImageDraw.Draw(image)
    ink = contrast_ink(top)
    head = fit_text(doc.issuer, font, cw * 0.6, ch * 0.14, max_size=int(ch * 0.11), min_size=9)
    draw_block(draw, head, x0 + cw * 0.06, y0 + ch * 0.07, cw * 0.6, ink)
    tag = load_font(font.path, max(9, int(ch * 0.07)))
    draw.text((x0 + cw * 0.94, y0 + ch * 0.08), doc.title, font=tag, fill=ink, anchor="ra")
    draw.rounded_rectangle(
        (x0 + cw * 0.07, y0 + ch * 0.3, x0 + cw * 0.2, y0 + ch * 0.45),
        radius=5,
        fill=(212, 175, 55),
        outline=(150, 120, 40),
    )
    rows = list(doc.rows)
    if rows:
        first = fit_text(rows[0][1] or " ", font, cw * 0.86, ch * 0.16, max_size=int(ch * 0.12))
        draw.text((x0 + cw * 0.07, y0 + ch * 0.52), first.lines[0], font=first.font, fill=ink)
        small = load_font(font.path, max(9, int(ch * 0.065)))
        for i, (label, value) in enumerate(rows[1:]):
            y = y0 + ch * (0.74 + 0.12 * i)
            draw.text((x0 + cw * 0.07, y), f"{label.upper()}  {value}", font=small, fill=ink)
    return image


def render_form(
    doc: DocumentContent,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    width, height = int(size * rng.uniform(0.72, 0.8)), size
    image = Image.new("RGB", (width, height), _pick(rng, PAPER_COLORS))
    draw = ImageDraw.Draw(image)
    pad = int(width * 0.08)
    small = load_font(font.path, max(9, int(height * 0.026)))
    draw.text((pad, pad * 0.6), doc.issuer, font=small, fill=(90, 90, 90))
    head = fit_text(doc.title, font, width - 2 * pad, height * 0.08, max_size=int(height * 0.05))
    draw_block(draw, head, pad, pad * 0.6 + small.size * 1.6, width - 2 * pad, (20, 20, 20))
    top = int(pad + height * 0.12)
    draw.line((pad, top - 8, width - pad, top - 8), fill=(60, 60, 60), width=2)
    _draw_rows(
        draw,
        doc.rows,
        font,
        pad,
        top,
        width - 2 * pad,
        int(height * 0.78) - top + pad,
        _pick(rng, INK_COLORS),
        (120, 120, 120),
    )
    return image


def render_shipping_label(
    doc: DocumentContent,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    width, height = size, int(size * rng.uniform(0.75, 0.95))
    image = plain_background(width, height, rng, background)
    draw = ImageDraw.Draw(image)
    lw, lh = int(width * 0.84), int(height * 0.8)
    x0, y0 = (width - lw) // 2, (height - lh) // 2
    draw.rectangle((x0, y0, x0 + lw, y0 + lh), fill=(252, 252, 250), outline=(0, 0, 0), width=3)
    head = fit_text(
        f"{doc.title}  {doc.issuer}", font, lw * 0.9, lh * 0.12, max_size=int(lh * 0.08), min_size=9
    )
    draw.rectangle((x0, y0, x0 + lw, y0 + lh * 0.15), fill=(0, 0, 0))
    draw_block(draw, head, x0 + lw * 0.05, y0 + lh * 0.02, lw * 0.9, (255, 255, 255))
    _draw_rows(
        draw,
        doc.rows,
        font,
        x0 + int(lw * 0.05),
        y0 + int(lh * 0.19),
        int(lw * 0.9),
        int(lh * 0.55),
        (10, 10, 10),
        (140, 140, 140),
    )
    bar_y, x = y0 + lh * 0.8, x0 + lw * 0.08
    while x < x0 + lw * 0.92:
        bar = int(rng.integers(1, 5))
        draw.rectangle((x, bar_y, x + bar, y0 + lh * 0.95), fill=(0, 0, 0))
        x += bar + int(rng.integers(1, 4))
    return image


DOCUMENT_RENDERERS: dict[str, Renderer] = {
    "id_card": render_id_card,
    "bank_card": render_bank_card,
    "form": render_form,
    "shipping_label": render_shipping_label,
}


def render_document(
    doc: DocumentContent,
    rng: np.random.Generator,
    font: FontSpec,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    return DOCUMENT_RENDERERS[doc.kind](doc, rng, font, size, background)


# ---------------------------------------------------------------- emoji and photos


def _emoji_tile(emoji: str, emoji_font_path: str) -> Image.Image:
    font = load_font(emoji_font_path, EMOJI_FONT_SIZE)
    tile = Image.new("RGBA", (EMOJI_FONT_SIZE * 3 // 2, EMOJI_FONT_SIZE * 3 // 2), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((8, 8), emoji, font=font, embedded_color=True)
    return tile.crop(tile.getbbox() or (0, 0, 1, 1))


def render_emoji_scene(
    emojis: Sequence[str],
    rng: np.random.Generator,
    emoji_font_path: str,
    size: int,
    background: Image.Image | None = None,
) -> Image.Image:
    """Colour emoji (Noto, drawn at its native size, then scaled) laid out on a background."""
    image = (
        plain_background(size, size, rng, background)
        if background is not None or rng.random() < 0.5
        else Image.new("RGB", (size, size), _jitter((245, 245, 240), rng, 10))
    )
    count = len(emojis)
    cell = size / count
    for i, emoji in enumerate(emojis):
        tile = _emoji_tile(emoji, emoji_font_path)
        side = int(min(cell * 0.9, size * rng.uniform(0.28, 0.42)))
        tile = tile.resize((side, side), Image.Resampling.LANCZOS)
        tile = tile.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BICUBIC, expand=True)
        x = int(i * cell + (cell - tile.width) / 2 + rng.uniform(-0.05, 0.05) * size)
        y = int((size - tile.height) / 2 + rng.uniform(-0.25, 0.25) * size)
        x = int(np.clip(x, 0, size - tile.width))
        y = int(np.clip(y, 0, size - tile.height))
        image.paste(tile, (x, y), tile)
    return image


def render_photo(photo: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """A random crop (60-100% of each side) of a photo, maybe mirrored, long side = size."""
    pw, ph = photo.size
    scale = rng.uniform(0.6, 1.0)
    cw, ch = int(pw * scale), int(ph * scale)
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    image = photo.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    factor = size / max(image.size)
    return image.resize(
        (max(1, int(image.width * factor)), max(1, int(image.height * factor))),
        Image.Resampling.BILINEAR,
    )
