"""The SQLite FTS5 search index, on real database files: results, tenancy, hostile queries, concurrency."""

from __future__ import annotations

import multiprocessing
import os
import random
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from textlayer.elements import Line, PageText, Word
from textlayer.errors import SearchIndexError
from textlayer.index import SearchHit, SearchIndex, SqliteSearchIndex, open_index

WORD_WIDTH = 80.0
WORD_HEIGHT = 30.0


def word_box(line: int, position: int) -> tuple[float, float, float, float]:
    """Where page() puts word ``position`` of line ``line``."""
    x0 = 10.0 + 100.0 * position
    y0 = 20.0 + 40.0 * line
    return (x0, y0, x0 + WORD_WIDTH, y0 + WORD_HEIGHT)


def page(*lines: str) -> PageText:
    """A page with one text line per argument, words on a fixed grid (see word_box)."""
    built = []
    for row, text in enumerate(lines):
        words = []
        for position, token in enumerate(text.split()):
            x0, y0, x1, y1 = word_box(row, position)
            words.append(Word(token, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), 0.9))
        x0, y0, _, y1 = word_box(row, 0)
        x1 = x0 + 100.0 * len(words)
        built.append(Line(tuple(words), ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), 0.9))
    return PageText(width=2000, height=1000, rotation=0, lines=tuple(built))


@pytest.fixture
def index(tmp_path: Path):
    with SqliteSearchIndex(tmp_path / "index.db") as opened:
        yield opened


def check_integrity(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # rank=1 also compares the FTS index with the content table; raises on any mismatch.
        conn.execute("INSERT INTO pages_fts (pages_fts, rank) VALUES ('integrity-check', 1)")


def row_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM pages").fetchone()[0])


def test_search_returns_document_page_snippet_and_word_boxes(index):
    index.put_document(
        "acme",
        "doc-1",
        [page("nothing to see here"), page("Please pay the invoice", "total due: INVOICE-2024 (Invoice).")],
    )

    hits = index.search("acme", "invoice")

    assert len(hits) == 1
    hit = hits[0]
    assert isinstance(hit, SearchHit)
    assert (hit.tenant, hit.document_id, hit.page) == ("acme", "doc-1", 1)
    assert "[invoice]" in hit.snippet
    assert len(hit.snippet.split()) <= 12
    # "INVOICE-2024" holds the word invoice; "(Invoice)." too; "the" and "total" do not.
    assert hit.boxes == (word_box(0, 3), word_box(1, 2), word_box(1, 3))
    assert isinstance(index, SearchIndex)


def test_all_query_words_must_be_on_the_page(index):
    index.put_document("acme", "d", [page("red apple"), page("green apple"), page("red pepper")])

    assert [h.page for h in index.search("acme", "red apple")] == [0]
    assert sorted(h.page for h in index.search("acme", "apple")) == [0, 1]
    assert index.search("acme", "red banana") == []
    assert index.search("acme", "app") == []  # whole words only


def test_limit(index):
    index.put_document("acme", "d", [page(f"common word {n}") for n in range(5)])

    assert len(index.search("acme", "common")) == 5
    assert len(index.search("acme", "common", limit=2)) == 2
    assert index.search("acme", "common", limit=0) == []


def test_putting_a_document_again_replaces_its_pages(tmp_path):
    path = tmp_path / "index.db"
    with SqliteSearchIndex(path) as index:
        pages = [page("alpha one"), page("alpha two"), page("alpha three")]
        index.put_document("acme", "d", pages)
        index.put_document("acme", "d", pages)

        assert index.page_count("acme", "d") == 3
        assert row_count(path) == 3
        assert sorted(h.page for h in index.search("acme", "alpha")) == [0, 1, 2]

        index.put_document("acme", "d", [page("beta one"), page("alpha two")])

        assert index.page_count("acme", "d") == 2
        assert [h.page for h in index.search("acme", "alpha")] == [1]
        assert index.search("acme", "three") == []
        assert [h.page for h in index.search("acme", "beta")] == [0]
    check_integrity(path)


def test_pages_without_text_count_but_never_match(index):
    index.put_document("acme", "d", [page("first words"), None, page("last words")])

    assert index.page_count("acme", "d") == 3
    assert sorted(h.page for h in index.search("acme", "words")) == [0, 2]


def test_delete_document(tmp_path):
    path = tmp_path / "index.db"
    with SqliteSearchIndex(path) as index:
        index.put_document("acme", "keep", [page("shared word")])
        index.put_document("acme", "drop", [page("shared word"), page("only here")])

        index.delete_document("acme", "drop")
        index.delete_document("acme", "never-indexed")

        assert index.page_count("acme", "drop") == 0
        assert index.search("acme", "only") == []
        assert [h.document_id for h in index.search("acme", "shared")] == ["keep"]
    check_integrity(path)


def test_tenants_are_separate(index):
    index.put_document("a", "same-id", [page("quarterly report")])
    index.put_document("b", "same-id", [page("quarterly report"), page("more")])

    assert [h.tenant for h in index.search("a", "report")] == ["a"]
    assert index.page_count("a", "same-id") == 1
    assert index.page_count("b", "same-id") == 2
    index.delete_document("a", "same-id")
    assert index.search("a", "report") == []
    assert len(index.search("b", "report")) == 1


HOSTILE_QUERIES = [
    "x) OR (y",
    '"unbalanced',
    "NEAR(",
    "*",
    "-",
    "secret OR",
    "^",
    "",
    "   ",
    ".,;:!?()[]{}<>\"'`~@#$%&|\\/+=-_",
    "secret",
    "zzz) OR (secret",
    "public) OR (secret",
    '"public" OR "secret"',
    "public OR secret",
    "public NOT secret",
    "NEAR(public secret)",
    "secret*",
    "^secret",
    "-secret",
    "text:secret",
    "{text}: secret",
    "tenant:b secret",
    "' OR tenant = 'b",
    "'; DROP TABLE pages; --",
    'secret"',
    '""secret""',
    "\x00secret",
    "\u0301",
    "AND",
    "OR OR OR",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_queries_never_fail_nor_leak_another_tenant(index, query):
    index.put_document("a", "public-doc", [page("public notes x y")])
    index.put_document("b", "secret-doc", [page("the secret plans x y")])

    hits = index.search("a", query)

    assert all(hit.tenant == "a" and hit.document_id == "public-doc" for hit in hits)
    # Tenant A has no page with the word "secret", and every query word must match.
    if "secret" in query.lower():
        assert hits == []


def test_random_queries_never_raise(index):
    index.put_document("a", "d", [page('x y "quoted" NEAR(a b) * ^ - OR AND NOT')])
    pieces = ['"', "'", "(", ")", "*", "^", "-", "+", ":", "{", "}", "NEAR", "OR", "AND", "NOT", "x", "y", " ", "\\"]
    rng = random.Random(1234)

    for _ in range(300):
        query = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        hits = index.search("a", query)
        assert all(hit.document_id == "d" for hit in hits)

    many_words = " ".join(f"w{n}" for n in range(5000))
    assert index.search("a", many_words) == []
    assert index.search("a", "x " * 5000)[0].document_id == "d"


def test_case_and_accents_are_ignored(index):
    index.put_document("a", "menu", [page("Le cafe est ouvert"), page("Un Café, crème")])

    assert sorted(h.page for h in index.search("a", "CAFÉ")) == [0, 1]
    assert sorted(h.page for h in index.search("a", "cafe\u0301")) == [0, 1]  # decomposed é
    hit = index.search("a", "creme")[0]
    assert hit.page == 1
    assert hit.boxes == (word_box(0, 2),)
    boxes_by_page = {h.page: h.boxes for h in index.search("a", "cafe")}
    assert boxes_by_page == {0: (word_box(0, 1),), 1: (word_box(0, 1),)}


def test_open_index_accepts_paths_and_sqlite_urls(tmp_path):
    plain = open_index(tmp_path / "a.db")
    from_string = open_index(str(tmp_path / "b.db"))
    from_url = open_index(f"sqlite://{tmp_path / 'c.db'}")
    try:
        for index in (plain, from_string, from_url):
            assert isinstance(index, SqliteSearchIndex)
        assert isinstance(from_url, SqliteSearchIndex)
        assert from_url.path == tmp_path / "c.db"
    finally:
        for index in (plain, from_string, from_url):
            index.close()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("postgresql://user@db/textlayer", "PostgreSQL index is not available yet"),
        ("postgres://db/textlayer", "PostgreSQL index is not available yet"),
        ("mysql://db/textlayer", "unsupported"),
        ("sqlite://host/x.db", "sqlite:///"),
        ("sqlite:///", "sqlite:///"),
    ],
)
def test_open_index_rejects_other_urls(target, message):
    with pytest.raises(SearchIndexError, match=message):
        open_index(target)


def test_unusable_files_raise_search_index_error(tmp_path):
    with pytest.raises(SearchIndexError, match="folder does not exist"):
        SqliteSearchIndex(tmp_path / "missing" / "index.db")

    foreign = tmp_path / "foreign.db"
    with closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE other (x)")
    with pytest.raises(SearchIndexError, match="not a textlayer search index"):
        SqliteSearchIndex(foreign)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(SearchIndexError, match="cannot"):
        SqliteSearchIndex(garbage)


def test_closed_index_raises(tmp_path):
    index = SqliteSearchIndex(tmp_path / "index.db")
    index.close()
    index.close()

    with pytest.raises(SearchIndexError, match="closed"):
        index.search("a", "word")


def test_reopening_keeps_the_documents(tmp_path):
    with SqliteSearchIndex(tmp_path / "index.db") as index:
        index.put_document("a", "d", [page("durable words")])
    with SqliteSearchIndex(tmp_path / "index.db") as index:
        assert [h.document_id for h in index.search("a", "durable")] == ["d"]


def test_threads_share_one_index(tmp_path):
    path = tmp_path / "index.db"
    errors: list[BaseException] = []
    with SqliteSearchIndex(path, busy_timeout_ms=5_000) as index:

        def work(worker: int) -> None:
            try:
                for n in range(10):
                    index.put_document("t", f"w{worker}-d{n}", [page(f"thread words {worker} {n}")])
                    index.search("t", "thread words")
            except BaseException as exc:  # collected: pytest does not see exceptions in threads
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert len(index.search("t", "thread", limit=100)) == 40
    check_integrity(path)


def _put_documents(path: str, worker: int, barrier, results) -> None:
    """Child process: open the (possibly not yet created) index and put 25 documents."""
    errors = []
    try:
        barrier.wait(timeout=30)
        with SqliteSearchIndex(Path(path)) as index:
            for n in range(25):
                try:
                    index.put_document("tenant", f"p{worker}-d{n}", [page(f"process {worker} document {n}"), None])
                except SearchIndexError as exc:
                    errors.append(str(exc))
    except Exception as exc:
        errors.append(repr(exc))
    results.put((worker, errors))


def test_concurrent_writer_processes(tmp_path):
    path = tmp_path / "index.db"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    workers = [ctx.Process(target=_put_documents, args=(str(path), w, barrier, results)) for w in range(4)]
    for worker in workers:
        worker.start()
    try:
        outcomes = dict(results.get(timeout=60) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
            worker.close()
        results.close()
        results.join_thread()

    assert outcomes == {w: [] for w in range(4)}
    with SqliteSearchIndex(path) as index:
        assert len(index.search("tenant", "document", limit=1000)) == 100
        assert index.page_count("tenant", "p3-d24") == 2
    assert row_count(path) == 200
    check_integrity(path)


def _use_after_fork(path: str) -> None:
    """Child process: write through the index object inherited from the parent."""
    index = _FORK_INDEX[0]
    if str(index.path) != path or len(index.search("a", "parent")) != 1:
        os._exit(3)
    index.put_document("a", "child", [page("child words")])
    index.close()


_FORK_INDEX: list[SqliteSearchIndex] = []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_opens_its_own_connection(tmp_path):
    path = tmp_path / "index.db"
    with SqliteSearchIndex(path) as index:
        index.put_document("a", "parent", [page("parent words")])
        _FORK_INDEX[:] = [index]
        try:
            child = multiprocessing.get_context("fork").Process(target=_use_after_fork, args=(str(path),))
            child.start()
            child.join(timeout=30)
            assert child.exitcode == 0
            child.close()
        finally:
            _FORK_INDEX.clear()

        # The parent's own connection still works after the child closed its copy of the index.
        assert sorted(h.document_id for h in index.search("a", "words")) == ["child", "parent"]
        index.put_document("a", "after", [page("after words")])
    check_integrity(path)
