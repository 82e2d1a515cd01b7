"""EncodedPage and Inspection: what document parsing hands on, as plain data (pure: no parser here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodedPage:
    """One page on its way to OCR: encoded image bytes (never decoded here) and which frame.

    ``data`` is None for a page that needs no OCR: it already has text, or it is blank.
    """

    index: int
    data: bytes | None
    frame: int = 0
    dpi: float | None = None
    has_text: bool = False
    blank: bool = False
    skew_deg: float = 0.0
    """Degrees (counter-clockwise) the page image was turned by to straighten it (``--deskew``)."""


@dataclass(frozen=True)
class Inspection:
    """What a converter learnt about a document: its kind ('PDF', 'PNG', 'JPEG', 'TIFF') and page count."""

    kind: str
    pages: int
