"""The parts behind OCRmyPDF's flags and the output formats: deskew, invisible-text removal, PDF/A, ALTO, JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pikepdf
import pytest
import xmlschema
from reportlab.pdfgen import canvas

from tests.small_pages import png, skewed, small_receipt
from textlayer import formats
from textlayer.build_options import BuildOptions
from textlayer.config import Settings
from textlayer.conversion import InProcessConverter
from textlayer.elements import Line, PageRecord, PageText, Word
from textlayer.errors import InputDocumentError, ModelError, OutputInvalid, PriorOcrFound, UsageError
from textlayer.media.deskew import estimate_skew
from textlayer.media.limits import DocumentLimits
from textlayer.pdf_overlay.merge import _without_invisible_text, pdfa_problems
from textlayer.worker.languages import check_languages

ROOT = Path(__file__).resolve().parents[2]
ALTO_DIR = ROOT / "tests" / "resources" / "alto"


def _page() -> PageText:
    first = ((10.0, 10.0), (60.0, 10.0), (60.0, 30.0), (10.0, 30.0))
    second = ((70.0, 10.0), (140.0, 10.0), (140.0, 30.0), (70.0, 30.0))
    line = Line(
        (Word("Tom & Jerry", first, 0.91), Word('"<b>"', second, 0.5)),
        ((10.0, 10.0), (140.0, 10.0), (140.0, 30.0), (10.0, 30.0)),
        0.7,
    )
    return PageText(200, 100, 0, (line,), dpi=150.0, timings_s={"recognition": 0.5})


@pytest.mark.parametrize("degrees", [-4.0, -1.5, 0.0, 2.0, 6.5])
def test_deskew_finds_the_angle_that_straightens_the_page(degrees):
    angle = estimate_skew(skewed(small_receipt(), degrees).image)
    assert abs(angle + degrees) <= 0.25


def test_invisible_text_blocks_are_removed_and_visible_ones_kept():
    ops = [
        ([], b"q"),
        ([], b"BT"),
        ([3], b"Tr"),
        (["old ocr"], b"Tj"),
        ([], b"ET"),
        ([], b"BT"),
        ([0], b"Tr"),
        (["printed"], b"Tj"),
        ([], b"ET"),
        ([], b"Q"),
        ([], b"BT"),
        ([3], b"Tr"),
        (["more ocr"], b"TJ"),
        ([], b"ET"),
    ]
    kept, removed = _without_invisible_text(ops)
    assert removed == 2
    assert [o for o, op in kept if op in (b"Tj", b"TJ")] == [["printed"]]
    assert kept[-1] == ([3], b"Tr")  # the render mode the removed block left behind still holds


def test_exit_codes_follow_ocrmypdf():
    assert UsageError("x").exit_code == 1
    assert InputDocumentError("x", reason="corrupt_pdf").exit_code == 2
    assert InputDocumentError("x", reason="encrypted_pdf").exit_code == 8
    assert ModelError("x").exit_code == 3
    assert OutputInvalid("x").exit_code == 4
    assert PriorOcrFound("x").exit_code == 6


def test_languages_are_checked_against_the_model_dictionary():
    assert check_languages("eng+deu+chi_sim", "small") == ["eng", "deu", "chi_sim"]
    with pytest.raises(ModelError, match=r"cannot read xyz \(not a language code we know\)"):
        check_languages("eng+xyz", "small")


def test_build_options_refuse_impossible_values():
    with pytest.raises(ValueError, match="output type"):
        BuildOptions.from_dict({"output_type": "pdfx"})
    with pytest.raises(ValueError, match="at most"):
        BuildOptions.from_dict({"rasterize": {"0": 45}})
    with pytest.raises(ValueError, match="multiples of 90"):
        BuildOptions(rotate={0: 45})
    with pytest.raises(ValueError, match="TEXTLAYER_OUTPUT_TYPE"):
        Settings.from_env({"TEXTLAYER_OUTPUT_TYPE": "pdfa-3"})


def test_pdfa_of_an_image_passes_the_checks_and_a_visible_unembedded_font_does_not():
    converter = InProcessConverter(DocumentLimits())
    image = png(small_receipt())
    built = converter.build_pdf(image, [_page()], [], BuildOptions(output_type="pdfa"))
    assert built.problems == ()
    with pikepdf.open(io.BytesIO(built.pdf)) as pdf, pdf.open_metadata() as xmp:
        assert xmp.get("pdfaid:part") == "2"
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(20, 20, "Helvetica, not embedded")
    page.showPage()
    page.save()
    assert any("Helvetica is not embedded" in p for p in pdfa_problems(buffer.getvalue()))
    assert "no XMP metadata" in pdfa_problems(buffer.getvalue())


def test_alto_of_tricky_text_validates_against_the_schema():
    schema = xmlschema.XMLSchema(
        str(ALTO_DIR / "alto-4-4.xsd"),
        locations=[("http://www.w3.org/1999/xlink", str(ALTO_DIR / "xlink.xsd"))],
        use_location_hints=False,
    )
    alto = formats.to_alto([_page(), None], filename="a <b> & c.png")
    schema.validate(alto)
    assert 'CONTENT="Tom &amp; Jerry"' in alto and "<SP " in alto and 'WC="0.910"' in alto


def test_result_json_of_every_kind_of_page_follows_the_schema():
    records = [
        PageRecord(0, page=_page()),
        PageRecord(1, has_text=True),
        PageRecord(2, blank=True),
        PageRecord(3, error_reason="ocr_unavailable", error_message="No OCR server could read the page."),
        PageRecord(4, page=_page(), reused_from="job-1"),
    ]
    document = json.loads(formats.to_json(records, filename="x.pdf", job="job-2"))
    jsonschema.validate(document, json.loads((ROOT / "schemas" / "result.schema.json").read_text()))
    assert document["version"] == formats.RESULT_VERSION and document["document"]["pages"] == 5
