"""Small real inputs for command-line tests: a few lines of the generated receipt, as PNG or inside a PDF."""

from __future__ import annotations

import dataclasses
import io
import re
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from tests.pages import GeneratedPage, TrueWord, make_page

CROP_ROWS = (60, 290)
"""Rows of the 150-dpi receipt kept: its five header lines (14 words)."""


@lru_cache(maxsize=1)
def small_receipt() -> GeneratedPage:
    """The receipt's header: 473 x 230 px at 150 dpi, with its words (boxes moved with the crop)."""
    page = make_page("receipt", dpi=150)
    top, bottom = CROP_ROWS
    words = tuple(
        TrueWord(w.text, (w.box[0], w.box[1] - top, w.box[2], w.box[3] - top))
        for w in page.words
        if top <= w.box[1] and w.box[3] <= bottom
    )
    image = np.ascontiguousarray(page.image[top:bottom])
    return GeneratedPage("small_receipt", image, page.dpi, " ".join(w.text for w in words), words)


def skewed(page: GeneratedPage, degrees: float) -> GeneratedPage:
    """The page turned ``degrees`` counter-clockwise, as a crooked scan (same size, white corners)."""
    height, width = page.image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    image = cv2.warpAffine(page.image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderValue=255)
    return dataclasses.replace(page, image=image)


def png(page: GeneratedPage) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(page.image).save(buffer, format="PNG", dpi=(page.dpi, page.dpi))
    return buffer.getvalue()


def pdf_of(*pages: GeneratedPage | str, invisible: dict[int, str] | None = None) -> bytes:
    """A PDF with one page per argument: a scan (its image at its dpi) or a born-digital line of Helvetica text.

    ``invisible`` adds, on those pages, invisible text (render mode 3) over the scan: an earlier OCR layer.
    """
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer)
    for index, page in enumerate(pages):
        if isinstance(page, str):
            c.setPageSize((300, 120))
            c.setFont("Helvetica", 14)
            c.drawString(20, 60, page)
        else:
            width_pt = page.image.shape[1] * 72 / page.dpi
            height_pt = page.image.shape[0] * 72 / page.dpi
            c.setPageSize((width_pt, height_pt))
            c.drawImage(ImageReader(Image.fromarray(page.image)), 0, 0, width_pt, height_pt)
            if invisible and index in invisible:
                text = c.beginText(10, height_pt / 2)
                text.setTextRenderMode(3)
                text.setFont("Helvetica", 10)
                text.textOut(invisible[index])
                c.drawText(text)
        c.showPage()
    c.save()
    return buffer.getvalue()


def words(text: str) -> list[str]:
    """Whitespace-normalised words."""
    return [w for w in re.split(r"\s+", text) if w]


def share_found(expected: list[str], found: list[str]) -> float:
    """Share of the expected words that were found (each found word counts once)."""
    pool = list(found)
    hits = 0
    for word in expected:
        if word in pool:
            pool.remove(word)
            hits += 1
    return hits / max(1, len(expected))
