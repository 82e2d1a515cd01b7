"""`textlayer ocr` as an OCRmyPDF user runs it: every flag, output type, format and exit status, on the real command.

Real jails, real models, small pages (a few lines of the generated receipt): each OCR run costs a few seconds, so
the inputs and the runs that several tests read are shared.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import jsonschema
import pdfplumber
import pikepdf
import pytest
import xmlschema

from tests.integration.test_sandbox import LAYERS
from tests.pages import rotate_page
from tests.small_pages import pdf_of, png, share_found, skewed, small_receipt, words

pytestmark = [pytest.mark.onnx, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TEXTLAYER = [sys.executable, "-m", "textlayer"]
SCHEMA = json.loads((ROOT / "schemas" / "result.schema.json").read_text())
ALTO_DIR = ROOT / "tests" / "resources" / "alto"
ALTO_NS = "{http://www.loc.gov/standards/alto/ns-v4#}"


ENV = {**os.environ, "TEXTLAYER_SANDBOX_LAYERS": LAYERS}


def run(*args: str, cwd: Path, stdin: bytes | None = None):
    return subprocess.run([*TEXTLAYER, *args], cwd=cwd, input=stdin, capture_output=True, timeout=300, env=ENV)


def expected_words() -> list[str]:
    return words(small_receipt().text)


def pdf_text(pdf: bytes | Path) -> list[str]:
    with pdfplumber.open(io.BytesIO(pdf) if isinstance(pdf, bytes) else pdf) as document:
        return [page.extract_text() or "" for page in document.pages]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ocrmypdf")
    page = small_receipt()
    (folder / "small.png").write_bytes(png(page))
    (folder / "sideways.png").write_bytes(png(rotate_page(page, 90)))
    # The documented OCRmyPDF line's input: a crooked scan and a page scanned sideways.
    (folder / "in.pdf").write_bytes(pdf_of(skewed(page, 3.0), rotate_page(page, 90)))
    # A born-digital page, a scan with an earlier (wrong) OCR layer, and a plain scan.
    (folder / "mixed.pdf").write_bytes(pdf_of("Born digital page", page, page, invisible={1: "STALE LAYER WORDS"}))
    (folder / "digital.pdf").write_bytes(pdf_of("Born digital page"))
    return folder


# -- the documented command line ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def documented_run(work):
    """`ocrmypdf -l eng --rotate-pages --deskew --jobs 2 --output-type pdfa in.pdf out.pdf`, renamed; stderr on a
    terminal (the progress bar)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal of 100 columns
    started = time.monotonic()
    process = subprocess.Popen(
        [*TEXTLAYER, "ocr", "-l", "eng", "--rotate-pages", "--deskew", "--jobs", "2", "--output-type", "pdfa"]
        + ["in.pdf", "out.pdf"],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=ENV,
    )
    os.close(terminal)
    seen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=300)
    os.close(controller)
    return process.returncode, seen.decode(errors="replace"), time.monotonic() - started


def test_the_ocrmypdf_documentation_command_line_works_unchanged(work, documented_run):
    returncode, terminal, _ = documented_run
    assert returncode == 0, terminal
    assert "OCR" in terminal and "2/2" in terminal  # the progress bar, drawn because stderr is a terminal
    pages = pdf_text(work / "out.pdf")
    assert len(pages) == 2
    for text in pages:
        assert share_found(expected_words(), words(text)) >= 0.8, text


def test_rotate_pages_turns_the_sideways_page_upright(work, documented_run):
    with pikepdf.open(work / "out.pdf") as pdf:
        first, second = pdf.pages
        assert int(first.obj.get("/Rotate", 0)) == 0
        rotate = int(second.obj.get("/Rotate", 0))
        assert rotate in (90, 270)
        x0, y0, x1, y1 = (float(v) for v in second.mediabox)
        width, height = (y1 - y0, x1 - x0) if rotate in (90, 270) else (x1 - x0, y1 - y0)
        assert width > height  # the receipt's header is wider than tall when upright


def test_deskew_straightens_the_crooked_page(work, documented_run):
    with pdfplumber.open(work / "out.pdf") as pdf:
        page = pdf.pages[0]
        assert page.images, "a deskewed page is its straightened image"
        lines: dict[int, list[float]] = {}
        for word in page.extract_words():
            lines.setdefault(round(word["bottom"] / 6), []).append(word["bottom"])
        # 3 degrees over the ~170 pt of a line would move its ends ~9 pt apart; straightened, they line up.
        spread = max(max(v) - min(v) for v in lines.values() if len(v) > 1)
        assert spread < 2.0


def test_pdfa_output_has_what_pdfa_2b_needs(work, documented_run):
    with pikepdf.open(work / "out.pdf") as pdf:
        assert not pdf.is_encrypted
        assert "/ID" in pdf.trailer
        with pdf.open_metadata() as xmp:
            assert xmp.get("pdfaid:part") == "2" and xmp.get("pdfaid:conformance") == "B"
            assert xmp.get("pdf:Producer") == str(pdf.docinfo["/Producer"])
        assert "/Filter" not in pdf.Root.Metadata
        (intent,) = pdf.Root.OutputIntents
        assert intent.S == "/GTS_PDFA1"
        profile = intent.DestOutputProfile
        icc = profile.read_bytes()
        assert int(profile.N) == 3 and icc[36:40] == b"acsp" and icc[16:20] == b"RGB "
        # OCR text is invisible (render mode 3), which PDF/A-2 exempts; our font is embedded all the same.
        for font in [font for page in pdf.pages for font in _fonts_showing_visible_text(page.obj)]:
            assert "/FontFile2" in font.FontDescriptor, f"{font.BaseFont} renders text and is not embedded"
        glyphless = [f for p in pdf.pages for f in _fonts_showing_visible_text(p.obj, invisible_too=True)]
        assert glyphless and all("/FontFile2" in f.FontDescriptor for f in glyphless)


def _fonts_showing_visible_text(owner, resources=None, *, invisible_too=False, depth=0):
    """Fonts that show text in a page's (or form's) content, read with pikepdf: what PDF/A-2 wants embedded."""
    resources = owner.get("/Resources", resources)
    fonts, mode, font = resources.get("/Font", {}), [0], None
    for operands, operator in pikepdf.parse_content_stream(owner):
        op = str(operator)
        if op == "Tf":
            font = fonts.get(str(operands[0]))
        elif op == "Tr":
            mode[-1] = int(operands[0])
        elif op == "q":
            mode.append(mode[-1])
        elif op == "Q" and len(mode) > 1:
            mode.pop()
        elif op in ("Tj", "TJ", "'", '"') and font is not None and (invisible_too or mode[-1] != 3):
            yield font
        elif op == "Do" and depth < 8:
            xobject = resources.get("/XObject", {}).get(str(operands[0]))
            if xobject is not None and xobject.get("/Subtype") == "/Form":
                yield from _fonts_showing_visible_text(xobject, resources, invisible_too=invisible_too, depth=depth + 1)


def test_pdfa_output_passes_verapdf_when_installed(work, documented_run):
    verapdf = shutil.which("verapdf")
    if verapdf is None:
        pytest.skip(
            "veraPDF is not installed (no package in the registries this project uses); the structural "
            "PDF/A checks above still ran"
        )
    result = subprocess.run([verapdf, "--flavour", "2b", str(work / "out.pdf")], capture_output=True, text=True)
    assert 'isCompliant="true"' in result.stdout, result.stdout[-3000:]


# -- standard input and output, sidecar, quiet, output type none -------------------------------------------------


def test_standard_input_to_standard_output_with_sidecar_and_quiet(work):
    # A sideways page with a threshold no page can reach: --rotate-pages leaves it as it is.
    result = run(
        "ocr",
        "--no-progress-bar",
        "-q",
        "--sidecar",
        "side.txt",
        "--rotate-pages",
        "--rotate-pages-threshold",
        "1000",
        "-",
        "-",
        cwd=work,
        stdin=(work / "sideways.png").read_bytes(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"%PDF-") and result.stderr == b""
    assert share_found(expected_words(), words((work / "side.txt").read_text())) >= 0.8
    with pikepdf.open(io.BytesIO(result.stdout)) as pdf:
        assert int(pdf.pages[0].obj.get("/Rotate", 0)) == 0


def test_output_type_none_writes_only_the_sidecar(work):
    # OCRmyPDF's short flags and its pixel limit's name, on a straight upright page: nothing to turn or straighten.
    result = run(
        "ocr",
        "-r",
        "-d",
        "--max-image-mpixels",
        "50",
        "--output-type",
        "none",
        "--sidecar",
        "only.txt",
        "small.png",
        "-",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert share_found(expected_words(), words((work / "only.txt").read_text())) >= 0.8


# -- formats -------------------------------------------------------------------------------------------------------


def test_alto_output_validates_against_alto_4_and_reads_back(work):
    result = run("ocr", "--format", "alto", "small.png", "page.xml", cwd=work)
    assert result.returncode == 0, result.stderr
    schema = xmlschema.XMLSchema(
        str(ALTO_DIR / "alto-4-4.xsd"),
        locations=[("http://www.w3.org/1999/xlink", str(ALTO_DIR / "xlink.xsd"))],
        use_location_hints=False,
    )
    schema.validate(str(work / "page.xml"))
    tree = schema.to_etree(schema.to_dict(str(work / "page.xml")))  # round trip through the schema
    strings = tree.findall(f".//{ALTO_NS}String")
    assert share_found(expected_words(), [s.get("CONTENT") for s in strings]) >= 0.8
    assert all(0.0 <= float(s.get("WC")) <= 1.0 and float(s.get("WIDTH")) > 0 for s in strings)
    assert tree.findall(f".//{ALTO_NS}SP") and tree.findall(f".//{ALTO_NS}TextBlock")
    # A real ALTO consumer reads it back.
    consumer = Path(sys.executable).with_name("alto-tools")
    text = subprocess.run([str(consumer), str(work / "page.xml"), "-t"], capture_output=True, text=True, check=True)
    assert share_found(expected_words(), words(text.stdout)) >= 0.8


def test_json_output_follows_the_result_schema(work):
    result = run("ocr", "small.png", "--format", "json", cwd=work)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["version"].startswith("1.") and document["document"]["filename"] == "small.png"
    (record,) = document["pages"]
    found = [w["text"] for line in record["page"]["lines"] for w in line["words"]]
    assert share_found(expected_words(), found) >= 0.8


# -- pages that already have text: --skip-text (default), --redo-ocr, --force-ocr, exit 6 -------------------------


def test_default_passes_text_pages_through_and_ocrs_the_rest(work):
    result = run("ocr", "mixed.pdf", "default.pdf", "--dpi", "150", cwd=work)
    assert result.returncode == 0, result.stderr
    assert b"page 1 already has text" in result.stderr and b"page 2 already has text" in result.stderr
    digital, earlier, scan = pdf_text(work / "default.pdf")
    assert "Born digital page" in digital
    assert "STALE LAYER WORDS" in earlier and share_found(expected_words(), words(earlier)) < 0.2
    assert share_found(expected_words(), words(scan)) >= 0.8


def test_redo_ocr_replaces_an_earlier_ocr_layer_and_keeps_visible_text(work):
    result = run("ocr", "--redo-ocr", "-q", "mixed.pdf", "redo.pdf", "--dpi", "150", cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""  # -q: no notes
    digital, earlier, scan = pdf_text(work / "redo.pdf")
    assert "Born digital page" in digital
    assert "STALE" not in earlier and share_found(expected_words(), words(earlier)) >= 0.8
    assert share_found(expected_words(), words(scan)) >= 0.8
    with pikepdf.open(work / "redo.pdf") as pdf:
        assert "/Helvetica" in str(pdf.pages[0].Resources.Font.values())  # page 1 untouched: its own font


def test_force_ocr_rasterises_pages_with_text(work):
    result = run("ocr", "-f", "mixed.pdf", "forced.pdf", "--dpi", "150", cwd=work)  # -f: --force-ocr
    assert result.returncode == 0, result.stderr
    digital, earlier, scan = pdf_text(work / "forced.pdf")
    assert words(digital) == ["Born", "digital", "page"]  # read again by the OCR, once
    assert "STALE" not in earlier and share_found(expected_words(), words(earlier)) >= 0.8
    with pdfplumber.open(work / "forced.pdf") as pdf:
        assert pdf.pages[0].images  # the born-digital page became its image
        assert all(c["fontname"].endswith("TextlayerGlyphless") for c in pdf.pages[0].chars)


def test_every_page_with_text_is_exit_6_unless_skip_text(work):
    refused = run("ocr", "digital.pdf", "refused.pdf", cwd=work)
    assert refused.returncode == 6, refused.stderr
    assert b"Every page already has text" in refused.stderr and not (work / "refused.pdf").exists()
    # --skip-text passes it through; as PDF/A it cannot be valid (Helvetica is not embedded): written, exit 4.
    passed = run("ocr", "-s", "--output-type", "pdfa", "digital.pdf", "passed.pdf", cwd=work)  # -s: --skip-text
    assert passed.returncode == 4, passed.stderr
    assert b"not a valid PDF/A-2b" in passed.stderr and b"Helvetica is not embedded" in passed.stderr
    assert "Born digital page" in pdf_text(work / "passed.pdf")[0]


# -- exit statuses without OCR ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clean", "small.png", "out.pdf"], "unrecognized arguments: --clean"),
        (["small.png", "out.pdf", "-o", "other.pdf"], "OUTPUT or -o FILE, not both"),
        (["--output-type", "pdfa", "--format", "text", "small.png", "out.txt"], "choose one"),
        (["--output-type", "pdfa-1", "small.png", "out.pdf"], "invalid choice: 'pdfa-1'"),
        (["--skip-text", "--force-ocr", "small.png", "out.pdf"], "not allowed with argument"),
        (["--output-type", "none", "small.png", "out.pdf"], "writes no output file"),
        (["-j", "0", "small.png", "out.pdf"], "--jobs must be at least 1"),
    ],
)
def test_bad_arguments_exit_1(work, args, message):
    result = run("ocr", *args, cwd=work)
    assert result.returncode == 1, result.stderr
    assert message.encode() in result.stderr


def test_a_language_the_models_cannot_read_is_exit_3_with_the_list(work):
    result = run("ocr", "-l", "eng+rus", "small.png", "russian.pdf", cwd=work)
    assert result.returncode == 3
    assert b"cannot read rus (Russian)" in result.stderr and b"it reads: eng+deu+fra" in result.stderr
    assert not (work / "russian.pdf").exists()


def test_another_failure_is_exit_15(work):
    result = run("ocr", "--server", f"unix:{work / 'no-such.sock'}", "small.png", "out.txt", cwd=work)
    assert result.returncode == 15, result.stderr
    assert b"no OCR server could take the page" in result.stderr


def test_ctrl_c_is_exit_130_and_writes_nothing(work):
    process = subprocess.Popen(
        [*TEXTLAYER, "ocr", "small.png", "interrupted.pdf"], cwd=work, stderr=subprocess.PIPE, env=ENV
    )
    time.sleep(1.5)  # the jails are starting
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr and not (work / "interrupted.pdf").exists()


def test_help_groups_the_flags_like_ocrmypdf():
    result = subprocess.run([*TEXTLAYER, "ocr", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    text = result.stdout
    groups = ["Output options:", "OCR options:", "Image preprocessing options:", "Job control options:"]
    assert all(g in text for g in groups)
    for flag in (
        "--invalidate-digital-signatures",
        "--no-progress-bar",
        "--max-image-mpixels",
        "--output-type",
        "--sidecar",
        "--language",
        "--skip-text",
        "--redo-ocr",
        "--force-ocr",
        "--rotate-pages",
        "--rotate-pages-threshold",
        "--deskew",
        "--jobs",
        "--quiet",
    ):
        assert flag in text
