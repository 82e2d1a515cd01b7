"""Engine-agnostic OCR results: pure dataclasses with to_dict/from_dict (the wire format) and PageRecord."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]
"""Four corners in page pixels, clockwise from the top-left of the text as read."""


def _quad_from(raw: Any) -> Quad:
    points = [(float(x), float(y)) for x, y in raw]
    if len(points) != 4:
        raise ValueError(f"a quad needs 4 points, got {len(points)}")
    return (points[0], points[1], points[2], points[3])


def quad_bbox(quad: Quad) -> tuple[float, float, float, float]:
    """Axis-aligned box ``(x0, y0, x1, y1)`` around a quad."""
    xs = [p[0] for p in quad]
    ys = [p[1] for p in quad]
    return (min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True)
class Word:
    """One word: its text, its quadrilateral on the page and a confidence in [0, 1]."""

    text: str
    quad: Quad
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "text": self.text,
            "quad": [list(p) for p in self.quad],
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Word:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["text"]), _quad_from(data["quad"]), float(data["confidence"]))


@dataclass(frozen=True)
class Line:
    """A text line in reading order; ``block`` numbers the layout block it belongs to."""

    words: tuple[Word, ...]
    quad: Quad
    confidence: float
    block: int = 0

    @property
    def text(self) -> str:
        """The words joined by single spaces."""
        return " ".join(w.text for w in self.words)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "words": [w.to_dict() for w in self.words],
            "quad": [list(p) for p in self.quad],
            "confidence": self.confidence,
            "block": self.block,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Line:
        """Inverse of :meth:`to_dict`."""
        return cls(
            words=tuple(Word.from_dict(w) for w in data["words"]),
            quad=_quad_from(data["quad"]),
            confidence=float(data["confidence"]),
            block=int(data.get("block", 0)),
        )


@dataclass(frozen=True)
class PageText:
    """The OCR result of one page image.

    Coordinates are pixels of the page image as given (EXIF orientation applied);
    ``rotation`` is how many degrees clockwise the page had to be turned to read it
    upright (0, 90, 180 or 270). ``dpi`` is the image resolution when known.
    """

    width: int
    height: int
    rotation: int
    lines: tuple[Line, ...]
    dpi: float | None = None
    timings_s: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def text(self) -> str:
        """Plain text in reading order: a newline between lines, a blank line between blocks."""
        parts: list[str] = []
        previous_block: int | None = None
        for line in self.lines:
            if previous_block is not None and line.block != previous_block:
                parts.append("")
            parts.append(line.text)
            previous_block = line.block
        return "\n".join(parts)

    @property
    def words(self) -> list[Word]:
        """All words in reading order."""
        return [w for line in self.lines for w in line.words]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-ready)."""
        return {
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "dpi": self.dpi,
            "lines": [line.to_dict() for line in self.lines],
            "timings_s": dict(self.timings_s),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageText:
        """Inverse of :meth:`to_dict`."""
        dpi = data.get("dpi")
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            rotation=int(data["rotation"]),
            lines=tuple(Line.from_dict(line) for line in data["lines"]),
            dpi=None if dpi is None else float(dpi),
            timings_s={str(k): float(v) for k, v in data.get("timings_s", {}).items()},
        )


@dataclass(frozen=True)
class PageRecord:
    """What became of one page of a document: its OCR result, or why there is none.

    Stored as ``pages/NNNNN.json`` per job (:meth:`to_json`); ``page`` is None for a page with
    text already, a blank page, or a page that failed (``error_reason`` says why).
    """

    index: int
    has_text: bool = False
    blank: bool = False
    page: PageText | None = None
    error_reason: str | None = None
    """Stable code of a page that could not be read, e.g. ``ocr_unavailable``."""
    error_message: str | None = None
    """A sentence a person understands."""
    reused_from: str | None = None
    """The job whose identical document this result was copied from."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values: ``{"index", "has_text", "blank", "page", "error": {"reason", "message"}}``."""
        record: dict[str, Any] = {
            "index": self.index,
            "has_text": self.has_text,
            "blank": self.blank,
            "page": self.page.to_dict() if self.page else None,
            "error": {"reason": self.error_reason, "message": self.error_message} if self.error_reason else None,
        }
        if self.reused_from:
            record["reused_from"] = self.reused_from
        return record

    def to_json(self) -> bytes:
        """The stored form: :meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> PageRecord:
        """Inverse of :meth:`to_json`."""
        data = json.loads(raw)
        error = data.get("error") or {}
        return cls(
            index=int(data["index"]),
            has_text=bool(data.get("has_text")),
            blank=bool(data.get("blank")),
            page=PageText.from_dict(data["page"]) if data.get("page") else None,
            error_reason=error.get("reason"),
            error_message=error.get("message"),
            reused_from=data.get("reused_from"),
        )
