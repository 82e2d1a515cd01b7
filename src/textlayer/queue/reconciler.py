"""The reconciler: publishes again the jobs whose message was lost or whose worker died.

The job store is the outbox: a job QUEUED for too long (its message lost with a broker crash)
or RUNNING with an expired lease (its worker died) is published again. Publishing twice is
harmless (only one claim can hold a job's lease), but publishing every round is a flood: a
back-office batch of 1,000 documents waiting an hour behind each other would become ~360,000
messages. So a QUEUED job is not published again while the queue still holds messages (its own
is most likely among them), and each job is published again with exponential backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from textlayer.queue.pipeline import Pipeline
from textlayer.store import JobState

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 600.0
"""Longest wait between two publishes of one stuck job."""


class Reconciler:
    """Re-publishes stuck jobs every ``period_s`` seconds (one instance per stack)."""

    def __init__(
        self,
        pipeline: Pipeline,
        publish: Callable[[str], None],
        *,
        period_s: float,
        queued_grace_s: float,
        queue_depth: Callable[[], int | None] = lambda: 0,
    ) -> None:
        """Watch ``pipeline``'s job store; ``publish`` queues a job id, ``queue_depth`` counts waiting messages."""
        self._pipeline = pipeline
        self._publish = publish
        self._queue_depth = queue_depth
        self.period_s = period_s
        self.queued_grace_s = queued_grace_s
        self._published: dict[str, tuple[float, int]] = {}
        """Job id -> (when it was last published again, how many times)."""

    def once(self, now: float | None = None) -> list[str]:
        """One round; returns the jobs published again."""
        now = time.monotonic() if now is None else now
        stuck = self._pipeline.jobs.stuck(queued_older_than_s=self.queued_grace_s)
        backlog = self._queue_depth() or 0  # unknown (no broker): publishing fails anyway, and is retried
        published = []
        for job in stuck:
            if job.state == JobState.QUEUED and backlog > 0:
                continue  # its message is most likely still waiting behind the others
            last, count = self._published.get(job.id, (None, 0))
            if last is not None and now - last < min(self.period_s * 2**count, MAX_BACKOFF_S):
                continue
            log.info("reconciler: publishing stuck job %s again (%s)", job.id, job.state.value)
            self._publish(job.id)
            self._published[job.id] = (now, count + 1)
            published.append(job.id)
        still_stuck = {job.id for job in stuck}
        self._published = {job_id: seen for job_id, seen in self._published.items() if job_id in still_stuck}
        return published

    def run(self, stop: threading.Event) -> None:
        """Rounds until ``stop`` is set; a failing round (broker restarting) is retried next period."""
        while not stop.wait(self.period_s):
            try:
                self.once()
            except Exception as exc:
                log.warning("reconciler: %s", exc)
