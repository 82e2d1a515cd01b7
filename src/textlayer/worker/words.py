"""Word boxes from character positions: split a decoded line at spaces and place each word on the page."""

from __future__ import annotations

import numpy as np

from textlayer.elements import Quad, Word
from textlayer.worker.recognition import DecodedChar, DecodedLine


def _split_words(chars: tuple[DecodedChar, ...]) -> list[list[DecodedChar]]:
    words: list[list[DecodedChar]] = []
    current: list[DecodedChar] = []
    for char in chars:
        if char.char.isspace():
            if current:
                words.append(current)
            current = []
        else:
            current.append(char)
    if current:
        words.append(current)
    return words


def _pitch(words: list[list[DecodedChar]], crop_width: float) -> float:
    """Typical distance between neighbouring character centres in the line, in crop pixels."""
    gaps = [b.x - a.x for word in words for a, b in zip(word, word[1:], strict=False)]
    if gaps:
        return float(np.median(gaps))
    count = sum(len(w) for w in words)
    return crop_width / max(count, 1)


def _point_on_line(quad: np.ndarray, u: float, v: float) -> tuple[float, float]:
    """Page point at fraction u along the line and v down from its top edge (bilinear in the quad)."""
    top = quad[0] + (quad[1] - quad[0]) * u
    bottom = quad[3] + (quad[2] - quad[3]) * u
    point = top + (bottom - top) * v
    return (float(point[0]), float(point[1]))


def place_words(line: DecodedLine, quad: np.ndarray) -> list[Word]:
    """Turn a decoded line into words with quads in page coordinates.

    Each word spans from half a character pitch before its first character's centre to
    half a pitch after its last one, along the line's quad; rotated lines therefore give
    rotated word quads. A word's confidence is the mean of its characters'.

    Args:
        line: the recognizer's output for one crop.
        quad: the crop's quad on the page, starting at the top-left corner of the text as
            read (for a line read upside down, that is the page's bottom-right corner).
    """
    words = _split_words(line.chars)
    if not words or line.crop_width <= 0:
        return []
    half_pitch = _pitch(words, line.crop_width) / 2.0
    placed: list[Word] = []
    for chars in words:
        if len(chars) > 1:
            half = (chars[-1].x - chars[0].x) / (len(chars) - 1) / 2.0
            half = min(max(half, 0.5 * half_pitch), 2.0 * half_pitch)
        else:
            half = half_pitch
        u0 = max(0.0, (chars[0].x - half) / line.crop_width)
        u1 = min(1.0, (chars[-1].x + half) / line.crop_width)
        word_quad: Quad = (
            _point_on_line(quad, u0, 0.0),
            _point_on_line(quad, u1, 0.0),
            _point_on_line(quad, u1, 1.0),
            _point_on_line(quad, u0, 1.0),
        )
        text = "".join(c.char for c in chars)
        confidence = float(np.mean([c.confidence for c in chars]))
        placed.append(Word(text=text, quad=word_quad, confidence=confidence))
    return placed
