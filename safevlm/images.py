"""Image intake: read a file, bytes or PIL image into a clean RGB picture plus its content
hash, or raise ImageError with a message a person can act on.

Handles the odd inputs users upload (animated, 16-bit, CMYK, palette with alpha, tiny,
decompression bombs). Owns no model code.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from safevlm.errors import UserError

MAX_PIXELS = 40_000_000  # ~ 6300 x 6300; larger files are refused before decoding
MAX_BYTES = 50 * 1024 * 1024
MAX_SIDE = 2048  # larger images are downscaled once, on intake


class ImageError(UserError, ValueError):
    """An input that is not a usable image; the message says what is wrong."""


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # RGB, longest side <= MAX_SIDE
    sha256: str  # hash of the original bytes: the key for caches and the log
    data: bytes  # the original bytes (stored once by the log)
    format: str
    original_size: tuple[int, int]


def load_image(source: str | Path | bytes | Image.Image, name: str | None = None) -> LoadedImage:
    if isinstance(source, Image.Image):
        buf = io.BytesIO()
        source.save(buf, format="PNG")
        return _decode(buf.getvalue(), name or "image")
    if isinstance(source, bytes | bytearray):
        return _decode(bytes(source), name or "image")
    path = Path(source)
    label = name or str(path)
    if not path.exists():
        raise ImageError(f"{label}: file not found")
    if path.is_dir():
        raise ImageError(f"{label}: is a folder, not an image")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ImageError(f"{label}: file is {size / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB")
    return _decode(path.read_bytes(), label)


def _decode(data: bytes, label: str) -> LoadedImage:
    if not data:
        raise ImageError(f"{label}: the file is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{label}: {len(data) / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{label}: {width}x{height} pixels is too large (limit {MAX_PIXELS // 10**6} megapixels)"
                )
            img.seek(0)  # animated GIF/WebP/APNG: the first frame
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: too many pixels (decompression bomb guard)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{label}: the image is corrupt or truncated ({e})") from None
    rgb = _to_rgb(img)
    rgb = ImageOps.exif_transpose(rgb) if hasattr(img, "getexif") else rgb
    if max(rgb.size) > MAX_SIDE:
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return LoadedImage(rgb, hashlib.sha256(data).hexdigest(), data, fmt, (width, height))


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
