"""Deterministic synthetic scanned pages with exact word-level ground truth, for OCR tests and benchmarks."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import getAscentDescent, stringWidth
from reportlab.pdfgen import canvas

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TrueWord:
    """One ground-truth word: its text and its box ``(x0, y0, x1, y1)`` in image pixels, top-left origin."""

    text: str
    box: Box


# eq=False: the generated __eq__ would compare numpy arrays (ambiguous truth value); identity is the honest default.
@dataclass(frozen=True, eq=False)
class GeneratedPage:
    """A rendered page plus its exact ground truth in human reading order."""

    name: str
    image: np.ndarray
    dpi: float
    text: str
    words: tuple[TrueWord, ...]


PAGE_KINDS: tuple[str, ...] = ("fonts", "two_column", "three_column_title", "table", "receipt")

# Word boxes span the font's ascent..descent band, not the ink, so they are exact by construction.
# Each box is in continuous pixel coordinates: pixel (i, j) covers [i, i+1) x [j, j+1).


# ---------------------------------------------------------------------------------------------
# Text corpus. Plain ASCII, no quotes or apostrophes, and no word that is ambiguous in print
# on its own (I, l, 1, O, 0), so that an OCR mismatch always means a real error.
# ---------------------------------------------------------------------------------------------


def _sentences(block: str) -> tuple[str, ...]:
    """Split a hard-wrapped block into sentences (every sentence ends with a full stop)."""
    return tuple(re.split(r"(?<=\.)\s+(?=[A-Z])", " ".join(block.split())))


_FONTS_TITLE = "Notes on Type, Paper and the Printed Page"

# (font, size, most lines, sentences): whole sentences are set until the next would overflow.
_FONTS_PARAGRAPHS: tuple[tuple[str, float, int, tuple[str, ...]], ...] = (
    (
        "Helvetica",
        11,
        7,
        _sentences("""
            Movable type reached Europe in the middle of the fifteenth century, and within fifty
            years presses were running in more than two hundred towns. Early printers cast their
            own letters, mixed their own ink and often sold the books they produced. A single shop
            might employ a compositor, a pressman, a proofreader and several apprentices. The work
            was slow: a skilled team could print perhaps two thousand sheets on one side in a long
            day. Most of those early books were religious or legal texts, but almanacs and
            calendars also sold well.
        """),
    ),
    (
        "Times-Roman",
        12,
        6,
        _sentences("""
            Paper was the largest expense in most editions, often costing more than the labour of
            setting and printing combined. Mills along fast rivers beat linen rags into pulp, and
            the sheets were dried on lines in lofts above the vats. Watermarks pressed into the
            mould still help historians date a volume to within a few years. Rag paper ages well,
            and many of these books are still in good condition.
        """),
    ),
    (
        "Courier",
        10,
        6,
        _sentences("""
            Typewriters brought a different idea of type: every character had the same width, so
            columns of figures lined up without any extra effort. Offices kept that habit for
            decades, and monospaced faces such as Courier are still used for code, forms and tables
            of data. Carbon copies spread the same look to every desk.
        """),
    ),
    (
        "Times-Roman",
        9,
        3,
        _sentences("""
            Sources: figures for early presses are approximate and vary between regional studies
            (see the bibliography at the end of this chapter). Mill records for 1480 to 1520 are
            kept in the county archive; about 35% of them are damaged. Prices are given in the
            currency of the period.
        """),
    ),
)

_RIVER_TITLE = "The River Project: Ten Years of Cleaner Water"

_RIVER_SENTENCES = _sentences("""
    When the city council approved the river restoration plan in 2014, few residents expected
    to see fish return to the lower reaches within a decade. The plan set out three goals:
    reduce the sewage overflows that followed heavy rain, restore the wetlands along the eastern
    bank, and reopen the old towpath to walkers and cyclists. Engineers began with the
    overflows, which had long been the largest source of pollution in the summer months. A new
    storage tunnel, four kilometres long and seven metres wide, now holds storm water until the
    treatment works can process it. Since the tunnel opened, the number of overflow events has
    fallen from about forty a year to fewer than five. Volunteers carried out much of the work
    on the wetlands. Over six winters they planted reeds, sedges and willow along a stretch of
    bank that had been lined with concrete since the 1960s. The new beds slow the flow after
    storms, trap silt and give shelter to young fish and insects. Monthly surveys by the local
    angling club recorded eleven species in 2023, compared with three in the first year of the
    project. The towpath proved the most popular part of the scheme. Counters at the two main
    bridges logged more than half a million trips last year, and the cafe at the old lock
    keeper cottage now opens every day from April to October. Not every target was met. Nitrate
    levels remain higher than the agreed limit for most of the spring, largely because of
    run-off from farms upstream. The council is now working with landowners on buffer strips
    and winter cover crops, and a joint report is expected next year. The total cost of the
    project, including the tunnel, was close to $84 million, of which about 60% came from
    national grants. Officials argue that the savings in water treatment and flood damage will
    repay the local share within twenty years. For many residents, however, the real measure of
    success is simpler: children paddling in the shallows below the weir on a warm afternoon.
    A public meeting on the next phase of the plan will be held at the town hall in March.
""")

_NEWS_TITLE = "Greenfield Community Newsletter"
_NEWS_SUBTITLE = "Autumn issue: garden harvest, longer library hours and the new timetable for route 14"

_NEWS_SENTENCES = _sentences("""
    The community garden on Mill Street had its best season yet, with forty plots in use and a
    waiting list for next spring. Members grew beans, squash, tomatoes and herbs, and the shared
    fruit beds produced more apples than anyone could eat. Surplus produce went to the food bank
    every Saturday morning, a total of more than six hundred kilograms since June. The garden
    committee thanks everyone who helped repair the greenhouse after the storm in August. New
    members are welcome; the annual fee is $25 and includes the use of tools, compost and water.
    From the first of November, the public library will stay open until eight on Tuesday and
    Thursday evenings. The change follows a survey in which most readers asked for more time
    after work. The reading room has new tables and better lighting, and the local history
    collection has moved to the ground floor. Children can join the winter reading challenge,
    which runs for six weeks and ends with a small party in the hall. Volunteers are needed to
    help with the homework club on Wednesday afternoons. The regional transport board has
    published a new timetable for route 14. Buses will run every twenty minutes on weekdays and
    every half hour on Sundays. The first departure from the station is now at 6:10, and the
    last bus leaves the hospital at 23:40. Several stops near the school have moved a short
    distance to make room for a safer crossing. Printed timetables are available at the
    library, the post office and the pharmacy on Station Road. The next newsletter will appear
    in January; please send news and photographs to the editor by the middle of December.
""")

_TABLE_TITLE = "Purchase Order 4471: Northwind Hardware Supply"
_TABLE_HEADER = ("Item", "Qty", "Unit price", "Total")
# (item, quantity, unit price in cents); totals are computed so the arithmetic on the page is right.
_TABLE_ROWS: tuple[tuple[str, int, int], ...] = (
    ("Steel bolts M8", 12, 45),
    ("Hex nuts M8", 24, 12),
    ("Flat washers 8mm", 50, 5),
    ("Wood screws 4x40", 200, 3),
    ("Brass hinge 75mm", 6, 320),
    ("Cable ties 200mm", 100, 8),
    ("Wall plugs 6mm", 80, 4),
    ("Drill bit HSS 6mm", 2, 475),
    ("Masking tape 25mm", 5, 215),
    ("Sandpaper P120", 10, 60),
    ("Wood glue 250ml", 3, 590),
    ("Paint brush 50mm", 4, 335),
)
_TABLE_NOTE = "Prices in USD, excluding tax. Payment due within 30 days of delivery."

_RECEIPT_SHOP = "HARBOR LANE GROCERY"
_RECEIPT_HEADER = ("214 HARBOR LANE", "PORTLAND, OR 97201", "TEL 503-555-0148", "DATE 2024-03-15 14:32")
_RECEIPT_ITEMS: tuple[tuple[str, int], ...] = (
    ("COFFEE BEANS 1KG", 1290),
    ("WHOLE MILK 2L", 259),
    ("SOURDOUGH LOAF", 475),
    ("FREE RANGE EGGS 12", 529),
    ("CHEDDAR 400G", 645),
    ("BANANAS 1.2KG", 191),
    ("OLIVE OIL 750ML", 899),
    ("PASTA FUSILLI", 175),
    ("TOMATO SAUCE", 329),
    ("DARK CHOCOLATE", 285),
)
_RECEIPT_TAX_PERCENT = 8


# ---------------------------------------------------------------------------------------------
# Layout: everything is placed in PDF points first, then drawn and measured from the same numbers.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    """A word as drawn on the PDF page: left edge of its advance box and baseline, in points (bottom-left origin)."""

    text: str
    font: str
    size: float
    x: float
    baseline: float


@dataclass(frozen=True)
class _Rule:
    """A thin gray ruled line, drawn light enough (> 128 after rendering) not to count as ink."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class _Layout:
    width: float
    height: float
    lines: tuple[tuple[_Placed, ...], ...]  # reading order
    rules: tuple[_Rule, ...] = ()


def _place(words: Sequence[str], font: str, size: float, x: float, baseline: float) -> list[_Placed]:
    """Place words left to right from x, separated by exactly one space of the font."""
    space = stringWidth(" ", font, size)
    placed: list[_Placed] = []
    for word in words:
        placed.append(_Placed(word, font, size, x, baseline))
        x += stringWidth(word, font, size) + space
    return placed


def _line_width(words: Sequence[str], font: str, size: float) -> float:
    return float(stringWidth(" ".join(words), font, size))


def _wrap(words: Sequence[str], font: str, size: float, width: float, first_indent: float = 0.0) -> list[list[str]]:
    """Greedy line breaking by measured width; the first line may be indented."""
    space = stringWidth(" ", font, size)
    lines: list[list[str]] = []
    current: list[str] = []
    used = 0.0
    for word in words:
        w = stringWidth(word, font, size)
        limit = width - (first_indent if not lines else 0.0)
        if w > limit:
            raise ValueError(f"word {word!r} is wider than the text frame")
        if current and used + space + w > limit:
            lines.append(current)
            current, used = [word], w
        else:
            used = w if not current else used + space + w
            current.append(word)
    if current:
        lines.append(current)
    return lines


def _fill(
    sentences: Sequence[str], font: str, size: float, width: float, max_lines: int, per_paragraph: int, indent: float
) -> list[tuple[float, list[str]]]:
    """Wrap as many whole sentences as fit in max_lines; returns (x offset, words) per line.

    Sentences are grouped into paragraphs; every paragraph but the first gets a first-line indent,
    the usual book convention, so the columns look typeset rather than like one long run of text.
    """
    best: list[tuple[float, list[str]]] = []
    for count in range(1, len(sentences) + 1):
        lines: list[tuple[float, list[str]]] = []
        for start in range(0, count, per_paragraph):
            words = " ".join(sentences[start : min(start + per_paragraph, count)]).split()
            para_indent = indent if start else 0.0
            for i, line in enumerate(_wrap(words, font, size, width, para_indent)):
                lines.append((para_indent if i == 0 else 0.0, line))
        if len(lines) > max_lines:
            break
        best = lines
    if not best:
        raise ValueError("not even one sentence fits the frame")
    return best


def _check_fits(words: Sequence[str], font: str, size: float, width: float) -> None:
    if _line_width(words, font, size) > width:
        raise ValueError(f"line {' '.join(words)!r} is wider than {width:.1f} pt")


def _layout_fonts() -> _Layout:
    width, height = A4
    left = 45 * mm  # a book-like measure: about 65 characters per line
    frame = width - 2 * left
    lines: list[tuple[_Placed, ...]] = []
    y = height - 25 * mm - 14  # first baseline: top margin plus the heading's size
    title = _FONTS_TITLE.split()
    _check_fits(title, "Helvetica-Bold", 14, frame)
    lines.append(tuple(_place(title, "Helvetica-Bold", 14, left, y)))
    y -= 14 * 1.9
    for font, size, max_lines, sentences in _FONTS_PARAGRAPHS:
        leading = size * 1.3
        for dx, words in _fill(sentences, font, size, frame, max_lines, per_paragraph=len(sentences), indent=0.0):
            lines.append(tuple(_place(words, font, size, left + dx, y)))
            y -= leading
        y -= size * 0.9  # paragraph gap
    return _Layout(width, height, tuple(lines))


def _columns(
    sentences: Sequence[str],
    font: str,
    size: float,
    leading: float,
    left: float,
    frame: float,
    gutter: float,
    n_cols: int,
    lines_per_col: int,
    top_baseline: float,
) -> list[tuple[_Placed, ...]]:
    """Flow text through n equal columns, filling column 1 top to bottom, then column 2, and so on."""
    col_width = (frame - gutter * (n_cols - 1)) / n_cols
    flowed = _fill(sentences, font, size, col_width, n_cols * lines_per_col, per_paragraph=3, indent=size * 1.2)
    out: list[tuple[_Placed, ...]] = []
    for i, (dx, words) in enumerate(flowed):
        col, row = divmod(i, lines_per_col)
        x = left + col * (col_width + gutter) + dx
        out.append(tuple(_place(words, font, size, x, top_baseline - row * leading)))
    return out


def _layout_two_column() -> _Layout:
    width, height = A4
    left = 30 * mm
    frame = width - 2 * left
    y = height - 25 * mm - 16
    title = _RIVER_TITLE.split()
    _check_fits(title, "Times-Bold", 16, frame)
    lines = [tuple(_place(title, "Times-Bold", 16, left, y))]
    lines += _columns(_RIVER_SENTENCES, "Times-Roman", 10, 12.5, left, frame, 24, 2, 17, y - 16 * 2.2)
    return _Layout(width, height, tuple(lines))


def _layout_three_column_title() -> _Layout:
    width, height = A4
    left = 20 * mm
    frame = width - 2 * left
    y = height - 22 * mm - 18
    title, subtitle = _NEWS_TITLE.split(), _NEWS_SUBTITLE.split()
    _check_fits(title, "Helvetica-Bold", 18, frame)
    _check_fits(subtitle, "Helvetica", 11, frame)
    lines = [tuple(_place(title, "Helvetica-Bold", 18, left, y))]
    y -= 18 * 1.4
    lines.append(tuple(_place(subtitle, "Helvetica", 11, left, y)))
    lines += _columns(_NEWS_SENTENCES, "Helvetica", 9, 11.5, left, frame, 20, 3, 14, y - 11 * 2.4)
    return _Layout(width, height, tuple(lines))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _layout_table() -> _Layout:
    width, height = A4
    left = 25 * mm
    right = width - 25 * mm
    col_x = (left, left + 200, left + 270, left + 360)  # fixed, left-aligned cell positions
    pitch = 20.0
    asc, desc = getAscentDescent("Helvetica", 10)
    y = height - 25 * mm - 14
    title = _TABLE_TITLE.split()
    _check_fits(title, "Helvetica-Bold", 14, right - left)
    lines = [tuple(_place(title, "Helvetica-Bold", 14, left, y))]
    y -= 14 * 2.4

    def row(cells: Sequence[str], font: str, baseline: float) -> tuple[_Placed, ...]:
        placed: list[_Placed] = []
        for i, (cell, x) in enumerate(zip(cells, col_x, strict=True)):
            limit = (col_x[i + 1] if i + 1 < len(col_x) else right) - x - 6
            _check_fits(cell.split(), font, 10, limit)
            placed += _place(cell.split(), font, 10, x, baseline)
        return tuple(placed)

    rules: list[_Rule] = []

    def rule_below(baseline: float) -> None:
        # Halfway between this row's descent and the next row's ascent, well clear of both boxes.
        y_rule = ((baseline + desc) + (baseline - pitch + asc)) / 2
        rules.append(_Rule(left - 4, y_rule, right, y_rule))

    rule_below(y + pitch)  # top of the table
    lines.append(row(_TABLE_HEADER, "Helvetica-Bold", y))
    rule_below(y)
    grand = 0
    for item, qty, unit in _TABLE_ROWS:
        y -= pitch
        grand += qty * unit
        lines.append(row((item, str(qty), _money(unit), _money(qty * unit)), "Helvetica", y))
        rule_below(y)
    y -= pitch
    lines.append(row(("Grand total", "", "", _money(grand)), "Helvetica-Bold", y))
    rule_below(y)
    y -= pitch * 2
    note = _TABLE_NOTE.split()
    _check_fits(note, "Helvetica", 9, right - left)
    lines.append(tuple(_place(note, "Helvetica", 9, left, y)))
    return _Layout(width, height, tuple(lines), tuple(rules))


def _layout_receipt() -> _Layout:
    width, height = 80 * mm, 200 * mm
    left, right = 15 * mm, width - 15 * mm
    font, size, leading = "Courier", 9, 9 * 1.45
    y = height - 18 * mm - size
    lines: list[tuple[_Placed, ...]] = []
    rules: list[_Rule] = []

    def centred(text: str) -> None:
        nonlocal y
        words = text.split()
        _check_fits(words, font, size, right - left)
        x = (left + right - _line_width(words, font, size)) / 2
        lines.append(tuple(_place(words, font, size, x, y)))
        y -= leading

    def priced(label: str, cents: int) -> None:
        nonlocal y
        words, price = label.split(), _money(cents)
        price_w = stringWidth(price, font, size)
        # At least two spaces between label and price, like a real till printout.
        _check_fits([*words, "", price], font, size, right - left)
        lines.append((*_place(words, font, size, left, y), _Placed(price, font, size, right - price_w, y)))
        y -= leading

    def separator() -> None:
        nonlocal y
        rules.append(_Rule(left, y + size * 0.3, right, y + size * 0.3))
        y -= leading * 0.8

    centred(_RECEIPT_SHOP)
    for text in _RECEIPT_HEADER:
        centred(text)
    separator()
    subtotal = 0
    for label, cents in _RECEIPT_ITEMS:
        priced(label, cents)
        subtotal += cents
    separator()
    tax = (subtotal * _RECEIPT_TAX_PERCENT + 50) // 100  # round half up to the cent
    priced("SUBTOTAL", subtotal)
    priced(f"TAX {_RECEIPT_TAX_PERCENT}%", tax)
    priced("TOTAL", subtotal + tax)
    separator()
    centred("PAID BY CARD")
    centred("THANK YOU FOR SHOPPING")
    return _Layout(width, height, tuple(lines), tuple(rules))


_LAYOUTS: dict[str, Callable[[], _Layout]] = {
    "fonts": _layout_fonts,
    "two_column": _layout_two_column,
    "three_column_title": _layout_three_column_title,
    "table": _layout_table,
    "receipt": _layout_receipt,
}


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _to_pdf(layout: _Layout) -> bytes:
    buf = io.BytesIO()
    # invariant=1 drops timestamps and random ids, so the PDF (and the raster) is byte-for-byte stable.
    pdf = canvas.Canvas(buf, pagesize=(layout.width, layout.height), invariant=1)
    pdf.setStrokeGray(0.65)
    pdf.setLineWidth(0.5)
    for r in layout.rules:
        pdf.line(r.x0, r.y0, r.x1, r.y1)
    pdf.setFillGray(0.0)
    for line in layout.lines:
        for w in line:
            pdf.setFont(w.font, w.size)
            pdf.drawString(w.x, w.baseline, w.text)
    pdf.showPage()
    pdf.save()
    return buf.getvalue()


def _rasterise(pdf_bytes: bytes, dpi: int) -> np.ndarray:
    doc = pdfium.PdfDocument(pdf_bytes)
    try:
        bitmap = doc[0].render(scale=dpi / 72, grayscale=True)  # an 8-bit "L" bitmap, white paper = 255
        image = np.array(bitmap.to_numpy(), dtype=np.uint8, copy=True)  # copy: the bitmap memory dies with doc
    finally:
        doc.close()
    if image.ndim != 2:
        raise RuntimeError(f"expected a single-channel raster from pdfium, got shape {image.shape}")
    return np.ascontiguousarray(image)


def _true_words(layout: _Layout, dpi: int) -> tuple[TrueWord, ...]:
    scale = dpi / 72
    out: list[TrueWord] = []
    for line in layout.lines:
        for w in line:
            asc, desc = getAscentDescent(w.font, w.size)
            x1 = w.x + stringWidth(w.text, w.font, w.size)
            # PDF y grows upwards from the bottom edge; image y grows downwards from the top.
            box = (
                w.x * scale,
                (layout.height - (w.baseline + asc)) * scale,
                x1 * scale,
                (layout.height - (w.baseline + desc)) * scale,
            )
            out.append(TrueWord(w.text, box))
    return tuple(out)


@lru_cache(maxsize=32)
def _generate(kind: str, dpi: int) -> GeneratedPage:
    layout = _LAYOUTS[kind]()
    image = _rasterise(_to_pdf(layout), dpi)
    image.flags.writeable = False  # the cached master must never change; make_page hands out copies
    text = "\n".join(" ".join(w.text for w in line) for line in layout.lines)
    return GeneratedPage(kind, image, float(dpi), text, _true_words(layout, dpi))


def make_page(kind: str, dpi: int = 200) -> GeneratedPage:
    """Render one synthetic page of the given kind (see PAGE_KINDS) at dpi, with its ground truth."""
    if kind not in _LAYOUTS:
        raise ValueError(f"unknown page kind {kind!r}; expected one of {PAGE_KINDS}")
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    cached = _generate(kind, int(dpi))
    return replace(cached, image=cached.image.copy())


# ---------------------------------------------------------------------------------------------
# Transformations
# ---------------------------------------------------------------------------------------------


def _clip_box(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return (min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(max(x1, 0.0), width), min(max(y1, 0.0), height))


def degrade(
    page: GeneratedPage, seed: int = 0, *, skew_deg: float = 0.8, blur_sigma: float = 0.7, noise_sigma: float = 8.0
) -> GeneratedPage:
    """Simulate a scan: rotate by skew_deg (counter-clockwise as viewed) about the centre, blur, add noise.

    Word boxes become the axis-aligned bounds of their rotated corners (clipped to the image).
    The noise comes from numpy's Generator seeded with seed, so the result is reproducible.
    """
    height, width = page.image.shape
    # cv2 puts pixel centres at integer coordinates; ours are at i + 0.5. Rotating about the
    # centre (width/2, height/2) in our coordinates is rotating about (w/2 - .5, h/2 - .5) in cv2's.
    matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), skew_deg, 1.0)
    image = cv2.warpAffine(
        page.image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255
    )
    if blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    if noise_sigma > 0:
        rng = np.random.default_rng(seed)
        noisy = image.astype(np.float32) + rng.standard_normal(image.shape, dtype=np.float32) * noise_sigma
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

    words: list[TrueWord] = []
    for w in page.words:
        x0, y0, x1, y1 = w.box
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], dtype=np.float64)
        corners[:, :2] -= 0.5  # to cv2 coordinates, transform, and back
        moved = corners @ matrix.T + 0.5
        xs, ys = moved[:, 0], moved[:, 1]
        box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
        words.append(TrueWord(w.text, _clip_box(box, width, height)))
    return GeneratedPage(f"{page.name}-degraded", np.ascontiguousarray(image), page.dpi, page.text, tuple(words))


def rotate_page(page: GeneratedPage, degrees: int) -> GeneratedPage:
    """Rotate the image clockwise by 90, 180 or 270 degrees (0 and multiples of 360 too) and map the boxes exactly."""
    turn = degrees % 360
    if turn not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {degrees}")
    height, width = page.image.shape
    image = np.ascontiguousarray(np.rot90(page.image, k=-(turn // 90)))  # negative k: clockwise

    def move(box: Box) -> Box:
        x0, y0, x1, y1 = box
        if turn == 90:  # (x, y) -> (H - y, x)
            return (height - y1, x0, height - y0, x1)
        if turn == 180:  # (x, y) -> (W - x, H - y)
            return (width - x1, height - y1, width - x0, height - y0)
        if turn == 270:  # (x, y) -> (y, W - x)
            return (y0, width - x1, y1, width - x0)
        return box

    words = tuple(TrueWord(w.text, move(w.box)) for w in page.words)
    return GeneratedPage(f"{page.name}-rot{turn}", image, page.dpi, page.text, words)


def _encode(page: GeneratedPage, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    dpi = round(page.dpi)
    # Store the resolution in the file, so consumers that read DPI metadata see the true scale.
    Image.fromarray(page.image).save(buf, format=fmt, dpi=(dpi, dpi), **options)
    return buf.getvalue()


def page_to_png(page: GeneratedPage) -> bytes:
    """Lossless PNG of the page image, with its DPI recorded."""
    return _encode(page, "PNG")


def page_to_jpeg(page: GeneratedPage, quality: int = 90) -> bytes:
    """JPEG of the page image at the given quality, with its DPI recorded."""
    return _encode(page, "JPEG", quality=quality)
