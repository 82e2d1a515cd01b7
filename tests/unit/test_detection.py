from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from textlayer.worker import detection

PARAMS = detection.DetectorParams(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_db_postprocess_finds_each_text_region_with_unclip():
    prob = np.zeros((200, 400), dtype=np.float32)
    prob[40:60, 50:350] = 0.9  # a line
    prob[120:136, 80:200] = 0.8  # a shorter one
    boxes = detection.boxes_from_probability(prob, PARAMS, 2.0, 2.0)
    assert len(boxes) == 2
    wide = max(boxes, key=lambda b: b.width)
    x0, y0 = wide.quad.min(axis=0)
    x1, y1 = wide.quad.max(axis=0)
    # Scaled by 2 and grown by the DB unclip offset on every side.
    # DB offset for a 300x20 region: d = 300 * 20 * 1.4 / (2 * 320) = 13 px at detector scale.
    assert 70 < x0 < 80 and 715 < x1 < 730
    assert 50 < y0 < 60 and 138 < y1 < 148


def test_db_postprocess_drops_faint_and_tiny_regions():
    prob = np.zeros((100, 100), dtype=np.float32)
    prob[10:30, 10:90] = 0.3  # above the binarisation threshold, below the box threshold
    prob[60:62, 10:12] = 0.9  # a speck
    assert detection.boxes_from_probability(prob, PARAMS, 1.0, 1.0) == []


def test_rotated_region_gives_rotated_quad():
    prob = np.zeros((400, 400), dtype=np.float32)
    rect = ((200, 200), (300, 24), 20.0)
    cv2.fillPoly(prob, [cv2.boxPoints(rect).astype(np.int32)], 1.0)
    (box,) = detection.boxes_from_probability(prob, PARAMS, 1.0, 1.0)
    dx, dy = box.quad[1] - box.quad[0]
    assert math.degrees(math.atan2(dy, dx)) == pytest.approx(20.0, abs=2.0)


def test_scale_shrinks_a_600_dpi_receipt_and_enlarges_a_tiny_print():
    # 600-dpi receipt: 9-pt lines are ~90 px tall; detecting at full size is waste.
    receipt = (7000, 1900)
    assert detection.choose_scale([90.0] * 30, receipt) == pytest.approx(detection.TARGET_LINE_HEIGHT_PX / 90)
    # 100-dpi form with 10-px lines: enlarged so small print survives.
    form = (1100, 850)
    assert detection.choose_scale([10.0] * 30, form) > 1.5
    # Never beyond the detector's size limits.
    huge = (7000, 5000)
    scale = detection.choose_scale([5.0] * 30, huge)
    assert max(huge) * scale <= detection.MAX_DETECTOR_SIDE_PX + 1


def test_preprocess_pads_to_multiples_of_32_and_normalises():
    image = np.full((333, 517), 255, dtype=np.uint8)
    batch, fx, fy = detection.preprocess(image, 1.0, PARAMS)
    assert batch.shape[:2] == (1, 3) and batch.shape[2] % 32 == 0 and batch.shape[3] % 32 == 0
    assert batch.dtype == np.float32
    assert fx == pytest.approx(517 / batch.shape[3]) and fy == pytest.approx(333 / batch.shape[2])
    assert batch[0, 0, 0, 0] == pytest.approx((1.0 - 0.485) / 0.229, rel=1e-4)


def test_vertical_share_detects_sideways_text():
    def box(w, h):
        quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        return detection.TextBox(quad, 0.9)

    assert detection.vertical_share([box(20, 300)] * 5 + [box(300, 20)]) > 0.8
    assert detection.vertical_share([box(300, 20)] * 5) == 0.0


def test_probe_boxes_are_kept_when_the_text_was_readable_at_probe_size():
    # A4 at 300 dpi probed at 0.36: 45-px lines are 16 px there, fine for the detector.
    assert detection.probe_is_enough([45.0] * 20, 0.365)
    # Tiny print at probe size: look again, closer.
    assert not detection.probe_is_enough([20.0] * 20, 0.365)
    assert not detection.probe_is_enough([], 1.0)
