"""Job state and job files: a job store (leases, compare-and-set claims) and a blob store."""

from __future__ import annotations

from textlayer.store.blobs import BLOB_NAMES, BlobError, BlobStore
from textlayer.store.jobs import (
    SUCCEEDED_STATES,
    TERMINAL_STATES,
    TOO_MANY_ATTEMPTS,
    Job,
    JobNotFound,
    JobRunning,
    JobState,
    JobStore,
    JobStoreError,
    PageError,
    Usage,
)
from textlayer.store.sqlite_jobs import SqliteJobStore

__all__ = [
    "BLOB_NAMES",
    "BlobError",
    "BlobStore",
    "Job",
    "JobNotFound",
    "JobRunning",
    "JobState",
    "JobStore",
    "JobStoreError",
    "PageError",
    "SqliteJobStore",
    "SUCCEEDED_STATES",
    "TERMINAL_STATES",
    "TOO_MANY_ATTEMPTS",
    "Usage",
]
