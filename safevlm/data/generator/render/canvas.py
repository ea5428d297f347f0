"""Drawing primitives every renderer shares: colours, wrapping and fitting text into a box,
photo or gradient backgrounds, and pasting turned layers.

Owns no layout: what goes where on a sign, card or slide is in the renderer modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from safevlm.data.generator.fonts import FontSpec, load_font

Color = tuple[int, int, int]
Box = tuple[float, float, float, float]  # x, y, width, height
Backdrop = Image.Image | None  # the photo behind a layout, if any
# Every renderer: (text or document or emoji, rng, font, size, background=None) -> image.
Renderer = Callable[..., Image.Image]

PAPER_COLORS: tuple[Color, ...] = ((255, 255, 255), (250, 247, 238), (244, 244, 240))
INK_COLORS: tuple[Color, ...] = ((20, 20, 20), (25, 45, 140), (40, 40, 80), (10, 70, 40))
GROUND_COLORS: tuple[Color, ...] = (
    (200, 190, 170), (170, 185, 200), (215, 215, 210), (150, 120, 90), (60, 70, 80)
)


def pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def jitter(color: Color, rng: np.random.Generator, amount: int = 18) -> Color:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def luminance(color: Color) -> float:
    r, g, b = color
    return 0.299 * r + 0.587 * g + 0.114 * b


def contrast_ink(background: Color) -> Color:
    return (20, 20, 20) if luminance(background) > 140 else (250, 250, 250)


# ---------------------------------------------------------------- text


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


def fit_text(text: str, font: FontSpec, box_w: float, box_h: float, max_size: int, min_size: int = 12,
             spacing: float = 0.25) -> TextBlock:
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


def write_in_box(draw: ImageDraw.ImageDraw, text: str, font: FontSpec, box: Box, ink: Color, max_size: int,
                 min_size: int = 12, spacing: float = 0.25) -> TextBlock:
    """Fit `text` to the box (x, y, width, height) and draw it left-aligned from its top."""
    x, y, width, height = box
    block = fit_text(text, font, width, height, max_size, min_size, spacing)
    draw_block(draw, block, x, y, width, ink)
    return block


# ---------------------------------------------------------------- backgrounds and layers


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


def plain_background(
    width: int, height: int, rng: np.random.Generator, background: Backdrop
) -> Image.Image:
    """The photo behind a layout when given, else a soft gradient."""
    if background is not None:
        return cover(background, width, height, rng)
    base = jitter(pick(rng, GROUND_COLORS), rng)
    return gradient(width, height, base, jitter(base, rng, 30))


def canvas_size(rng: np.random.Generator, size: int, aspects: Sequence[float]) -> tuple[int, int]:
    """A canvas of one of the aspects (width / height) whose long side is `size`."""
    aspect = float(pick(rng, aspects))
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
