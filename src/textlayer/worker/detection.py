"""Text detection around a DB model: input scaling, preprocessing and box extraction (numpy + cv2)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

TARGET_LINE_HEIGHT_PX = 18.0
"""Height a typical text line should have at the detector (the DB models see text best near this)."""

MAX_DETECTOR_SIDE_PX = 4096
"""Never feed the detector a longer side than this (cost grows with pixels)."""

MAX_DETECTOR_PIXELS = 12_000_000
"""Never feed the detector more pixels than this."""

PROBE_SIDE_PX = 1280
"""Longer side of the quick first detection pass that measures the text size."""

PROBE_MIN_LINE_PX = 12.0
PROBE_MAX_LINE_PX = 48.0
"""Typical line heights (at probe scale) for which the probe's own boxes are kept."""


@dataclass(frozen=True)
class DetectorParams:
    """DB post-processing settings of one detector (from the manifest)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1.0 / 255.0
    binarize_threshold: float = 0.2
    box_threshold: float = 0.45
    unclip_ratio: float = 1.4
    max_candidates: int = 3000
    min_side_px: float = 3.0


@dataclass(frozen=True)
class TextBox:
    """A detected text region: four corners in image pixels and the model's score."""

    quad: np.ndarray  # float32 (4, 2): top-left, top-right, bottom-right, bottom-left
    score: float

    @property
    def width(self) -> float:
        """Length of the top edge."""
        return float(np.linalg.norm(self.quad[1] - self.quad[0]))

    @property
    def height(self) -> float:
        """Length of the left edge."""
        return float(np.linalg.norm(self.quad[3] - self.quad[0]))


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Return a 3-channel uint8 view/copy of a gray, BGR or BGRA image."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def probe_scale(shape: tuple[int, ...]) -> float:
    """Scale of the cheap first pass: longer side to PROBE_SIDE_PX (never enlarged)."""
    return min(1.0, PROBE_SIDE_PX / max(shape[0], shape[1]))


def choose_scale(line_heights_px: list[float], shape: tuple[int, ...]) -> float:
    """Pick the detector scale that brings the page's typical line to TARGET_LINE_HEIGHT_PX.

    A 600-dpi receipt is shrunk (full size costs seconds of detection for nothing); a 100-dpi form is enlarged a little;
    the result is capped by the detector size limits. ``line_heights_px`` are the heights of the lines found by the
    probe, in original pixels.
    """
    height, width = shape[0], shape[1]
    if line_heights_px:
        typical = float(np.percentile(np.asarray(line_heights_px), 40))
        scale = TARGET_LINE_HEIGHT_PX / max(typical, 1.0)
    else:
        # Nothing found at probe size: maybe the print is tiny; look closer.
        scale = 2560 / max(height, width)
    scale = min(scale, 2.0, MAX_DETECTOR_SIDE_PX / max(height, width))
    scale = min(scale, math.sqrt(MAX_DETECTOR_PIXELS / float(height * width)))
    return max(scale, 32.0 / min(height, width), 0.05)


def probe_is_enough(line_heights_px: list[float], probe: float) -> bool:
    """Whether the probe pass already saw the text at a size the detector reads well.

    Then its boxes are final and the page is detected once; only pages whose text was
    too small (or absurdly large) at probe size are detected again at the chosen scale.
    """
    if not line_heights_px:
        return False
    typical = float(np.percentile(np.asarray(line_heights_px), 40)) * probe
    return PROBE_MIN_LINE_PX <= typical <= PROBE_MAX_LINE_PX


def preprocess(image: np.ndarray, scale: float, params: DetectorParams) -> tuple[np.ndarray, float, float]:
    """Resize to a multiple of 32 and normalise into a 1x3xHxW float32 batch; with x, y factors back to image pixels."""
    height, width = image.shape[:2]
    out_h = max(32, int(round(height * scale / 32)) * 32)
    out_w = max(32, int(round(width * scale / 32)) * 32)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(to_bgr(image), (out_w, out_h), interpolation=interpolation)
    mean = np.asarray(params.mean, dtype=np.float32) / params.scale
    inv_std = 1.0 / (np.asarray(params.std, dtype=np.float32) / params.scale)
    batch = (resized.astype(np.float32) - mean) * inv_std
    return batch.transpose(2, 0, 1)[None], width / out_w, height / out_h


def _order_quad(points: np.ndarray) -> np.ndarray:
    """Order four points as top-left, top-right, bottom-right, bottom-left."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = left[np.argsort(left[:, 1], kind="stable")]
    top_right, bottom_right = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float32)


def _box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside a quad (the DB 'fast' score)."""
    h, w = prob.shape
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (quad - np.array([x0, y0], dtype=np.float32)).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def boxes_from_probability(prob: np.ndarray, params: DetectorParams, factor_x: float, factor_y: float) -> list[TextBox]:
    """DB post-processing of an HxW probability map: binarise, contours, score, unclip, minimum-area rotated boxes.

    ``factor_x`` and ``factor_y`` scale detector x and y to image x and y.
    """
    bitmap = (prob > params.binarize_threshold).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[TextBox] = []
    for contour in contours[: params.max_candidates]:
        (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < params.min_side_px:
            continue
        core = _order_quad(cv2.boxPoints(((cx, cy), (w, h), angle)))
        score = _box_score(prob, core)
        if score < params.box_threshold:
            continue
        # Unclipping a rectangle by the DB offset d = A * r / L grows each side by 2d.
        distance = w * h * params.unclip_ratio / (2.0 * (w + h))
        grown = ((cx, cy), (w + 2 * distance, h + 2 * distance), angle)
        quad = _order_quad(cv2.boxPoints(grown))
        if min(w, h) + 2 * distance < params.min_side_px + 2:
            continue
        quad[:, 0] = np.clip(quad[:, 0] * factor_x, 0, prob.shape[1] * factor_x)
        quad[:, 1] = np.clip(quad[:, 1] * factor_y, 0, prob.shape[0] * factor_y)
        boxes.append(TextBox(quad=quad, score=score))
    return boxes


def line_heights(boxes: list[TextBox]) -> list[float]:
    """Heights of horizontal-ish boxes (the short side), for scale estimation."""
    return [min(b.width, b.height) for b in boxes if max(b.width, b.height) > 1.5 * min(b.width, b.height)]


def vertical_share(boxes: list[TextBox]) -> float:
    """Share of elongated boxes (weighted by area) that stand upright: text turned 90 degrees."""
    upright = lying = 0.0
    for box in boxes:
        w, h = box.width, box.height
        if max(w, h) < 2.0 * min(w, h):
            continue  # single characters and blobs say nothing about direction
        if h > w:
            upright += w * h
        else:
            lying += w * h
    total = upright + lying
    return upright / total if total else 0.0
