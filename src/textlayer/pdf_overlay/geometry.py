"""From OCR pixels to PDF user space: page frames and per-word text placement (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from textlayer.elements import Quad

DEFAULT_IMAGE_DPI = 300.0
"""Resolution assumed for an image that does not say (a typical scan)."""


@dataclass(frozen=True)
class PageFrame:
    """Where the OCRed raster lies on a PDF page: what a renderer shows (CropBox turned by /Rotate), top-left origin."""

    crop_x0: float
    crop_y0: float
    crop_width: float
    crop_height: float
    rotate: int = 0
    points_per_pixel: float = 72.0 / DEFAULT_IMAGE_DPI

    def to_user(self, x_px: float, y_px: float) -> tuple[float, float]:
        """A raster pixel position in the page's (unrotated, bottom-up) user space."""
        xd, yd = x_px * self.points_per_pixel, y_px * self.points_per_pixel
        rotate = self.rotate % 360
        if rotate == 90:
            u, v = yd, xd
        elif rotate == 180:
            u, v = self.crop_width - xd, yd
        elif rotate == 270:
            u, v = self.crop_width - yd, self.crop_height - xd
        else:
            u, v = xd, self.crop_height - yd
        return self.crop_x0 + u, self.crop_y0 + v


@dataclass(frozen=True)
class WordPlacement:
    """How to draw one word: its baseline origin, direction, size and horizontal scale."""

    x: float
    y: float
    cos: float
    sin: float
    font_size: float
    width: float
    """Length of the word along its baseline, in points."""


def place_word(quad: Quad, frame: PageFrame, descent: float) -> WordPlacement | None:
    """Fit a word's text box to its quad (None for a degenerate quad).

    ``quad`` holds the word's corners in raster pixels (top-left as read, clockwise). The font size is the quad's
    height, so the em box that text extractors and viewers use for a character (from ``descent``, the font's negative
    descent in em, below the baseline up to one em) covers the quad.
    """
    p0, p1, p2, p3 = (frame.to_user(x, y) for x, y in quad)
    dx = ((p1[0] - p0[0]) + (p2[0] - p3[0])) / 2
    dy = ((p1[1] - p0[1]) + (p2[1] - p3[1])) / 2
    ux = ((p0[0] - p3[0]) + (p1[0] - p2[0])) / 2
    uy = ((p0[1] - p3[1]) + (p1[1] - p2[1])) / 2
    width, height = math.hypot(dx, dy), math.hypot(ux, uy)
    if width <= 0 or height <= 0:
        return None
    cos, sin = dx / width, dy / width
    # Frames only rotate (never mirror), so "up" is the baseline turned a quarter left.
    up_x, up_y = -sin, cos
    rise = -descent * height
    return WordPlacement(
        x=p3[0] + up_x * rise,
        y=p3[1] + up_y * rise,
        cos=cos,
        sin=sin,
        font_size=height,
        width=width,
    )
