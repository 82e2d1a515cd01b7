"""The embedded search index: one SQLite file with an FTS5 table, shared by threads and processes.

Schema (see ``_SCHEMA``): ``pages`` holds one row per page; ``pages_fts`` is an FTS5 index over ``pages.text``
(external content, tokenizer unicode61 remove_diacritics 2), kept in step with ``pages`` by triggers, so inside the
same transaction. ``pages.id`` is an explicit rowid because the FTS table refers to pages by rowid, and VACUUM may
renumber implicit rowids. ``words_json`` holds ``[{"text": ..., "bbox": [x0, y0, x1, y1]}, ...]``.

Connections, transactions and schema set-up (WAL, every write in ``BEGIN IMMEDIATE``) are
:mod:`textlayer.sqlite_db`'s.

Queries: the tenant is a SQL ``WHERE tenant = ?`` condition, never part of the MATCH text, and the user's words
are each double-quoted (quotes inside doubled), so no query text can reach FTS5's operators, column filters or
another tenant's rows. Ranking is BM25 computed here from the tenant's own pages (page count, average length,
pages per term), not FTS5's ``bm25()``, whose statistics span the whole table: with it, another tenant's documents
would change the order of a tenant's hits, which tells something about them.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from textlayer.elements import PageText, quad_bbox
from textlayer.errors import SearchIndexError
from textlayer.index.base import Box, SearchHit, matching_boxes, query_terms, split_terms, term_key
from textlayer.sqlite_db import SqliteDatabase

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the schema this module creates and reads."""

SNIPPET_WORDS = 10
"""Words of page text around the match in a hit's snippet."""

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS pages (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        document_id TEXT NOT NULL,
        page INTEGER NOT NULL,
        text TEXT NOT NULL,
        words_json TEXT NOT NULL,
        UNIQUE (tenant, document_id, page)
    )
    """,
    """
    CREATE VIRTUAL TABLE IF NOT EXISTS pages_fts USING fts5(
        text, content='pages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER IF NOT EXISTS pages_after_insert AFTER INSERT ON pages BEGIN
        INSERT INTO pages_fts (rowid, text) VALUES (new.id, new.text);
    END
    """,
    # An external-content FTS table must be told the old text to remove its tokens.
    """
    CREATE TRIGGER IF NOT EXISTS pages_after_delete AFTER DELETE ON pages BEGIN
        INSERT INTO pages_fts (pages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS pages_after_update AFTER UPDATE ON pages BEGIN
        INSERT INTO pages_fts (pages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO pages_fts (rowid, text) VALUES (new.id, new.text);
    END
    """,
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

BM25_K1 = 1.2
"""BM25 term-frequency saturation (the value FTS5's ``bm25()`` uses)."""

BM25_B = 0.75
"""BM25 length normalisation (the value FTS5's ``bm25()`` uses)."""

_CANDIDATES_SQL = """
    SELECT p.id, p.document_id, p.page, p.text
    FROM pages_fts JOIN pages AS p ON p.id = pages_fts.rowid
    WHERE pages_fts MATCH ? AND p.tenant = ?
"""

_MATCH_COUNT_SQL = """
    SELECT count(*) FROM pages_fts JOIN pages AS p ON p.id = pages_fts.rowid
    WHERE pages_fts MATCH ? AND p.tenant = ?
"""

_TENANT_STATS_SQL = "SELECT count(*), coalesce(sum(length(text)), 0) FROM pages WHERE tenant = ?"

_DETAILS_SQL = f"""
    SELECT p.id, p.words_json, snippet(pages_fts, 0, '[', ']', '…', {SNIPPET_WORDS})
    FROM pages_fts JOIN pages AS p ON p.id = pages_fts.rowid
    WHERE pages_fts MATCH ? AND p.tenant = ? AND p.id IN (SELECT value FROM json_each(?))
"""


def bm25_scores(
    texts: Sequence[str], terms: Sequence[str], *, pages: int, total_length: int, pages_with: Sequence[int]
) -> list[float]:
    """BM25 score of each page text (higher is better) from one tenant's statistics.

    Args:
        texts: the matching pages' texts.
        terms: the query's terms.
        pages: the tenant's pages.
        total_length: their summed text length (characters; a page's length is counted the same way).
        pages_with: per term, the tenant's pages that contain it.
    """
    keys = [term_key(term) for term in terms]
    average = total_length / pages if pages else 1.0
    idf = [math.log((pages - n + 0.5) / (n + 0.5) + 1.0) for n in pages_with]
    scores = []
    for text in texts:
        counts: dict[str, int] = {}
        for word in split_terms(text):
            key = term_key(word)
            counts[key] = counts.get(key, 0) + 1
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(text) / (average or 1.0))
        tf = [counts.get(key, 0) for key in keys]
        scores.append(sum(w * n * (BM25_K1 + 1) / (n + norm) for w, n in zip(idf, tf, strict=True)))
    return scores


def fts_query(terms: Sequence[str]) -> str:
    """FTS5 MATCH text that requires every term, with no operator the user could inject.

    Each term (from :func:`textlayer.index.base.query_terms`) becomes an FTS5 string (double-quoted, inner quotes
    doubled); they are joined by spaces, which FTS5 reads as AND.
    """
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _page_row(tenant: str, document_id: str, number: int, page: PageText | None) -> tuple[str, str, int, str, str]:
    if page is None:
        return (tenant, document_id, number, "", "[]")
    words = [{"text": word.text, "bbox": list(quad_bbox(word.quad))} for word in page.words]
    return (tenant, document_id, number, page.text, json.dumps(words, ensure_ascii=False, separators=(",", ":")))


def _words_from_json(words_json: str) -> list[tuple[str, Box]]:
    words: list[tuple[str, Box]] = []
    for word in json.loads(words_json):
        x0, y0, x1, y1 = (float(v) for v in word["bbox"])
        words.append((str(word["text"]), (x0, y0, x1, y1)))
    return words


def _check_key(name: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


class SqliteSearchIndex(SqliteDatabase):
    """A :class:`~textlayer.index.base.SearchIndex` in one SQLite file (FTS5).

    Connections, transactions and closing are :class:`~textlayer.sqlite_db.SqliteDatabase`'s: one connection per
    thread and per process, several processes may open the file at once. Parameters and errors are as in the
    protocol; the write methods also raise ValueError when ``tenant`` or ``document_id`` is empty.
    """

    _noun = "search index"
    _error = SearchIndexError
    _schema = _SCHEMA
    _version = SCHEMA_VERSION

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10_000) -> None:
        """Open the index file at ``path`` (its folder must exist), creating it and its schema when missing.

        ``busy_timeout_ms`` is how long a call waits for another writer before failing.

        Raises:
            SearchIndexError: The file cannot be opened or created, is not a search index of this version, or SQLite
                lacks FTS5.
        """
        super().__init__(path, busy_timeout_ms=busy_timeout_ms)

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        # Some SQLite builds lack FTS5: say so, rather than "no such module: fts5" about the file.
        try:
            super()._create_tables(conn)
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc):
                raise SearchIndexError(f"this SQLite ({sqlite3.sqlite_version}) has no FTS5: {exc}") from exc
            raise

    def put_document(self, tenant: str, document_id: str, pages: Sequence[PageText | None]) -> None:
        """Store a document's pages, replacing whatever the index held for it.

        A ``None`` page is stored (so it counts in :meth:`page_count`) but never matches.

        Raises:
            ValueError: ``tenant`` or ``document_id`` is empty.
        """
        _check_key("tenant", tenant)
        _check_key("document_id", document_id)
        # Built before BEGIN so that the write lock is held only for the SQL itself.
        rows = [_page_row(tenant, document_id, number, page) for number, page in enumerate(pages)]
        with self._write(f"store document {document_id!r}") as conn:
            conn.execute("DELETE FROM pages WHERE tenant = ? AND document_id = ?", (tenant, document_id))
            conn.executemany(
                "INSERT INTO pages (tenant, document_id, page, text, words_json) VALUES (?, ?, ?, ?, ?)", rows
            )
        log.debug("indexed %d pages of %s/%s", len(rows), tenant, document_id)

    def delete_document(self, tenant: str, document_id: str) -> None:
        """Remove a document's pages; removing a missing document does nothing.

        Raises:
            ValueError: ``tenant`` or ``document_id`` is empty.
        """
        _check_key("tenant", tenant)
        _check_key("document_id", document_id)
        with self._write(f"delete document {document_id!r}") as conn:
            conn.execute("DELETE FROM pages WHERE tenant = ? AND document_id = ?", (tenant, document_id))
        log.debug("removed %s/%s from the index", tenant, document_id)

    def search(self, tenant: str, query: str, *, limit: int = 20, offset: int = 0) -> list[SearchHit]:
        """Find the tenant's pages that contain every word of ``query``, best first, at most ``limit`` after ``offset``.

        Words are runs of Unicode letters and digits; case and accents are ignored (``CAFÉ`` finds ``cafe``) and a word
        matches whole words only. Punctuation and FTS5 syntax in the query (quotes, ``OR``, ``NEAR(``, ``*``, ``^``...)
        are plain text. A query without words, or a ``limit`` of 0 or less, finds nothing. The order is BM25 over the
        tenant's own pages (see the module docstring), ties by document and page.
        """
        terms = query_terms(query)
        if not terms or limit <= 0:
            return []
        match = fts_query(terms)
        with self._read("search") as conn:
            candidates = conn.execute(_CANDIDATES_SQL, (match, tenant)).fetchall()
            if not candidates:
                return []
            pages, total_length = conn.execute(_TENANT_STATS_SQL, (tenant,)).fetchone()
            pages_with = [
                int(conn.execute(_MATCH_COUNT_SQL, (fts_query([term]), tenant)).fetchone()[0]) for term in terms
            ]
            scores = bm25_scores(
                [row[3] for row in candidates],
                terms,
                pages=int(pages),
                total_length=int(total_length),
                pages_with=pages_with,
            )
            ranked = sorted(zip(scores, candidates, strict=True), key=lambda item: (-item[0], item[1][1], item[1][2]))
            chosen = ranked[max(0, int(offset)) : max(0, int(offset)) + int(limit)]
            ids = json.dumps([row[0] for _, row in chosen])
            details = {row[0]: (row[1], row[2]) for row in conn.execute(_DETAILS_SQL, (match, tenant, ids))}
        hits = []
        for score, (row_id, document_id, page, _) in chosen:
            words_json, snippet = details[row_id]
            hits.append(
                SearchHit(
                    tenant=tenant,
                    document_id=document_id,
                    page=page,
                    snippet=snippet,
                    boxes=matching_boxes(_words_from_json(words_json), terms),
                    rank=-score,
                )
            )
        return hits

    def page_count(self, tenant: str, document_id: str) -> int:
        """Number of pages stored for a document, text-less pages included (0 when it is not indexed)."""
        with self._read(f"count the pages of document {document_id!r}") as conn:
            row = conn.execute(
                "SELECT count(*) FROM pages WHERE tenant = ? AND document_id = ?", (tenant, document_id)
            ).fetchone()
        return int(row[0])
