"""Reading order: group lines into blocks and columns and read them as a person would (pure Python).

The page is cut recursively (an XY-cut): a region whose lines leave a vertical gutter free and whose parts look like
running text is read column by column; otherwise it is cut at horizontal gaps into bands, and consecutive bands that
share a column gutter are regrouped first, so two columns with aligned baselines are not read across. Regions that
cannot be cut are read row by row (forms, tables, receipts: label then value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_GUTTER_LINE_HEIGHTS = 0.9
"""A column gutter is at least this many typical line heights wide."""

MIN_COLUMN_CHARS = 12
"""Median characters per line a column needs to count as running text (not a table column)."""


@dataclass(frozen=True)
class LayoutLine:
    """What the layout needs of a line: its upright box and how much text it holds."""

    index: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in a deskewed frame
    chars: int

    @property
    def height(self) -> float:
        """Box height."""
        return self.box[3] - self.box[1]


def deskew_angle(quads: Sequence[np.ndarray]) -> float:
    """Median angle (radians) of the long lines' top edges: the page's skew."""
    angles, weights = [], []
    for quad in quads:
        dx, dy = quad[1] - quad[0]
        length = math.hypot(dx, dy)
        if length > 3 * np.linalg.norm(quad[3] - quad[0]):
            angles.append(math.atan2(dy, dx))
            weights.append(length)
    if not angles:
        return 0.0
    order = np.argsort(angles)
    cumulative = np.cumsum(np.asarray(weights)[order])
    return float(np.asarray(angles)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def upright_box(quad: np.ndarray, angle: float) -> tuple[float, float, float, float]:
    """Axis-aligned box of a quad after undoing the page skew."""
    cos, sin = math.cos(-angle), math.sin(-angle)
    xs = quad[:, 0] * cos - quad[:, 1] * sin
    ys = quad[:, 0] * sin + quad[:, 1] * cos
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def _free_intervals(spans: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """Gaps in [lo, hi] not covered by any span."""
    gaps = []
    cursor = lo
    for start, end in sorted(spans):
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if hi > cursor:
        gaps.append((cursor, hi))
    return gaps


def _inner_gaps(spans: list[tuple[float, float]], min_width: float) -> list[tuple[float, float]]:
    lo = min(s for s, _ in spans)
    hi = max(e for _, e in spans)
    return [(a, b) for a, b in _free_intervals(spans, lo, hi) if b - a >= min_width and lo < a and b < hi]


def _split_at(lines: list[LayoutLine], cuts: list[float], axis: int) -> list[list[LayoutLine]]:
    parts: list[list[LayoutLine]] = [[] for _ in range(len(cuts) + 1)]
    for line in lines:
        centre = (line.box[axis] + line.box[axis + 2]) / 2
        parts[sum(centre > c for c in cuts)].append(line)
    return [p for p in parts if p]


def _columns(lines: list[LayoutLine], min_gutter: float) -> list[list[LayoutLine]] | None:
    """Split into columns of running text, or None if the lines do not form such columns."""
    gaps = _inner_gaps([(ln.box[0], ln.box[2]) for ln in lines], min_gutter)
    if not gaps:
        return None
    parts = _split_at(lines, [(a + b) / 2 for a, b in gaps], axis=0)
    if len(parts) < 2:
        return None
    for part in parts:
        if len(part) < 2 or float(np.median([ln.chars for ln in part])) < MIN_COLUMN_CHARS:
            return None
    return parts


def _bands(lines: list[LayoutLine]) -> list[list[LayoutLine]]:
    """Cut at every horizontal gap (lines overlapping by less than a third count as separate)."""
    spans = []
    for ln in lines:
        shrink = ln.height / 6  # tolerate slightly overlapping boxes of neighbouring lines
        spans.append((ln.box[1] + shrink, ln.box[3] - shrink))
    gaps = _inner_gaps(spans, 0.0)
    return _split_at(lines, [(a + b) / 2 for a, b in gaps], axis=1)


def _rows(lines: list[LayoutLine]) -> list[LayoutLine]:
    """Row by row, left to right: for regions no cut can separate."""
    ordered = sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2)
    rows: list[list[LayoutLine]] = []
    for line in ordered:
        centre = (line.box[1] + line.box[3]) / 2
        if rows:
            last = rows[-1]
            top = float(np.mean([ln.box[1] for ln in last]))
            bottom = float(np.mean([ln.box[3] for ln in last]))
            if top < centre < bottom:
                last.append(line)
                continue
        rows.append([line])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.box[0])]


def _order(lines: list[LayoutLine], min_gutter: float) -> list[list[LayoutLine]]:
    """Blocks of lines in reading order."""
    if len(lines) <= 1:
        return [lines]
    columns = _columns(lines, min_gutter)
    if columns:
        return [block for column in columns for block in _order(column, min_gutter)]
    bands = _bands(lines)
    if len(bands) == 1:
        return [_rows(lines)]
    # Regroup consecutive bands that together form columns, so aligned baselines of
    # neighbouring columns do not turn a two-column page into rows.
    groups: list[list[LayoutLine]] = [bands[0]]
    for band in bands[1:]:
        if _columns(groups[-1] + band, min_gutter):
            groups[-1] = groups[-1] + band
        else:
            groups.append(band)
    if len(groups) == 1:  # cannot happen (the whole would have split into columns) but never loop
        return [_rows(lines)]
    blocks: list[list[LayoutLine]] = []
    for group in groups:
        sub = _order(group, min_gutter)
        # Consecutive single-line bands of one paragraph stay one block.
        if blocks and len(sub) == 1 and len(blocks[-1]) and _same_paragraph(blocks[-1], sub[0]):
            blocks[-1] = blocks[-1] + sub[0]
        else:
            blocks.extend(sub)
    return blocks


def _same_paragraph(above: list[LayoutLine], below: list[LayoutLine]) -> bool:
    last, first = above[-1], below[0]
    gap = first.box[1] - last.box[3]
    return gap < 0.8 * max(last.height, first.height) and abs(first.box[0] - last.box[0]) < 2 * last.height


def reading_order(lines: Sequence[LayoutLine]) -> list[tuple[int, int]]:
    """Order every line of the page for reading: ``(line index, block number)`` pairs."""
    if not lines:
        return []
    typical = float(np.median([ln.height for ln in lines]))
    blocks = _order(list(lines), MIN_GUTTER_LINE_HEIGHTS * typical)
    return [(line.index, number) for number, block in enumerate(blocks) for line in block]
