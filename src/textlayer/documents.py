"""Split an input document (image or PDF) into page images; the only pypdfium2 import."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium

from textlayer.errors import InputDocumentError
from textlayer.worker.decode import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    count_frames,
    decode_image,
    encode_png,
    sniff_image_format,
)

log = logging.getLogger(__name__)

DEFAULT_DPI = 300
"""Resolution PDF pages are rasterised at for OCR (lowered for pages that would exceed the pixel limit)."""

DEFAULT_MAX_PAGES = 2000
"""Most pages accepted from one document."""

MIN_TEXT_CHARS = 1
"""A PDF page with at least this many characters of text already has a text layer."""


@dataclass(frozen=True)
class SourcePage:
    """One page of the input: pixels to OCR, or ``image=None`` when it already has text."""

    index: int
    image: np.ndarray | None
    dpi: float | None
    has_text: bool = False


@dataclass(frozen=True)
class EncodedPage:
    """One page on its way into a jailed worker: encoded image bytes (never decoded here) and which frame."""

    index: int
    data: bytes | None
    frame: int = 0
    dpi: float | None = None
    has_text: bool = False


@dataclass(frozen=True)
class DocumentLimits:
    """Limits that protect the machine from oversized documents."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_pages: int = DEFAULT_MAX_PAGES
    dpi: int = DEFAULT_DPI


def document_kind(data: bytes) -> str:
    """'PDF', 'PNG', 'JPEG' or 'TIFF' by magic bytes at offset 0.

    Raises:
        InputDocumentError: empty or of another type.
    """
    if not data:
        raise InputDocumentError("The file is empty.", reason="empty_file")
    if data.startswith(b"%PDF-"):
        return "PDF"
    kind = sniff_image_format(data)
    if kind is None:
        raise InputDocumentError("The file is not a PDF, PNG, JPEG or TIFF document.", reason="unsupported_type")
    return kind


def count_pages(data: bytes, limits: DocumentLimits | None = None) -> int:
    """Number of pages (for progress bars), validating the document on the way."""
    limits = limits or DocumentLimits()
    if document_kind(data) != "PDF":
        return count_frames(data, max_frames=min(limits.max_pages, DEFAULT_MAX_FRAMES), max_pixels=limits.max_pixels)
    pdf = _open_pdf(data)
    try:
        return _checked_page_count(pdf, limits)
    finally:
        pdf.close()


def iter_pages(data: bytes, limits: DocumentLimits | None = None, *, force_ocr: bool = False) -> Iterator[SourcePage]:
    """Yield the document's pages as images ready for OCR.

    Args:
        data: the document's bytes (untrusted).
        limits: page count, pixel and dpi limits.
        force_ocr: rasterise PDF pages even when they already carry text.

    Raises:
        InputDocumentError: empty, unsupported, corrupt, encrypted or too large.
    """
    limits = limits or DocumentLimits()
    if document_kind(data) != "PDF":
        frames = decode_image(data, max_pixels=limits.max_pixels, max_frames=min(limits.max_pages, DEFAULT_MAX_FRAMES))
        for frame in frames:
            yield SourcePage(frame.index, frame.image, frame.dpi)
        return
    pdf = _open_pdf(data)
    try:
        for index in range(_checked_page_count(pdf, limits)):
            yield _render_page(pdf, index, limits, force_ocr)
    finally:
        pdf.close()


def iter_encoded_pages(
    data: bytes, limits: DocumentLimits | None = None, *, force_ocr: bool = False
) -> Iterator[EncodedPage]:
    """Yield the pages as encoded images for a jailed worker to decode.

    Image files are passed through untouched, one frame at a time: their pixels are decoded
    only inside the jail. PDF pages are rasterised here and sent as lossless PNG.

    Raises:
        InputDocumentError: empty, unsupported, corrupt, encrypted or too large.
    """
    limits = limits or DocumentLimits()
    if document_kind(data) != "PDF":
        for frame in range(count_pages(data, limits)):
            yield EncodedPage(frame, data, frame)
        return
    for page in iter_pages(data, limits, force_ocr=force_ocr):
        encoded = None if page.image is None else encode_png(page.image)
        yield EncodedPage(page.index, encoded, 0, page.dpi, page.has_text)


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        message = str(exc).lower()
        if "password" in message:
            raise InputDocumentError(
                "The PDF is password-protected; remove the password and upload it again.",
                reason="encrypted_pdf",
            ) from exc
        raise InputDocumentError(f"The PDF is damaged and cannot be read ({exc}).", reason="corrupt_pdf") from exc


def _checked_page_count(pdf: pdfium.PdfDocument, limits: DocumentLimits) -> int:
    count = len(pdf)
    if count < 1:
        raise InputDocumentError("The PDF has no pages.", reason="no_pages")
    if count > limits.max_pages:
        raise InputDocumentError(
            f"The PDF has {count} pages; at most {limits.max_pages} are accepted. Split it and upload the parts.",
            reason="too_many_pages",
        )
    return count


def _render_page(pdf: pdfium.PdfDocument, index: int, limits: DocumentLimits, force_ocr: bool) -> SourcePage:
    try:
        page = pdf[index]
        try:
            textpage = page.get_textpage()
            try:
                has_text = textpage.count_chars() >= MIN_TEXT_CHARS
            finally:
                textpage.close()
            if has_text and not force_ocr:
                log.info("page %d already has text; not OCRed (use --force-ocr to OCR it anyway)", index + 1)
                return SourcePage(index, None, None, has_text=True)
            width_pt, height_pt = page.get_size()
            if width_pt <= 0 or height_pt <= 0:
                raise InputDocumentError(f"Page {index + 1} has no area.", reason="corrupt_pdf")
            dpi = float(limits.dpi)
            pixels = width_pt * height_pt * (dpi / 72) ** 2
            if pixels > limits.max_pixels:
                # Render a huge page at a lower resolution rather than refuse it.
                dpi *= (limits.max_pixels / pixels) ** 0.5
                log.info("page %d is large; rasterised at %.0f dpi to stay within the pixel limit", index + 1, dpi)
            bitmap = page.render(scale=dpi / 72, grayscale=True, may_draw_forms=False)
            try:
                image = np.array(bitmap.to_numpy(), copy=True)
            finally:
                bitmap.close()
        finally:
            page.close()
    except pdfium.PdfiumError as exc:
        raise InputDocumentError(f"Page {index + 1} of the PDF cannot be read ({exc}).", reason="corrupt_pdf") from exc
    if image.ndim == 3:
        image = image[:, :, 0] if image.shape[2] == 1 else np.ascontiguousarray(image[:, :, :3])
    return SourcePage(index, image, dpi, has_text=has_text)
