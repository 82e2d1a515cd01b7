"""Page orientation: turn a page by 0/90/180/270 degrees and map points back (numpy + cv2)."""

from __future__ import annotations

import cv2
import numpy as np

SIDEWAYS_SHARE = 0.6
"""A page is sideways when this share of its elongated text boxes (by area) stands upright."""

UPSIDE_DOWN_SHARE = 0.5
"""A page is upside down when the width-weighted mean 180-degree probability of its lines exceeds this."""

_CV2_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def rotate_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """Turn an image clockwise by a multiple of 90 degrees."""
    degrees %= 360
    if degrees == 0:
        return image
    return cv2.rotate(image, _CV2_ROTATIONS[degrees])


def unrotate_points(points: np.ndarray, degrees: int, width: int, height: int) -> np.ndarray:
    """Map Nx2 points of a page turned clockwise by ``degrees`` (0, 90, 180, 270) back to the original page."""
    x, y = points[:, 0], points[:, 1]
    degrees %= 360
    if degrees == 90:
        return np.stack([y, height - x], axis=1)
    if degrees == 180:
        return np.stack([width - x, height - y], axis=1)
    if degrees == 270:
        return np.stack([width - y, x], axis=1)
    return points.copy()


def is_upside_down(flip_probabilities: list[float], widths: list[float]) -> bool:
    """Width-weighted vote of the line classifier on whether the page is upside down."""
    if not flip_probabilities:
        return False
    return float(np.average(flip_probabilities, weights=widths)) > UPSIDE_DOWN_SHARE
