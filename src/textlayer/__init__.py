"""textlayer: turn scanned documents into searchable PDFs."""

from __future__ import annotations

from textlayer.elements import Line, PageText, Word
from textlayer.errors import (
    InputDocumentError,
    ModelError,
    OcrUnavailable,
    SandboxCrashed,
    SandboxError,
    SandboxTimeout,
    SearchIndexError,
    TextlayerError,
)

__version__ = "0.1.0"

__all__ = [
    "InputDocumentError",
    "Line",
    "ModelError",
    "OcrUnavailable",
    "PageText",
    "SandboxCrashed",
    "SandboxError",
    "SandboxTimeout",
    "SearchIndexError",
    "TextlayerError",
    "Word",
    "__version__",
]
