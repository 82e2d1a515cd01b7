"""build_searchable_pdf: the original document plus an invisible text layer on every OCRed page."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from textlayer.elements import PageText
from textlayer.errors import InputDocumentError
from textlayer.media.images import stored_images
from textlayer.media.sniff import document_kind
from textlayer.pdf_overlay.geometry import DEFAULT_IMAGE_DPI, PageFrame
from textlayer.pdf_overlay.merge import add_text_layers, page_geometries
from textlayer.pdf_overlay.render import ImagePage, render_image_pages, render_text_layer

log = logging.getLogger(__name__)


def build_searchable_pdf(
    source: bytes, pages: Sequence[PageText | None], *, pages_with_text: Collection[int] = ()
) -> bytes:
    """Make the searchable PDF of ``source``, the original PDF, JPEG, PNG or TIFF bytes.

    ``pages`` holds per page its OCR result (pixels as rendered: a PDF page's CropBox turned by /Rotate at ``dpi``, or
    the image itself) or None to leave the page as it is. ``pages_with_text``, PDF pages that already carry text, never
    get a second layer.

    Raises:
        InputDocumentError: the document cannot be read, or ``pages`` does not match it.
    """
    if document_kind(source) == "PDF":
        return _pdf(source, pages, set(pages_with_text))
    return _images(source, pages)


def _pdf(source: bytes, pages: Sequence[PageText | None], with_text: set[int]) -> bytes:
    geometries = page_geometries(source)
    if len(pages) != len(geometries):
        raise InputDocumentError(f"got OCR results for {len(pages)} pages, but the PDF has {len(geometries)}")
    layers: dict[int, bytes] = {}
    for index, (page, geometry) in enumerate(zip(pages, geometries, strict=True)):
        if page is None:
            continue
        if index in with_text:
            log.warning("page %d already has text; no second text layer added", index + 1)
            continue
        shown_width = geometry.crop_height if geometry.rotate in (90, 270) else geometry.crop_width
        frame = PageFrame(
            geometry.crop_x0,
            geometry.crop_y0,
            geometry.crop_width,
            geometry.crop_height,
            geometry.rotate,
            72.0 / page.dpi if page.dpi else shown_width / page.width,
        )
        x0, y0, x1, y1 = geometry.media_box
        layers[index] = render_text_layer(page, frame, (x1 - x0, y1 - y0))
    return add_text_layers(source, layers)


BODY_TEXT_BOX_PT = 11.0
"""Height of a word box of typical 10-pt body text (ascenders to descenders, with margins)."""


def _dpi_from_text(page: PageText | None) -> float:
    """Resolution of an image that does not say: the one that makes its text body-text sized.

    Phone photos and many scans carry no (or a meaningless) resolution; sizing the page by
    its text keeps selections and zoom levels sensible in viewers.
    """
    heights = sorted(
        abs(w.quad[3][1] - w.quad[0][1]) + abs(w.quad[3][0] - w.quad[0][0]) for w in (page.words if page else [])
    )
    if len(heights) < 5:
        return DEFAULT_IMAGE_DPI
    typical = heights[len(heights) // 2]
    return min(max(typical * 72.0 / BODY_TEXT_BOX_PT, 72.0), 600.0)


def _images(source: bytes, pages: Sequence[PageText | None]) -> bytes:
    stored = stored_images(source)
    if len(pages) != len(stored):
        raise InputDocumentError(f"got OCR results for {len(pages)} pages, but the image has {len(stored)}")
    images = []
    for image, page in zip(stored, pages, strict=True):
        scale = 72.0 / ((page.dpi if page else None) or image.dpi or _dpi_from_text(page))
        images.append(
            ImagePage(
                width_pt=image.width * scale,
                height_pt=image.height * scale,
                jpeg=image.jpeg,
                pixels=image.pixels,
                exif_rotation=image.exif_rotation,
            )
        )
    return render_image_pages(images, pages)
