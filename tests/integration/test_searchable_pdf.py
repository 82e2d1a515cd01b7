"""Searchable PDFs, read back only with independent tools (pdfplumber, pypdfium2, pypdf, pdftotext)."""

from __future__ import annotations

import io
import math
import shutil
import statistics
import subprocess
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pdfplumber
import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    RectangleObject,
    StreamObject,
    TextStringObject,
)
from rapidfuzz.distance import Levenshtein
from reportlab import rl_config
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from tests.pages import GeneratedPage, degrade, make_page, page_to_jpeg, page_to_png
from textlayer.elements import Line, PageText, Quad, Word
from textlayer.pdf_overlay import build_searchable_pdf

pytestmark = [pytest.mark.slow]

Box = tuple[float, float, float, float]
"""(x0, y0, x1, y1), top-left origin."""

HAVE_PDFTOTEXT = shutil.which("pdftotext") is not None


# ---------------------------------------------------------------------------------------------
# Reading PDFs back, with nothing from textlayer
# ---------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    """NFKC, whitespace runs to one space, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _cer(predicted: str, truth: str) -> float:
    return Levenshtein.distance(predicted, truth) / max(1, len(truth))


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _plumber_texts(data: bytes, **options: object) -> list[str]:
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return [page.extract_text(**options) or "" for page in pdf.pages]


def _pdfium_texts(data: bytes) -> list[str]:
    pdf = pdfium.PdfDocument(data)
    try:
        texts = []
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return texts
    finally:
        pdf.close()


def _pdftotext(data: bytes, tmp_path, *, layout: bool) -> str:
    path = tmp_path / f"pdftotext-{'layout' if layout else 'plain'}.pdf"
    path.write_bytes(data)
    args = ["pdftotext", *(["-layout"] if layout else []), "-enc", "UTF-8", str(path), "-"]
    result = subprocess.run(args, capture_output=True, timeout=60, check=True)
    return result.stdout.decode("utf-8")


def _render_gray(data: bytes, index: int, dpi: float) -> np.ndarray:
    pdf = pdfium.PdfDocument(data)
    try:
        page = pdf[index]
        bitmap = page.render(scale=dpi / 72, grayscale=True)
        image = np.array(bitmap.to_numpy(), copy=True)
        bitmap.close()
        page.close()
    finally:
        pdf.close()
    return image[:, :, 0] if image.ndim == 3 else image


@dataclass(frozen=True)
class _PageBoxes:
    """A page's visible area in PDF user space, as /CropBox (or /MediaBox) and /Rotate say."""

    crop: Box  # user space, bottom-left origin: (x0, y0, x1, y1)
    rotate: int

    @property
    def size_pt(self) -> tuple[float, float]:
        """Width and height of the page as displayed."""
        w, h = self.crop[2] - self.crop[0], self.crop[3] - self.crop[1]
        return (h, w) if self.rotate in (90, 270) else (w, h)

    def to_display(self, x: float, y: float) -> tuple[float, float]:
        """User-space point -> displayed page, points, top-left origin (the page turned clockwise by /Rotate)."""
        u, v = x - self.crop[0], y - self.crop[1]
        w, h = self.crop[2] - self.crop[0], self.crop[3] - self.crop[1]
        if self.rotate == 0:
            return (u, h - v)
        if self.rotate == 90:
            return (v, u)
        if self.rotate == 180:
            return (w - u, v)
        if self.rotate == 270:
            return (h - v, w - u)
        raise ValueError(self.rotate)

    def to_user(self, x: float, y: float) -> tuple[float, float]:
        """Inverse of :meth:`to_display`."""
        w, h = self.crop[2] - self.crop[0], self.crop[3] - self.crop[1]
        u, v = {0: (x, h - y), 90: (y, x), 180: (w - x, y), 270: (w - y, h - x)}[self.rotate]
        return (u + self.crop[0], v + self.crop[1])


def _page_boxes(data: bytes) -> list[_PageBoxes]:
    reader = PdfReader(io.BytesIO(data))
    out = []
    for page in reader.pages:
        box = page.cropbox  # pypdf falls back to the MediaBox
        crop = (float(box.left), float(box.bottom), float(box.right), float(box.top))
        out.append(
            _PageBoxes(
                (min(crop[0], crop[2]), min(crop[1], crop[3]), max(crop[0], crop[2]), max(crop[1], crop[3])),
                page.rotation % 360,
            )
        )
    return out


def _without_rotate(data: bytes) -> bytes:
    """The same PDF with /Rotate 0 everywhere, so that pdfplumber reports plain user-space coordinates."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    for page in writer.pages:
        page[NameObject("/Rotate")] = NumberObject(0)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Char:
    text: str
    box_px: Box  # displayed page, pixels at the chosen dpi, top-left origin
    matrix: tuple[float, ...]  # pdfminer's text rendering matrix (user space, the page's /Rotate removed)
    upright: bool
    origin_px: tuple[float, float]  # where the glyph sits on its baseline, displayed page pixels


def _chars(data: bytes, dpi: float) -> list[list[_Char]]:
    """pdfplumber chars of every page, in content-stream order, boxes converted to the displayed pixel frame.

    The conversion is ours, from PDF user space: pdfplumber reads a copy without /Rotate, where its
    ``x0``/``y0``/``x1``/``y1`` are user space less the MediaBox origin.
    """
    geometry = _page_boxes(data)
    scale = dpi / 72
    pages: list[list[_Char]] = []
    with pdfplumber.open(io.BytesIO(_without_rotate(data))) as pdf:
        for page, boxes in zip(pdf.pages, geometry, strict=True):
            media = page.page_obj.mediabox
            mx, my = float(min(media[0], media[2])), float(min(media[1], media[3]))
            chars = []
            for c in page.chars:
                x0, x1 = float(c["x0"]), float(c["x1"])  # pdfplumber has already added the MediaBox x origin
                y0, y1 = float(c["y0"]) + my, float(c["y1"]) + my
                corners = [boxes.to_display(x, y) for x in (x0, x1) for y in (y0, y1)]
                xs, ys = [p[0] * scale for p in corners], [p[1] * scale for p in corners]
                m = tuple(float(v) for v in c["matrix"])
                ox, oy = boxes.to_display(m[4] + mx, m[5] + my)
                box = (min(xs), min(ys), max(xs), max(ys))
                chars.append(_Char(c["text"], box, m, bool(c["upright"]), (ox * scale, oy * scale)))
            pages.append(chars)
    return pages


def _word_char_groups(chars: Sequence[_Char], words: Sequence[str]) -> list[list[_Char] | None]:
    """Assign the non-space chars, in stream order, to the expected words in turn (None: not found)."""
    flat = ""
    owners: list[int] = []
    for i, c in enumerate(chars):
        for ch in unicodedata.normalize("NFKC", c.text):
            if not ch.isspace():
                flat += ch
                owners.append(i)
    groups: list[list[_Char] | None] = []
    position = 0
    for word in words:
        target = "".join(unicodedata.normalize("NFKC", word).split())
        found = flat.find(target, position)
        if found < 0:
            groups.append(None)
            continue
        position = found + len(target)
        indices = sorted(set(owners[found:position]))
        groups.append([chars[i] for i in indices])
    return groups


def _plumber_words(data: bytes) -> list[list[tuple[str, Box]]]:
    """pdfplumber's own word split, in points, top-left origin (pages without /Rotate only)."""
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return [
            [
                (w["text"], (float(w["x0"]), float(w["top"]), float(w["x1"]), float(w["bottom"])))
                for w in page.extract_words()
            ]
            for page in pdf.pages
        ]


# ---------------------------------------------------------------------------------------------
# Building inputs
# ---------------------------------------------------------------------------------------------


@contextmanager
def _raw_reportlab_streams() -> Iterator[None]:
    """reportlab ASCII85-encodes streams by default (+25 % for a JPEG); scanners' PDFs don't."""
    old = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = old


def _small_scan_jpeg() -> bytes:
    rng = np.random.default_rng(7)
    image = np.full((400, 300), 235, np.uint8)
    image[40:60, 30:200] = 40  # a few dark bars where a scan would have ink
    image[80:95, 30:260] = 60
    image = np.clip(image.astype(np.int16) + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def _finish(data: bytes, *, rotate: int = 0, crop: Box | None = None) -> bytes:
    if not rotate and crop is None:
        return data
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    for page in writer.pages:
        if crop is not None:
            page.cropbox = RectangleObject(crop)
        if rotate:
            page[NameObject("/Rotate")] = NumberObject(rotate)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Variant:
    name: str
    media: tuple[float, float]
    rotate: int = 0
    crop: Box | None = None
    unbalanced_cm: bool = False  # the original content leaves a scaling CTM behind (no q/Q)


VARIANTS = (
    _Variant("plain", (612, 792)),
    _Variant("rotate90", (612, 792), rotate=90),
    _Variant("rotate270", (612, 792), rotate=270),
    _Variant("cropbox", (700, 900), crop=(50, 60, 662, 852)),
    _Variant("cropbox-rotate90", (700, 900), rotate=90, crop=(50, 60, 662, 852)),
    _Variant("unbalanced-cm", (612, 792), unbalanced_cm=True),
)


def _scan_pdf(variant: _Variant, *, pages: int = 1, text_first: str | None = None) -> bytes:
    """A scan-like PDF: one JPEG stretched over each page (after an optional born-digital text page)."""
    jpeg = _small_scan_jpeg()
    buffer = io.BytesIO()
    with _raw_reportlab_streams():
        c = canvas.Canvas(buffer, pagesize=variant.media, invariant=1)
        if text_first is not None:
            c.setFont("Helvetica", 12)
            c.drawString(72, 700, text_first)
            c.showPage()
        for _ in range(pages):
            if variant.unbalanced_cm:
                c.transform(0.5, 0, 0, 0.5, 0, 0)  # never restored: a later layer must not inherit it
                c.drawImage(ImageReader(io.BytesIO(jpeg)), 0, 0, variant.media[0] * 2, variant.media[1] * 2)
            else:
                c.drawImage(ImageReader(io.BytesIO(jpeg)), 0, 0, *variant.media)
            c.showPage()
        c.save()
    return _finish(buffer.getvalue(), rotate=variant.rotate, crop=variant.crop)


def _born_digital_pdf(variant: _Variant, lines: Sequence[tuple[float, float, str]], size: float) -> bytes:
    """Visible Helvetica text, upright as displayed, baselines starting at displayed (x, y) points from the top left.

    The control for our own geometry helpers: drawn by reportlab, rendered by pdfium, read by pdfplumber.
    """
    media = (0.0, 0.0, *variant.media)
    boxes = _PageBoxes(variant.crop or media, variant.rotate)
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=variant.media, invariant=1)
    c.setFont("Helvetica", size)
    for x, y, text in lines:
        c.saveState()
        c.translate(*boxes.to_user(x, y))
        c.rotate(variant.rotate)  # the viewer turns the page clockwise by /Rotate: this turns the text back
        c.drawString(0, 0, text)
        c.restoreState()
    c.showPage()
    c.save()
    return _finish(buffer.getvalue(), rotate=variant.rotate, crop=variant.crop)


def _axis_quad(box: Box) -> Quad:
    x0, y0, x1, y1 = box
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _quad_box(quad: Quad) -> Box:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return (min(xs), min(ys), max(xs), max(ys))


def _slanted_quad(start: tuple[float, float], length: float, height: float, angle_deg: float) -> Quad:
    """Quad of a word whose baseline starts at ``start`` (image pixels) and runs at angle_deg counter-clockwise."""
    a = math.radians(angle_deg)
    d = (math.cos(a), -math.sin(a))  # along the baseline; image y grows downwards
    n = (-math.sin(a), -math.cos(a))  # towards the top of the letters
    bl = start
    br = (bl[0] + length * d[0], bl[1] + length * d[1])
    tl = (bl[0] + height * n[0], bl[1] + height * n[1])
    tr = (br[0] + height * n[0], br[1] + height * n[1])
    return (tl, tr, br, bl)


def _line(words: Sequence[Word], block: int = 0) -> Line:
    box = _union([_quad_box(w.quad) for w in words])
    return Line(tuple(words), _axis_quad(box), 0.95, block)


# Lines of words laid out in displayed points: (x0, top, text); every word 6 pt per character wide,
# 12 pt tall, 5 pt apart. Placed off-centre so that a flipped axis lands far from the truth.
_LAYOUT_LINES: tuple[tuple[float, float, tuple[str, ...]], ...] = (
    (72, 80, ("Invoice", "number", "4471", "issued", "today")),
    (72, 104, ("Total", "amount", "due:", "EUR", "1234.50")),
    (90, 140, ("Thank", "you", "for", "your", "business")),
    (300, 300, ("Remit", "to", "Harbor", "Lane")),
)


def _layout_page_text(width_px: int, height_px: int, dpi: float, lines=_LAYOUT_LINES) -> PageText:
    scale = dpi / 72
    out = []
    for x, top, words in lines:
        placed = []
        for text in words:
            w = 6.0 * len(text)
            placed.append(Word(text, _axis_quad((x * scale, top * scale, (x + w) * scale, (top + 12) * scale)), 0.97))
            x += w + 5.0
        out.append(_line(placed))
    return PageText(width_px, height_px, 0, tuple(out), dpi=dpi)


def _truth_page_text(page: GeneratedPage) -> PageText:
    """The generated page's exact ground truth as an OCR result (one Line per text line)."""
    words = iter(page.words)
    lines = []
    for text_line in page.text.split("\n"):
        chosen = [next(words) for _ in text_line.split()]
        assert " ".join(w.text for w in chosen) == " ".join(text_line.split())
        lines.append(_line([Word(w.text, _axis_quad(w.box), 0.99) for w in chosen]))
    height, width = page.image.shape
    return PageText(width, height, 0, tuple(lines), dpi=page.dpi)


def _pixels(size_pt: tuple[float, float], dpi: float) -> tuple[int, int]:
    return round(size_pt[0] * dpi / 72), round(size_pt[1] * dpi / 72)


def _check_word_boxes(data: bytes, page_index: int, page_text: PageText, dpi: float, min_iou: float) -> None:
    chars = _chars(data, dpi)[page_index]
    words = page_text.words
    groups = _word_char_groups(chars, [w.text for w in words])
    failures = []
    for word, group in zip(words, groups, strict=True):
        expected = _quad_box(word.quad)
        if not group:
            failures.append(f"{word.text!r}: no chars found")
            continue
        actual = _union([c.box_px for c in group])
        iou = _iou(actual, expected)
        if iou < min_iou:
            failures.append(
                f"{word.text!r}: IoU {iou:.3f} expected {tuple(round(v, 1) for v in expected)} "
                f"got {tuple(round(v, 1) for v in actual)}"
            )
    assert not failures, f"{len(failures)}/{len(words)} word boxes off (px at {dpi} dpi):\n" + "\n".join(failures)


def _check_texts(data: bytes, page_index: int, page_text: PageText, tmp_path, *, lines: bool = True) -> None:
    expected_lines = [_norm(line.text) for line in page_text.lines]
    expected = _norm(" ".join(expected_lines))
    plumber = _plumber_texts(data)[page_index]
    if lines:
        got_lines = [_norm(line) for line in plumber.split("\n") if line.strip()]
        assert got_lines == expected_lines, "pdfplumber extract_text() lines differ"
    assert _norm(plumber) == expected, "pdfplumber"
    assert _norm(_pdfium_texts(data)[page_index]) == expected, "pypdfium2"
    if HAVE_PDFTOTEXT and len(PdfReader(io.BytesIO(data)).pages) == 1:
        assert _norm(_pdftotext(data, tmp_path, layout=False)) == expected, "pdftotext"
        assert _norm(_pdftotext(data, tmp_path, layout=True)) == expected, "pdftotext -layout"


# ---------------------------------------------------------------------------------------------
# 0. The control: our reading helpers agree with pdfium's raster on born-digital text
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS[:5], ids=lambda v: v.name)
def test_reference_helpers_agree_with_the_raster_on_visible_text(variant):
    """Without this, a geometry failure below could be a bug in the test's own coordinate conversion."""
    dpi = 100
    data = _born_digital_pdf(variant, [(80, 120, "HXH HXH"), (80, 190, "MWM")], 40)
    boxes = _page_boxes(data)[0]
    assert boxes.rotate == variant.rotate
    chars = [c for c in _chars(data, dpi)[0] if c.text.strip()]
    assert [c.text for c in chars] == list("HXHHXHMWM")
    ink = _render_gray(data, 0, dpi) < 128
    assert ink.shape[::-1] == _pixels(boxes.size_pt, dpi)
    margin = 8  # px; less than the gap to the next word
    for group in (chars[:3], chars[3:6], chars[6:]):
        box = _union([c.box_px for c in group])
        x0, y0 = max(0, math.floor(box[0]) - margin), max(0, math.floor(box[1]) - margin)
        ys, xs = np.nonzero(ink[y0 : math.ceil(box[3]) + margin, x0 : math.ceil(box[2]) + margin])
        assert xs.size, f"no ink near {box}"
        ink_box = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1)
        # The glyphs' ink lies inside their metric box and fills it along the text direction.
        assert ink_box[0] >= box[0] - 2 and ink_box[1] >= box[1] - 2, (ink_box, box)
        assert ink_box[2] <= box[2] + 2 and ink_box[3] <= box[3] + 2, (ink_box, box)
        assert (ink_box[2] - ink_box[0]) / (box[2] - box[0]) > 0.85, (ink_box, box)
    angles = {round(math.degrees(math.atan2(c.matrix[1], c.matrix[0]))) % 360 for c in chars}
    assert angles == {variant.rotate}
    assert [_norm(t) for t in _plumber_texts(data)[0].split("\n")] == ["HXH HXH", "MWM"]
    assert _norm(_pdfium_texts(data)[0]) == "HXH HXH MWM"


# ---------------------------------------------------------------------------------------------
# 1. Geometry, from hand-made OCR results (no OCR)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dpi", [150, 300])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_scan_pdf_words_land_on_their_quads(tmp_path, variant, dpi):
    source = _scan_pdf(variant)
    boxes = _page_boxes(source)[0]
    width_px, height_px = _pixels(boxes.size_pt, dpi)
    page_text = _layout_page_text(width_px, height_px, dpi)

    out = build_searchable_pdf(source, [page_text])

    out_boxes = _page_boxes(out)[0]
    assert out_boxes.size_pt == pytest.approx(boxes.size_pt, abs=0.01)
    assert out_boxes.rotate == boxes.rotate
    _check_texts(out, 0, page_text, tmp_path)
    _check_word_boxes(out, 0, page_text, dpi, min_iou=0.8)
    # Upright as displayed: in user space the baselines run at /Rotate degrees (the viewer turns them back).
    angles = {
        round(math.degrees(math.atan2(c.matrix[1], c.matrix[0]))) % 360 for c in _chars(out, dpi)[0] if c.text.strip()
    }
    assert angles == {boxes.rotate}, angles
    # An explicit space between the words of a line, and one baseline per line.
    chars = _chars(out, dpi)[0]
    stream_text = _norm("".join(c.text for c in chars))
    for line in page_text.lines:
        assert _norm(line.text) in stream_text, f"no explicit spaces: {stream_text!r}"
    groups = iter(_word_char_groups(chars, [w.text for w in page_text.words]))
    baselines = []
    for line in page_text.lines:
        ys = [c.origin_px[1] for _ in line.words for c in next(groups) or []]
        assert max(ys) - min(ys) <= 1.0, f"line {line.text!r} is not on one baseline: {sorted(set(ys))}"
        baselines.append(statistics.mean(ys))
    assert len({round(y) for y in baselines}) == len(baselines)


@pytest.mark.parametrize(("angle", "rotation"), [(30, 0), (-90, 270)])
def test_slanted_words_are_laid_along_their_angle(tmp_path, angle, rotation):
    dpi = 300
    variant = VARIANTS[0]
    source = _scan_pdf(variant)
    width_px, height_px = _pixels(_page_boxes(source)[0].size_pt, dpi)
    height = 50.0
    texts = ("Slanted", "words", "here")
    start = (600.0, 2000.0)
    a = math.radians(angle)
    words = []
    for text in texts:
        length = 0.55 * height * len(text)
        words.append(Word(text, _slanted_quad(start, length, height, angle), 0.9))
        gap = length + 0.3 * height
        start = (start[0] + gap * math.cos(a), start[1] - gap * math.sin(a))
    upright_line = _layout_page_text(width_px, height_px, dpi, lines=_LAYOUT_LINES[:1]).lines[0]
    page_text = PageText(width_px, height_px, rotation, (upright_line, _line(words, block=1)), dpi=dpi)

    out = build_searchable_pdf(source, [page_text])

    extracted = _norm(_pdfium_texts(out)[0])
    assert _norm(" ".join(texts)) in extracted, extracted
    chars = _chars(out, dpi)[0]
    groups = _word_char_groups(chars, [w.text for w in page_text.words])
    for word, group in zip(page_text.words[len(upright_line.words) :], groups[len(upright_line.words) :], strict=True):
        assert group, f"{word.text!r} not found in {''.join(c.text for c in chars)!r}"
        for c in group:
            m = c.matrix
            assert math.degrees(math.atan2(m[1], m[0])) == pytest.approx(angle, abs=2), (word.text, c.text, m)
        origins = [(c.matrix[4], c.matrix[5]) for c in group]
        step = (origins[-1][0] - origins[0][0], origins[-1][1] - origins[0][1])
        assert math.degrees(math.atan2(step[1], step[0])) == pytest.approx(angle, abs=2), (word.text, origins)
        iou = _iou(_union([c.box_px for c in group]), _quad_box(word.quad))
        assert iou >= 0.8, (word.text, iou)
    for c in groups[0] or []:
        assert c.upright


# ---------------------------------------------------------------------------------------------
# 2. Text beyond ASCII
# ---------------------------------------------------------------------------------------------


NON_ASCII_LINES = (
    (72, 80, ("café", "Straße", "€12")),
    (72, 110, ("ﬁnal", "naïve", "中文")),
)


def test_non_ascii_words_copy_back(tmp_path):
    dpi = 200
    source = _scan_pdf(VARIANTS[0])
    width_px, height_px = _pixels(_page_boxes(source)[0].size_pt, dpi)
    page_text = _layout_page_text(width_px, height_px, dpi, lines=NON_ASCII_LINES)

    out = build_searchable_pdf(source, [page_text])

    expected = _norm(" ".join(line.text for line in page_text.lines))
    plumber, pdfium_text = _norm(_plumber_texts(out)[0]), _norm(_pdfium_texts(out)[0])
    assert plumber == expected, f"pdfplumber: {plumber!r}"
    assert pdfium_text == expected, f"pypdfium2: {pdfium_text!r}"
    if HAVE_PDFTOTEXT:
        assert _norm(_pdftotext(out, tmp_path, layout=False)) == expected, "pdftotext"
    _check_word_boxes(out, 0, page_text, dpi, min_iou=0.8)


# ---------------------------------------------------------------------------------------------
# 3. The input is kept as it is
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receipt() -> GeneratedPage:
    return make_page("receipt", dpi=150)


def _image_xobjects(data: bytes, page_index: int = 0) -> list[StreamObject]:
    """Image XObjects painted on a page, including those inside Form XObjects."""
    page = PdfReader(io.BytesIO(data)).pages[page_index]
    found: list[StreamObject] = []

    def visit(resources) -> None:
        xobjects = (resources or {}).get("/XObject")
        for ref in (xobjects.get_object() if xobjects is not None else {}).values():
            obj = ref.get_object()
            if obj.get("/Subtype") == "/Image":
                found.append(obj)
            elif obj.get("/Subtype") == "/Form":
                visit(obj.get("/Resources"))

    visit(page.get("/Resources"))
    return found


def _filters(stream: StreamObject) -> list[str]:
    value = stream.get("/Filter")
    if value is None:
        return []
    value = value.get_object()
    return [str(f) for f in value] if isinstance(value, ArrayObject) else [str(value)]


def test_jpeg_input_is_embedded_byte_for_byte_at_its_dpi(tmp_path, receipt):
    jpeg = page_to_jpeg(receipt, quality=85)
    page_text = _truth_page_text(receipt)

    out = build_searchable_pdf(jpeg, [page_text])

    reader = PdfReader(io.BytesIO(out))
    assert len(reader.pages) == 1
    height, width = receipt.image.shape
    box = _page_boxes(out)[0]
    assert box.size_pt == pytest.approx((width * 72 / 150, height * 72 / 150), abs=0.01)
    images = _image_xobjects(out)
    assert len(images) == 1, "expected exactly the one scan image"
    assert _filters(images[0]) == ["/DCTDecode"], _filters(images[0])
    assert images[0].get_data() == jpeg, "the JPEG was re-encoded"
    # The picture sits where it belongs: pdfium's raster at the scan's dpi is the scan.
    raster = _render_gray(out, 0, 150).astype(np.int16)
    decoded = np.array(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=np.int16)
    assert raster.shape == decoded.shape
    assert np.abs(raster - decoded).mean() < 4
    _check_texts(out, 0, page_text, tmp_path)
    _check_word_boxes(out, 0, page_text, 150, min_iou=0.8)


def test_jpeg_with_exif_orientation_is_upright_and_unchanged(receipt):
    """A phone photo: stored sideways, EXIF says turn it 90 degrees clockwise; OCR saw the upright image."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(receipt.image, k=1)))  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=85, dpi=(150, 150), exif=exif.tobytes())
    jpeg = buffer.getvalue()
    page_text = _truth_page_text(receipt)  # pixels of the upright image

    out = build_searchable_pdf(jpeg, [page_text])

    height, width = receipt.image.shape
    assert _page_boxes(out)[0].size_pt == pytest.approx((width * 72 / 150, height * 72 / 150), abs=0.01)
    images = _image_xobjects(out)
    assert len(images) == 1 and images[0].get_data() == jpeg, "the JPEG was re-encoded"
    raster = _render_gray(out, 0, 150).astype(np.int16)
    assert raster.shape == receipt.image.shape
    assert np.abs(raster - receipt.image.astype(np.int16)).mean() < 4, "the picture is not upright"
    _check_word_boxes(out, 0, page_text, 150, min_iou=0.8)


def test_png_without_dpi_is_sized_by_its_text_with_the_same_pixels(receipt):
    buffer = io.BytesIO()
    Image.fromarray(receipt.image).save(buffer, "PNG")  # no pHYs chunk: dpi unknown
    page_text = _truth_page_text(receipt)
    page_text = PageText(page_text.width, page_text.height, 0, page_text.lines, dpi=None)

    out = build_searchable_pdf(buffer.getvalue(), [page_text])

    height, width = receipt.image.shape
    size_w, size_h = _page_boxes(out)[0].size_pt
    assert size_w / size_h == pytest.approx(width / height, rel=1e-3)
    # The text gets body-text size: word boxes about 11 pt tall, whatever the pixels.
    with pdfplumber.open(io.BytesIO(out)) as pdf:
        heights = sorted(w["bottom"] - w["top"] for w in pdf.pages[0].extract_words())
    assert heights[len(heights) // 2] == pytest.approx(11.0, abs=0.5)
    images = _image_xobjects(out)
    assert len(images) == 1
    pixels = np.array(PdfReader(io.BytesIO(out)).pages[0].images[0].image.convert("L"))
    assert np.array_equal(pixels, receipt.image), "a lossless scan must stay lossless"
    _check_word_boxes(out, 0, page_text, width * 72 / size_w, min_iou=0.8)


def test_png_without_dpi_or_text_is_a_300_dpi_page(receipt):
    buffer = io.BytesIO()
    Image.fromarray(receipt.image).save(buffer, "PNG")
    out = build_searchable_pdf(buffer.getvalue(), [None])
    height, width = receipt.image.shape
    assert _page_boxes(out)[0].size_pt == pytest.approx((width * 72 / 300, height * 72 / 300), abs=0.01)


def test_multipage_tiff_gives_one_page_per_frame(tmp_path, receipt):
    frames = [Image.fromarray(receipt.image), Image.fromarray(255 - receipt.image)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate", dpi=(150, 150))
    page_text = _truth_page_text(receipt)

    out = build_searchable_pdf(buffer.getvalue(), [page_text, None])

    assert len(PdfReader(io.BytesIO(out)).pages) == 2
    assert _norm(_pdfium_texts(out)[0]) == _norm(receipt.text)
    assert _norm(_pdfium_texts(out)[1]) == ""
    _check_word_boxes(out, 0, page_text, 150, min_iou=0.8)


def _content_streams(data: bytes, page_index: int) -> list[bytes]:
    contents = PdfReader(io.BytesIO(data)).pages[page_index].get("/Contents")
    if contents is None:
        return []
    contents = contents.get_object()
    streams = list(contents) if isinstance(contents, ArrayObject) else [contents]
    return [s.get_object().get_data() for s in streams]


def test_pdf_page_content_is_kept_beside_the_layer(tmp_path):
    dpi = 200
    source = _scan_pdf(VARIANTS[0])
    original = _content_streams(source, 0)
    width_px, height_px = _pixels(_page_boxes(source)[0].size_pt, dpi)
    page_text = _layout_page_text(width_px, height_px, dpi)

    out = build_searchable_pdf(source, [page_text])

    streams = _content_streams(out, 0)
    assert len(streams) > len(original), "the text layer must be a content stream of its own"
    for data in original:
        assert data in streams, "an original content stream was changed or merged into another"
    # and in the same order, so the page still paints the same
    positions = [streams.index(data) for data in original]
    assert positions == sorted(positions)
    assert [(i.get("/Width"), i.get("/Height")) for i in _image_xobjects(out)] == [(300, 400)]
    assert _image_xobjects(out)[0].get_data() == _image_xobjects(source)[0].get_data()


def test_mixed_pdf_keeps_born_digital_text_once(tmp_path):
    dpi = 200
    marker = "Quokka born digital sentence 8812"
    source = _scan_pdf(VARIANTS[0], text_first=marker)
    original_first = _content_streams(source, 0)
    width_px, height_px = _pixels(_page_boxes(source)[1].size_pt, dpi)
    page_text = _layout_page_text(width_px, height_px, dpi)

    out = build_searchable_pdf(source, [None, page_text])

    assert len(PdfReader(io.BytesIO(out)).pages) == 2
    assert _content_streams(out, 0) == original_first, "a page that was not OCRed must stay as it is"
    for name, texts in (("pdfplumber", _plumber_texts(out)), ("pypdfium2", _pdfium_texts(out))):
        whole = _norm(" ".join(texts))
        assert whole.count(_norm(marker)) == 1, name
        assert _norm(texts[0]) == _norm(marker), name
    if HAVE_PDFTOTEXT:
        assert _norm(_pdftotext(out, tmp_path, layout=False)).count(_norm(marker)) == 1
    _check_texts(out, 1, page_text, tmp_path)
    _check_word_boxes(out, 1, page_text, dpi, min_iou=0.8)


SIZE_KINDS = ("fonts", "two_column", "three_column_title", "table")


def test_ten_page_scan_grows_by_at_most_15_percent():
    # Ten different scans (a seed each: identical images would be stored once by reportlab).
    pages = [
        degrade(make_page(SIZE_KINDS[i % len(SIZE_KINDS)], dpi=200), seed=i, blur_sigma=0.6, noise_sigma=3.0)
        for i in range(10)
    ]
    jpegs = [page_to_jpeg(p, quality=75) for p in pages]
    assert all(100_000 <= len(j) <= 300_000 for j in jpegs), [len(j) for j in jpegs]
    buffer = io.BytesIO()
    with _raw_reportlab_streams():
        c = canvas.Canvas(buffer, invariant=1)
        for page, jpeg in zip(pages, jpegs, strict=True):
            height, width = page.image.shape
            size = (width * 72 / page.dpi, height * 72 / page.dpi)
            c.setPageSize(size)
            c.drawImage(ImageReader(io.BytesIO(jpeg)), 0, 0, *size)
            c.showPage()
        c.save()
    source = buffer.getvalue()
    assert len(source) >= sum(len(j) for j in jpegs)
    texts = [_truth_page_text(p) for p in pages]
    words = sum(len(t.words) for t in texts)

    out = build_searchable_pdf(source, texts)

    added = len(out) - len(source)
    assert len(PdfReader(io.BytesIO(out)).pages) == 10
    assert len(out) <= 1.15 * len(source), (
        f"{len(source)} -> {len(out)} bytes (+{added / len(source):.1%}, "
        f"{added / 10:.0f} B/page, {added / words:.1f} B/word)"
    )
    assert [_norm(t) for t in _pdfium_texts(out)] == [_norm(p.text) for p in pages]


# ---------------------------------------------------------------------------------------------
# 4. Active content does not survive
# ---------------------------------------------------------------------------------------------

_JS_MARKERS = ("pwned-open-action", "pwned-names-js", "pwned-page-aa")
_FILE_MARKER = b"MZ-pwned-attachment-payload"


def _active_pdf(extra_page: bool) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_scan_pdf(VARIANTS[0], pages=2 if extra_page else 1))))
    writer.add_attachment("payload.exe", _FILE_MARKER)  # /Names /EmbeddedFiles
    root = writer.root_object
    script = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Action"),
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject(f"app.alert('{_JS_MARKERS[1]}');"),
        }
    )
    names = root["/Names"].get_object()
    names[NameObject("/JavaScript")] = DictionaryObject(
        {NameObject("/Names"): ArrayObject([TextStringObject("init"), writer._add_object(script)])}
    )
    root[NameObject("/OpenAction")] = DictionaryObject(
        {
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject(f"app.alert('{_JS_MARKERS[0]}');"),
        }
    )
    for index in range(len(writer.pages)):
        launch = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Link"),
                NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (50, 50, 200, 100)]),
                NameObject("/Border"): ArrayObject([NumberObject(0)] * 3),
                NameObject("/A"): DictionaryObject(
                    {NameObject("/S"): NameObject("/Launch"), NameObject("/F"): TextStringObject("calc.exe")}
                ),
            }
        )
        page = writer.pages[index]
        page[NameObject("/Annots")] = ArrayObject([writer._add_object(launch)])
        page[NameObject("/AA")] = DictionaryObject(
            {
                NameObject("/O"): DictionaryObject(
                    {
                        NameObject("/S"): NameObject("/JavaScript"),
                        NameObject("/JS"): TextStringObject(f"app.alert('{_JS_MARKERS[2]}');"),
                    }
                )
            }
        )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _active_content(data: bytes) -> list[str]:
    """Every trace of scripts, launch actions and embedded files anywhere in the file's objects."""
    reader = PdfReader(io.BytesIO(data))
    findings: list[str] = []
    seen: set[int] = set()

    def visit(obj, path: str) -> None:
        if isinstance(obj, IndirectObject):
            if obj.idnum in seen:
                return
            seen.add(obj.idnum)
            obj = obj.get_object()
        if isinstance(obj, DictionaryObject):
            for key in ("/JS", "/JavaScript", "/EmbeddedFiles", "/EmbeddedFile", "/EF", "/AA"):
                if key in obj:
                    findings.append(f"{path}{key}")
            if obj.get("/S") in ("/JavaScript", "/Launch", "/ImportData", "/SubmitForm", "/RichMediaExecute"):
                findings.append(f"{path} action /S {obj.get('/S')}")
            if obj.get("/Type") in ("/EmbeddedFile", "/Filespec") or obj.get("/Subtype") == "/FileAttachment":
                findings.append(f"{path} {obj.get('/Type') or obj.get('/Subtype')}")
            for key, value in obj.items():
                if key not in ("/Parent", "/P"):
                    visit(value, f"{path}{key}")
            if isinstance(obj, StreamObject):
                data = obj.get_data()
                for marker in (*(m.encode() for m in _JS_MARKERS), _FILE_MARKER):
                    if marker in data:
                        findings.append(f"{path} stream holds {marker!r}")
        elif isinstance(obj, ArrayObject):
            for i, value in enumerate(obj):
                visit(value, f"{path}[{i}]")
        elif isinstance(obj, str) and any(m in obj for m in _JS_MARKERS):
            findings.append(f"{path} string {obj!r}")

    visit(reader.trailer, "trailer")
    # Objects nobody points to any more still sit in the file (and in its bytes): look at all of them.
    stored = {idnum for table in reader.xref.values() for idnum in table} | set(reader.xref_objStm)
    for idnum in sorted(stored - seen):
        visit(IndirectObject(idnum, 0, reader), f"obj{idnum} (unreferenced)")
    return findings


def _assert_no_active_content(data: bytes) -> None:
    findings = _active_content(data)
    live = [f for f in findings if f.startswith("trailer")]
    assert not live, "active content still reachable:\n" + "\n".join(live)
    assert not findings, "active content unlinked but still stored in the file:\n" + "\n".join(findings)


def test_active_content_is_removed():
    source = _active_pdf(extra_page=False)
    before = _active_content(source)
    assert any("/OpenAction" in f for f in before) and any("/Launch" in f for f in before)
    assert any("/EmbeddedFiles" in f for f in before) and any("/JavaScript" in f for f in before)
    page_text = _layout_page_text(*_pixels(_page_boxes(source)[0].size_pt, 200), 200)

    out = build_searchable_pdf(source, [page_text])

    _assert_no_active_content(out)
    assert _norm(_pdfium_texts(out)[0]) == _norm(" ".join(line.text for line in page_text.lines))


def test_active_content_is_removed_from_pages_left_alone_too():
    source = _active_pdf(extra_page=True)
    page_text = _layout_page_text(*_pixels(_page_boxes(source)[0].size_pt, 200), 200)

    out = build_searchable_pdf(source, [page_text, None])

    _assert_no_active_content(out)


# ---------------------------------------------------------------------------------------------
# 5. End to end through the CLI, with the real models (two pages of OCR in all)
# ---------------------------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textlayer", *args], capture_output=True, text=True, timeout=600)


def _box_matches(truth: GeneratedPage, found: Sequence[tuple[str, Box]]) -> tuple[float, float]:
    """Share of true words (boxes in points) that some found word overlaps with IoU >= 0.5; and with equal text too."""
    scale = 72 / truth.dpi
    hit = same = 0
    for word in truth.words:
        box = tuple(v * scale for v in word.box)
        best = max(found, key=lambda f: _iou(f[1], box), default=None)
        if best is not None and _iou(best[1], box) >= 0.5:
            hit += 1
            same += best[0] == word.text
    return hit / len(truth.words), same / len(truth.words)


def _check_end_to_end(out: bytes, sidecar: str, truth: GeneratedPage, page_index: int) -> None:
    expected = _norm(truth.text)
    # pdfplumber's default order is geometric rows (it interleaves two columns); the text flow is the layer's order.
    plumber = _norm(_plumber_texts(out, use_text_flow=True)[page_index])
    pdfium_text = _norm(_pdfium_texts(out)[page_index])
    side = _norm(sidecar.split("\f")[page_index])
    cers = {
        "pdfplumber": _cer(plumber, expected),
        "pypdfium2": _cer(pdfium_text, expected),
        "sidecar": _cer(side, expected),
    }
    assert all(v <= 0.02 for v in cers.values()), {k: f"{v:.2%}" for k, v in cers.items()}
    # The layer is the OCR text: what the sidecar says is what a reader copies out.
    assert pdfium_text == side, f"CER pypdfium2 vs sidecar {_cer(pdfium_text, side):.2%}"
    assert plumber == side, f"CER pdfplumber(flow) vs sidecar {_cer(plumber, side):.2%}"
    hit, same = _box_matches(truth, _plumber_words(out)[page_index])
    assert hit >= 0.9, (
        f"only {hit:.1%} of true words have a pdfplumber word with IoU >= 0.5 ({same:.1%} with equal text)"
    )


@pytest.mark.onnx
def test_cli_jpeg_to_searchable_pdf(tmp_path):
    page = make_page("two_column", dpi=200)
    source = tmp_path / "page.jpg"
    jpeg = page_to_jpeg(page)
    source.write_bytes(jpeg)
    out, sidecar = tmp_path / "out.pdf", tmp_path / "out.txt"

    result = _run("ocr", str(source), "-o", str(out), "--sidecar", str(sidecar))

    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    assert "\f" not in sidecar.read_text(encoding="utf-8")
    assert [i.get_data() for i in _image_xobjects(data)] == [jpeg]
    _check_end_to_end(data, sidecar.read_text(encoding="utf-8"), page, 0)


@pytest.mark.onnx
def test_cli_mixed_pdf_to_searchable_pdf(tmp_path):
    page = degrade(make_page("two_column", dpi=200), seed=3)
    height, width = page.image.shape
    size = (width * 72 / page.dpi, height * 72 / page.dpi)
    marker = "Quokka born digital sentence 8812"
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=size, invariant=1)
    c.setFont("Helvetica", 12)
    c.drawString(72, 700, marker)
    c.showPage()
    c.drawImage(ImageReader(io.BytesIO(page_to_png(page))), 0, 0, *size)
    c.showPage()
    c.save()
    source = tmp_path / "mixed.pdf"
    source.write_bytes(buffer.getvalue())
    out, sidecar = tmp_path / "out.searchable", tmp_path / "out.txt"

    result = _run("ocr", str(source), "--format", "pdf", "-o", str(out), "--dpi", "200", "--sidecar", str(sidecar))

    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    side = sidecar.read_text(encoding="utf-8")
    assert side.count("\f") == 1 and side.split("\f")[0].strip() == ""
    assert _content_streams(data, 0) == _content_streams(buffer.getvalue(), 0)
    whole = _norm(" ".join(_pdfium_texts(data)))
    assert whole.count(marker) == 1
    _check_end_to_end(data, side, page, 1)
