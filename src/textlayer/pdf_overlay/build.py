"""build_searchable_pdf: the original document plus an invisible text layer on every OCRed page."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from textlayer.build_options import BuildOptions
from textlayer.elements import PageText
from textlayer.errors import InputDocumentError
from textlayer.media.deskew import rotate_page
from textlayer.media.documents import render_page_image
from textlayer.media.images import decode_image, srgb_icc_profile, stored_images, to_pil
from textlayer.media.sniff import document_kind
from textlayer.pdf_overlay.geometry import DEFAULT_IMAGE_DPI, PageFrame
from textlayer.pdf_overlay.merge import add_text_layers, finish_pdf, page_geometries
from textlayer.pdf_overlay.render import ImagePage, render_image_pages, render_text_layer

log = logging.getLogger(__name__)


def build_searchable_pdf(
    source: bytes,
    pages: Sequence[PageText | None],
    *,
    pages_with_text: Collection[int] = (),
    options: BuildOptions | None = None,
) -> bytes:
    """Make the searchable PDF of ``source``, the original PDF, JPEG, PNG or TIFF bytes.

    ``pages`` holds per page its OCR result (pixels as rendered: a PDF page's CropBox turned by /Rotate at ``dpi``, or
    the image itself, straightened when ``options.rasterize`` says so) or None to leave the page as it is.
    ``pages_with_text``, PDF pages that already carry text, never get a second layer. ``options`` replace pages by
    their images, turn pages, remove earlier OCR layers and make PDF/A-2b.

    Raises:
        InputDocumentError: the document cannot be read, or ``pages`` does not match it.
    """
    options = options or BuildOptions()
    if document_kind(source) == "PDF":
        pdf = _pdf(source, pages, set(pages_with_text), options)
    else:
        pdf = _images(source, pages, options)
    if options.rotate or options.output_type == "pdfa":
        icc = srgb_icc_profile() if options.output_type == "pdfa" else None
        pdf = finish_pdf(pdf, rotate=options.rotate, pdfa_icc_profile=icc)
    return pdf


def _page_image(image: ImagePage, text: PageText) -> bytes:
    return render_image_pages([image], [text])


def _pdf(source: bytes, pages: Sequence[PageText | None], with_text: set[int], options: BuildOptions) -> bytes:
    geometries = page_geometries(source)
    if len(pages) != len(geometries):
        raise InputDocumentError(f"got OCR results for {len(pages)} pages, but the PDF has {len(geometries)}")
    layers: dict[int, bytes] = {}
    replacements: dict[int, bytes] = {}
    for index, (page, geometry) in enumerate(zip(pages, geometries, strict=True)):
        if page is None:
            continue
        if index in options.rasterize:
            # The page becomes the image the OCR read (straightened), at the resolution it was read at.
            dpi = page.dpi or 300.0
            pixels = rotate_page(render_page_image(source, index, dpi), options.rasterize[index])
            height, width = pixels.shape[:2]
            image = ImagePage(width_pt=width * 72.0 / dpi, height_pt=height * 72.0 / dpi, pixels=to_pil(pixels))
            replacements[index] = _page_image(image, page)
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
    return add_text_layers(source, layers, replacements=replacements, redo_ocr=options.redo_ocr)


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


def _images(source: bytes, pages: Sequence[PageText | None], options: BuildOptions) -> bytes:
    stored = stored_images(source)
    if len(pages) != len(stored):
        raise InputDocumentError(f"got OCR results for {len(pages)} pages, but the image has {len(stored)}")
    images = []
    for index, (image, page) in enumerate(zip(stored, pages, strict=True)):
        scale = 72.0 / ((page.dpi if page else None) or image.dpi or _dpi_from_text(page))
        if page is not None and options.rasterize.get(index):
            # Straightened as the OCR saw it: the upright frame, turned by the same angle.
            pixels = rotate_page(decode_image(source, frame=index)[0].image, options.rasterize[index])
            images.append(ImagePage(image.width * scale, image.height * scale, pixels=to_pil(pixels)))
            continue
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
