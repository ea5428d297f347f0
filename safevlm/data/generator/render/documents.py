"""Document renderers: ID cards, bank cards, forms and shipping labels drawn from a
`DocumentContent` (title, issuer and label/value rows, blank values as empty lines).

Owns the pixels of documents; what a document says is `safevlm.data.generator.documents`.
"""

from __future__ import annotations

from dataclasses import dataclass

from numpy.random import Generator
from PIL import Image, ImageDraw

from safevlm.data.generator.fonts import FontSpec, load_font
from safevlm.data.generator.render.canvas import (
    INK_COLORS,
    PAPER_COLORS,
    Backdrop,
    Box,
    Color,
    Renderer,
    contrast_ink,
    fit_text,
    gradient,
    jitter,
    pick,
    plain_background,
    write_in_box,
)

WHITE: Color = (255, 255, 255)


@dataclass(frozen=True)
class DocumentContent:
    kind: str  # id_card | bank_card | form | shipping_label
    title: str
    issuer: str
    rows: tuple[tuple[str, str], ...]  # (label, value); empty values draw blank lines
    portrait: bool = False  # draw a face placeholder (ID cards with a person)


def _card_canvas(rng: Generator, size: int, background: Backdrop):
    width, height = size, int(size * rng.uniform(0.7, 0.85))
    image = plain_background(width, height, rng, background)
    card_w = int(width * rng.uniform(0.78, 0.9))
    card_h = int(card_w / 1.586)
    x0, y0 = (width - card_w) // 2, (height - card_h) // 2
    return image, (x0, y0, card_w, card_h)


def _draw_rows(
    draw: ImageDraw.ImageDraw,
    rows: tuple[tuple[str, str], ...],
    font: FontSpec,
    box: Box,
    ink: Color,
    rule: Color,
) -> None:
    """Label above value, one row per field; a blank value is a rule to write on."""
    x, y, w, h = box
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


def _portrait(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: Generator) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=jitter((200, 210, 220), rng))
    cx, w, h = (x0 + x1) / 2, x1 - x0, y1 - y0
    skin = pick(rng, ((241, 194, 125), (224, 172, 105), (141, 85, 36), (198, 134, 66)))
    draw.ellipse((cx - w * 0.22, y0 + h * 0.15, cx + w * 0.22, y0 + h * 0.55), fill=skin)
    draw.chord(
        (cx - w * 0.42, y0 + h * 0.6, cx + w * 0.42, y1 + h * 0.35),
        180,
        360,
        fill=pick(rng, ((40, 60, 120), (60, 60, 60), (120, 40, 40))),
    )


def render_id_card(
    doc: DocumentContent, rng: Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    image, (x0, y0, cw, ch) = _card_canvas(rng, size, background)
    draw = ImageDraw.Draw(image)
    card = jitter((235, 240, 245), rng, 12)
    band = pick(rng, ((30, 80, 150), (150, 40, 60), (20, 110, 80), (90, 60, 140)))
    draw.rounded_rectangle((x0, y0, x0 + cw, y0 + ch), radius=cw // 25, fill=card)
    draw.rounded_rectangle((x0, y0, x0 + cw, y0 + ch * 0.2), radius=cw // 25, fill=band)
    head_box = (x0 + cw * 0.05, y0 + ch * 0.04, cw * 0.9, ch * 0.14)
    write_in_box(draw, f"{doc.issuer}  {doc.title}", font, head_box, WHITE, int(ch * 0.09), 9)
    photo_w = int(cw * 0.28)
    photo_x, photo_y = x0 + int(cw * 0.04), y0 + int(ch * 0.27)
    photo_box = (photo_x, photo_y, photo_x + photo_w, photo_y + int(photo_w * 1.25))
    if doc.portrait:
        _portrait(draw, photo_box, rng)
    else:
        draw.rectangle(photo_box, outline=(150, 150, 150), width=2)
    fx = photo_box[2] + int(cw * 0.04)
    rows_box = (fx, y0 + int(ch * 0.25), x0 + cw - fx - int(cw * 0.04), int(ch * 0.7))
    _draw_rows(draw, doc.rows, font, rows_box, (20, 20, 30), (150, 150, 150))
    return image


def render_bank_card(
    doc: DocumentContent, rng: Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    image, (x0, y0, cw, ch) = _card_canvas(rng, size, background)
    top = pick(rng, ((20, 40, 90), (10, 10, 10), (120, 20, 40), (20, 100, 90), (180, 150, 60)))
    layer = gradient(cw, ch, top, jitter(top, rng, 50))
    mask = Image.new("L", (cw, ch), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, cw - 1, ch - 1), radius=cw // 18, fill=255)
    image.paste(layer, (x0, y0), mask)
    draw = ImageDraw.Draw(image)
    ink = contrast_ink(top)
    head_box = (x0 + cw * 0.06, y0 + ch * 0.07, cw * 0.6, ch * 0.14)
    write_in_box(draw, doc.issuer, font, head_box, ink, int(ch * 0.11), 9)
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
    doc: DocumentContent, rng: Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    width, height = int(size * rng.uniform(0.72, 0.8)), size
    image = Image.new("RGB", (width, height), pick(rng, PAPER_COLORS))
    draw = ImageDraw.Draw(image)
    pad = int(width * 0.08)
    small = load_font(font.path, max(9, int(height * 0.026)))
    draw.text((pad, pad * 0.6), doc.issuer, font=small, fill=(90, 90, 90))
    head_box = (pad, pad * 0.6 + small.size * 1.6, width - 2 * pad, height * 0.08)
    write_in_box(draw, doc.title, font, head_box, (20, 20, 20), int(height * 0.05))
    top = int(pad + height * 0.12)
    draw.line((pad, top - 8, width - pad, top - 8), fill=(60, 60, 60), width=2)
    rows_box = (pad, top, width - 2 * pad, int(height * 0.78) - top + pad)
    _draw_rows(draw, doc.rows, font, rows_box, pick(rng, INK_COLORS), (120, 120, 120))
    return image


def render_shipping_label(
    doc: DocumentContent, rng: Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    width, height = size, int(size * rng.uniform(0.75, 0.95))
    image = plain_background(width, height, rng, background)
    draw = ImageDraw.Draw(image)
    lw, lh = int(width * 0.84), int(height * 0.8)
    x0, y0 = (width - lw) // 2, (height - lh) // 2
    draw.rectangle((x0, y0, x0 + lw, y0 + lh), fill=(252, 252, 250), outline=(0, 0, 0), width=3)
    draw.rectangle((x0, y0, x0 + lw, y0 + lh * 0.15), fill=(0, 0, 0))
    head_box = (x0 + lw * 0.05, y0 + lh * 0.02, lw * 0.9, lh * 0.12)
    write_in_box(draw, f"{doc.title}  {doc.issuer}", font, head_box, WHITE, int(lh * 0.08), 9)
    rows_box = (x0 + int(lw * 0.05), y0 + int(lh * 0.19), int(lw * 0.9), int(lh * 0.55))
    _draw_rows(draw, doc.rows, font, rows_box, (10, 10, 10), (140, 140, 140))
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
    doc: DocumentContent, rng: Generator, font: FontSpec, size: int, background: Backdrop = None
) -> Image.Image:
    return DOCUMENT_RENDERERS[doc.kind](doc, rng, font, size, background)
