"""Prometheus metrics of the API: requests by route and status, upload bytes, jobs by state, queue depth, webhooks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What /metrics answers with (the Prometheus text format)."""


class _StoreCollector(Collector):
    """Reads the shared stores at scrape time, so every API process reports the same totals."""

    def __init__(
        self,
        job_counts: Callable[[], dict[Any, int]],
        delivery_counts: Callable[[], dict[str, int]],
        queue_depth: Callable[[], int | None],
    ) -> None:
        self._job_counts = job_counts
        self._delivery_counts = delivery_counts
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("textlayer_jobs", "Jobs by state (the terminal ones are final)", labels=["state"])
        for state, count in self._job_counts().items():
            jobs.add_metric([str(state)], count)
        yield jobs
        deliveries = GaugeMetricFamily("textlayer_webhook_deliveries", "Webhook deliveries by state", labels=["state"])
        for state, count in self._delivery_counts().items():
            deliveries.add_metric([state], count)
        yield deliveries
        depth = self._queue_depth()
        if depth is not None:
            yield GaugeMetricFamily("textlayer_queue_depth", "Messages waiting in the work queue", value=depth)


class ApiMetrics:
    """The API process's metrics, in a registry of their own."""

    def __init__(self) -> None:
        """Create the metrics (no I/O)."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "textlayer_api_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "textlayer_api_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.upload_bytes = Counter("textlayer_api_upload_bytes", "Bytes received in uploads", registry=self.registry)
        self.uploads = Counter(
            "textlayer_api_uploads",
            "Uploads by outcome (accepted, duplicate, refused, disconnected, timeout)",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "textlayer_webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, retry, failed, refused)",
            ["outcome"],
            registry=self.registry,
        )

    def watch_stores(
        self,
        job_counts: Callable[[], dict[Any, int]],
        delivery_counts: Callable[[], dict[str, int]],
        queue_depth: Callable[[], int | None],
    ) -> None:
        """Report jobs by state, deliveries by state and the queue depth, read at scrape time."""
        self.registry.register(_StoreCollector(job_counts, delivery_counts, queue_depth))

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (never the raw path: ids would explode the label set)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        """Wrap ``app``."""
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and count it with its status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
