import io

import numpy as np
import pytest
from PIL import Image

from safevlm.images import MAX_SIDE, ImageError, load_image


def png_bytes(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_same_bytes_give_the_same_hash_and_an_rgb_image():
    data = png_bytes(Image.new("RGB", (10, 10), "blue"))
    a, b = load_image(data), load_image(data)
    assert a.sha256 == b.sha256 and a.image.mode == "RGB" and a.format == "PNG"


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, I am a text file", "not an image"),
])
def test_unusable_bytes_get_a_clear_message(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_image_is_reported_as_corrupt():
    data = png_bytes(Image.fromarray(np.random.randint(0, 255, (200, 200, 3), dtype=np.uint8)))
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_decompression_bomb_is_refused_before_decoding():
    # A 10000 x 10000 PNG of one colour compresses to a few hundred KB.
    data = png_bytes(Image.new("L", (10000, 10000), 0), optimize=False)
    with pytest.raises(ImageError, match="too large|too many pixels"):
        load_image(data)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (20, 20), c) for c in ("red", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    img = load_image(buf.getvalue()).image
    r, g, _ = img.getpixel((5, 5))
    assert r > 200 and g < 50


def test_sixteen_bit_cmyk_and_transparent_images_become_visible_rgb():
    sixteen = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    out = load_image(png_bytes(sixteen)).image
    assert out.mode == "RGB" and np.asarray(out).std() > 10
    cmyk = load_image(png_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), fmt="JPEG")).image
    assert cmyk.getpixel((4, 4))[0] > 200 and cmyk.getpixel((4, 4))[1] < 60
    transparent = load_image(png_bytes(Image.new("RGBA", (8, 8), (0, 0, 0, 0)))).image
    assert transparent.getpixel((0, 0)) == (255, 255, 255)


def test_tiny_and_oversized_images_are_accepted_and_bounded():
    assert load_image(png_bytes(Image.new("RGB", (1, 1)))).image.size == (1, 1)
    big = load_image(png_bytes(Image.new("RGB", (4000, 1000))))
    assert max(big.image.size) == MAX_SIDE and big.original_size == (4000, 1000)
