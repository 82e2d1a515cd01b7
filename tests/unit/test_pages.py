"""Checks that the synthetic page generator's ground truth matches the pixels it renders."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.pages import PAGE_KINDS, GeneratedPage, TrueWord, degrade, make_page, page_to_jpeg, page_to_png, rotate_page

INK = 128  # darker than this counts as ink; ruled lines are drawn lighter on purpose
RING = 3  # width in pixels of the band just outside each box that must be (nearly) blank


def _int_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Smallest whole-pixel box covering a float box."""
    x0, y0, x1, y1 = box
    return math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)


def _ink_in(image: np.ndarray, box: tuple[float, float, float, float]) -> int:
    x0, y0, x1, y1 = _int_box(box)
    return int(image[y0:y1, x0:x1].min())


def _ring_dark_fraction(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Share of ink pixels in the RING-px band around the box (not counting the box itself)."""
    height, width = image.shape
    x0, y0, x1, y1 = _int_box(box)
    inner = image[y0:y1, x0:x1]
    outer = image[max(y0 - RING, 0) : min(y1 + RING, height), max(x0 - RING, 0) : min(x1 + RING, width)]
    area = outer.size - inner.size
    dark = int((outer < INK).sum()) - int((inner < INK).sum())
    return dark / area if area else 0.0


def _ring_failures(page: GeneratedPage) -> int:
    return sum(_ring_dark_fraction(page.image, w.box) > 0.01 for w in page.words)


@pytest.fixture(params=PAGE_KINDS)
def page(request: pytest.FixtureRequest) -> GeneratedPage:
    return make_page(request.param)


def test_image_is_a_sane_grayscale_scan(page: GeneratedPage) -> None:
    assert page.image.dtype == np.uint8
    assert page.image.ndim == 2
    height, width = page.image.shape
    if page.name == "receipt":  # 80 x 200 mm
        expected = (200 / 25.4 * page.dpi, 80 / 25.4 * page.dpi)
    else:  # A4 portrait
        expected = (297 / 25.4 * page.dpi, 210 / 25.4 * page.dpi)
    assert abs(height - expected[0]) <= 2 and abs(width - expected[1]) <= 2
    assert np.median(page.image) == 255  # white paper
    assert (page.image < INK).mean() > 0.005  # and some ink on it


def test_text_and_words_agree(page: GeneratedPage) -> None:
    assert page.text.split() == [w.text for w in page.words]
    for line in page.text.split("\n"):
        assert line and line == line.strip() and "  " not in line
    assert all(w.text and not any(c.isspace() for c in w.text) for w in page.words)
    assert page.text.isascii()
    assert 300 <= len(page.text) <= 1600  # small enough to OCR quickly in tests


def test_no_ambiguous_lone_words(page: GeneratedPage) -> None:
    # A lone I/l/1 or O/0 cannot be told apart in print, so a mismatch there proves nothing.
    assert not {w.text.strip(".,:;()") for w in page.words} & {"I", "l", "1", "O", "0", "|"}


def test_boxes_are_inside_the_image(page: GeneratedPage) -> None:
    height, width = page.image.shape
    for w in page.words:
        x0, y0, x1, y1 = w.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, w


def test_every_box_holds_ink(page: GeneratedPage) -> None:
    blank = [w.text for w in page.words if _ink_in(page.image, w.box) >= INK]
    assert not blank


def test_boxes_are_tight_against_blank_paper(page: GeneratedPage) -> None:
    # Overhanging glyphs (the top of a Times "f") may touch the ring; anything else means misplaced boxes.
    fractions = [_ring_dark_fraction(page.image, w.box) for w in page.words]
    assert max(fractions) < 0.1
    assert _ring_failures(page) <= 0.05 * len(page.words)


def test_ring_check_catches_misplaced_boxes() -> None:
    # The same check on boxes shifted by half a line height must fail loudly, or it proves nothing.
    page = make_page("two_column")
    shifted = tuple(
        TrueWord(w.text, (w.box[0], w.box[1] + (h := w.box[3] - w.box[1]) / 2, w.box[2], w.box[3] + h / 2))
        for w in page.words
    )
    moved = GeneratedPage(page.name, page.image, page.dpi, page.text, shifted)
    assert _ring_failures(moved) > 0.5 * len(page.words)


def test_reading_order_of_columns() -> None:
    page = make_page("two_column")
    lines = page.text.split("\n")
    assert lines[0] == "The River Project: Ten Years of Cleaner Water"
    middle = page.image.shape[1] / 2
    body = page.words[len(lines[0].split()) :]
    sides = [w.box[0] > middle for w in body]
    first_right = sides.index(True)
    assert not any(sides[:first_right]) and all(sides[first_right:])  # all of column 1, then column 2
    assert 30 <= len(lines) - 1 <= 40  # two columns of roughly 18 lines


def _word_lines(page: GeneratedPage) -> list[list[TrueWord]]:
    """The page's words grouped by the lines of its text."""
    out: list[list[TrueWord]] = []
    rest = list(page.words)
    for line in page.text.split("\n"):
        n = len(line.split())
        out.append(rest[:n])
        rest = rest[n:]
    return out


def test_three_column_order() -> None:
    page = make_page("three_column_title")
    lines = page.text.split("\n")
    assert lines[0] == "Greenfield Community Newsletter"
    assert lines[1].startswith("Autumn issue:")
    width = page.image.shape[1]
    # Body lines must run down column 1, then 2, then 3: line starts only ever jump right, by a column.
    column_starts: list[float] = []
    per_column: list[int] = []
    for words in _word_lines(page)[2:]:
        x = words[0].box[0]
        if not column_starts or x > column_starts[-1] + width / 6:
            column_starts.append(x)
            per_column.append(0)
        assert x >= column_starts[-1] - 0.5  # same column (possibly an indented first line)
        per_column[-1] += 1
    assert len(column_starts) == 3
    assert all(10 <= n <= 16 for n in per_column[:2]) and per_column[2] <= per_column[0]


def test_table_rows_read_left_to_right() -> None:
    page = make_page("table")
    lines = page.text.split("\n")
    assert lines[1] == "Item Qty Unit price Total"
    assert "Steel bolts M8 12 0.45 5.40" in lines
    quantities = [w for w in page.words if w.text == "12"]
    assert quantities and all(abs(w.box[0] - quantities[0].box[0]) < 0.5 for w in quantities)


def test_receipt_prices_are_right_aligned() -> None:
    page = make_page("receipt")
    lines = page.text.split("\n")
    assert "COFFEE BEANS 1KG 12.90" in lines
    prices = [w for w in page.words if w.text.count(".") == 1 and w.text.replace(".", "").isdigit()]
    assert len(prices) >= 12
    assert max(w.box[2] for w in prices) - min(w.box[2] for w in prices) < 0.5
    total = next(line for line in lines if line.startswith("TOTAL "))
    subtotal = next(line for line in lines if line.startswith("SUBTOTAL "))
    tax = next(line for line in lines if line.startswith("TAX "))
    cents = [round(float(s.split()[-1]) * 100) for s in (subtotal, tax, total)]
    assert cents[0] + cents[1] == cents[2]


@pytest.mark.parametrize(("there", "back"), [(90, 270), (180, 180), (270, 90)])
def test_rotation_round_trip(there: int, back: int) -> None:
    page = make_page("receipt")
    turned = rotate_page(page, there)
    again = rotate_page(turned, back)
    assert np.array_equal(again.image, page.image)
    for a, b in zip(again.words, page.words, strict=True):
        assert a.text == b.text
        assert max(abs(p - q) for p, q in zip(a.box, b.box, strict=True)) <= 1.0


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_boxes_follow_the_ink(degrees: int) -> None:
    page = make_page("receipt")
    turned = rotate_page(page, degrees)
    if degrees != 180:
        assert turned.image.shape == page.image.shape[::-1]
    assert all(_ink_in(turned.image, w.box) < INK for w in turned.words)
    assert _ring_failures(turned) <= 0.05 * len(turned.words)


def test_rotate_rejects_odd_angles() -> None:
    with pytest.raises(ValueError):
        rotate_page(make_page("receipt"), 45)


def test_degrade_is_deterministic_and_keeps_boxes_on_the_ink() -> None:
    page = make_page("table")
    first, second = degrade(page, seed=3), degrade(page, seed=3)
    assert first.name == "table-degraded"
    assert np.array_equal(first.image, second.image)
    assert [w.box for w in first.words] == [w.box for w in second.words]
    assert not np.array_equal(first.image, degrade(page, seed=4).image)
    assert first.image.dtype == np.uint8 and first.image.shape == page.image.shape
    assert first.text == page.text
    # After skew the boxes are looser (bounds of rotated boxes) but must still cover the ink.
    assert all(_ink_in(first.image, w.box) < INK for w in first.words)
    clean = degrade(page, skew_deg=0.8, blur_sigma=0, noise_sigma=0)
    assert _ring_failures(clean) <= 0.05 * len(clean.words)


def test_make_page_hands_out_independent_images() -> None:
    page = make_page("receipt")
    page.image[:] = 0
    assert np.median(make_page("receipt").image) == 255


def test_dpi_scales_boxes() -> None:
    low, high = make_page("receipt", dpi=100), make_page("receipt", dpi=200)
    for a, b in zip(low.words, high.words, strict=True):
        assert all(abs(p * 2 - q) < 1e-6 for p, q in zip(a.box, b.box, strict=True))
    assert all(_ink_in(low.image, w.box) < INK for w in low.words)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError):
        make_page("poster")


def test_encoders_round_trip() -> None:
    page = make_page("receipt")
    png = page_to_png(page)
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert np.array_equal(decoded, page.image)
    assert Image.open(io.BytesIO(png)).info["dpi"] == pytest.approx((200, 200), abs=0.01)
    jpeg = page_to_jpeg(page, quality=85)
    assert jpeg[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert decoded is not None
    assert decoded.shape == page.image.shape
    assert np.abs(decoded.astype(int) - page.image.astype(int)).mean() < 3
