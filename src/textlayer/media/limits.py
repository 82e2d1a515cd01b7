"""DocumentLimits: what one document may cost, as plain data (pure: no parser is imported here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_MAX_PIXELS = 50_000_000
"""Largest page accepted, in pixels (a 300-dpi A0 poster is ~140 Mpx; an A3 scan at 600 dpi ~70)."""

DEFAULT_MAX_FRAMES = 2000
"""Most frames accepted from one multi-page TIFF."""

DEFAULT_DPI = 300
"""Resolution PDF pages are rasterised at for OCR (lowered for pages that would exceed the pixel limit)."""

DEFAULT_MAX_PAGES = 2000
"""Most pages accepted from one document."""


@dataclass(frozen=True)
class DocumentLimits:
    """Limits that protect the machine from oversized documents, and what to do with signed PDFs."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_pages: int = DEFAULT_MAX_PAGES
    dpi: int = DEFAULT_DPI
    invalidate_signature: bool = False
    """OCR a digitally signed PDF anyway (the new file's signature no longer verifies)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for the trip into a jailed converter."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DocumentLimits:
        """Inverse of :meth:`to_dict`."""
        return cls(
            max_pixels=int(raw["max_pixels"]),
            max_pages=int(raw["max_pages"]),
            dpi=int(raw["dpi"]),
            invalidate_signature=bool(raw.get("invalidate_signature", False)),
        )
