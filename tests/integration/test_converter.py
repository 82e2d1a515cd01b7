"""The jailed document converter: confined like an OCR worker, and a crash or hang costs one document."""

from __future__ import annotations

import io
import time
import zlib

import pytest
from reportlab.pdfgen import canvas

from tests.integration.test_sandbox import LAYERS, _statuses
from textlayer.config import Settings
from textlayer.conversion import JailedConverter, converter_policy
from textlayer.errors import InputDocumentError
from textlayer.media.limits import DocumentLimits

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def _converter(**overrides) -> JailedConverter:
    settings = Settings(sandbox_layers=LAYERS)
    policy = converter_policy(settings, test_hooks=True)
    if overrides:
        from dataclasses import replace

        policy = replace(policy, **overrides)
    return JailedConverter(policy, DocumentLimits())


def _pdf(text: str | None = None) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(300, 200))
    pdf.rect(10, 10, 80, 40, fill=1)
    if text:
        pdf.drawString(20, 120, text)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _flate_bomb(megabytes: int) -> bytes:
    """One page whose content stream inflates to ``megabytes`` MB of spaces (PDFium has no limit)."""
    compressor = zlib.compressobj(9)
    block = b" " * 10_000_000
    stream = b"".join(compressor.compress(block) for _ in range(megabytes // 10)) + compressor.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.7\n")
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_the_converter_is_confined_like_an_ocr_worker():
    with _converter() as converter:
        assert converter.inspect(_pdf("hello")).pages == 1
        pool = converter._started()
        (worker,) = pool.live_workers
        for status in _statuses(worker.pid):
            assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1" and int(status["CapEff"], 16) == 0
        assert pool.layers["rlimits"]["as_mib"] == 2048 and pool.layers["seccomp"]


def test_a_decompression_bomb_kills_two_converters_then_the_next_document_converts():
    with _converter() as converter:
        with pytest.raises(InputDocumentError) as caught:
            list(converter.pages(_flate_bomb(1500), [0]))
        assert caught.value.reason == "parse_crashed"
        assert converter._started().deaths["crash"] == 2
        (page,) = converter.pages(_pdf(), [0])
        assert page.data is not None and page.data.startswith(b"\x89PNG")


def test_a_converter_past_its_deadline_is_killed_and_the_document_refused():
    with _converter(deadline_s=1.0) as converter:
        with pytest.raises(InputDocumentError) as caught:
            converter._call({"op": "hang", "seconds": 30}, b"", lambda header, payload: header)
        assert caught.value.reason in ("parse_timeout", "parse_crashed")
        # The 1 s deadline also bounds waiting for a free converter: let the replacement start first.
        deadline = time.monotonic() + 60
        while not converter._started().live_workers and time.monotonic() < deadline:
            time.sleep(0.1)
        assert converter.inspect(_pdf("after the hang")).kind == "PDF"
