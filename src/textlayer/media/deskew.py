"""Find and undo the skew of a scanned page (numpy + cv2): runs where the page pixels are, in the converter jail."""

from __future__ import annotations

import cv2
import numpy as np

from textlayer.build_options import MAX_SKEW_DEG

MIN_SKEW_DEG = 0.2
"""A page skewed by less than this is left alone (resampling it would only blur it)."""

_WORK_WIDTH_PX = 1000
"""Width the page is shrunk to for the search: enough for a tenth of a degree on a line of text."""


def _profile_score(ys: np.ndarray, xs: np.ndarray, angle: float) -> float:
    # For the small angles of a skew, turning the page is a shear: each column moves up or down by x * tan(angle).
    rows = np.rint(ys + xs * np.tan(np.radians(angle))).astype(np.int64)
    counts = np.bincount(rows - rows.min())
    # Straight lines of text make the row sums peaky: rows of ink alternate with empty gaps.
    return float(np.square(np.diff(counts.astype(np.float64))).sum())


def estimate_skew(image: np.ndarray) -> float:
    """The angle (degrees, counter-clockwise as displayed) that straightens the text lines of ``image``.

    A projection-profile search, coarse then fine, within :data:`~textlayer.build_options.MAX_SKEW_DEG`;
    0.0 for a page with too little ink to tell, or one straight to within :data:`MIN_SKEW_DEG`.
    """
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    if min(height, width) < 32:
        return 0.0
    scale = min(1.0, _WORK_WIDTH_PX / width)
    small = cv2.resize(
        gray, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    _, ink = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if ink.mean() < 0.002 or ink.mean() > 0.5:  # (nearly) empty, or a photo rather than text
        return 0.0
    ys, xs = np.nonzero(ink)
    xs = xs.astype(np.float64) - ink.shape[1] / 2
    best = 0.0
    for step, span in ((1.0, MAX_SKEW_DEG), (0.1, 1.0)):
        candidates = np.arange(best - span, best + span + step / 2, step)
        candidates = candidates[np.abs(candidates) <= MAX_SKEW_DEG]
        best = float(max(candidates, key=lambda angle: _profile_score(ys, xs, float(angle))))
    # The shear that levels the lines measures the skew; straightening turns the other way.
    best = -round(best, 1)
    return 0.0 if abs(best) < MIN_SKEW_DEG else best


def rotate_page(image: np.ndarray, angle: float) -> np.ndarray:
    """``image`` turned by ``angle`` degrees counter-clockwise about its centre, same size, corners filled white."""
    if angle == 0.0:
        return image
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    white = 255 if image.ndim == 2 else (255,) * image.shape[2]
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderValue=white)
