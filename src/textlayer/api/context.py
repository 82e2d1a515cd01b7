"""The collaborators every endpoint shares (stores, index, publisher, policy, metrics), opened once per process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from textlayer.api.deliveries import DeliveryStore
from textlayer.api.metrics import ApiMetrics
from textlayer.api.tenants import TenantStore
from textlayer.api.webhooks import WebhookPolicy
from textlayer.config import Settings
from textlayer.errors import TextlayerError
from textlayer.index import SearchIndex, open_index
from textlayer.queue.runtime import data_paths
from textlayer.store import BlobStore, SqliteJobStore

log = logging.getLogger(__name__)

UPLOADS_DIR = ".uploads"
"""Folder of uploads being received, inside the blob root (same file system: a finished one is renamed into
place). Its dot name is never a tenant's."""


def api_paths(data_dir: Path) -> dict[str, Path]:
    """The API's own state: tenants and tokens, webhook deliveries."""
    return {"tenants": data_dir / "tenants.db", "deliveries": data_dir / "webhooks.db"}


@dataclass
class ApiContext:
    """What the endpoints, the dispatcher and the sweeper work with."""

    settings: Settings
    jobs: SqliteJobStore
    blobs: BlobStore
    index: SearchIndex
    tenants: TenantStore
    deliveries: DeliveryStore
    policy: WebhookPolicy
    publish: Callable[[str], None]
    """Queues a job id (the Celery task); a failure leaves the job to the reconciler."""
    ready_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    """``/readyz``: name -> a check that answers within a few seconds."""
    queue_depth: Callable[[], int | None] = lambda: None
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def uploads_dir(self) -> Path:
        """Where uploads are received before they become a job's input."""
        return self.blobs.root / UPLOADS_DIR

    def close(self) -> None:
        """Close every store."""
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:  # closing must go on for the others
                log.warning("closing the API context: %s", exc)


def open_context(settings: Settings) -> ApiContext:
    """Open the stores of ``settings.data_dir`` and connect the publisher to the stack's broker.

    Raises:
        TextlayerError: No broker (no ``textlayer up`` and no ``REDIS_URL``), a store cannot be opened, or
            ``TEXTLAYER_WEBHOOK_ALLOW`` is malformed.
    """
    from textlayer.queue.app import configure
    from textlayer.queue.broker import broker_ping, queue_depth
    from textlayer.queue.runtime import broker_url
    from textlayer.queue.tasks import publish
    from textlayer.worker.client import OcrClient

    try:
        policy = WebhookPolicy.parse(settings.webhook_allow)
    except ValueError as exc:
        raise TextlayerError(f"bad setting: {exc}") from exc
    configure(broker_url(settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    paths, own = data_paths(settings.data_dir), api_paths(settings.data_dir)
    jobs = SqliteJobStore(paths["jobs"])
    index = open_index(paths["index"])
    tenants = TenantStore(own["tenants"])
    deliveries = DeliveryStore(own["deliveries"])
    ocr = OcrClient(settings.ocr_target(), token=settings.ocr_token)

    def job_store_ok() -> bool:
        jobs.list("-", limit=1)
        return True

    def index_ok() -> bool:
        index.page_count("-", "-")
        return True

    context = ApiContext(
        settings=settings,
        jobs=jobs,
        blobs=BlobStore(paths["blobs"]),
        index=index,
        tenants=tenants,
        deliveries=deliveries,
        policy=policy,
        publish=publish,
        ready_checks={"redis": broker_ping, "job_store": job_store_ok, "index": index_ok, "ocr": ocr.serving},
        queue_depth=queue_depth,
        closers=[jobs.close, index.close, tenants.close, deliveries.close, ocr.close],
    )
    context.metrics.watch_stores(jobs.state_counts, deliveries.state_counts, queue_depth)
    return context
