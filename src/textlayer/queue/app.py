"""The Celery application: JSON only, late acks, and the delivery settings measured in RELIABILITY.md §2.2.

The app configures itself from :class:`~textlayer.config.Settings` (the ``TEXTLAYER_*`` variables and
``REDIS_URL``) when Celery first reads its configuration, so ``celery -A textlayer.queue worker`` runs exactly
like ``textlayer worker``, and ``celery -A textlayer.queue events`` / Flower see the task events it sends.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from celery import Celery

from textlayer.config import Settings

log = logging.getLogger(__name__)

TIME_LIMIT_MARGIN_S = 600
"""How far Celery's soft time limit lies past the document's own wall clock (``max_document_s``).

The pipeline checks that clock between pages and ends the job FAILED(document_timeout); a page
in flight (120 s in the jail) or a converter request (300 s) may run past it. Celery's limits
are the backstop for a hung task, never the first to fire: a task killed by them leaves its job
RUNNING, to be retried until the attempt cap blames the document."""

QUEUE = "textlayer"
"""The one queue: every task goes there and every worker consumes it."""


def default_broker_url(settings: Settings) -> str:
    """``REDIS_URL``, else the socket of the embedded Redis that ``textlayer up`` runs on the data directory.

    Does not look whether that Redis runs (a worker started first waits for it, as Celery workers do).
    """
    if settings.redis_url:
        return settings.redis_url
    return f"redis+socket://{(settings.data_dir / 'redis' / 'redis.sock').expanduser().resolve()}"


class _FromEnvironment(Mapping[str, Any]):
    """The configuration Celery reads when it first needs one: :func:`celery_settings` of ``Settings.from_env``."""

    @functools.cached_property
    def _values(self) -> dict[str, Any]:
        settings = Settings.from_env(os.environ)  # a bad value raises ValueError naming the variable
        return celery_settings(
            default_broker_url(settings),
            concurrency=settings.worker_concurrency,
            max_document_s=settings.max_document_s,
        )

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


app = Celery("textlayer", include=["textlayer.queue.tasks"])
"""The one Celery app: configured from the environment on first use; :func:`configure` points it elsewhere."""
app.config_from_object(_FromEnvironment())


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
        # Task events for `celery events` and Flower: sent, received, started, succeeded/failed, retried.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
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
