"""The broker as the API and the reconciler see it: is it there, and how many messages wait in the work queue."""

from __future__ import annotations

import logging

from textlayer.queue.app import QUEUE, app

log = logging.getLogger(__name__)


def broker_ping(timeout_s: float = 2.0) -> bool:
    """Whether the configured broker accepts a connection within ``timeout_s``."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
            conn.default_channel.client.ping()
    except Exception as exc:  # any failure means "not ready"; the message says which
        log.info("broker ping failed: %s", exc)
        return False
    return True


def queue_depth() -> int | None:
    """Messages waiting in the work queue (not yet taken by a worker), or None when the broker cannot say."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2.0)
            try:
                return int(conn.default_channel.queue_declare(queue=QUEUE, passive=True).message_count)
            except conn.channel_errors:  # Redis drops an empty list: an empty queue "does not exist"
                return 0
    except Exception as exc:  # no broker
        log.debug("queue depth unknown: %s", exc)
        return None
