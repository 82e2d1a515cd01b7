"""Full-text search over OCR'd pages: the SearchIndex protocol and its backends (SQLite FTS5 embedded)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from textlayer.errors import SearchIndexError
from textlayer.index.base import SearchHit, SearchIndex
from textlayer.index.sqlite_fts import SqliteSearchIndex

__all__ = ["SearchHit", "SearchIndex", "SqliteSearchIndex", "open_index"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_index(url_or_path: str | Path) -> SearchIndex:
    """Open the search index a setting names.

    Args:
        url_or_path: ``sqlite:///abs/path/index.db`` (the path after ``sqlite://``, percent-decoded),
            or a plain file path, which is a SQLite index too.

    Returns:
        The opened index; the caller closes it.

    Raises:
        SearchIndexError: The URL's scheme is not supported (``postgresql://`` is not available yet),
            the URL is malformed, or the index cannot be opened.
    """
    if isinstance(url_or_path, Path) or "://" not in url_or_path:
        return SqliteSearchIndex(Path(url_or_path))
    parts = urlsplit(url_or_path)
    scheme = parts.scheme.lower()
    if scheme in _POSTGRES_SCHEMES or scheme.startswith(tuple(f"{s}+" for s in _POSTGRES_SCHEMES)):
        raise SearchIndexError("PostgreSQL index is not available yet")
    if scheme != "sqlite":
        raise SearchIndexError(f"unsupported search index URL scheme {parts.scheme!r}: use sqlite:/// or a file path")
    if parts.netloc or parts.query or parts.fragment or not parts.path.strip("/"):
        raise SearchIndexError(f"a SQLite index URL looks like sqlite:///abs/path/index.db, got {url_or_path!r}")
    # Extra leading slashes (sqlite:////abs) name the same absolute path.
    return SqliteSearchIndex(Path("/" + unquote(parts.path).lstrip("/")))
