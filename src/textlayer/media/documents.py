"""Split an input document (image or PDF) into page images and check it; the only pypdfium2 import.

Everything here parses untrusted bytes, so it runs inside a jailed converter
(textlayer.conversion.converter_role), or in-process only with ``textlayer ocr --no-sandbox``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
from pypdf import PdfReader

from textlayer.errors import InputDocumentError
from textlayer.media.deskew import estimate_skew, rotate_page
from textlayer.media.images import count_frames, encode_png, iter_decoded
from textlayer.media.limits import DEFAULT_MAX_FRAMES, DocumentLimits
from textlayer.media.pages import EncodedPage, Inspection
from textlayer.media.sniff import document_kind

log = logging.getLogger(__name__)

MAX_SIDE_PX = 20_000
"""Longest side of a rasterised page; a longer page is rendered at a lower dpi."""

MIN_TEXT_CHARS = 1
"""A PDF page with at least this many characters of text already has a text layer."""


@dataclass(frozen=True)
class _Rendered:
    """One rasterised PDF page: pixels to OCR, or ``image=None`` when it already has text."""

    index: int
    image: np.ndarray | None
    dpi: float | None
    has_text: bool = False


def inspect_document(data: bytes, limits: DocumentLimits | None = None) -> Inspection:
    """Type, page count, encryption and signature checks: everything that can refuse a whole document.

    Raises:
        InputDocumentError: empty, unsupported, corrupt, encrypted, signed, too many pages or too large.
    """
    limits = limits or DocumentLimits()
    kind = document_kind(data)
    if kind != "PDF":
        frames = count_frames(data, max_frames=min(limits.max_pages, DEFAULT_MAX_FRAMES), max_pixels=limits.max_pixels)
        return Inspection(kind, frames)
    pdf = _open_pdf(data)
    try:
        pages = _checked_page_count(pdf, limits)
        signatures = pdfium.raw.FPDF_GetSignatureCount(pdf.raw)
        if signatures > 0 and not limits.invalidate_signature:
            raise InputDocumentError(
                "The PDF is digitally signed; adding a text layer would invalidate the signature. "
                "Upload it again with the option to invalidate the signature if that is acceptable.",
                reason="signed_pdf",
            )
        return Inspection(kind, pages)
    finally:
        pdf.close()


def render_pages(
    data: bytes,
    indexes: Sequence[int],
    limits: DocumentLimits | None = None,
    *,
    force_ocr: bool = False,
    redo_ocr: bool = False,
    deskew: bool = False,
    pixel_budget: int | None = None,
) -> list[EncodedPage]:
    """Encode pages for OCR, in order: PDF pages rasterised to PNG, TIFF frames split to PNG.

    A PNG or JPEG's first page comes back as the file itself (decoded only by the OCR worker), unless ``deskew``.
    Pages that already have text (unless ``force_ocr``; with ``redo_ocr`` only visible text counts) or are blank come
    back with ``data=None``. ``deskew`` straightens each page image (its ``skew_deg`` says by how much). With
    ``pixel_budget``, rendering stops after the page that spends it (a prefix of at least one page comes back): a
    request costs bounded memory whatever the page sizes.

    Raises:
        InputDocumentError: as :func:`inspect_document`, or a page cannot be read.
    """
    limits = limits or DocumentLimits()
    result: list[EncodedPage] = []
    spent = 0
    if not indexes:
        return result
    kind = document_kind(data)
    if kind != "PDF":
        if kind in ("PNG", "JPEG") and indexes[0] == 0 and not deskew:
            result.append(EncodedPage(0, data, 0))
            if len(indexes) == 1:
                return result
        wanted = range(indexes[len(result)], max(indexes) + 1)
        max_frames = min(limits.max_pages, DEFAULT_MAX_FRAMES)
        for frame in iter_decoded(data, max_pixels=limits.max_pixels, max_frames=max_frames, frames=wanted):
            if frame.index not in indexes:
                continue
            spent += frame.image.size
            result.append(_encoded(frame.index, frame.image, frame.dpi, False, deskew))
            if pixel_budget is not None and spent >= pixel_budget:
                break
        if not result or result[-1].index != indexes[len(result) - 1]:
            raise InputDocumentError(f"The image has no page {indexes[len(result)] + 1}.", reason="no_such_page")
        return result
    pdf = _open_pdf(data)
    try:
        total = _checked_page_count(pdf, limits)
        for index in indexes:
            if not 0 <= index < total:
                raise InputDocumentError(f"The PDF has no page {index + 1}.", reason="no_such_page")
            page = _render_page(pdf, index, limits, force_ocr, redo_ocr)
            spent += 0 if page.image is None else page.image.size
            result.append(
                EncodedPage(index, None, 0, None, True)
                if page.image is None
                else _encoded(index, page.image, page.dpi, page.has_text, deskew)
            )
            if pixel_budget is not None and spent >= pixel_budget:
                break
        return result
    finally:
        pdf.close()


def _encoded(index: int, image: np.ndarray, dpi: float | None, has_text: bool, deskew: bool = False) -> EncodedPage:
    # A page of one colour has nothing to read: no OCR, no text layer (blank scans, separator sheets).
    if image.size == 0 or int(image.min()) == int(image.max()):
        return EncodedPage(index, None, 0, dpi, has_text, blank=True)
    angle = estimate_skew(image) if deskew else 0.0
    if angle:
        log.info("page %d is skewed; turned by %.1f degrees", index + 1, angle)
    return EncodedPage(index, encode_png(rotate_page(image, angle)), 0, dpi, has_text, skew_deg=angle)


def render_page_image(data: bytes, index: int, dpi: float) -> np.ndarray:
    """PDF page ``index`` as displayed (CropBox, /Rotate) in colour (BGR), at ``dpi``: to replace the page by its image.

    Raises:
        InputDocumentError: the page cannot be read.
    """
    pdf = _open_pdf(data)
    try:
        page = pdf[index]
        try:
            image = _pixels(page, dpi, grayscale=False)
        finally:
            page.close()
    except pdfium.PdfiumError as exc:
        raise InputDocumentError(f"Page {index + 1} of the PDF cannot be read ({exc}).", reason="corrupt_pdf") from exc
    finally:
        pdf.close()
    return image if image.ndim == 2 else np.ascontiguousarray(image[:, :, :3])


def _pixels(page: pdfium.PdfPage, dpi: float, *, grayscale: bool) -> np.ndarray:
    """The page rendered at ``dpi`` (forms not drawn), copied out of PDFium's bitmap before it is freed."""
    bitmap = page.render(scale=dpi / 72, grayscale=grayscale, may_draw_forms=False)
    try:
        return np.array(bitmap.to_numpy(), copy=True)
    finally:
        bitmap.close()


def _only_invisible_text(page: pdfium.PdfPage) -> bool:
    """Whether all the text of a page is invisible (render mode 3): an earlier OCR layer, not printed text."""
    modes = [
        pdfium.raw.FPDFTextObj_GetTextRenderMode(obj.raw)
        for obj in page.get_objects(filter=(pdfium.raw.FPDF_PAGEOBJ_TEXT,), max_depth=8)
    ]
    return bool(modes) and all(mode == pdfium.raw.FPDF_TEXTRENDERMODE_INVISIBLE for mode in modes)


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        opinion = why_unopenable(data)  # PDFium's own error code may be an earlier document's
        if opinion == "encrypted_pdf":
            raise InputDocumentError(
                "The PDF is password-protected; remove the password and upload it again.",
                reason="encrypted_pdf",
            ) from exc
        if opinion == "no_pages":
            raise InputDocumentError("The PDF has no pages.", reason="no_pages") from exc
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


def _render_page(
    pdf: pdfium.PdfDocument, index: int, limits: DocumentLimits, force_ocr: bool, redo_ocr: bool = False
) -> _Rendered:
    try:
        page = pdf[index]
        try:
            textpage = page.get_textpage()
            try:
                has_text = textpage.count_chars() >= MIN_TEXT_CHARS
            finally:
                textpage.close()
            if has_text and redo_ocr and _only_invisible_text(page):
                log.info("page %d has an earlier OCR layer (invisible text); OCRing it again", index + 1)
                has_text = False
            if has_text and not force_ocr:
                log.info("page %d already has text; not OCRed (use --force-ocr to OCR it anyway)", index + 1)
                return _Rendered(index, None, None, has_text=True)
            width_pt, height_pt = page.get_size()
            if width_pt <= 0 or height_pt <= 0:
                raise InputDocumentError(f"Page {index + 1} has no area.", reason="corrupt_pdf")
            dpi = float(limits.dpi)
            pixels = width_pt * height_pt * (dpi / 72) ** 2
            if pixels > limits.max_pixels:
                # Render a huge page at a lower resolution rather than refuse it.
                dpi *= (limits.max_pixels / pixels) ** 0.5
            longest = max(width_pt, height_pt) * dpi / 72
            if longest > MAX_SIDE_PX:  # a sliver page: fine in pixels, absurd in length
                dpi *= MAX_SIDE_PX / longest
            if pixels > limits.max_pixels or longest > MAX_SIDE_PX:
                log.info("page %d is large; rasterised at %.0f dpi to stay within the pixel limit", index + 1, dpi)
            image = _pixels(page, dpi, grayscale=True)
        finally:
            page.close()
    except pdfium.PdfiumError as exc:
        raise InputDocumentError(f"Page {index + 1} of the PDF cannot be read ({exc}).", reason="corrupt_pdf") from exc
    if image.ndim == 3:
        image = image[:, :, 0] if image.shape[2] == 1 else np.ascontiguousarray(image[:, :, :3])
    return _Rendered(index, image, dpi, has_text=has_text)


def why_unopenable(source: bytes) -> str | None:
    """Pypdf's opinion of a PDF that PDFium refused: ``encrypted_pdf``, ``no_pages`` or None (damaged).

    PDFium keeps its last error process-wide and refuses an empty page tree (``/Count 0``)
    without setting one, so its own error code can name an earlier document's problem.
    """
    try:
        reader = PdfReader(io.BytesIO(source), strict=False)
        if reader.is_encrypted:
            try:
                opened = bool(reader.decrypt(""))
            except Exception:  # a cipher pypdf cannot use: still a password-protected file
                opened = False
            if not opened:
                return "encrypted_pdf"
        return "no_pages" if len(reader.pages) == 0 else None
    except Exception:  # unreadable for pypdf too: damaged
        return None
