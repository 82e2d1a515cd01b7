"""Word boxes from character positions: split a decoded line at spaces and place each word on the page."""

from __future__ import annotations

import cv2
import numpy as np

from textlayer.elements import Quad, Word
from textlayer.worker.recognition import DecodedChar, DecodedLine

INK_ROW_SHARE = 0.02
"""A crop row holds ink when at least this share of its pixels is dark."""

BOX_MARGIN_Y = 0.12
"""Word boxes reach this share of the text height above and below the ink (as annotators draw them)."""

MIN_WORD_WIDTH_RATIO = 0.8
"""Narrowest word box, as a share of the text height (about one character cell)."""

BOX_MARGIN_X = 0.08
"""Word boxes reach this share of the text height left and right of the ink."""


def ink_mask(crop: np.ndarray) -> np.ndarray:
    """Dark pixels of a line crop (Otsu threshold), as a boolean HxW array."""
    gray = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    _, dark = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return dark.astype(bool)


def ink_band(mask: np.ndarray) -> tuple[float, float]:
    """Top and bottom of the text inside a line crop, as fractions of its height.

    The detector's boxes are padded (DB unclip) to about twice the text height; the ink
    tells where the letters really are, so selections and word boxes hug the text.
    """
    height = mask.shape[0]
    rows = np.flatnonzero(mask.mean(axis=1) >= INK_ROW_SHARE)
    if len(rows) == 0 or height < 4:
        return 0.0, 1.0
    top, bottom = rows[0], rows[-1] + 1
    return max(0.0, (top - 0.5) / height), min(1.0, (bottom + 0.5) / height)


def _blank_runs(columns: np.ndarray) -> list[tuple[int, int]]:
    """Runs of blank columns as (start, end) pairs, end exclusive."""
    padded = np.concatenate(([True], columns, [True])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _boundary(runs: list[tuple[int, int]], after: float, before: float) -> float:
    """Where one word ends and the next begins: the widest blank run between their character centres."""
    inside = [(b - a, (a + b) / 2) for a, b in runs if after < (a + b) / 2 < before]
    if not inside:
        return (after + before) / 2
    return max(inside)[1]


def _ink_extent(columns: np.ndarray, low: float, high: float) -> tuple[float, float] | None:
    """First and last ink column between two boundaries."""
    lo, hi = int(max(0, np.floor(low))), int(min(len(columns), np.ceil(high)))
    inked = np.flatnonzero(columns[lo:hi])
    if len(inked) == 0:
        return None
    return float(inked[0] + lo), float(inked[-1] + lo + 1)


SPACE_PITCH_RATIO = 1.5
"""Neighbouring characters this many pitches apart may hide a space the recognizer dropped."""

SPACE_GAP_HEIGHT_RATIO = 0.3
"""...and they do when a blank gap at least this share of the text height separates their ink..."""

SPACE_FILL_RATIO = 0.7
"""...that fills at least this share of the step beyond one pitch."""


def restore_spaces(chars: tuple[DecodedChar, ...], columns: np.ndarray, text_height: float) -> tuple[DecodedChar, ...]:
    """Put back spaces the recognizer dropped between clearly separated characters.

    PP-OCR recognizers lose spaces, most of all in monospaced print; a space shows in
    the geometry as a wide step between character centres over a blank strip of paper.
    """
    pitch = _pitch([[c for c in chars if not c.char.isspace()]], len(columns))
    restored: list[DecodedChar] = []
    for previous, char in zip((None, *chars), chars, strict=False):
        if (
            previous is not None
            and not previous.char.isspace()
            and not char.char.isspace()
            and char.x - previous.x > SPACE_PITCH_RATIO * pitch
        ):
            lo, hi = int(previous.x), int(np.ceil(char.x))
            blank = _longest_run(~columns[lo:hi])
            # A dropped space leaves clean paper; a dropped character ('.', ',') leaves
            # ink that splits the blank strip, so the strip must fill most of the extra step.
            extra = char.x - previous.x - pitch
            if blank >= max(SPACE_GAP_HEIGHT_RATIO * text_height, SPACE_FILL_RATIO * extra):
                restored.append(DecodedChar(" ", min(previous.confidence, char.confidence), (previous.x + char.x) / 2))
        restored.append(char)
    return tuple(restored)


def _longest_run(flags: np.ndarray) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


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


def place_words(line: DecodedLine, quad: np.ndarray, ink: np.ndarray | None = None) -> list[Word]:
    """Turn a decoded line into words with quads in page coordinates.

    Each word spans from half a character pitch before its first character's centre to half a pitch after its last one,
    along the line's quad; rotated lines therefore give rotated word quads. A word's confidence is the mean of its
    characters'. ``quad`` is the crop's quad on the page, starting at the top-left corner of the text as read (for a
    line read upside down, that is the page's bottom-right corner); ``ink``, the crop's dark pixels (:func:`ink_mask`),
    fits the boxes to the letters.
    """
    chars = line.chars
    v0, v1 = (0.0, 1.0) if ink is None else ink_band(ink)
    columns: np.ndarray | None = None
    if ink is not None:
        first_row = int(v0 * ink.shape[0])
        band = ink[first_row : max(first_row + 1, int(np.ceil(v1 * ink.shape[0])))]
        columns = np.asarray(band.any(axis=0))
        chars = restore_spaces(chars, columns, (v1 - v0) * ink.shape[0])
    words = _split_words(chars)
    if not words or line.crop_width <= 0:
        return []
    half_pitch = _pitch(words, line.crop_width) / 2.0
    margin_x, top, bottom, text_height = 0.0, v0, v1, 0.0
    if ink is not None:
        text_height = (v1 - v0) * ink.shape[0]
        margin_x = BOX_MARGIN_X * text_height
        top = max(0.0, v0 - BOX_MARGIN_Y * (v1 - v0))
        bottom = min(1.0, v1 + BOX_MARGIN_Y * (v1 - v0))
    runs = _blank_runs(columns) if columns is not None else []
    placed: list[Word] = []
    for k, word_chars in enumerate(words):
        if len(word_chars) > 1:
            half = (word_chars[-1].x - word_chars[0].x) / (len(word_chars) - 1) / 2.0
            half = min(max(half, 0.5 * half_pitch), 2.0 * half_pitch)
        else:
            half = half_pitch
        start, end = word_chars[0].x - half, word_chars[-1].x + half
        # Between words: the widest blank strip between their characters. At the line's
        # ends: no further than half a character beyond the recognizer's estimate, so a
        # table rule or a speck beside the line does not stretch the box.
        low = _boundary(runs, words[k - 1][-1].x, word_chars[0].x) if k else start - half_pitch
        high = _boundary(runs, word_chars[-1].x, words[k + 1][0].x) if k + 1 < len(words) else end + half_pitch
        if columns is not None:
            extent = _ink_extent(columns, low, high)
            if extent is not None:
                start, end = extent
        if ink is not None and end - start < MIN_WORD_WIDTH_RATIO * text_height:
            # A lone '1' or ':' gets its character cell, not a sliver: easier to select, as annotated.
            grow = (MIN_WORD_WIDTH_RATIO * text_height - (end - start)) / 2
            start, end = start - grow, end + grow
        # Margins never reach past the boundaries: neighbouring word boxes do not overlap.
        start = max(start - margin_x, low if k else -np.inf)
        end = min(end + margin_x, high if k + 1 < len(words) else np.inf)
        u0 = max(0.0, start / line.crop_width)
        u1 = min(1.0, end / line.crop_width)
        word_quad: Quad = (
            _point_on_line(quad, u0, top),
            _point_on_line(quad, u1, top),
            _point_on_line(quad, u1, bottom),
            _point_on_line(quad, u0, bottom),
        )
        text = "".join(c.char for c in word_chars)
        confidence = float(np.mean([c.confidence for c in word_chars]))
        placed.append(Word(text=text, quad=word_quad, confidence=confidence))
    return placed
