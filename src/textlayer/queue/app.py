"""The Celery application: JSON only, late acks, and the delivery settings measured in RELIABILITY.md §2.2."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

log = logging.getLogger(__name__)

TIME_LIMIT_MARGIN_S = 600
"""How far Celery's soft time limit lies past the document's own wall clock (``max_document_s``).

The pipeline checks that clock between pages and ends the job FAILED(document_timeout); a page
in flight (120 s in the jail) or a converter request (300 s) may run past it. Celery's limits
are the backstop for a hung task, never the first to fire: a task killed by them leaves its job
RUNNING, to be retried until the attempt cap blames the document."""

QUEUE = "textlayer"
"""The one queue every document task goes to."""

app = Celery("textlayer", include=["textlayer.queue.tasks"])
"""The one Celery app; :func:`configure` points it at a broker before any worker or publisher uses it."""


def celery_settings(broker_url: str, *, concurrency: int = 2, max_document_s: int = 3600) -> dict[str, Any]:
    """Celery configuration: every line is there because a default lost or duplicated work when measured."""
    soft_limit_s = max_document_s + TIME_LIMIT_MARGIN_S
    return {
        "broker_url": broker_url,
        "task_acks_late": True,  # ack after the task returns...
        "task_reject_on_worker_lost": True,  # ...and requeue when a pool child is killed (else marked failed, F1)
        "worker_prefetch_multiplier": 1,  # long tasks must not hoard messages
        "worker_concurrency": concurrency,
        "task_time_limit": soft_limit_s + 60,
        "task_soft_time_limit": soft_limit_s,
        "broker_transport_options": {
            "visibility_timeout": 3 * (soft_limit_s + 60),  # backstop only: the job lease recovers crashes
            "unacked_restore_interval": 10,  # sweep unacked messages every 10 s, not ~100 s (F2)
            "unacked_restore_throttle": 1,
            "socket_timeout": 10,  # a hung Redis must not block a publish forever (F6)
            "socket_connect_timeout": 5,
            "health_check_interval": 25,
        },
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 2},
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,  # True lost 7/200 jobs on a Redis restart (F4)
        "task_ignore_result": True,  # job state lives in the job store (G7)
        "accept_content": ["json"],  # never unpickle what a broker hands us
        "task_serializer": "json",
        "result_serializer": "json",
        "worker_max_memory_per_child": 1_500_000,  # KiB, checked after each task
        "worker_max_tasks_per_child": 500,
        "worker_hijack_root_logger": False,
        "task_default_queue": QUEUE,
    }


def configure(broker_url: str, *, concurrency: int = 2, max_document_s: int = 3600) -> Celery:
    """Point the app at ``broker_url`` (``redis://``, ``rediss://`` or ``redis+socket://``).

    Pointing it at another broker drops the cached connection and producer pools, which
    Celery would otherwise keep using (publishes would go to the old broker).
    """
    previous = app.conf.broker_url
    app.conf.update(celery_settings(broker_url, concurrency=concurrency, max_document_s=max_document_s))
    if previous and previous != broker_url and app._pool is not None:
        app._pool.force_close_all()
        app._pool = None  # what Celery's own after-fork reset does
        app.amqp._producer_pool = None
    return app
