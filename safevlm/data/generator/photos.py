"""Real photos that installed packages ship (scikit-image, scikit-learn, matplotlib, Debian
wallpapers): the catalogue in assets/data/photos.json, wallpapers as backgrounds, splits.

Owns finding and loading photos (cached, downscaled); not drawing on them (`render`).
"""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from safevlm.data.schema import DataError, load_data_file
from safevlm.data.splits import hash_fraction

log = logging.getLogger(__name__)

MAX_SIDE = 768
BACKGROUND_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
WALLPAPER_HELD_OUT_FRACTION = 0.25


@dataclass(frozen=True)
class PhotoSpec:
    id: str  # "skimage:chelsea", "sklearn:china", "matplotlib:grace_hopper", "file:/path"
    caption: str | None  # None for wallpapers used only as backgrounds
    held_out: bool


def _load_skimage(name: str) -> np.ndarray:
    import skimage.data

    array = getattr(skimage.data, name)()
    return array[0] if isinstance(array, tuple) else array


def _load_sklearn(name: str) -> Image.Image:
    # Read the file sklearn ships instead of importing sklearn (about 1 s).
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-learn is not installed")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "images"
    return Image.open(folder / f"{name}.jpg")


def _load_matplotlib(name: str) -> Image.Image:
    from matplotlib import cbook

    return Image.open(cbook.get_sample_data(f"{name}.jpg"))


def _open_file(path: str) -> Image.Image:
    image = Image.open(path)
    # JPEG decodes straight to a smaller size: big wallpapers load in a few ms.
    image.draft("RGB", (MAX_SIDE, MAX_SIDE))
    return image


def _to_image(raw: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(raw, np.ndarray):
        if raw.dtype == bool:
            raw = raw.astype(np.uint8) * 255
        raw = Image.fromarray(raw)
    return raw.convert("RGB")


def _source_loadable(photo_id: str) -> bool:
    source, _, name = photo_id.partition(":")
    if source == "file":
        return Path(name).is_file()
    return source in ("skimage", "sklearn", "matplotlib")


@lru_cache(maxsize=256)
def load_photo(photo_id: str) -> Image.Image:
    """The photo as RGB with its long side at most MAX_SIDE (cached; do not modify)."""
    source, _, name = photo_id.partition(":")
    loaders = {
        "skimage": _load_skimage,
        "sklearn": _load_sklearn,
        "matplotlib": _load_matplotlib,
        "file": _open_file,
    }
    if source not in loaders:
        raise DataError(
            f"unknown photo source in {photo_id!r}; use skimage:, sklearn:, matplotlib: or file:"
        )
    try:
        image = _to_image(loaders[source](name))
    except (OSError, AttributeError, ValueError, ModuleNotFoundError) as e:
        raise DataError(f"cannot load photo {photo_id!r}: {e}") from None
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return image


@lru_cache(maxsize=1)
def catalogue_photos() -> tuple[PhotoSpec, ...]:
    """Captioned photos of photos.json whose source is installed here."""
    specs = []
    for item in load_data_file("photos.json")["photos"]:
        if _source_loadable(item["id"]):
            specs.append(PhotoSpec(item["id"], item["caption"], bool(item["held_out"])))
        else:
            log.debug("photo %s not installed; skipped", item["id"])
    return tuple(specs)


def wallpaper_key(path: Path) -> str:
    """One key for the copies of a wallpaper: Elephants_3840x2160.jpg is Elephants.jpg."""
    stem = re.sub(r"(_\d+x\d+|[-_](dark|light))$", "", path.stem, flags=re.IGNORECASE)
    return f"{path.parent}/{stem}"


@lru_cache(maxsize=1)
def wallpapers() -> tuple[PhotoSpec, ...]:
    """Uncaptioned wallpapers found in the background folders (Debian packages), one file
    (the smallest) per wallpaper; split by the hash of the wallpaper's key."""
    listed = {p.id for p in catalogue_photos()}
    smallest: dict[str, Path] = {}
    for folder in load_data_file("photos.json")["background_dirs"]:
        if not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() not in BACKGROUND_SUFFIXES or f"file:{path}" in listed:
                continue
            key = wallpaper_key(path)
            if key not in smallest or path.stat().st_size < smallest[key].stat().st_size:
                smallest[key] = path
    return tuple(
        PhotoSpec(f"file:{path}", None, hash_fraction(key) < WALLPAPER_HELD_OUT_FRACTION)
        for key, path in sorted(smallest.items())
    )


def photos_for_split(split: str) -> list[PhotoSpec]:
    """Captioned photos for a split: test gets the held-out ones only, train/val the rest."""
    pool = [p for p in catalogue_photos() if p.held_out == (split == "test")]
    if not pool:
        raise DataError(f"no photos for split {split!r}; check assets/data/photos.json")
    return pool


def backgrounds_for_split(split: str) -> list[PhotoSpec]:
    """Photos and wallpapers usable behind text in a split (same held-out rule)."""
    return [p for p in catalogue_photos() + wallpapers() if p.held_out == (split == "test")]
