"""Put text layers onto the pages of an input PDF, strip its active content, make PDF/A; the only pypdf import.

(The converter role and media/documents.py also use pypdf, for their own small jobs.)
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from pypdf import PdfReader, PdfWriter
from pypdf.errors import LimitReachedError
from pypdf.generic import (
    ArrayObject,
    ContentStream,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

from textlayer import __version__
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


def add_text_layers(
    source: bytes,
    layers: Mapping[int, bytes],
    *,
    replacements: Mapping[int, bytes] | None = None,
    redo_ocr: bool = False,
) -> bytes:
    """Overlay one-page text PDFs onto pages of ``source``; the result has no active content.

    ``layers`` maps a page index to a one-page PDF (from render.render_text_layer) in that page's user space. Each layer
    becomes a Form XObject drawn after the page's own content, which is wrapped in q/Q by two tiny streams of its own:
    the original content streams are kept byte for byte, unless ``redo_ocr``: then the invisible text of an earlier OCR
    layer is removed from those pages first. ``replacements`` maps a page index to a one-page PDF (the page's image and
    its text) that takes the page's place: size, content and resources; its annotations are dropped.

    Raises:
        InputDocumentError: the PDF cannot be read or written.
    """
    try:
        reader = _reader(source)
        # Unlinked in the reader, so the clone (which follows references) never copies them.
        _strip_active_content(reader.trailer["/Root"].get_object())
        writer = PdfWriter(clone_from=reader)
        for index, replacement in (replacements or {}).items():
            _replace(writer, index, replacement)
        for index, layer in layers.items():
            if redo_ocr:
                removed = _strip_invisible_text(writer, writer.pages[index])
                log.info("page %d: %d blocks of an earlier OCR layer removed", index + 1, removed)
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


def _replace(writer: PdfWriter, index: int, replacement: bytes) -> None:
    """Give page ``index`` the size, content and resources of a one-page PDF (its rasterised image and text)."""
    page = writer.pages[index]
    new = PdfReader(io.BytesIO(replacement)).pages[0]
    content = new.get_contents()
    page[NameObject("/Contents")] = _stream(writer, content.get_data() if content is not None else b"")
    page[NameObject("/Resources")] = new["/Resources"].clone(writer)
    page[NameObject("/MediaBox")] = ArrayObject(new.mediabox)
    # The image shows the page as it was displayed: boxes, rotation and annotations belonged to the old drawing.
    for key in ("/CropBox", "/BleedBox", "/TrimBox", "/ArtBox", "/Rotate", "/Annots", "/UserUnit", "/Group"):
        if key in page:
            del page[key]


_TEXT_SHOWING = {b"Tj", b"TJ", b"'", b'"'}
"""Operators that show text."""

INVISIBLE = 3
"""Text render mode 3: neither fill nor stroke (how OCR layers hide their text)."""


def _without_invisible_text(operations: list[tuple[Any, bytes]]) -> tuple[list[tuple[Any, bytes]], int]:
    """Drop every BT..ET block that shows text only in render mode 3; the render mode after it is kept."""
    out: list[tuple[Any, bytes]] = []
    modes = [0]  # the text render mode is graphics state: q/Q save and restore it
    block: list[tuple[Any, bytes]] | None = None
    visible, mode_at_start, removed = False, 0, 0
    for operands, operator in operations:
        if operator == b"Tr" and operands:
            modes[-1] = int(operands[0])
        if block is not None:
            block.append((operands, operator))
            if operator in _TEXT_SHOWING and modes[-1] != INVISIBLE:
                visible = True
            elif operator == b"ET":
                if visible:
                    out.extend(block)
                else:
                    removed += 1
                    if modes[-1] != mode_at_start:
                        out.append(([NumberObject(modes[-1])], b"Tr"))
                block = None
            continue
        if operator == b"BT":
            block, visible, mode_at_start = [(operands, operator)], False, modes[-1]
            continue
        if operator == b"q":
            modes.append(modes[-1])
        elif operator == b"Q" and len(modes) > 1:
            modes.pop()
        out.append((operands, operator))
    if block is not None:  # no ET: leave it as it was
        out.extend(block)
    return out, removed


def _strip_invisible_text(writer: PdfWriter, page: Any) -> int:
    """Remove invisible text from a page and the forms it draws; returns the text blocks removed."""
    removed = 0
    content = page.get_contents()
    if content is not None:
        operations, count = _without_invisible_text(list(content.operations))
        if count:
            content.operations = operations
            page.replace_contents(content)
            removed += count
    seen: set[int] = set()

    def forms(resources: Any, depth: int) -> None:
        nonlocal removed
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        if xobjects is None or depth > 8:
            return
        for ref in xobjects.get_object().values():
            form = ref.get_object()
            key = id(form) if getattr(ref, "idnum", None) is None else int(ref.idnum)
            if key in seen or form.get("/Subtype") != "/Form":
                continue
            seen.add(key)
            stream = ContentStream(form, writer)
            operations, count = _without_invisible_text(list(stream.operations))
            if count:
                stream.operations = operations
                form.set_data(stream.get_data())
                removed += count
            forms(form.get("/Resources"), depth + 1)

    forms(_inherited_resources(page), 0)
    return removed


# -- finishing: page rotation and PDF/A-2b ---------------------------------------------------


def _pdf_date(moment: time.struct_time) -> str:
    return time.strftime("D:%Y%m%d%H%M%S+00'00'", moment)


def _xmp_date(moment: time.struct_time) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", moment)


PRODUCER = f"textlayer {__version__}"
"""What the Producer entry says of every PDF/A we write."""


def _xmp(info: Mapping[str, str], moment: time.struct_time) -> bytes:
    """XMP metadata of a PDF/A-2b: pdfaid part 2 conformance B, and the document information mirrored."""
    fields = [
        "<pdfaid:part>2</pdfaid:part>",
        "<pdfaid:conformance>B</pdfaid:conformance>",
        f"<pdf:Producer>{escape(PRODUCER)}</pdf:Producer>",
        f"<xmp:CreateDate>{_xmp_date(moment)}</xmp:CreateDate>",
        f"<xmp:ModifyDate>{_xmp_date(moment)}</xmp:ModifyDate>",
        f"<xmp:MetadataDate>{_xmp_date(moment)}</xmp:MetadataDate>",
    ]
    if "/Title" in info:
        fields.append(
            f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(info["/Title"])}</rdf:li></rdf:Alt></dc:title>'
        )
    if "/Author" in info:
        fields.append(f"<dc:creator><rdf:Seq><rdf:li>{escape(info['/Author'])}</rdf:li></rdf:Seq></dc:creator>")
    if "/Subject" in info:
        fields.append(
            f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(info["/Subject"])}</rdf:li>'
            "</rdf:Alt></dc:description>"
        )
    if "/Keywords" in info:
        fields.append(f"<pdf:Keywords>{escape(info['/Keywords'])}</pdf:Keywords>")
    if "/Creator" in info:
        fields.append(f"<xmp:CreatorTool>{escape(info['/Creator'])}</xmp:CreatorTool>")
    body = "\n    ".join(fields)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"\n'
        '    xmlns:pdf="http://ns.adobe.com/pdf/1.3/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        f"    {body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _make_pdfa(writer: PdfWriter, icc_profile: bytes) -> None:
    """PDF/A-2b: XMP metadata, an sRGB output intent, a file identifier, printable annotations, PDF 1.7."""
    root = writer.root_object
    old: Mapping[str, Any] = writer.metadata or {}
    info = {
        key: str(old[key])
        for key in ("/Title", "/Author", "/Subject", "/Keywords", "/Creator")
        if isinstance(old.get(key), str) and str(old[key]).strip()
    }
    moment = time.gmtime()
    writer.metadata = {**info, "/Producer": PRODUCER, "/CreationDate": _pdf_date(moment), "/ModDate": _pdf_date(moment)}
    metadata = DecodedStreamObject()  # never filtered: PDF/A readers must find it without decoding
    metadata.set_data(_xmp(info, moment))
    metadata[NameObject("/Type")] = NameObject("/Metadata")
    metadata[NameObject("/Subtype")] = NameObject("/XML")
    root[NameObject("/Metadata")] = writer._add_object(metadata)
    profile = _stream(writer, icc_profile, {"/N": NumberObject(3)})
    intent = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/OutputIntent"),
            NameObject("/S"): NameObject("/GTS_PDFA1"),
            NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB"),
            NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
            NameObject("/DestOutputProfile"): profile,
        }
    )
    root[NameObject("/OutputIntents")] = ArrayObject([writer._add_object(intent)])
    for key in ("/Version", "/AA", "/OpenAction"):
        if key in root:
            del root[key]
    form = root.get("/AcroForm")
    if form is not None and "/NeedAppearances" in form.get_object():
        del form.get_object()["/NeedAppearances"]
    for page in writer.pages:
        for ref in page.get("/Annots") or []:
            annotation = ref.get_object()
            flags = int(annotation.get("/F", 0))
            annotation[NameObject("/F")] = NumberObject((flags | 4) & ~(1 | 2 | 32))  # Print on; Hidden, NoView off
    if not writer._ID:
        writer.generate_file_identifiers()
    writer.pdf_header = b"%PDF-1.7"


def finish_pdf(pdf: bytes, *, rotate: Mapping[int, int], pdfa_icc_profile: bytes | None) -> bytes:
    """Turn pages (degrees clockwise, added to /Rotate) and, given an ICC profile, make the file PDF/A-2b.

    Raises:
        InputDocumentError: the PDF cannot be read or written.
    """
    try:
        writer = PdfWriter(clone_from=_reader(pdf))
        for index, degrees in rotate.items():
            page = writer.pages[index]
            page[NameObject("/Rotate")] = NumberObject((int(page.get("/Rotate", 0)) + degrees) % 360)
        if pdfa_icc_profile is not None:
            _make_pdfa(writer, pdfa_icc_profile)
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()
    except InputDocumentError:
        raise
    except Exception as exc:
        raise _unreadable(exc, "The PDF could not be rewritten") from exc


def _images_and_forms(resources: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Every image and form a resource dictionary reaches, through forms and tiling patterns."""
    if resources is None or depth > 8:
        return
    resources = resources.get_object()
    for container in ("/XObject", "/Pattern"):
        entries: Any = (resources.get(container) or DictionaryObject()).get_object()
        for ref in entries.values():
            xobject = ref.get_object()
            if xobject.get("/Subtype") == "/Image":
                yield "image", xobject
            elif isinstance(xobject, StreamObject):
                yield "form", xobject
                yield from _images_and_forms(xobject.get("/Resources"), depth + 1)


def _rendered_fonts(operations: list[tuple[Any, bytes]], resources: Any, reader: Any, depth: int = 0) -> Iterator[Any]:
    """The fonts that show text other than invisibly (render mode 3), following the forms a stream draws.

    Those are the fonts PDF/A wants embedded: a font only selected (reportlab's ``BT /F1 12 Tf ET`` on every page),
    or used only for invisible text, is not used for rendering.
    """
    resources = resources.get_object() if resources is not None else DictionaryObject()
    fonts: Any = (resources.get("/Font") or DictionaryObject()).get_object()
    xobjects: Any = (resources.get("/XObject") or DictionaryObject()).get_object()
    font, modes = None, [0]
    for operands, operator in operations:
        if operator == b"Tf" and operands:
            font = fonts.get(operands[0])
        elif operator == b"Tr" and operands:
            modes[-1] = int(operands[0])
        elif operator == b"q":
            modes.append(modes[-1])
        elif operator == b"Q" and len(modes) > 1:
            modes.pop()
        elif operator in _TEXT_SHOWING and modes[-1] != INVISIBLE and font is not None:
            yield font.get_object()
        elif operator == b"Do" and operands and depth < 8:
            form = xobjects.get(operands[0])
            form = form.get_object() if form is not None else None
            if form is not None and form.get("/Subtype") == "/Form":
                inner = ContentStream(form, reader).operations
                yield from _rendered_fonts(inner, form.get("/Resources") or resources, reader, depth + 1)


def _embedded(font: Any) -> bool:
    if font.get("/Subtype") == "/Type3":
        return True  # glyphs are content streams inside the file
    if font.get("/Subtype") == "/Type0":
        font = font["/DescendantFonts"][0].get_object()
    descriptor = font.get("/FontDescriptor")
    return descriptor is not None and any(
        k in descriptor.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3")
    )


def _filters(stream: Any) -> list[str]:
    value = stream.get("/Filter")
    value = value.get_object() if value is not None else None
    return [] if value is None else [str(f) for f in value] if isinstance(value, ArrayObject) else [str(value)]


def pdfa_problems(pdf: bytes) -> list[str]:
    """What keeps ``pdf`` from being PDF/A-2b, as far as its structure tells (empty: nothing found).

    Checks what textlayer writes and what an input can bring: encryption, file identifier, XMP (pdfaid part 2,
    conformance B, an unfiltered stream, the Producer mirrored), the sRGB output intent, embedded fonts, LZW,
    interpolated images, hidden or unprintable annotations, JavaScript.
    """
    problems: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(pdf), strict=False)
        if reader.is_encrypted:
            return ["the file is encrypted"]
        if "/ID" not in reader.trailer:
            problems.append("the trailer has no file identifier (/ID)")
        root: Any = reader.trailer["/Root"].get_object()
        metadata = root.get("/Metadata")
        if metadata is None:
            problems.append("no XMP metadata")
        else:
            metadata = metadata.get_object()
            if "/Filter" in metadata:
                problems.append("the XMP metadata stream is filtered")
            xmp = metadata.get_data().decode("utf-8", "replace")
            if "<pdfaid:part>2</pdfaid:part>" not in xmp or "<pdfaid:conformance>B</pdfaid:conformance>" not in xmp:
                problems.append("the XMP metadata does not claim PDF/A-2b (pdfaid part 2, conformance B)")
            info: Mapping[str, Any] = reader.metadata or {}
            producer = info.get("/Producer")
            if producer is not None and f"<pdf:Producer>{escape(str(producer))}</pdf:Producer>" not in xmp:
                problems.append("the document information and the XMP metadata disagree (Producer)")
        intents = [i.get_object() for i in root.get("/OutputIntents") or []]
        profiles = [i["/DestOutputProfile"].get_object() for i in intents if i.get("/S") == "/GTS_PDFA1"]
        if not any(int(p.get("/N", 0)) == 3 and p.get_data()[16:20] == b"RGB " for p in profiles):
            problems.append("no sRGB output intent (GTS_PDFA1 with an RGB ICC profile)")
        names = root.get("/Names")
        if names is not None and "/JavaScript" in names.get_object():
            problems.append("the document carries JavaScript")
        for number, page in enumerate(reader.pages, start=1):
            content = page.get_contents()
            operations = list(content.operations) if content is not None else []
            for font in _rendered_fonts(operations, page.get("/Resources"), reader):
                if not _embedded(font):
                    problems.append(f"page {number}: the font {font.get('/BaseFont', '?')} is not embedded")
            for kind, item in _images_and_forms(page.get("/Resources")):
                if "/LZWDecode" in _filters(item):
                    problems.append(f"page {number}: an LZW-compressed stream")
                if kind == "image" and item.get("/Interpolate"):
                    problems.append(f"page {number}: an image asks to be interpolated")
            for ref in page.get("/Annots") or []:
                flags = int(ref.get_object().get("/F", 0))
                if not flags & 4 or flags & (1 | 2 | 32):
                    problems.append(f"page {number}: an annotation is hidden or not printable")
    except Exception as exc:  # a file we cannot read back is not a PDF/A either
        problems.append(f"the file cannot be read back ({type(exc).__name__}: {exc})")
    return list(dict.fromkeys(problems))[:20]
