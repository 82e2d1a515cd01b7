"""Webhook deliveries: one row per callback of a job, every attempt recorded (SQLite), and the dispatcher.

A delivery is ``waiting`` until its job ends, then ``pending`` until an attempt gets a 2xx (``delivered``), the
retry window passes (``failed``), the policy refuses the URL (``refused``) or the job is deleted (``cancelled``).
At-least-once: an attempt is recorded after the POST returns, and a dispatcher that dies in between leaves the
delivery due, so it is sent again (receivers deduplicate by ``webhook-id``). A due delivery is claimed with a short
lease, so two API processes never send it at the same moment.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textlayer.api.schemas import job_summary
from textlayer.api.tenants import TenantStore
from textlayer.api.webhooks import Attempt, CallbackRefused, WebhookPolicy, post
from textlayer.errors import TextlayerError
from textlayer.sqlite_db import SqliteDatabase
from textlayer.store import Job, JobNotFound, SqliteJobStore

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the schema this module creates and reads."""

MAX_BACKOFF_S = 10 * 3600.0
"""Longest wait between two attempts."""

CLAIM_LEASE_S = 60.0
"""A claimed attempt that has not been recorded after this long is due again (its sender died)."""

STATES = ("waiting", "pending", "delivered", "failed", "refused", "cancelled")
"""Every state of a delivery."""

_SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        job_id TEXT NOT NULL,
        url TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({", ".join(f"'{s}'" for s in STATES)})),
        payload TEXT,
        created_at REAL NOT NULL,
        first_attempt_at REAL,
        next_attempt_at REAL,
        lease_until REAL,
        attempts INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX IF NOT EXISTS deliveries_by_job ON deliveries (job_id)",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries (created_at) WHERE state = 'waiting'",
    """
    CREATE TABLE IF NOT EXISTS delivery_attempts (
        delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        at REAL NOT NULL,
        status_code INTEGER,
        error TEXT,
        duration_ms REAL NOT NULL,
        PRIMARY KEY (delivery_id, attempt)
    ) WITHOUT ROWID
    """,
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


class DeliveryStoreError(TextlayerError):
    """The delivery store cannot be opened, read or written."""

    retryable = True
    reason = "delivery_store_error"


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt as recorded."""

    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True)
class Delivery:
    """One callback of one job."""

    id: str
    """Also the ``webhook-id`` of every attempt."""
    tenant: str
    job_id: str
    url: str
    state: str
    payload: str | None
    created_at: float
    first_attempt_at: float | None
    next_attempt_at: float | None
    attempts: int
    history: tuple[AttemptRecord, ...] = ()


_COLUMNS = "id, tenant, job_id, url, state, payload, created_at, first_attempt_at, next_attempt_at, attempts"


def _delivery(row: Any, history: tuple[AttemptRecord, ...] = ()) -> Delivery:
    delivery_id, tenant, job_id, url, state, payload, created_at, first_at, next_at, attempts = row
    return Delivery(delivery_id, tenant, job_id, url, state, payload, created_at, first_at, next_at, attempts, history)


def next_attempt_at(*, attempts: int, first_at: float, now: float, backoff_s: float, retry_s: float) -> float | None:
    """When to try again after ``attempts`` failed ones, or None when the retry window is over.

    The wait doubles from ``backoff_s`` up to :data:`MAX_BACKOFF_S`; the last attempt is made at the end of the
    window (``first_at + retry_s``), so a receiver that is down for a whole day still gets its message.
    """
    deadline = first_at + retry_s
    if now >= deadline:
        return None
    delay = min(backoff_s * 2.0 ** max(0, attempts - 1), MAX_BACKOFF_S)
    return float(min(now + delay, deadline))


class DeliveryStore(SqliteDatabase):
    """Deliveries and their attempts in one SQLite file."""

    _noun = "delivery store"
    _error = DeliveryStoreError
    _schema = _SCHEMA
    _version = SCHEMA_VERSION
    _pragmas = ("PRAGMA foreign_keys = ON",)

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        """Open the delivery store at ``path`` (its folder must exist), creating it when missing.

        Raises:
            DeliveryStoreError: The file cannot be opened or is not a delivery store of this version.
        """
        super().__init__(path, busy_timeout_ms=busy_timeout_ms)

    def add(self, tenant: str, job_id: str, url: str, *, now: float | None = None) -> str:
        """A delivery that waits for the job to end; returns its id."""
        delivery_id = "msg_" + uuid.uuid4().hex
        with self._write("add a delivery") as conn:
            conn.execute(
                "INSERT INTO deliveries (id, tenant, job_id, url, state, created_at) VALUES (?, ?, ?, ?, 'waiting', ?)",
                (delivery_id, tenant, job_id, url, time.time() if now is None else now),
            )
        return delivery_id

    def waiting(self, limit: int = 500) -> list[Delivery]:
        """Deliveries whose job had not ended when last looked at, oldest first."""
        with self._read("list waiting deliveries") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM deliveries WHERE state = 'waiting' ORDER BY created_at LIMIT ?", (limit,)
            ).fetchall()
        return [_delivery(row) for row in rows]

    def make_due(self, delivery_id: str, payload: str, *, now: float | None = None) -> None:
        """The job has ended: the delivery carries ``payload`` and is due now."""
        with self._write("schedule a delivery") as conn:
            conn.execute(
                "UPDATE deliveries SET state = 'pending', payload = ?, next_attempt_at = ?"
                " WHERE id = ? AND state = 'waiting'",
                (payload, time.time() if now is None else now, delivery_id),
            )

    def cancel_job(self, job_id: str) -> None:
        """The job was deleted: its deliveries that are not done are cancelled, its history removed with them."""
        with self._write("cancel deliveries") as conn:
            conn.execute("DELETE FROM deliveries WHERE job_id = ?", (job_id,))

    def claim_due(self, *, now: float | None = None, limit: int = 16) -> list[Delivery]:
        """Take the deliveries due now for :data:`CLAIM_LEASE_S` (none another sender holds), oldest first."""
        at = time.time() if now is None else now
        with self._write("claim due deliveries") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at LIMIT ?",
                (at, at, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE deliveries SET lease_until = ? WHERE id = ?", [(at + CLAIM_LEASE_S, row[0]) for row in rows]
            )
        return [_delivery(row) for row in rows]

    def record(
        self, delivery: Delivery, attempt: Attempt, *, state: str, next_at: float | None, now: float | None = None
    ) -> None:
        """Record an attempt and move the delivery to ``state`` (``pending`` again with ``next_at``)."""
        at = time.time() if now is None else now
        number = delivery.attempts + 1
        with self._write("record a delivery attempt") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO delivery_attempts (delivery_id, attempt, at, status_code, error, duration_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (delivery.id, number, at, attempt.status_code, attempt.error, attempt.duration_ms),
            )
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, lease_until = NULL,"
                " first_attempt_at = coalesce(first_attempt_at, ?) WHERE id = ?",
                (state, number, next_at, at, delivery.id),
            )

    def for_job(self, tenant: str, job_id: str) -> list[Delivery]:
        """The job's deliveries with their attempts (only the tenant's), oldest first."""
        with self._read("list a job's deliveries") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM deliveries WHERE tenant = ? AND job_id = ? ORDER BY created_at, id",
                (tenant, job_id),
            ).fetchall()
            found = []
            for row in rows:
                attempts = conn.execute(
                    "SELECT attempt, at, status_code, error, duration_ms FROM delivery_attempts"
                    " WHERE delivery_id = ? ORDER BY attempt",
                    (row[0],),
                ).fetchall()
                found.append(_delivery(row, tuple(AttemptRecord(*a) for a in attempts)))
        return found

    def state_counts(self) -> dict[str, int]:
        """Deliveries per state (metrics)."""
        with self._read("count deliveries") as conn:
            rows = conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({state: int(n) for state, n in rows})
        return counts


def job_event(job: Job) -> dict[str, Any]:
    """The Standard Webhooks payload of a job that ended: ``type``, ``timestamp`` and the job's summary."""
    return {
        "type": f"job.{job.state.value.lower()}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.updated_at)),
        "data": job_summary(job),
    }


class Dispatcher:
    """Sends due deliveries from a thread, each attempt in a small pool so a slow receiver holds up no other."""

    def __init__(
        self,
        deliveries: DeliveryStore,
        jobs: SqliteJobStore,
        tenants: TenantStore,
        policy: WebhookPolicy,
        *,
        backoff_s: float,
        retry_s: float,
        poll_s: float = 0.5,
        senders: int = 8,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        """Describe the dispatcher; :meth:`start` runs it. ``on_outcome`` hears each attempt's outcome (metrics)."""
        self.deliveries = deliveries
        self.jobs = jobs
        self.tenants = tenants
        self.policy = policy
        self.backoff_s = backoff_s
        self.retry_s = retry_s
        self.poll_s = poll_s
        self.senders = senders
        self.on_outcome = on_outcome
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Run rounds every ``poll_s`` seconds in a daemon thread."""
        self._pool = ThreadPoolExecutor(self.senders, thread_name_prefix="webhook")
        self._thread = threading.Thread(target=self._run, name="webhook-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the rounds; attempts in flight finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.round()
            except Exception:  # a store that is busy now is read again next round
                log.exception("webhook round failed")

    def round(self, *, now: float | None = None) -> None:
        """Make the deliveries of ended jobs due, and start every due attempt."""
        at = time.time() if now is None else now
        for delivery in self.deliveries.waiting():
            try:
                job = self.jobs.get(delivery.job_id, delivery.tenant)
            except JobNotFound:
                self.deliveries.cancel_job(delivery.job_id)
                continue
            if job.terminal:
                self.deliveries.make_due(delivery.id, json.dumps(job_event(job), separators=(",", ":")), now=at)
        for delivery in self.deliveries.claim_due(now=at):
            with self._lock:
                if delivery.id in self._in_flight:
                    continue
                self._in_flight.add(delivery.id)
            if self._pool is None:
                self.attempt(delivery)
            else:
                self._pool.submit(self.attempt, delivery)

    def attempt(self, delivery: Delivery) -> str:
        """One attempt of ``delivery``, recorded; returns its outcome (``delivered``, ``retry``, ``failed``...)."""
        try:
            return self._attempt(delivery)
        finally:
            with self._lock:
                self._in_flight.discard(delivery.id)

    def _attempt(self, delivery: Delivery) -> str:
        secret = self.tenants.webhook_secret(delivery.tenant)
        body = (delivery.payload or "{}").encode()
        started = time.time()
        if secret is None:
            attempt, state = Attempt(None, "the tenant has no webhook secret", 0.0), "failed"
        else:
            try:
                attempt = post(self.policy, delivery.url, body, secret=secret, message_id=delivery.id)
                state = "delivered" if attempt.delivered else "pending"
            except CallbackRefused as exc:
                attempt, state = Attempt(None, exc.message, 0.0), "refused"
        next_at = None
        if state == "pending":
            next_at = next_attempt_at(
                attempts=delivery.attempts + 1,
                first_at=delivery.first_attempt_at or started,
                now=time.time(),
                backoff_s=self.backoff_s,
                retry_s=self.retry_s,
            )
            if next_at is None:
                state = "failed"
        self.deliveries.record(delivery, attempt, state=state, next_at=next_at)
        outcome = "retry" if state == "pending" else state
        log.info("webhook %s for job %s: %s (%s)", delivery.id, delivery.job_id, outcome, attempt.error or "2xx")
        self.on_outcome(outcome)
        return outcome
