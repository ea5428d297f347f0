"""Photometric and geometric augmentation of a rendered image: a small turn, crop, blur,
brightness change and sensor noise, scaled by one strength.

Owns only this; renderers stay clean and the caller chooses the strength per kind.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


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
