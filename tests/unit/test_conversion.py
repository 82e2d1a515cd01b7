"""The converter wire format: what a jailed converter sends back is checked like any untrusted reply."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from reportlab.pdfgen import canvas

from textlayer.build_options import BuildOptions
from textlayer.conversion import InProcessConverter
from textlayer.conversion.wire import decode_build_request, decode_rendered, encode_build_request, encode_rendered
from textlayer.elements import Line, PageText, Word
from textlayer.errors import InputDocumentError, SandboxCrashed
from textlayer.media.documents import render_pages
from textlayer.media.limits import DocumentLimits
from textlayer.media.pages import EncodedPage

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def _pdf(*pages: str | None) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(200, 100))
    for text in pages:
        if text == "dark":
            pdf.rect(10, 10, 50, 30, fill=1)
        elif text:
            pdf.drawString(10, 50, text)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def test_rendered_pages_round_trip_including_pass_through_and_pages_without_ocr():
    document = b"\xff\xd8\xff original jpeg"
    pages = [
        EncodedPage(0, document, 0),
        EncodedPage(1, PNG, 0, 150.0),
        EncodedPage(2, None, 0, None, has_text=True),
        EncodedPage(3, None, 0, 300.0, blank=True),
    ]
    header, payload = encode_rendered(pages, document)
    assert payload == PNG  # the original is never sent back
    assert decode_rendered(header, payload, [0, 1, 2, 3], document) == pages


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, p: ({**h, "pages": h["pages"][:1]}, p),  # fewer pages than asked
        lambda h, p: ({"ok": True, "pages": [{**h["pages"][0], "index": 7}, *h["pages"][1:]]}, p),
        lambda h, p: (h, p + b"extra"),  # trailing bytes
        lambda h, p: (h, p[:-3]),  # lengths do not add up
        lambda h, p: (h, b"GIF89a" + p[6:]),  # not a PNG
        lambda h, p: ({"ok": True, "pages": [{**h["pages"][0], "dpi": 1e9}, *h["pages"][1:]]}, p),
        lambda h, p: ({"ok": True, "pages": [{**h["pages"][0], "blank": "yes"}, *h["pages"][1:]]}, p),
        lambda h, p: ({"ok": True, "pages": "all of them"}, p),
        lambda h, p: ({"ok": True}, p),
    ],
)
def test_a_malformed_render_reply_is_a_protocol_violation(tamper):
    header, payload = encode_rendered([EncodedPage(0, PNG, 0, 150.0), EncodedPage(1, PNG, 0)], b"doc")
    bad_header, bad_payload = tamper(header, payload)
    with pytest.raises(SandboxCrashed) as caught:
        decode_rendered(bad_header, bad_payload, [0, 1], b"doc")
    assert caught.value.reason == "protocol"


def test_a_refusal_keeps_its_reason_code():
    refusal = {"ok": False, "error": "input", "reason": "encrypted_pdf", "message": "The PDF is password-protected"}
    with pytest.raises(InputDocumentError) as caught:
        decode_rendered(refusal, b"", [0], b"doc")
    assert caught.value.reason == "encrypted_pdf"


def test_build_request_round_trip():
    quad = ((1.0, 2.0), (30.0, 2.0), (30.0, 12.0), (1.0, 12.0))
    page = PageText(10, 20, 0, (Line((Word("héllo", quad, 0.5),), quad, 0.5),), dpi=150.0)
    options = BuildOptions(output_type="pdfa", rasterize={0: -1.5}, rotate={0: 90}, redo_ocr=True)
    header, payload = encode_build_request(b"%PDF-1.7 doc", [page, None], [1], options)
    assert decode_build_request(header, payload) == (b"%PDF-1.7 doc", [page, None], [1], options)


def test_render_finds_text_pages_blank_pages_and_pages_to_read():
    pages = render_pages(_pdf("Already searchable", None, "dark"), [0, 1, 2], DocumentLimits(dpi=72))
    assert [(p.has_text, p.blank, p.data is not None) for p in pages] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert pages[2].data.startswith(b"\x89PNG")


def test_tiff_frames_are_split_and_a_single_image_passes_through():
    frames = [Image.fromarray(np.full((30, 40), shade, np.uint8)) for shade in (0, 255, 90)]
    frames[0].putpixel((3, 3), 255)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    tiff = buffer.getvalue()
    converter = InProcessConverter(DocumentLimits())
    assert converter.inspect(tiff).pages == 3
    split = list(converter.pages(tiff, [0, 1, 2]))
    assert [(p.index, p.blank, p.data is not None) for p in split] == [
        (0, False, True),
        (1, True, False),
        (2, True, False),
    ]
    png = io.BytesIO()
    frames[0].save(png, format="PNG")
    (single,) = converter.pages(png.getvalue(), [0])
    assert single.data == png.getvalue()


def _signed(document: bytes) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import (
        ArrayObject,
        ByteStringObject,
        DictionaryObject,
        NameObject,
        NumberObject,
        TextStringObject,
    )

    writer = PdfWriter(clone_from=io.BytesIO(document))
    signature = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Sig"),
            NameObject("/Filter"): NameObject("/Adobe.PPKLite"),
            NameObject("/SubFilter"): NameObject("/adbe.pkcs7.detached"),
            NameObject("/Contents"): ByteStringObject(b"\0" * 64),
        }
    )
    field = DictionaryObject(
        {
            NameObject("/FT"): NameObject("/Sig"),
            NameObject("/T"): TextStringObject("Signature1"),
            NameObject("/V"): writer._add_object(signature),
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
        }
    )
    reference = writer._add_object(field)
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([reference]), NameObject("/SigFlags"): NumberObject(3)}
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_signed_pdf_is_refused_unless_the_caller_accepts_invalidating_it():
    signed = _signed(_pdf("dark"))
    with pytest.raises(InputDocumentError) as caught:
        InProcessConverter(DocumentLimits()).inspect(signed)
    assert caught.value.reason == "signed_pdf"
    assert InProcessConverter(DocumentLimits(invalidate_signature=True)).inspect(signed).pages == 1


def test_page_and_pixel_limits_have_their_reasons():
    with pytest.raises(InputDocumentError) as caught:
        InProcessConverter(DocumentLimits(max_pages=1)).inspect(_pdf(None, None))
    assert caught.value.reason == "too_many_pages"
    big = io.BytesIO()
    Image.new("L", (3000, 2000), 255).save(big, format="PNG")
    with pytest.raises(InputDocumentError) as caught:
        InProcessConverter(DocumentLimits(max_pixels=5_000_000)).inspect(big.getvalue())
    assert caught.value.reason == "image_too_large"


def test_a_sliver_page_is_rendered_at_a_lower_dpi():
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(14_400, 72))
    pdf.rect(10, 10, 14_000, 30, fill=1)
    pdf.showPage()
    pdf.save()
    (page,) = render_pages(buffer.getvalue(), [0], DocumentLimits(dpi=300))
    assert page.dpi is not None and 14_400 * page.dpi / 72 <= 20_000 + 1


def test_a_converter_may_answer_a_prefix_but_never_nothing():
    header, payload = encode_rendered([EncodedPage(0, PNG, 0), EncodedPage(1, PNG, 0)], b"doc")
    assert [p.index for p in decode_rendered(header, payload, [0, 1, 2, 3], b"doc")] == [0, 1]
    with pytest.raises(SandboxCrashed):
        decode_rendered({"ok": True, "pages": []}, b"", [0, 1], b"doc")


def test_a_pixel_budget_bounds_one_render_request():
    document = _pdf("dark", "dark", "dark")
    first = render_pages(document, [0, 1, 2], DocumentLimits(dpi=72), pixel_budget=1)
    assert [p.index for p in first] == [0]
    converter = InProcessConverter(DocumentLimits(dpi=72))
    assert [p.index for p in converter.pages(document, [0, 1, 2])] == [0, 1, 2]
