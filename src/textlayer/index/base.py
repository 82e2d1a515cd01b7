"""What every search index backend offers: the SearchHit result and the SearchIndex protocol."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from textlayer.elements import PageText

Box = tuple[float, float, float, float]
"""Axis-aligned box ``(x0, y0, x1, y1)`` in pixels of the page image."""

MAX_QUERY_CHARS = 1000
"""Longer queries are cut to this many characters before they are split into terms."""

MAX_QUERY_TERMS = 32
"""Terms after this many distinct ones are ignored (they could only narrow the result further)."""


def _is_token_char(char: str) -> bool:
    # Same classes as SQLite's unicode61 tokenizer: letters, numbers, private use, and
    # combining marks (so a decomposed "e" + U+0301 stays inside its word).
    category = unicodedata.category(char)
    return category[0] in "LNM" or category == "Co"


def split_terms(text: str) -> list[str]:
    """Split text into words the way the index does: runs of Unicode letters, digits and marks.

    Punctuation, spaces and symbols separate words and are dropped, and so are runs made only of combining marks.
    The words come in order, as written (not normalised).
    """
    terms: list[str] = []
    current: list[str] = []
    for char in text + " ":
        if _is_token_char(char):
            current.append(char)
        elif current:
            if any(unicodedata.category(c)[0] != "M" for c in current):
                terms.append("".join(current))
            current = []
    return terms


def term_key(term: str) -> str:
    """Case- and accent-free form of a word, for comparing query terms with page words.

    The word decomposed (NFD), without combining marks, in lower case: ``"CAFÉ"`` -> ``"cafe"``.
    """
    decomposed = unicodedata.normalize("NFD", term)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()


def query_terms(query: str) -> list[str]:
    """The distinct words of a user's query (one per :func:`term_key`), in first-seen order; empty when it has none.

    Only the first :data:`MAX_QUERY_CHARS` characters count, and at most :data:`MAX_QUERY_TERMS` words are kept.
    """
    terms: list[str] = []
    seen: set[str] = set()
    for term in split_terms(query[:MAX_QUERY_CHARS]):
        key = term_key(term)
        if key and key not in seen:
            seen.add(key)
            terms.append(term)
            if len(terms) == MAX_QUERY_TERMS:
                break
    return terms


def matching_boxes(words: Sequence[tuple[str, Box]], terms: Sequence[str]) -> tuple[Box, ...]:
    """Boxes of the ``(text, box)`` words that contain one of the query ``terms`` as a whole word, in reading order.

    A word such as ``"(Café),"`` matches ``cafe``; ``"concatenate"`` does not match ``cat``, because the full-text
    index matched whole words too.
    """
    keys = {term_key(term) for term in terms}
    return tuple(box for text, box in words if any(term_key(part) in keys for part in split_terms(text)))


@dataclass(frozen=True)
class SearchHit:
    """One page that matches a query.

    ``snippet`` is a short excerpt of the page text (about ten words) with every matching word wrapped in square
    brackets, e.g. ``"the [invoice] total is"``; ``…`` marks text cut at either end. ``boxes`` are the pixel boxes of
    the page's words that match a query term (case- and accent-insensitive), in reading order. ``rank`` orders hits:
    lower is more relevant (SQLite's bm25 convention); it is only comparable within one search, and is computed
    from the tenant's own documents only.
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

    Implementations are safe to use from several threads and several processes at once. A search never sees another
    tenant's documents, and never raises for any query text. ``document_id`` is unique within its ``tenant``. A method
    that cannot read or write the index raises :class:`~textlayer.errors.SearchIndexError`.
    """

    def put_document(self, tenant: str, document_id: str, pages: Sequence[PageText | None]) -> None:
        """Store a document's pages, replacing whatever the index held for it.

        ``pages`` has one entry per page in page order; ``None`` is a page without text.
        """
        ...

    def delete_document(self, tenant: str, document_id: str) -> None:
        """Remove a document's pages; removing a missing document does nothing."""
        ...

    def search(self, tenant: str, query: str, *, limit: int = 20, offset: int = 0) -> list[SearchHit]:
        """Find the tenant's pages that contain every word of ``query``, best first, at most ``limit`` after ``offset``.

        Punctuation and search operators in ``query`` are ignored; a query without words finds nothing. The ranking
        depends on the tenant's own documents only.
        """
        ...

    def page_count(self, tenant: str, document_id: str) -> int:
        """Number of pages stored for a document, text-less pages included (0 when it is not indexed)."""
        ...

    def close(self) -> None:
        """Release the index's connections; call it once no other call is in flight."""
        ...
