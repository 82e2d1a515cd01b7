"""The reconciler: publishes again the jobs whose message was lost or whose worker died.

The job store is the outbox: a job QUEUED for too long (its message lost with a broker crash)
or RUNNING with an expired lease (its worker died) is published again. Publishing twice is
harmless: only one claim can hold a job's lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from textlayer.queue.pipeline import Pipeline

log = logging.getLogger(__name__)


class Reconciler:
    """Re-publishes stuck jobs every ``period_s`` seconds (one instance per stack)."""

    def __init__(
        self, pipeline: Pipeline, publish: Callable[[str], None], *, period_s: float, queued_grace_s: float
    ) -> None:
        """Watch ``pipeline``'s job store; ``publish`` queues a job id."""
        self._pipeline = pipeline
        self._publish = publish
        self.period_s = period_s
        self.queued_grace_s = queued_grace_s

    def once(self) -> list[str]:
        """One round; returns the jobs published again."""
        stuck = self._pipeline.stuck_jobs(queued_older_than_s=self.queued_grace_s)
        for job_id in stuck:
            log.info("reconciler: publishing stuck job %s again", job_id)
            self._publish(job_id)
        return stuck

    def run(self, stop: threading.Event) -> None:
        """Rounds until ``stop`` is set; a failing round (broker restarting) is retried next period."""
        while not stop.wait(self.period_s):
            try:
                self.once()
            except Exception as exc:
                log.warning("reconciler: %s", exc)
