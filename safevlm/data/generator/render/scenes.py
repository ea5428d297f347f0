"""Pictures without set text: colour emoji laid out on a background, and random crops of
real photos at the generated image size.

Owns their pixels only; which emoji or photo, and what it means, is decided in `kinds`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from safevlm.data.generator.fonts import EMOJI_FONT_SIZE, load_font
from safevlm.data.generator.render.canvas import Backdrop, jitter, plain_background


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
    background: Backdrop = None,
) -> Image.Image:
    """Colour emoji (Noto, drawn at its native size, then scaled) laid out on a background."""
    image = (
        plain_background(size, size, rng, background)
        if background is not None or rng.random() < 0.5
        else Image.new("RGB", (size, size), jitter((245, 245, 240), rng, 10))
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
