"""Prometheus metrics of the OCR server: requests by status, latency, queue depth, worker deaths by cause."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
"""Page latencies span 0.1 s (a receipt crop) to minutes (a 600-dpi poster)."""


class _DeathsCollector(Collector):
    """Reads the pool's death counter at scrape time (no bookkeeping in the pool)."""

    def __init__(self, deaths: collections.Counter[str]) -> None:
        self._deaths = deaths

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "textlayer_ocr_worker_restarts", "Jailed worker replacements by cause of death", labels=["cause"]
        )
        for cause, count in sorted(self._deaths.items()):
            family.add_metric([cause], count)
        yield family


class ServerMetrics:
    """The server's metrics in their own registry, optionally served over HTTP."""

    def __init__(self, deaths: collections.Counter[str] | None = None) -> None:
        """Create the metrics; ``deaths`` is the SandboxPool's counter by DeathCause."""
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "textlayer_ocr_requests", "RecognizePage calls by gRPC status", ["code"], registry=self.registry
        )
        self._latency = Histogram(
            "textlayer_ocr_request_seconds", "RecognizePage latency", buckets=LATENCY_BUCKETS_S, registry=self.registry
        )
        self._queue = Gauge("textlayer_ocr_queue_depth", "Pages waiting for a free worker", registry=self.registry)
        if deaths is not None:
            self.registry.register(_DeathsCollector(deaths))
        self._http: Any = None

    def observe(self, code: str, seconds: float) -> None:
        """Count one finished call."""
        self._requests.labels(code=code).inc()
        self._latency.observe(seconds)

    def set_queue_depth(self, depth: int) -> None:
        """Pages waiting right now."""
        self._queue.set(depth)

    def serve(self, host: str, port: int) -> None:
        """Expose ``/metrics`` over HTTP."""
        self._http = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        """Stop the HTTP endpoint."""
        if isinstance(self._http, tuple):
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._http = None
