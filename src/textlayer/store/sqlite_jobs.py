"""The job store in one SQLite file, shared by the threads and processes of one machine.

Tables (see ``_SCHEMA``): ``jobs``, one row per job, and ``job_pages``, the pages recorded done. Times are unix
seconds (REAL). ``pages_done`` is the row count of the job's ``job_pages``, kept in the same transaction, so
recording a page twice does not count it twice.

Connections, transactions and schema set-up are :mod:`textlayer.sqlite_db`'s (WAL, every write in ``BEGIN
IMMEDIATE``). A claim reads and updates the job inside one such transaction, so it is a compare-and-set: two
workers never both win. Connections enforce foreign keys: a ``job_pages`` row must name a job, and goes when its
job is deleted.
"""

from __future__ import annotations

import builtins
import json
import logging
import math
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textlayer.sqlite_db import SqliteDatabase
from textlayer.store.jobs import (
    TOO_MANY_ATTEMPTS,
    Job,
    JobNotFound,
    JobRunning,
    JobState,
    JobStoreError,
    PageError,
    Usage,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the schema this module creates and reads."""

_STATES_SQL = ", ".join(f"'{state.value}'" for state in JobState)

_SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({_STATES_SQL})),
        reason TEXT,
        message TEXT,
        filename TEXT NOT NULL,
        size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
        sha256 TEXT NOT NULL,
        pages_total INTEGER CHECK (pages_total >= 0),
        pages_done INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        page_errors_json TEXT NOT NULL DEFAULT '[]',
        options_json TEXT NOT NULL DEFAULT '{{}}',
        idempotency_key TEXT,
        UNIQUE (tenant, idempotency_key)
    )
    """,
    "CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_by_content ON jobs (tenant, sha256)",
    # Partial indexes: stuck() looks only at QUEUED and RUNNING jobs, a small share of the table.
    "CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (updated_at) WHERE state = 'QUEUED'",
    "CREATE INDEX IF NOT EXISTS jobs_running ON jobs (lease_expires_at) WHERE state = 'RUNNING'",
    """
    CREATE TABLE IF NOT EXISTS job_pages (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        page INTEGER NOT NULL CHECK (page >= 0),
        PRIMARY KEY (job_id, page)
    ) WITHOUT ROWID
    """,
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_COLUMNS = (
    "id, tenant, state, reason, message, filename, size_bytes, sha256, pages_total, pages_done, attempts,"
    " lease_owner, lease_expires_at, created_at, updated_at, page_errors_json, options_json"
)

_HOLDER = "id = ? AND state = 'RUNNING' AND lease_owner = ?"
"""WHERE clause: the job is RUNNING under ``owner``'s lease (parameters: job id, owner)."""


def _now(now: float | None) -> float:
    return time.time() if now is None else float(now)


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return value


def _job_from_row(row: Sequence[Any]) -> Job:
    (
        job_id,
        tenant,
        state,
        reason,
        message,
        filename,
        size_bytes,
        sha256,
        pages_total,
        pages_done,
        attempts,
        lease_owner,
        lease_expires_at,
        created_at,
        updated_at,
        page_errors_json,
        options_json,
    ) = row
    return Job(
        id=job_id,
        tenant=tenant,
        state=JobState(state),
        reason=reason,
        message=message,
        filename=filename,
        size_bytes=int(size_bytes),
        sha256=sha256,
        pages_total=None if pages_total is None else int(pages_total),
        pages_done=int(pages_done),
        attempts=int(attempts),
        lease_owner=lease_owner,
        lease_expires_at=None if lease_expires_at is None else float(lease_expires_at),
        created_at=float(created_at),
        updated_at=float(updated_at),
        page_errors=tuple(
            PageError(page=int(e["page"]), reason=str(e["reason"]), message=str(e["message"]))
            for e in json.loads(page_errors_json)
        ),
        options=json.loads(options_json),
    )


def _page_errors_json(page_errors: Sequence[PageError]) -> str:
    return json.dumps(
        [{"page": int(e.page), "reason": e.reason, "message": e.message} for e in page_errors],
        ensure_ascii=False,
        separators=(",", ":"),
    )


class SqliteJobStore(SqliteDatabase):
    """A :class:`~textlayer.store.jobs.JobStore` in one SQLite file.

    Connections, transactions and closing are :class:`~textlayer.sqlite_db.SqliteDatabase`'s: one connection per
    thread and per process, several processes may open the file at once.

    In every method ``job_id`` is the job's id; ``owner`` is the lease holder's name as given to :meth:`claim`, and a
    write with an ``owner`` that no longer holds the lease writes nothing; ``now`` is the unix time of the call
    (tests), the clock by default. Every method raises :class:`~textlayer.store.jobs.JobStoreError` when the store
    cannot be read or written.
    """

    _noun = "job store"
    _error = JobStoreError
    _schema = _SCHEMA
    _version = SCHEMA_VERSION
    _pragmas = ("PRAGMA foreign_keys = ON",)  # SQLite leaves job_pages' REFERENCES unenforced without it

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        """Open the job store file at ``path`` (its folder must exist), creating it and its schema when missing.

        ``busy_timeout_ms`` is how long a write waits for another writer before failing.

        Raises:
            JobStoreError: The file cannot be opened or created, or is not a job store of this version.
        """
        super().__init__(path, busy_timeout_ms=busy_timeout_ms)

    @staticmethod
    def _select(conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job_from_row(row)

    # -- the JobStore methods -----------------------------------------------------------

    def create(
        self,
        tenant: str,
        *,
        filename: str,
        size_bytes: int,
        sha256: str,
        options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        now: float | None = None,
    ) -> Job:
        """Create a QUEUED job for ``tenant``, or return the existing one for a repeated idempotency key.

        Other tenants can neither see nor touch the job. ``filename`` is the client's file name, kept as metadata only;
        ``options`` are JSON-able processing options. The same (tenant, ``idempotency_key``) returns the job created the
        first time, whatever its state, instead of a new one.

        Raises:
            ValueError: ``tenant`` is empty, ``size_bytes`` is negative or ``options`` is not JSON-able.
        """
        job, _ = self.create_if_new(
            tenant,
            filename=filename,
            size_bytes=size_bytes,
            sha256=sha256,
            options=options,
            idempotency_key=idempotency_key,
            now=now,
        )
        return job

    def create_if_new(
        self,
        tenant: str,
        *,
        filename: str,
        size_bytes: int,
        sha256: str,
        options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        now: float | None = None,
    ) -> tuple[Job, bool]:
        """:meth:`create`, also saying whether this call created the job (False: the idempotency key's earlier job).

        Raises:
            ValueError: As :meth:`create`.
        """
        if not tenant:
            raise ValueError("tenant must be a non-empty string")
        if size_bytes < 0:
            raise ValueError(f"size_bytes must not be negative, got {size_bytes}")
        try:
            options_json = json.dumps(dict(options or {}), sort_keys=True, separators=(",", ":"), allow_nan=False)
        except TypeError as exc:
            raise ValueError(f"job options must be JSON-able: {exc}") from exc
        created_at = _now(now)
        job_id = uuid.uuid4().hex
        with self._write("create a job") as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE tenant = ? AND idempotency_key = ?", (tenant, idempotency_key)
                ).fetchone()
                if row is not None:
                    existing = _job_from_row(row)
                    if existing.sha256 != sha256:
                        # The client reused a key for another document; the first one stands.
                        log.warning(
                            "idempotency key reused by tenant %r for a different document; returning job %s",
                            tenant,
                            existing.id,
                        )
                    return existing, False
            conn.execute(
                "INSERT INTO jobs (id, tenant, state, filename, size_bytes, sha256, created_at, updated_at,"
                " options_json, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    tenant,
                    JobState.QUEUED.value,
                    filename,
                    int(size_bytes),
                    sha256,
                    created_at,
                    created_at,
                    options_json,
                    idempotency_key,
                ),
            )
            job = self._select(conn, job_id)
        assert job is not None  # inserted in this transaction
        log.debug("created job %s for tenant %r", job_id, tenant)
        return job, True

    def get(self, job_id: str, tenant: str | None = None) -> Job:
        """Read a job; with ``tenant``, it must belong to that tenant.

        Raises:
            JobNotFound: No such job, or it belongs to another tenant (same message, so that callers cannot probe other
                tenants' ids).
        """
        with self._read(f"read job {job_id!r}") as conn:
            job = self._select(conn, job_id)
        if job is None or (tenant is not None and job.tenant != tenant):
            raise JobNotFound(f"there is no job {job_id!r}")
        return job

    def claim(
        self, job_id: str, owner: str, *, lease_s: float, max_attempts: int, now: float | None = None
    ) -> Job | None:
        """Take the job's lease for ``lease_s`` seconds, in one compare-and-set transaction.

        A claim succeeds only when the job is QUEUED, or RUNNING under a lease that has lapsed at ``now`` (its worker
        died); the job becomes RUNNING under ``owner``'s lease and its attempts grow by one. ``owner`` is a unique name
        of this attempt (host, pid, thread...). A claim that would exceed ``max_attempts`` ends the job FAILED
        (``too_many_attempts``) instead, so that a document that kills every worker does not loop forever.

        Returns:
            The job as claimed, or None when it must not run now: another owner holds a live lease, the job is terminal
            (or has just failed for too many attempts), or there is no such job (a message about an unknown job has
            nothing to run).

        Raises:
            ValueError: ``lease_s`` or ``max_attempts`` is not positive, or ``owner`` is empty.
        """
        lease_s = _positive("lease_s", lease_s)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if not owner:
            raise ValueError("owner must be a non-empty string")
        at = _now(now)
        with self._write(f"claim job {job_id!r}") as conn:
            job = self._select(conn, job_id)
            if job is None:
                log.warning("claim of unknown job %s", job_id)
                return None
            if job.terminal or job.lease_live(at):
                return None
            if job.attempts >= max_attempts:
                message = (
                    f"The job was started {job.attempts} times and never finished: its worker stopped each time,"
                    " which a document that crashes the reader can cause. It will not be tried again."
                )
                conn.execute(
                    "UPDATE jobs SET state = ?, reason = ?, message = ?, lease_owner = NULL, lease_expires_at = NULL,"
                    " updated_at = ? WHERE id = ?",
                    (JobState.FAILED.value, TOO_MANY_ATTEMPTS, message, at, job_id),
                )
                log.warning("job %s FAILED after %d attempts", job_id, job.attempts)
                return None
            conn.execute(
                "UPDATE jobs SET state = ?, lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ?",
                (JobState.RUNNING.value, owner, at + lease_s, at, job_id),
            )
            claimed = self._select(conn, job_id)
        return claimed

    def renew(self, job_id: str, owner: str, *, lease_s: float, now: float | None = None) -> bool:
        """Extend the lease to ``now + lease_s``.

        Returns False when ``owner`` no longer holds the lease (another claim took it, or the job ended).

        Raises:
            ValueError: ``lease_s`` is not positive.
        """
        lease_s = _positive("lease_s", lease_s)
        at = _now(now)
        with self._write(f"renew the lease of job {job_id!r}") as conn:
            # updated_at is left alone: a renewal is a heartbeat, not a change of the job.
            cursor = conn.execute(
                f"UPDATE jobs SET lease_expires_at = ? WHERE {_HOLDER}", (at + lease_s, job_id, owner)
            )
        return cursor.rowcount == 1

    def set_pages_total(self, job_id: str, owner: str, total: int) -> bool:
        """Record the document's page count; False when ``owner`` no longer holds the lease.

        Raises:
            ValueError: ``total`` is negative.
        """
        if total < 0:
            raise ValueError(f"total must not be negative, got {total}")
        with self._write(f"set the page count of job {job_id!r}") as conn:
            cursor = conn.execute(
                f"UPDATE jobs SET pages_total = ?, updated_at = ? WHERE {_HOLDER}",
                (int(total), time.time(), job_id, owner),
            )
        return cursor.rowcount == 1

    def page_done(self, job_id: str, owner: str, page: int) -> int:
        """Record that ``page``'s result is stored; recording it again changes nothing.

        Returns:
            Distinct pages recorded done so far (those of earlier attempts included).

        Raises:
            ValueError: ``page`` is negative or not below the job's ``pages_total``.
            JobNotFound: There is no such job.
        """
        if page < 0:
            raise ValueError(f"page must not be negative, got {page}")
        with self._write(f"record page {page} of job {job_id!r} done") as conn:
            row = conn.execute(f"SELECT pages_done, pages_total FROM jobs WHERE {_HOLDER}", (job_id, owner)).fetchone()
            if row is None:
                current = conn.execute("SELECT pages_done FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if current is None:
                    raise JobNotFound(f"there is no job {job_id!r}")
                log.warning(
                    "job %s: page %d done by %s, which no longer holds the lease; not recorded", job_id, page, owner
                )
                return int(current[0])
            pages_done, pages_total = int(row[0]), row[1]
            if pages_total is not None and page >= pages_total:
                raise ValueError(f"page {page} is past the end of job {job_id!r} ({pages_total} pages)")
            inserted = conn.execute("INSERT OR IGNORE INTO job_pages (job_id, page) VALUES (?, ?)", (job_id, int(page)))
            if inserted.rowcount == 1:
                pages_done += 1
                conn.execute(
                    "UPDATE jobs SET pages_done = ?, updated_at = ? WHERE id = ?", (pages_done, time.time(), job_id)
                )
        return pages_done

    def finish(
        self,
        job_id: str,
        owner: str,
        state: JobState,
        *,
        reason: str | None = None,
        message: str | None = None,
        page_errors: Sequence[PageError] = (),
        now: float | None = None,
    ) -> bool:
        """End the job in terminal ``state`` (with failure ``reason``, ``message``, ``page_errors``); drop its lease.

        Returns:
            False when the lease was lost (another claim took the job, or it already ended): nothing is written, the
            other attempt's result stands.

        Raises:
            ValueError: ``state`` is not terminal.
        """
        state = JobState(state)
        if not state.terminal:
            raise ValueError(f"finish() needs a terminal state, got {state.value}")
        at = _now(now)
        with self._write(f"finish job {job_id!r}") as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = ?, reason = ?, message = ?, page_errors_json = ?, lease_owner = NULL,"
                f" lease_expires_at = NULL, updated_at = ? WHERE {_HOLDER}",
                (state.value, reason, message, _page_errors_json(page_errors), at, job_id, owner),
            )
        return cursor.rowcount == 1

    def fail(self, job_id: str, *, reason: str, message: str, now: float | None = None) -> None:
        """Mark the job FAILED whatever its state, dropping any lease.

        Meant for refusing a document before any worker runs it (too large, not a PDF...); ``reason`` is a stable code
        such as ``file_too_large``.

        Raises:
            JobNotFound: There is no such job.
        """
        at = _now(now)
        with self._write(f"fail job {job_id!r}") as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = ?, reason = ?, message = ?, lease_owner = NULL, lease_expires_at = NULL,"
                " updated_at = ? WHERE id = ?",
                (JobState.FAILED.value, reason, message, at, job_id),
            )
        if cursor.rowcount != 1:
            raise JobNotFound(f"there is no job {job_id!r}")

    def requeue(self, job_id: str, owner: str, *, now: float | None = None) -> bool:
        """Give the job up: back to QUEUED with no lease, for another attempt to claim.

        Returns False when ``owner`` does not hold the lease. Attempts are not given back, so a job that is given
        up every time still reaches ``max_attempts``; pages recorded done stay done.
        """
        at = _now(now)
        with self._write(f"requeue job {job_id!r}") as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
                f" WHERE {_HOLDER}",
                (JobState.QUEUED.value, at, job_id, owner),
            )
        return cursor.rowcount == 1

    def stuck(self, *, queued_older_than_s: float, now: float | None = None) -> builtins.list[Job]:
        """Jobs a reconciler should publish again, oldest change first.

        These are QUEUED jobs queued before ``now - queued_older_than_s`` (they lost their message, or are about to be
        picked up: publishing twice is harmless) and RUNNING jobs whose lease lapsed at ``now`` (their worker died).
        """
        at = _now(now)
        with self._read("list stuck jobs") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state = 'QUEUED' AND updated_at < ?"
                f" UNION ALL SELECT {_COLUMNS} FROM jobs WHERE state = 'RUNNING' AND lease_expires_at <= ?"
                " ORDER BY updated_at, id",
                (at - float(queued_older_than_s), at),
            ).fetchall()
        return [_job_from_row(row) for row in rows]

    def earlier_result(self, tenant: str, sha256: str, *, other_than: str) -> Job | None:
        """The tenant's newest SUCCEEDED job of the same bytes and options (its result can be reused)."""
        with self._read("look for an identical earlier document") as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE tenant = ? AND sha256 = ? AND state = 'SUCCEEDED' AND id != ?"
                " AND options_json = (SELECT options_json FROM jobs WHERE id = ?)"
                " ORDER BY updated_at DESC LIMIT 1",
                (tenant, sha256, other_than, other_than),
            ).fetchone()
        return None if row is None else _job_from_row(row)

    def list(self, tenant: str, *, limit: int = 100) -> builtins.list[Job]:
        """The tenant's jobs by creation time, newest first; at most ``limit`` (none when it is 0 or less)."""
        if limit <= 0:
            return []
        with self._read(f"list the jobs of tenant {tenant!r}") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE tenant = ? ORDER BY created_at DESC, id LIMIT ?",
                (tenant, int(limit)),
            ).fetchall()
        return [_job_from_row(row) for row in rows]

    # -- for the HTTP API: pages of jobs, deletion, quotas, retention -------------------------------

    def page(
        self,
        tenant: str,
        *,
        state: JobState | None = None,
        limit: int = 100,
        after: tuple[float, str] | None = None,
    ) -> builtins.list[Job]:
        """The tenant's jobs, newest first, optionally in one ``state``, for keyset pagination.

        ``after`` is the ``(created_at, id)`` of the last job of the previous page; the page starts after it.
        """
        if limit <= 0:
            return []
        where = "tenant = ?"
        params: builtins.list[object] = [tenant]
        if state is not None:
            where += " AND state = ?"
            params.append(JobState(state).value)
        if after is not None:
            where += " AND (created_at < ? OR (created_at = ? AND id > ?))"
            params += [float(after[0]), float(after[0]), str(after[1])]
        with self._read(f"list the jobs of tenant {tenant!r}") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE {where} ORDER BY created_at DESC, id LIMIT ?", (*params, int(limit))
            ).fetchall()
        return [_job_from_row(row) for row in rows]

    def delete(self, job_id: str, tenant: str, *, now: float | None = None) -> Job:
        """Remove the tenant's job row (its pages go with it); the caller removes its blobs and index rows.

        A job RUNNING under a live lease is refused, in the same transaction as the check, so a worker can never claim
        a job that is being deleted: either the claim comes first (and the delete is refused) or the claim finds
        nothing.

        Returns:
            The job as it was.

        Raises:
            JobNotFound: No such job, or another tenant's.
            JobRunning: A worker holds the job's live lease.
        """
        at = _now(now)
        with self._write(f"delete job {job_id!r}") as conn:
            job = self._select(conn, job_id)
            if job is None or job.tenant != tenant:
                raise JobNotFound(f"there is no job {job_id!r}")
            if job.lease_live(at):
                raise JobRunning(f"job {job_id!r} is being processed; delete it once it has ended")
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        log.info("deleted job %s of tenant %r", job_id, tenant)
        return job

    def usage(self, tenant: str, *, since: float) -> Usage:
        """What the tenant's jobs hold: jobs, bytes uploaded, and pages of the jobs created since ``since``."""
        with self._read(f"measure the usage of tenant {tenant!r}") as conn:
            jobs, stored = conn.execute(
                "SELECT count(*), coalesce(sum(size_bytes), 0) FROM jobs WHERE tenant = ?", (tenant,)
            ).fetchone()
            pages, oldest = conn.execute(
                "SELECT coalesce(sum(pages_total), 0), min(created_at) FROM jobs"
                " WHERE tenant = ? AND created_at >= ? AND pages_total > 0",
                (tenant, float(since)),
            ).fetchone()
        return Usage(
            jobs=int(jobs),
            bytes_stored=int(stored),
            pages_since=int(pages),
            oldest_since=None if oldest is None else float(oldest),
        )

    def ended_before(self, before: float, *, limit: int = 100) -> builtins.list[Job]:
        """Terminal jobs of every tenant whose last change is older than ``before``, oldest first (retention)."""
        with self._read("list expired jobs") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state IN ('SUCCEEDED', 'SUCCEEDED_WITH_ERRORS', 'FAILED')"
                " AND updated_at < ? ORDER BY updated_at, id LIMIT ?",
                (float(before), int(limit)),
            ).fetchall()
        return [_job_from_row(row) for row in rows]

    def state_counts(self) -> dict[JobState, int]:
        """Jobs per state, over every tenant (metrics)."""
        with self._read("count jobs by state") as conn:
            rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(JobState, 0)
        counts.update({JobState(state): int(n) for state, n in rows})
        return counts
