"""One SQLite file shared by the threads and processes of one machine: the base of the job store and the index.

:class:`SqliteDatabase` holds what :class:`~textlayer.store.SqliteJobStore` and
:class:`~textlayer.index.SqliteSearchIndex` share, so that the rules below live in one place:

- One connection per thread and per process: a ``sqlite3.Connection`` must not be used by two threads at once, and
  one inherited across ``fork()`` must not be used at all. Each thread opens its own on first use; it is closed
  when the thread ends or the database is closed.
- Fork safety: a forked child that finds its parent's connection opens a new one, and never closes the inherited
  one (that would release locks or checkpoint on the parent's behalf).
- WAL mode (readers never wait for the writer), so the file must be on a local disk, and ``synchronous=NORMAL`` (a
  commit survives a process crash; a power cut may lose the last commits but never corrupts the file).
- Every write runs in ``BEGIN IMMEDIATE``, which takes the write lock up front so that the busy timeout applies: a
  deferred transaction that reads and then writes gets "database is locked" at once whatever the timeout (design
  note F9 in RELIABILITY.md: 300 of 400 read-then-write transactions from 4 processes failed; with IMMEDIATE none
  did).
- The schema is created once, under the write lock, and its ``PRAGMA user_version`` checked on every open.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Self

from textlayer.errors import TextlayerError
from textlayer.files import private_file

_inherited_connections: list[sqlite3.Connection] = []
"""Connections a forked child inherited: never closed there, see :func:`_close_connection`."""


def _close_connection(conn: sqlite3.Connection, owner_pid: int) -> None:
    # Closing a SQLite connection in a forked child would release locks or checkpoint on behalf
    # of the parent, whose connection is still live; the child keeps it unused until it exits.
    if os.getpid() == owner_pid:
        conn.close()
    else:
        _inherited_connections.append(conn)


class _ThreadConnection:
    """One thread's connection; dropping it (the thread ended) closes the connection."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()


class SqliteDatabase:
    """One SQLite file with a versioned schema, opened once per thread and per process (see the module docstring).

    A subclass sets the class attributes below; every failure is raised as its ``_error``, with a message that names
    the file as "the <_noun> <path>".
    """

    _noun: ClassVar[str]
    """What the file is, in messages: ``"job store"``."""
    _error: ClassVar[type[TextlayerError]]
    """The error raised for every failure to open, read or write the file."""
    _schema: ClassVar[tuple[str, ...]]
    """Statements that create the schema in an empty file; the last sets ``PRAGMA user_version``."""
    _version: ClassVar[int]
    """``PRAGMA user_version`` that ``_schema`` sets, the only one this class reads."""
    _pragmas: ClassVar[tuple[str, ...]] = ()
    """Statements run on every new connection, after the busy timeout and ``synchronous``."""

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10_000) -> None:
        """Open the file at ``path`` (its folder must exist), creating it and its schema when missing.

        ``busy_timeout_ms`` is how long a call waits for another writer before failing.

        Raises:
            TextlayerError: The subclass's ``_error``: the file cannot be opened or created, or does not hold this
                schema version.
        """
        self.path = Path(path)
        self.busy_timeout_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._lock = threading.Lock()
        # Threads of this process take turns at writing here, in order, instead of meeting SQLite's busy
        # handler, which sleeps 1, 2, 5 ... 100 ms between tries: under 16 concurrent writers that made tails of
        # a second (bench/api.py). Other processes still wait through the busy timeout.
        self._write_turn = threading.RLock()
        self._finalizers: list[weakref.finalize[[sqlite3.Connection, int], _ThreadConnection]] = []
        self._closed = False
        if not self.path.parent.is_dir():
            raise self._error(f"cannot open the {self._noun} {self.path}: its folder does not exist")
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise
        for suffix in ("", "-wal", "-shm"):  # SQLite gives the journal files the database's mode
            private_file(self.path.with_name(self.path.name + suffix))

    def __repr__(self) -> str:
        """Show the file, for logs."""
        return f"{type(self).__name__}({str(self.path)!r})"

    def __enter__(self) -> Self:
        """Use the database as a context manager that closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the database."""
        self.close()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: this module issues BEGIN IMMEDIATE itself instead of the
        # sqlite3 module's implicit deferred BEGIN. check_same_thread=False only so that
        # close() and thread-exit finalizers may close it; it is used by one thread.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            conn.execute("PRAGMA synchronous = NORMAL")
            for pragma in self._pragmas:
                conn.execute(pragma)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection in this process, opened on first use."""
        if self._closed:
            raise self._error(f"the {self._noun} {self.path} is closed")
        holder: _ThreadConnection | None = getattr(self._local, "holder", None)
        if holder is not None and holder.pid == os.getpid():
            return holder.conn
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            raise self._error(f"cannot open the {self._noun} {self.path}: {exc}") from exc
        holder = _ThreadConnection(conn)
        finalizer = weakref.finalize(holder, _close_connection, conn, holder.pid)
        with self._lock:
            if self._closed:
                finalizer()
                raise self._error(f"the {self._noun} {self.path} is closed")
            self._finalizers = [f for f in self._finalizers if f.alive]
            self._finalizers.append(finalizer)
        self._local.holder = holder
        return conn

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Raise SQLite errors as ``_error``: "cannot <doing> in the <noun> <path>: ..."."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(f"cannot {doing} in the {self._noun} {self.path}: {exc}") from exc

    @contextmanager
    def _read(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A connection for reads (each statement is its own snapshot); errors as in :meth:`_errors`."""
        conn = self._connection()
        with self._errors(doing):
            yield conn

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``; commits on success, rolls back on error."""
        conn = self._connection()
        with self._write_turn, self._errors(doing):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some errors (disk full, I/O).
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _create_schema(self) -> None:
        conn = self._connection()
        with self._errors("set up the schema"):
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise self._error(
                    f"the {self._noun} {self.path} cannot use write-ahead logging (journal mode {mode!r});"
                    " it must be a file on a local disk"
                )
            if self._schema_version(conn) == self._version:
                return
        with self._write("set up the schema") as conn:
            # Another process may have created the schema while this one waited for the lock.
            version = self._schema_version(conn)
            if version == 0:
                self._create_tables(conn)
                # Logged under the subclass's module, as each store logged its own.
                logging.getLogger(type(self).__module__).info(
                    "created %s schema v%d in %s", self._noun, self._version, self.path
                )
            elif version != self._version:
                raise self._error(
                    f"the {self._noun} {self.path} has schema version {version}; this textlayer reads {self._version}"
                )

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        """Run ``_schema`` in the write transaction; a subclass may translate its errors."""
        for statement in self._schema:
            conn.execute(statement)

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        # One statement, one snapshot: another process may commit the schema between two reads.
        version, objects = conn.execute(
            "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)"
        ).fetchone()
        version = int(version)
        if version == 0 and objects:
            raise self._error(f"{self.path} is a SQLite database but not a textlayer {self._noun}")
        return version

    def close(self) -> None:
        """Close every connection this process opened; later calls raise the class's error.

        Call it once no other call is in flight; closing twice is harmless.
        """
        with self._lock:
            self._closed = True
            finalizers, self._finalizers = self._finalizers, []
        for finalizer in finalizers:
            finalizer()
