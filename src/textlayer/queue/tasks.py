"""Thin Celery tasks: ids in, nothing out; the recipe is pipeline.py."""

from __future__ import annotations

import logging
import os

from textlayer.queue.app import app
from textlayer.queue.pipeline import Pipeline
from textlayer.queue.runtime import pipeline_for_this_process

log = logging.getLogger(__name__)


@app.task(name="textlayer.process", acks_late=True, reject_on_worker_lost=True, ignore_result=True)  # type: ignore[untyped-decorator]
def process(job_id: str) -> None:
    """Run job ``job_id`` (runs in a Celery pool child; idempotent, guarded by the job's lease)."""
    pipeline: Pipeline = pipeline_for_this_process()
    log.info("process %s in pid %d", job_id, os.getpid())
    pipeline.process(job_id)


def publish(job_id: str) -> None:
    """Queue job ``job_id`` (the message carries the id only; task id = job id for tracing)."""
    process.apply_async((job_id,), task_id=f"{job_id}-{os.urandom(4).hex()}")
