from __future__ import annotations

import io

import pytest
from reportlab.pdfgen import canvas

from textlayer.errors import InputDocumentError
from textlayer.media.documents import inspect_document, render_pages
from textlayer.media.images import decode_image
from textlayer.media.limits import DocumentLimits


def _pixels(page):
    """The rasterised page as the OCR worker will decode it (None: not sent to OCR)."""
    return None if page.data is None else decode_image(page.data)[0].image


def _pdf(pages: int = 1, text: str | None = "hello", encrypt: str | None = None) -> bytes:
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=(200, 100), encrypt=encrypt)
    for _ in range(pages):
        if text:
            c.drawString(20, 50, text)
        else:
            c.rect(20, 20, 50, 50, fill=1)  # a drawing, no text: a "scan"
        c.showPage()
    c.save()
    return out.getvalue()


def test_pages_with_text_are_skipped_unless_forced():
    data = _pdf(2, text="already searchable")
    assert [p.has_text and _pixels(p) is None for p in render_pages(data, [0, 1])] == [True, True]
    forced = render_pages(data, [0, 1], force_ocr=True)
    assert all(_pixels(p) is not None for p in forced)


def test_scanned_pages_are_rasterised_at_the_chosen_dpi():
    (page,) = render_pages(_pdf(text=None), [0], DocumentLimits(dpi=144))
    image = _pixels(page)
    assert image is not None and image.shape == (200, 400)
    assert page.dpi == 144


def test_a_huge_page_is_rendered_at_a_lower_dpi():
    (page,) = render_pages(_pdf(text=None), [0], DocumentLimits(dpi=300, max_pixels=100_000))
    image = _pixels(page)
    assert image is not None and image.size <= 100_000 * 1.02
    assert page.dpi is not None and page.dpi < 300


def test_encrypted_pdf_says_so():
    with pytest.raises(InputDocumentError, match="password-protected") as info:
        inspect_document(_pdf(encrypt="secret"))
    assert info.value.reason == "encrypted_pdf"


def test_truncated_pdf_and_page_limit():
    data = _pdf(3, text=None)
    with pytest.raises(InputDocumentError, match="damaged"):
        inspect_document(data[: len(data) // 3])
    with pytest.raises(InputDocumentError, match="at most 2"):
        inspect_document(data, DocumentLimits(max_pages=2))
