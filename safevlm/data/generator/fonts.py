"""Font discovery for rendered data: matplotlib's bundled TTFs (always there) plus
/usr/share/fonts (Debian fonts-* packages), tagged by family, style and split.

Owns which fonts exist and which families are held out; not how text is drawn (`render`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import matplotlib
from PIL import ImageFont

from safevlm.data.schema import DataError, load_data_file
from safevlm.data.splits import hash_fraction

log = logging.getLogger(__name__)

MATPLOTLIB_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"),)
EMOJI_FONT_PATHS = (
    Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/noto/NotoColorEmoji.ttf"),
)
# Noto Color Emoji is a bitmap font that only loads at its native size.
EMOJI_FONT_SIZE = 109
STYLES = ("serif", "sans", "mono", "handwriting")


@dataclass(frozen=True)
class FontSpec:
    path: str
    family: str  # the split unit: the font's family name after aliases
    style: str  # one of STYLES
    variant: str  # the font's own style name: Regular, Bold Italic, ...
    held_out: bool
    source: str  # "matplotlib" | "system"


def _font_rules() -> dict:
    return load_data_file("fonts.json")


def family_of(name: str) -> str:
    """The split unit of a font's family name: aliases applied, width/weight suffixes dropped."""
    rules = _font_rules()
    family = rules["aliases"].get(name, name)
    for suffix in rules["alias_suffixes"]:
        if family.endswith(suffix):
            family = family[: -len(suffix)]
    return rules["aliases"].get(family, family)


def style_of(family: str) -> str:
    lowered = family.lower()
    for style, needles in _font_rules()["styles"]:
        if any(needle in lowered for needle in needles):
            return style
    return "sans"


def is_held_out_family(family: str) -> bool:
    rules = _font_rules()
    if family in rules["held_out_families"]:
        return True
    if family in rules["train_families"]:
        return False
    return hash_fraction(f"font:{family}") < rules["held_out_fraction"]


def _covers_latin(font: ImageFont.FreeTypeFont) -> bool:
    """False for fonts whose Latin letters are blank or the missing-glyph box."""
    missing = bytes(font.getmask("\ue000"))
    for char in "Aa1":
        mask = font.getmask(char)
        if mask.getbbox() is None or bytes(mask) == missing:
            return False
    return True


def _describe(path: Path, source: str) -> FontSpec | None:
    try:
        font = ImageFont.truetype(str(path), 24)
    except OSError as e:
        log.debug("skipping font %s: %s", path, e)
        return None
    name, variant = font.getname()
    rules = _font_rules()
    if name in rules["exclude_families"] or not _covers_latin(font):
        return None
    family = family_of(name)
    return FontSpec(
        str(path),
        family,
        style_of(family),
        variant or "Regular",
        is_held_out_family(family),
        source,
    )


def _font_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))


@lru_cache(maxsize=4)
def discover_fonts(system_dirs: tuple[Path, ...] = SYSTEM_FONT_DIRS) -> tuple[FontSpec, ...]:
    """All usable fonts, sorted by path so every run sees the same order."""
    found = [(p, "matplotlib") for p in _font_files(MATPLOTLIB_FONT_DIR)]
    for folder in system_dirs:
        found += [(p, "system") for p in _font_files(Path(folder))]
    specs = [spec for path, source in found if (spec := _describe(path, source))]
    log.info("found %d fonts in %d families", len(specs), len({s.family for s in specs}))
    return tuple(sorted(specs, key=lambda s: s.path))


def fonts_for_split(
    split: str, style: str | None = None, fonts: tuple[FontSpec, ...] | None = None
) -> list[FontSpec]:
    """Fonts allowed for a split (test: held-out families only; train/val: the others),
    optionally of one style; falls back to every style when none of `style` exists."""
    fonts = discover_fonts() if fonts is None else fonts
    pool = [f for f in fonts if f.held_out == (split == "test")]
    if not pool:
        raise DataError(f"no fonts for split {split!r}; check assets/data/fonts.json")
    if style is None:
        return pool
    return [f for f in pool if f.style == style] or pool


def family_summary(fonts: tuple[FontSpec, ...] | None = None) -> dict[str, dict]:
    """{family: {"style", "held_out", "files"}} for summaries and reports."""
    fonts = discover_fonts() if fonts is None else fonts
    out: dict[str, dict] = {}
    for f in fonts:
        entry = out.setdefault(f.family, {"style": f.style, "held_out": f.held_out, "files": 0})
        entry["files"] += 1
    return out


def emoji_font_path() -> Path | None:
    """The colour emoji font (Debian fonts-noto-color-emoji), or None when absent."""
    return next((p for p in EMOJI_FONT_PATHS if p.is_file()), None)


@lru_cache(maxsize=512)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)
