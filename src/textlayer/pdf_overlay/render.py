"""Draw invisible text and page images with reportlab; the only reportlab import."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reportlab import rl_config
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from textlayer.elements import PageText
from textlayer.pdf_overlay.geometry import PageFrame, WordPlacement, place_word

log = logging.getLogger(__name__)

FONT_NAME = "TextlayerGlyphless"
FONT_FILE = Path(__file__).with_name("glyphless.ttf")
"""One empty glyph for every BMP character (tools/make_glyphless_font.py): copy-paste of any script."""

GLYPH_ADVANCE = 0.5
"""Advance of every glyph of the font, in em."""

GLYPH_DESCENT = -0.2
"""The font's descent, in em (its ascent is 0.8: one em in all)."""

MIN_SPACE_SCALE = 1.0
"""Horizontal scale (percent) of a space squeezed between touching words."""

MIN_WORD_GAP_EM = 0.05
"""Gap kept between neighbouring words of a line, in em, so no extractor runs them together."""


# Binary streams, not ASCII85: the JPEG must be stored byte for byte, and smaller.
rl_config.useA85 = 0


def _register_font() -> None:
    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(FONT_FILE)))


@dataclass(frozen=True)
class ImagePage:
    """An input image to become a PDF page: encoded bytes, or pixels for formats re-encoded losslessly."""

    width_pt: float
    height_pt: float
    jpeg: bytes | None = None
    pixels: object | None = None  # a PIL image, re-encoded losslessly (Flate)
    exif_rotation: int = 0
    """Degrees the stored JPEG must turn clockwise to be displayed upright."""


def _draw_text(pdf: canvas.Canvas, page: PageText, frame: PageFrame) -> None:
    """One text object per line, each word fitted to its quad, a fitted space between words."""
    for line in page.lines:
        placements: list[tuple[str, WordPlacement]] = []
        for word in line.words:
            placement = place_word(word.quad, frame, GLYPH_DESCENT)
            if placement is not None and word.text:
                placements.append((word.text, placement))
        if not placements:
            continue
        text = pdf.beginText()
        text.setTextRenderMode(3)  # invisible: neither fill nor stroke
        for index, (chars, p) in enumerate(placements):
            width = p.width
            space = 0.0
            if index + 1 < len(placements):
                # Where the next word starts along this baseline: the word stops short of it
                # so that extractors sorting by position keep word, space, word in order.
                nxt = placements[index + 1][1]
                room = (nxt.x - p.x) * p.cos + (nxt.y - p.y) * p.sin
                width = max(min(width, room - MIN_WORD_GAP_EM * p.font_size), 0.5 * width)
                space = room - width
            text.setFont(FONT_NAME, p.font_size)
            text.setTextTransform(p.cos, p.sin, -p.sin, p.cos, p.x, p.y)
            text.setHorizScale(100.0 * width / (GLYPH_ADVANCE * p.font_size * len(chars)))
            text.textOut(chars)
            if index + 1 < len(placements):
                # An explicit space, stretched to reach the next word.
                text.setHorizScale(max(MIN_SPACE_SCALE, 100.0 * space / (GLYPH_ADVANCE * p.font_size)))
                text.textOut(" ")
        pdf.drawText(text)


@contextmanager
def _canvas() -> Iterator[tuple[canvas.Canvas, io.BytesIO]]:
    _register_font()
    buffer = io.BytesIO()
    # invariant=1 keeps output byte-stable (no timestamps or random ids).
    # The initial font is ours: reportlab would name Helvetica, a font a PDF/A cannot leave unembedded.
    pdf = canvas.Canvas(buffer, invariant=1, pageCompression=1, initialFontName=FONT_NAME)
    pdf.setCreator("textlayer")
    yield pdf, buffer


def render_text_layer(page: PageText, frame: PageFrame, size_pt: tuple[float, float]) -> bytes:
    """A one-page PDF holding only the invisible text of ``page``, in the target page's user space."""
    with _canvas() as (pdf, buffer):
        pdf.setPageSize(size_pt)
        _draw_text(pdf, page, frame)
        pdf.showPage()
        pdf.save()
    return buffer.getvalue()


def render_image_pages(images: Sequence[ImagePage], texts: Sequence[PageText | None]) -> bytes:
    """One page per image, physical size, with its text layer; JPEGs kept as they are (DCTDecode), others lossless."""
    with _canvas() as (pdf, buffer):
        for image, text in zip(images, texts, strict=True):
            pdf.setPageSize((image.width_pt, image.height_pt))
            _draw_image(pdf, image)
            if text is not None:
                ppp = image.width_pt / text.width
                _draw_text(pdf, text, PageFrame(0.0, 0.0, image.width_pt, image.height_pt, 0, ppp))
            pdf.showPage()
        pdf.save()
    return buffer.getvalue()


def _draw_image(pdf: canvas.Canvas, image: ImagePage) -> None:
    if image.jpeg is None:
        pdf.drawImage(ImageReader(image.pixels), 0, 0, image.width_pt, image.height_pt)
        return
    # The JPEG is stored as scanned; a transform turns it upright as its EXIF says.
    w, h = image.width_pt, image.height_pt
    pdf.saveState()
    rotation = image.exif_rotation % 360
    if rotation == 90:
        pdf.transform(0, -1, 1, 0, 0, h)
        w, h = h, w
    elif rotation == 180:
        pdf.transform(-1, 0, 0, -1, w, h)
    elif rotation == 270:
        pdf.transform(0, 1, -1, 0, w, 0)
        w, h = h, w
    pdf.drawImage(ImageReader(io.BytesIO(image.jpeg)), 0, 0, w, h)
    pdf.restoreState()
