"""The JSON shapes of the API (pydantic models, so /openapi.json describes every response exactly)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from textlayer.store import Job, JobState


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable reason code (the hostile-document table's codes, job_not_found, ...).")
    message: str = Field(description="A sentence a person understands.")


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


class PageErrorOut(BaseModel):
    """A page that could not be read."""

    page: int = Field(description="Zero-based page index.")
    reason: str
    message: str


class Timings(BaseModel):
    """When things happened, in unix seconds."""

    created_at: float
    updated_at: float
    finished_at: float | None = Field(description="When the job ended; null while it runs.")
    duration_s: float | None = Field(description="From upload to the end; null while it runs.")


class JobOut(BaseModel):
    """A job: one uploaded document and its processing."""

    id: str
    state: JobState
    filename: str = Field(description="The client's file name, made safe (metadata only).")
    size_bytes: int
    sha256: str
    pages_total: int | None
    pages_done: int
    reason: str | None = Field(description="Why the job FAILED (a stable code), else null.")
    message: str | None
    page_errors: list[PageErrorOut]
    attempts: int
    timings: Timings


class JobList(BaseModel):
    """One page of jobs, newest first."""

    jobs: list[JobOut]
    next_cursor: str | None = Field(description="Pass as cursor= for the next page; null on the last one.")


class SearchHitOut(BaseModel):
    """One page that matches."""

    job_id: str
    page: int = Field(description="Zero-based page index.")
    snippet: str = Field(description="About ten words of the page; each matched word is wrapped in [ and ].")
    boxes: list[list[float]] = Field(
        description="Each matched word's box [x0, y0, x1, y1] in pixels of the page image (origin top left)."
    )
    page_width: int | None = Field(description="Width of the page image in pixels (scale the boxes by it).")
    page_height: int | None
    dpi: float | None = Field(description="Resolution of the page image, when known.")


class SearchResult(BaseModel):
    """One page of search hits, best first."""

    hits: list[SearchHitOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    """One delivery attempt."""

    attempt: int
    at: float
    status_code: int | None = Field(description="The receiver's HTTP status; null when it did not answer.")
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    """A webhook delivery of a job and its attempts."""

    id: str = Field(description="The webhook-id header of every attempt.")
    url: str
    state: Literal["waiting", "pending", "delivered", "failed", "refused", "cancelled"]
    next_attempt_at: float | None
    attempts: list[AttemptOut]


class DeliveryList(BaseModel):
    """A job's webhook deliveries."""

    deliveries: list[DeliveryOut]


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Every dependency answered."""

    status: Literal["ready"]
    checks: dict[str, bool]


def job_summary(job: Job) -> dict[str, Any]:
    """A job as the API shows it (also the ``data`` of its webhook)."""
    finished = job.updated_at if job.terminal else None
    return JobOut(
        id=job.id,
        state=job.state,
        filename=job.filename,
        size_bytes=job.size_bytes,
        sha256=job.sha256,
        pages_total=job.pages_total,
        pages_done=job.pages_done,
        reason=job.reason,
        message=job.message,
        page_errors=[PageErrorOut(page=e.page, reason=e.reason, message=e.message) for e in job.page_errors],
        attempts=job.attempts,
        timings=Timings(
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=finished,
            duration_s=None if finished is None else max(0.0, finished - job.created_at),
        ),
    ).model_dump(mode="json")
