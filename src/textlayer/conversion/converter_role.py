"""The converter role of a jailed worker: inspect, rasterise and rebuild untrusted documents; runs inside the jail.

The converter is a jailed worker without models (:func:`~textlayer.wire.converters.converter_policy`): PDFium,
pypdf, Pillow and reportlab parse the upload here and nowhere else. PDFium has no decompression
limit and aborts its process when memory runs out (design/RELIABILITY.md F11): here that kills
one jailed converter under its RLIMIT_AS, which the supervisor sees, retries once and then
refuses the document as ``parse_crashed``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from PIL import Image
from pypdf import PdfWriter
from reportlab.pdfgen import canvas

from textlayer.build_options import BuildOptions
from textlayer.conversion import wire
from textlayer.elements import Line, PageText, Word
from textlayer.media.documents import inspect_document, render_pages
from textlayer.media.limits import DocumentLimits
from textlayer.pdf_overlay import build_searchable_pdf, pdfa_problems
from textlayer.sandbox.handlers import Handlers, Reply
from textlayer.sandbox.policy import SandboxPolicy


class ConvertHandlers(Handlers):
    """Request dispatch of a converter: ``inspect``, ``render`` and ``build`` (plus ``ping`` and test hooks)."""

    memory_reason = "document_too_large"
    memory_message = "Reading the document needs more memory than a converter may use."

    def __init__(self, policy: SandboxPolicy, write: Callable[[bytes], None]) -> None:
        """A converter answers no ``ocr`` requests."""
        super().__init__(policy, write)
        self._ops.update(inspect=self._inspect, render=self._render, build=self._build)

    def _inspect(self, header: dict[str, Any], payload: bytes) -> Reply:
        info = inspect_document(payload, DocumentLimits.from_dict(header["limits"]))
        return {"ok": True, "kind": info.kind, "pages": info.pages}, b""

    def _render(self, header: dict[str, Any], payload: bytes) -> Reply:
        indexes = [int(i) for i in header["pages"]]
        budget = header.get("pixel_budget")
        pages = render_pages(
            payload,
            indexes,
            DocumentLimits.from_dict(header["limits"]),
            force_ocr=bool(header.get("force_ocr")),
            redo_ocr=bool(header.get("redo_ocr")),
            deskew=bool(header.get("deskew")),
            pixel_budget=None if budget is None else int(budget),
        )
        return wire.encode_rendered(pages, payload)

    def _build(self, header: dict[str, Any], payload: bytes) -> Reply:
        document, pages, with_text, options = wire.decode_build_request(header, payload)
        pdf = build_searchable_pdf(document, pages, pages_with_text=with_text, options=options)
        problems = pdfa_problems(pdf) if options.output_type == "pdfa" else []
        return {"ok": True, "problems": problems}, pdf


def _sample_pdf(
    *, text: str | None, password: str | None = None, algorithm: str = "AES-128", invisible: bool = False
) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(300, 200))
    if text:
        pdf.setFont("Helvetica", 14)
        if invisible:  # an earlier OCR layer, as --redo-ocr finds it (in a Form XObject, like ours)
            pdf.beginForm("layer")
            layer = pdf.beginText(20, 100)
            layer.setTextRenderMode(3)
            layer.textOut(text)
            pdf.drawText(layer)
            pdf.endForm()
            pdf.doForm("layer")
        else:
            pdf.drawString(20, 100, text)
    pdf.rect(10, 10, 50, 20, fill=1)  # something to render, so the page is not blank
    pdf.showPage()
    pdf.save()
    if password is None:
        return buffer.getvalue()
    writer = PdfWriter(clone_from=io.BytesIO(buffer.getvalue()))
    writer.encrypt(user_password=password, owner_password="owner", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _sample_tiff() -> bytes:
    frames = [Image.fromarray(np.full((60, 80), shade, np.uint8)) for shade in (255, 40)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    return buffer.getvalue()


def _sample_page(width: int, height: int) -> PageText:
    quad = ((10.0, 10.0), (60.0, 10.0), (60.0, 30.0), (10.0, 30.0))
    line = Line(words=(Word("warm", quad, 0.9),), quad=quad, confidence=0.9)
    return PageText(width=width, height=height, rotation=0, lines=(line,), dpi=150.0)


def warm_up(handlers: ConvertHandlers) -> int:
    """Drive every converter path once before lockdown (lazy imports, codecs, error paths); returns requests.

    Raises:
        RuntimeError: a path did not answer as it must.
    """
    limits = DocumentLimits().to_dict()
    documents = {
        "scan": _sample_pdf(text=None),
        "text": _sample_pdf(text="Already searchable"),
        "ocr_layer": _sample_pdf(text="Earlier OCR", invisible=True),
        "owner_only": _sample_pdf(text=None, password=""),
        "owner_only_rc4": _sample_pdf(text=None, password="", algorithm="RC4-128"),
        "owner_only_aes256": _sample_pdf(text=None, password="", algorithm="AES-256"),
        "tiff": _sample_tiff(),
    }
    # Every way a document can be read and built: plain, --force-ocr, --redo-ocr with --deskew, and the outputs
    # --rotate-pages, a page replaced by its straightened image, PDF/A (ICC profile, XMP, its checks).
    modes: list[dict[str, bool]] = [{}, {"force_ocr": True}, {"redo_ocr": True, "deskew": True}]
    outputs = [
        BuildOptions(),
        BuildOptions(output_type="pdfa", rotate={0: 90}, redo_ocr=True),
        BuildOptions(output_type="pdfa", rasterize={0: 1.5}),
    ]
    requests = 0
    for name, document in documents.items():
        header, _ = handlers.handle({"op": "inspect", "limits": limits}, document)
        pages = int(header.get("pages", 0))
        # The options run the same code on every document: all of them on one document of each kind is enough.
        variants = zip(modes, outputs, strict=True) if name in ("scan", "ocr_layer", "tiff") else [({}, outputs[0])]
        for mode, options in variants:
            request = {"op": "render", "limits": limits, "pages": list(range(pages)), **mode}
            header, payload = handlers.handle(request, document)
            rendered = wire.decode_rendered(header, payload, list(range(pages)), document)
            results: list[PageText | None] = [
                _sample_page(64, 64) if page.data is None else _sample_page(*_png_size(page.data)) for page in rendered
            ]
            with_text = [p.index for p in rendered if p.has_text and p.index not in options.rasterize]
            build_header, pdf = handlers.handle(*wire.encode_build_request(document, results, with_text, options))
            requests += 2
            if not build_header.get("ok") or not pdf.startswith(b"%PDF-"):
                raise RuntimeError(f"converter warm-up failed on {name}: {header} {build_header}")
        requests += 1
    image = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(image, format="JPEG")
    for document in (image.getvalue(), b"%PDF-1.7\n garbage", _sample_pdf(text=None, password="secret"), b""):
        header, _ = handlers.handle({"op": "inspect", "limits": limits}, document)
        requests += 1
        if document[:3] == b"\xff\xd8\xff":
            for mode, options in zip(modes, outputs, strict=True):
                handlers.handle({"op": "render", "limits": limits, "pages": [0], **mode}, document)
                handlers.handle(*wire.encode_build_request(document, [_sample_page(40, 40)], [], options))
                requests += 2
        elif header.get("error") != "input":
            raise RuntimeError(f"converter warm-up: a bad document was not refused cleanly: {header}")
    json.dumps(handlers.handle({"op": "nonexistent"}, b"")[0])
    return requests + 1


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def start(policy: SandboxPolicy, write: Callable[[bytes], None], timings: dict[str, float]) -> ConvertHandlers:
    """Warm every converter path up (before lockdown); nothing else to load."""
    cv2.setNumThreads(policy.threads)
    mark = time.monotonic()
    handlers = ConvertHandlers(policy, write)
    warm_up(handlers)
    timings["warm_up"] = time.monotonic() - mark
    return handlers
