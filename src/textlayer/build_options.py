"""BuildOptions: what the searchable PDF should be (plain data that crosses into the converter jail)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OUTPUT_TYPES = ("pdf", "pdfa")
"""Kinds of searchable PDF: a plain PDF, or PDF/A-2b (archival: fonts embedded, sRGB output intent, XMP)."""

MAX_SKEW_DEG = 10.0
"""Largest skew a page may be straightened by (a deskew angle past it is not a skew)."""


@dataclass(frozen=True)
class BuildOptions:
    """How the searchable PDF is built, beyond adding the invisible text."""

    output_type: str = "pdf"
    """``pdf`` or ``pdfa`` (PDF/A-2b)."""
    rasterize: Mapping[int, float] = field(default_factory=dict)
    """Pages replaced by their rasterised image (``--force-ocr`` on a page with text, ``--deskew``), each with the
    angle in degrees (counter-clockwise) its image was turned by to straighten it."""
    rotate: Mapping[int, int] = field(default_factory=dict)
    """Pages turned for display (``--rotate-pages``): degrees clockwise, added to the page's /Rotate."""
    redo_ocr: bool = False
    """Remove invisible text (an earlier OCR layer) from every page that gets a new text layer."""

    def __post_init__(self) -> None:
        """Refuse what cannot be built (the values may come from the other side of a jail)."""
        if self.output_type not in OUTPUT_TYPES:
            raise ValueError(f"output type {self.output_type!r} is not one of {', '.join(OUTPUT_TYPES)}")
        if any(abs(angle) > MAX_SKEW_DEG for angle in self.rasterize.values()):
            raise ValueError(f"a page can be straightened by at most {MAX_SKEW_DEG} degrees")
        if any(degrees % 90 for degrees in self.rotate.values()):
            raise ValueError("pages turn by multiples of 90 degrees")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON keys are strings)."""
        return {
            "output_type": self.output_type,
            "rasterize": {str(k): float(v) for k, v in self.rasterize.items()},
            "rotate": {str(k): int(v) for k, v in self.rotate.items()},
            "redo_ocr": self.redo_ocr,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildOptions:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: a value is missing, of the wrong type or impossible.
        """
        try:
            return cls(
                output_type=str(data.get("output_type", "pdf")),
                rasterize={int(k): float(v) for k, v in dict(data.get("rasterize", {})).items()},
                rotate={int(k): int(v) % 360 for k, v in dict(data.get("rotate", {})).items()},
                redo_ocr=bool(data.get("redo_ocr", False)),
            )
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"bad build options: {exc}") from exc


@dataclass(frozen=True)
class BuiltPdf:
    """A searchable PDF as the converter built it, and what keeps it from being what was asked (PDF/A checks)."""

    pdf: bytes
    problems: tuple[str, ...] = ()
    """Each a sentence; empty when the output passed its checks."""
