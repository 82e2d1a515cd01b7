"""Job records and the JobStore protocol: the source of truth for a job's state (not Celery's results).

A job moves ``QUEUED -> RUNNING -> SUCCEEDED | SUCCEEDED_WITH_ERRORS | FAILED``. A worker may run a job only while
it holds the job's lease (:meth:`JobStore.claim`); a lease that expires (the worker died) lets another worker claim
the job again, and the first worker's later writes are then refused. ``RUNNING -> QUEUED`` happens only through
:meth:`JobStore.requeue`. This module has no storage code, so that another backend (PostgreSQL) can implement
:class:`JobStore` against the same records.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from textlayer.errors import TextlayerError

log = logging.getLogger(__name__)

TOO_MANY_ATTEMPTS = "too_many_attempts"
"""Reason code of a job that was claimed ``max_attempts`` times without finishing."""


class JobState(StrEnum):
    """Where a job is in its life; the values are what APIs and the database show."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    SUCCEEDED_WITH_ERRORS = "SUCCEEDED_WITH_ERRORS"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        """True for the states a job never leaves."""
        return self in TERMINAL_STATES


SUCCEEDED_STATES: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.SUCCEEDED_WITH_ERRORS})
"""Finished with a result (a PDF, text and index rows)."""

TERMINAL_STATES: frozenset[JobState] = SUCCEEDED_STATES | {JobState.FAILED}
"""States a job never leaves."""


class JobNotFound(TextlayerError):
    """No such job (or it belongs to another tenant, which callers must not be able to tell)."""

    grpc_status = "NOT_FOUND"
    reason = "job_not_found"


class JobRunning(TextlayerError):
    """The job is RUNNING under a live lease, so it cannot be deleted now (try again once it ends)."""

    reason = "job_running"


class JobStoreError(TextlayerError):
    """The job store cannot be opened, read or written."""

    retryable = True
    grpc_status = "UNAVAILABLE"
    reason = "job_store_error"


@dataclass(frozen=True)
class PageError:
    """A page that could not be read, in a job that otherwise succeeded (or in a failed one)."""

    page: int
    """Zero-based page index."""
    reason: str
    """Stable machine-readable code, e.g. ``ocr_unavailable``."""
    message: str
    """A sentence a person understands."""


@dataclass(frozen=True)
class Usage:
    """What one tenant's jobs hold, for quotas."""

    jobs: int
    """Jobs the tenant has."""
    bytes_stored: int
    """Sum of the uploads' sizes."""
    pages_since: int
    """Pages of the jobs created since the time asked about (counted ones only)."""
    oldest_since: float | None
    """Creation time of the oldest job with pages since that time, else None."""


@dataclass(frozen=True)
class Job:
    """One job, as the store holds it at the time it was read; times are unix seconds."""

    id: str
    """uuid4 hex; also the job's folder name in the blob store."""
    tenant: str
    state: JobState
    reason: str | None
    """Stable code of a failure (``encrypted_pdf``, ``too_many_attempts``...), else None."""
    message: str | None
    """The failure in a sentence a person understands, else None."""
    filename: str
    """The client's file name: metadata only, never part of a storage path."""
    size_bytes: int
    sha256: str
    """Hex SHA-256 of the uploaded document."""
    pages_total: int | None
    """Pages in the document, once a worker has counted them."""
    pages_done: int
    """Distinct pages whose result is stored (re-running a page does not count it twice)."""
    attempts: int
    """Successful claims so far."""
    lease_owner: str | None
    lease_expires_at: float | None
    """When the lease of a RUNNING job lapses."""
    created_at: float
    updated_at: float
    """The last change (for a QUEUED job: when it was queued)."""
    page_errors: tuple[PageError, ...]
    options: dict[str, Any] = field(hash=False)
    """JSON-able processing options given at submission (left out of the hash: a dict is unhashable)."""

    @property
    def terminal(self) -> bool:
        """True once the job is SUCCEEDED, SUCCEEDED_WITH_ERRORS or FAILED."""
        return self.state.terminal

    def lease_live(self, now: float) -> bool:
        """True when the job is RUNNING under a lease that has not lapsed at ``now``."""
        return self.state == JobState.RUNNING and self.lease_expires_at is not None and self.lease_expires_at > now


class JobStore(Protocol):
    """Where job state lives; every method is safe to call from several threads and processes at once.

    Write methods that take ``owner`` succeed only for the current holder of the job's lease (the job is RUNNING and
    its ``lease_owner`` is ``owner``). A lease that has lapsed but that nobody has claimed since is still held: claims
    and these writes are compare-and-set on the owner, so the first worker to act wins and the other one is refused.
    """

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
        """Create a QUEUED job, or return the tenant's existing job with the same idempotency key."""
        ...

    def get(self, job_id: str, tenant: str | None = None) -> Job:
        """The job; JobNotFound if missing or (with ``tenant``) another tenant's."""
        ...

    def claim(
        self, job_id: str, owner: str, *, lease_s: float, max_attempts: int, now: float | None = None
    ) -> Job | None:
        """Take the job's lease if it is QUEUED or its lease lapsed; None if it must not run now."""
        ...

    def renew(self, job_id: str, owner: str, *, lease_s: float, now: float | None = None) -> bool:
        """Extend the lease; False when ``owner`` no longer holds it."""
        ...

    def set_pages_total(self, job_id: str, owner: str, total: int) -> bool:
        """Record the page count; False when ``owner`` no longer holds the lease."""
        ...

    def page_done(self, job_id: str, owner: str, page: int) -> int:
        """Record that a page's result is stored; returns the distinct pages done."""
        ...

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
        """Move the job into a terminal state and drop the lease; False when the lease was lost."""
        ...

    def fail(self, job_id: str, *, reason: str, message: str, now: float | None = None) -> None:
        """Mark the job FAILED whatever its state (refusing input before any worker ran)."""
        ...

    def requeue(self, job_id: str, owner: str, *, now: float | None = None) -> bool:
        """Give the job up: back to QUEUED, lease dropped; False when ``owner`` does not hold it."""
        ...

    def stuck(self, *, queued_older_than_s: float, now: float | None = None) -> builtins.list[Job]:
        """Jobs QUEUED for longer than ``queued_older_than_s`` or RUNNING under a lapsed lease."""
        ...

    def list(self, tenant: str, *, limit: int = 100) -> builtins.list[Job]:
        """The tenant's jobs, newest first."""
        ...

    def close(self) -> None:
        """Release the store's connections."""
        ...
