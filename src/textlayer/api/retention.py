"""Deleting a document (blobs, index rows, job row, deliveries) and the periodic sweep that enforces retention."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from textlayer.api.context import ApiContext
from textlayer.errors import TextlayerError
from textlayer.store import Job

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 600.0
"""How often the sweep runs."""

DAY_S = 86400.0


def delete_document(context: ApiContext, tenant: str, job_id: str) -> Job:
    """Delete the tenant's job and everything it stored.

    The row goes first (from then on the job is 404 and no worker can claim it), then its blobs, index rows and
    webhook deliveries.

    Raises:
        JobNotFound: No such job, or another tenant's.
        JobRunning: A worker is processing it now.
    """
    job = context.jobs.delete(job_id, tenant)
    context.blobs.delete_job(tenant, job_id)
    context.index.delete_document(tenant, job_id)
    context.deliveries.cancel_job(job_id)
    return job


def sweep_expired(context: ApiContext, *, now: float | None = None) -> int:
    """Delete every finished job older than ``TEXTLAYER_RETENTION_DAYS`` (none when unset); returns how many."""
    days = context.settings.retention_days
    if days is None:
        return 0
    before = (time.time() if now is None else now) - days * DAY_S
    deleted = 0
    while batch := context.jobs.ended_before(before, limit=100):
        for job in batch:
            try:
                delete_document(context, job.tenant, job.id)
                deleted += 1
            except TextlayerError as exc:  # deleted meanwhile, or a store busy now: the next sweep sees it
                log.warning("retention: job %s not deleted: %s", job.id, exc)
                return deleted
    if deleted:
        log.info("retention: deleted %d jobs that ended more than %d days ago", deleted, days)
    return deleted


def sweep_stale_uploads(folder: Path, *, older_than_s: float, now: float | None = None) -> int:
    """Remove uploads being received that nothing has written to for ``older_than_s`` (a process died mid-upload)."""
    at = time.time() if now is None else now
    removed = 0
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.name.endswith(".part") and at - entry.stat().st_mtime > older_than_s:
                entry.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


class Sweeper:
    """Runs both sweeps every :data:`SWEEP_EVERY_S` seconds in a daemon thread."""

    def __init__(self, context: ApiContext, *, every_s: float = SWEEP_EVERY_S) -> None:
        """Describe the sweeper; :meth:`start` runs it."""
        self.context = context
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Sweep now, then every ``every_s`` seconds."""
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sweeping."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            try:
                sweep_expired(self.context)
                sweep_stale_uploads(self.context.uploads_dir, older_than_s=10.0 * self.context.settings.upload_idle_s)
            except Exception:  # the next round tries again
                log.exception("retention sweep failed")
            if self._stop.wait(self.every_s):
                return
