"""`textlayer ocr` end to end on real files, with the real models."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys

import pytest
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from tests.pages import make_page, page_to_png

pytestmark = [pytest.mark.onnx, pytest.mark.slow]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textlayer", *args], capture_output=True, text=True, timeout=600)


def _words(text: str) -> list[str]:
    return re.sub(r"\s+", " ", text).strip().split(" ")


@pytest.fixture(scope="module")
def receipt():
    return make_page("receipt", dpi=150)


def test_png_to_text_json_and_valid_hocr(tmp_path, receipt):
    source = tmp_path / "receipt.png"
    source.write_bytes(page_to_png(receipt))
    text = _run("ocr", str(source))
    assert text.returncode == 0, text.stderr
    assert _words(text.stdout) == _words(receipt.text)

    out_json = tmp_path / "receipt.json"
    assert _run("ocr", str(source), "--format", "json", "-o", str(out_json)).returncode == 0
    page = json.loads(out_json.read_text())["pages"][0]["page"]  # the result JSON (schemas/result.schema.json)
    assert page["width"] == receipt.image.shape[1] and page["lines"][0]["words"][0]["quad"]

    out_hocr = tmp_path / "receipt.hocr"
    assert _run("ocr", str(source), "--format", "hocr", "-o", str(out_hocr)).returncode == 0
    hocr = out_hocr.read_text()
    assert "ocrx_word" in hocr and "x_wconf" in hocr
    validator = shutil.which("hocr-spec") or str(__import__("pathlib").Path(sys.executable).with_name("hocr-spec"))
    check = subprocess.run([validator, "--parse-strict", str(out_hocr)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_multipage_tiff_has_a_progress_bar_and_form_feeds(tmp_path, receipt):
    frames = [Image.fromarray(receipt.image)] * 2
    source = tmp_path / "two.tiff"
    frames[0].save(source, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    result = _run("ocr", str(source))
    assert result.returncode == 0, result.stderr
    pages = result.stdout.rstrip("\n").split("\f")
    assert len(pages) == 2 and all(_words(p) == _words(receipt.text) for p in pages)


def test_pdf_scan_is_rasterised_and_text_pages_are_left_alone(tmp_path, receipt):
    buffer = io.BytesIO()
    width_pt = receipt.image.shape[1] * 72 / receipt.dpi
    height_pt = receipt.image.shape[0] * 72 / receipt.dpi
    c = canvas.Canvas(buffer, pagesize=(width_pt, height_pt))
    c.drawImage(ImageReader(Image.fromarray(receipt.image)), 0, 0, width_pt, height_pt)
    c.showPage()
    c.setFont("Helvetica", 12)
    c.drawString(20, 100, "Born digital page")
    c.showPage()
    c.save()
    source = tmp_path / "mixed.pdf"
    source.write_bytes(buffer.getvalue())
    result = _run("ocr", str(source), "--dpi", "200")
    assert result.returncode == 0, result.stderr
    scanned, digital = result.stdout.rstrip("\n").split("\f")
    assert _words(scanned) == _words(receipt.text)
    assert digital == ""
    assert "page 2 already has text" in result.stderr
