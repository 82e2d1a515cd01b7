"""The engine on rendered pages with known text: accuracy, word boxes, orientation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from tests.pages import PAGE_KINDS, degrade, make_page, rotate_page
from textlayer.elements import quad_bbox

pytestmark = [pytest.mark.onnx, pytest.mark.slow]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _cer(truth: str, got: str) -> float:
    return Levenshtein.distance(_norm(truth), _norm(got)) / len(_norm(truth))


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _box_hit_rate(page, result) -> float:
    """Share of true words that have an OCR word with the same text and IoU >= 0.5."""
    predicted = [(w.text, quad_bbox(w.quad)) for w in result.words]
    hits = 0
    for word in page.words:
        if any(text == word.text and _iou(box, word.box) >= 0.5 for text, box in predicted):
            hits += 1
    return hits / len(page.words)


@pytest.fixture(scope="module")
def results(predictor):
    """Each page kind, clean and degraded, OCRed once for all the checks below."""
    out = {}
    for kind in PAGE_KINDS:
        clean = make_page(kind)
        degraded = degrade(clean, seed=7)
        for page in (clean, degraded):
            out[page.name] = (page, predictor.recognize(page.image, dpi=page.dpi))
    return out


@pytest.mark.parametrize("kind", PAGE_KINDS)
def test_clean_print_reads_in_reading_order(results, kind):
    page, result = results[kind]
    assert _cer(page.text, result.text) <= 0.02, result.text


@pytest.mark.parametrize("kind", PAGE_KINDS)
def test_degraded_scan_reads_in_reading_order(results, kind):
    page, result = results[f"{kind}-degraded"]
    assert _cer(page.text, result.text) <= 0.05, result.text


@pytest.mark.parametrize("kind", PAGE_KINDS)
def test_word_boxes_land_on_the_words(results, kind):
    for name in (kind, f"{kind}-degraded"):
        page, result = results[name]
        assert _box_hit_rate(page, result) >= 0.95, name


def test_confidences_and_result_round_trip(results):
    _, result = results["table"]
    assert all(0.5 <= w.confidence <= 1.0 for w in result.words)
    assert type(result).from_dict(result.to_dict()) == result


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_turned_page_reads_the_same(predictor, degrees):
    page = rotate_page(make_page("receipt"), degrees)
    result = predictor.recognize(page.image)
    # rotation = how far the page must turn clockwise to be upright.
    assert result.rotation == (360 - degrees) % 360
    assert _cer(page.text, result.text) <= 0.02
    # Boxes are on the page as given (turned), not on the upright copy.
    assert _box_hit_rate(page, result) >= 0.95


def test_rotated_lines_give_rotated_word_quads(predictor):
    page = degrade(make_page("receipt"), seed=3, skew_deg=6.0, noise_sigma=0.0)
    result = predictor.recognize(page.image)
    angles = []
    for word in result.words:
        (x0, y0), (x1, y1) = word.quad[0], word.quad[1]
        angles.append(math.degrees(math.atan2(y1 - y0, x1 - x0)))
    # cv2 turns the page counter-clockwise as seen: the text rises to the right.
    assert np.median(angles) == pytest.approx(-6.0, abs=1.0)
    assert _cer(page.text, result.text) <= 0.03


def test_a_page_without_text_gives_no_lines(predictor):
    blank = np.full((800, 600), 255, dtype=np.uint8)
    result = predictor.recognize(blank)
    assert result.lines == () and result.text == ""


@pytest.mark.parametrize("dpi", [100, 600])
def test_text_size_is_found_whatever_the_scan_resolution(predictor, dpi):
    # A 600-dpi receipt is detected shrunk, a 100-dpi one enlarged; both must read.
    page = make_page("receipt", dpi=dpi)
    result = predictor.recognize(page.image, dpi=dpi)
    assert _cer(page.text, result.text) <= 0.02
    assert _box_hit_rate(page, result) >= 0.9
