"""What every search index backend offers: the SearchHit result and the SearchIndex protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from textlayer.elements import PageText

Box = tuple[float, float, float, float]
"""Axis-aligned box ``(x0, y0, x1, y1)`` in pixels of the page image."""


@dataclass(frozen=True)
class SearchHit:
    """One page that matches a query.

    ``snippet`` is a short excerpt of the page text (about ten words) with every matching
    word wrapped in square brackets, e.g. ``"the [invoice] total is"``; ``…`` marks text
    cut at either end. ``boxes`` are the pixel boxes of the page's words that match a query
    term (case- and accent-insensitive), in reading order. ``rank`` orders hits: lower is
    more relevant (SQLite's bm25 convention); it is only comparable within one search.
    """

    tenant: str
    document_id: str
    page: int
    """0-based page number within the document."""
    snippet: str
    boxes: tuple[Box, ...]
    rank: float = 0.0


@runtime_checkable
class SearchIndex(Protocol):
    """A full-text index of OCR'd pages, partitioned by tenant.

    Implementations are safe to use from several threads and several processes at once.
    A search never sees another tenant's documents, and never raises for any query text.
    """

    def put_document(self, tenant: str, document_id: str, pages: Sequence[PageText | None]) -> None:
        """Store a document's pages, replacing whatever the index held for it.

        Args:
            tenant: Owner of the document; searches only see their own tenant's pages.
            document_id: The document's id, unique within the tenant.
            pages: One entry per page in page order; ``None`` is a page without text.

        Raises:
            SearchIndexError: The index cannot be written.
        """
        ...

    def delete_document(self, tenant: str, document_id: str) -> None:
        """Remove a document's pages; removing a missing document does nothing.

        Args:
            tenant: Owner of the document.
            document_id: The document's id.

        Raises:
            SearchIndexError: The index cannot be written.
        """
        ...

    def search(self, tenant: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Find the tenant's pages that contain every word of ``query``.

        Args:
            tenant: Whose documents to search.
            query: Free text from a user; punctuation and search operators are ignored.
            limit: Most hits returned.

        Returns:
            Hits, best first; empty when the query has no words.

        Raises:
            SearchIndexError: The index cannot be read.
        """
        ...

    def page_count(self, tenant: str, document_id: str) -> int:
        """Number of pages stored for a document (0 when it is not indexed).

        Args:
            tenant: Owner of the document.
            document_id: The document's id.

        Returns:
            The page count, text-less pages included.

        Raises:
            SearchIndexError: The index cannot be read.
        """
        ...

    def close(self) -> None:
        """Release the index's connections; call it once no other call is in flight."""
        ...
