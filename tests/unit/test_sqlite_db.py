"""The shared SQLite machinery, through both of its users: messages, per-class settings and hooks."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from textlayer.errors import SearchIndexError, TextlayerError
from textlayer.index import SqliteSearchIndex
from textlayer.sqlite_db import SqliteDatabase
from textlayer.store import JobStoreError, SqliteJobStore

STORES = [
    pytest.param(SqliteJobStore, JobStoreError, "job store", id="job_store"),
    pytest.param(SqliteSearchIndex, SearchIndexError, "search index", id="search_index"),
]


@pytest.mark.parametrize(("cls", "error", "noun"), STORES)
def test_messages_name_the_file_and_what_it_is(
    tmp_path: Path, cls: type[SqliteDatabase], error: type[TextlayerError], noun: str
) -> None:
    path = tmp_path / "db.sqlite"
    db = cls(path)
    assert repr(db) == f"{cls.__name__}({str(path)!r})"
    looking = pytest.raises(error, match=re.escape(f"cannot look in the {noun} {path}: no such table: absent"))
    with looking, db._read("look") as conn:
        conn.execute("SELECT * FROM absent")
    db.close()
    db.close()
    with pytest.raises(error, match=re.escape(f"the {noun} {path} is closed")):
        db._connection()

    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(error, match=re.escape(f"the {noun} {path} has schema version 7; this textlayer reads 1")):
        cls(path)

    missing = tmp_path / "no" / "db.sqlite"
    with pytest.raises(error, match=re.escape(f"cannot open the {noun} {missing}: its folder does not exist")):
        cls(missing)


def test_only_the_job_store_enforces_foreign_keys(tmp_path: Path) -> None:
    with SqliteJobStore(tmp_path / "jobs.db") as store, store._read("check") as conn:
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with SqliteSearchIndex(tmp_path / "index.db") as index, index._read("check") as conn:
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 0


def test_a_sqlite_without_fts5_is_named_as_such(tmp_path: Path) -> None:
    class NoFts(SqliteSearchIndex):
        _schema = ("CREATE VIRTUAL TABLE t USING fts5_not_here (a)",)

    with pytest.raises(SearchIndexError, match=r"^this SQLite \(.+\) has no FTS5: no such module: fts5_not_here$"):
        NoFts(tmp_path / "a.db")

    class BadSql(SqliteSearchIndex):
        _schema = ("CREATE TABLE",)

    with pytest.raises(SearchIndexError, match="^cannot set up the schema in the search index "):
        BadSql(tmp_path / "b.db")
