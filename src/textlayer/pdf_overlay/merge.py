"""Put text layers onto the pages of an input PDF and strip its active content; the only pypdf import."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pypdf import PdfReader, PdfWriter
from pypdf.errors import LimitReachedError
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
)

from textlayer.errors import InputDocumentError

log = logging.getLogger(__name__)

_DANGEROUS_ACTIONS = {"/JavaScript", "/Launch", "/SubmitForm", "/ImportData", "/GoToE", "/Rendition", "/ResetForm"}
"""Actions that run code, start programs or send data: never carried into an output."""

_DANGEROUS_ANNOTATIONS = {"/FileAttachment", "/Movie", "/Sound", "/Screen", "/RichMedia", "/3D"}
"""Annotations that carry embedded files or active media."""


@dataclass(frozen=True)
class PageGeometry:
    """What a renderer shows of a page: the CropBox (in points, unrotated) and /Rotate."""

    crop_x0: float
    crop_y0: float
    crop_width: float
    crop_height: float
    rotate: int
    media_box: tuple[float, float, float, float]


def _unreadable(exc: Exception, what: str = "The PDF is damaged and cannot be read") -> InputDocumentError:
    if isinstance(exc, LimitReachedError):  # pypdf's 75 MB filter limit: a decompression bomb
        return InputDocumentError(
            f"The PDF contains a stream that decompresses to more than the reader allows ({exc}).",
            reason="decompression_limit",
        )
    return InputDocumentError(f"{what} ({type(exc).__name__}: {exc}).", reason="corrupt_pdf")


def _reader(source: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(source), strict=False)
        # An owner password alone (empty user password) opens with ""; the output is not encrypted.
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputDocumentError(
                "The PDF is password-protected; remove the password and upload it again.", reason="encrypted_pdf"
            )
        return reader
    except InputDocumentError:
        raise
    except Exception as exc:  # pypdf warns that broken PDFs may raise anything
        raise _unreadable(exc) from exc


def page_geometries(source: bytes) -> list[PageGeometry]:
    """The visible area and rotation of every page.

    Raises:
        InputDocumentError: the PDF cannot be read.
    """
    try:
        result = []
        for page in _reader(source).pages:
            crop, media = page.cropbox, page.mediabox
            result.append(
                PageGeometry(
                    crop_x0=float(crop.left),
                    crop_y0=float(crop.bottom),
                    crop_width=float(crop.width),
                    crop_height=float(crop.height),
                    rotate=int(page.rotation) % 360,
                    media_box=(float(media.left), float(media.bottom), float(media.right), float(media.top)),
                )
            )
        return result
    except InputDocumentError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from exc


def add_text_layers(source: bytes, layers: Mapping[int, bytes]) -> bytes:
    """Overlay one-page text PDFs onto pages of ``source``; the result has no active content.

    ``layers`` maps a page index to a one-page PDF (from render.render_text_layer) in that page's user space. Each layer
    becomes a Form XObject drawn after the page's own content, which is wrapped in q/Q by two tiny streams of its own:
    the original content streams are kept byte for byte.

    Raises:
        InputDocumentError: the PDF cannot be read or written.
    """
    try:
        reader = _reader(source)
        # Unlinked in the reader, so the clone (which follows references) never copies them.
        _strip_active_content(reader.trailer["/Root"].get_object())
        writer = PdfWriter(clone_from=reader)
        for index, layer in layers.items():
            _graft(writer, index, layer)
        # Every layer brings its own copy of the (tiny) font: keep one.
        writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()
    except InputDocumentError:
        raise
    except Exception as exc:
        raise _unreadable(exc, "The PDF could not be rewritten") from exc


def _stream(writer: PdfWriter, data: bytes, extra: Mapping[str, Any] | None = None) -> Any:
    stream = DecodedStreamObject()
    stream.set_data(data)
    for key, value in (extra or {}).items():
        stream[NameObject(key)] = value
    return writer._add_object(stream.flate_encode() if len(data) > 64 else stream)


def _inherited_resources(page: Any) -> DictionaryObject:
    node = page
    while node is not None:
        if "/Resources" in node:
            return node["/Resources"].get_object()  # type: ignore[no-any-return]
        node = node.get("/Parent")
        node = node.get_object() if node is not None else None
    return DictionaryObject()


def _graft(writer: PdfWriter, index: int, layer: bytes) -> None:
    page = writer.pages[index]
    layer_page = PdfReader(io.BytesIO(layer)).pages[0]
    content = layer_page.get_contents()
    data = content.get_data() if content is not None else b""
    form = _stream(
        writer,
        data,
        {
            "/Type": NameObject("/XObject"),
            "/Subtype": NameObject("/Form"),
            "/BBox": ArrayObject(page.mediabox),
            "/Resources": layer_page["/Resources"].clone(writer),
        },
    )
    # A private copy of the resources: other pages may share the original dictionary.
    resources = DictionaryObject(_inherited_resources(page))
    xobjects = DictionaryObject(resources.get("/XObject", DictionaryObject()).get_object())
    name = "/TextlayerOCR"
    while name in xobjects:
        name += "x"
    xobjects[NameObject(name)] = form
    resources[NameObject("/XObject")] = xobjects
    page[NameObject("/Resources")] = resources

    original = page.get("/Contents")
    streams = ArrayObject()
    if original is not None:
        resolved = original.get_object()
        if isinstance(resolved, ArrayObject):
            streams.extend(resolved)
        else:
            streams.append(original if hasattr(original, "idnum") else writer._add_object(resolved))
    head = _stream(writer, b"q\n")
    tail = _stream(writer, f"Q\nq {name} Do Q\n".encode())
    page[NameObject("/Contents")] = ArrayObject([head, *streams, tail])


def _page_dicts(node: Any, depth: int = 0) -> Iterator[DictionaryObject]:
    """The page dictionaries themselves (reader.pages hands out copies), walking the page tree."""
    node = node.get_object()
    if depth > 64:  # a hostile tree may loop
        return
    if node.get("/Type") == "/Page" or "/Kids" not in node:
        yield node
        return
    for kid in node["/Kids"]:
        yield from _page_dicts(kid, depth + 1)


def _strip_active_content(root: Any) -> None:
    """Remove JavaScript, open actions, embedded files and launch actions (the output is for reading)."""
    for key in ("/OpenAction", "/AA"):
        if key in root:
            log.info("removed %s from the document catalog", key)
            del root[key]
    names = root.get("/Names")
    if names is not None:
        names = names.get_object()
        for key in ("/JavaScript", "/EmbeddedFiles"):
            if key in names:
                log.info("removed %s from the document names", key)
                del names[key]
    form = root.get("/AcroForm")
    if form is not None and "/XFA" in form.get_object():
        del form.get_object()["/XFA"]
    for page in _page_dicts(root["/Pages"]):
        if "/AA" in page:
            del page["/AA"]
        annotations = page.get("/Annots")
        if annotations is None:
            continue
        kept = ArrayObject()
        for ref in annotations.get_object():
            annotation = ref.get_object()
            if annotation.get("/Subtype") in _DANGEROUS_ANNOTATIONS:
                continue
            action = annotation.get("/A")
            if action is not None and action.get_object().get("/S") in _DANGEROUS_ACTIONS:
                continue
            if "/AA" in annotation:
                del annotation["/AA"]
            kept.append(ref)
        page[NameObject("/Annots")] = kept
