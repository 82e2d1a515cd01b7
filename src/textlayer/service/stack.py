"""`textlayer up`: the whole service on one machine, started, supervised and stopped together.

Embedded Redis (unless ``REDIS_URL``), one OCR server with N jailed workers, a Celery worker, the HTTP API
(``TEXTLAYER_API_LISTEN``) and the reconciler; each logs to ``DATA_DIR/logs``. One :class:`Supervisor` restarts any
that dies.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import urllib.request

from textlayer.config import Settings
from textlayer.errors import OcrUnavailable, TextlayerError
from textlayer.queue.runtime import build_pipeline, data_paths
from textlayer.service.processes import ChildProcess
from textlayer.service.redis import EmbeddedRedis, RedisConfig
from textlayer.service.supervisor import Supervisor

log = logging.getLogger(__name__)

RECONCILE_EVERY_S = 10.0
"""How often jobs stuck in QUEUED or with an expired lease are published again."""

QUEUED_GRACE_S = 60.0
"""A QUEUED job older than this has probably lost its message (broker crash before AOF fsync)."""


class Stack:
    """Start, watch and stop every component of the service on this machine."""

    def __init__(
        self, settings: Settings, *, ocr_workers: int = 1, celery_concurrency: int = 2, with_api: bool = True
    ) -> None:
        """Describe the stack (``with_api``: serve the HTTP API too); :meth:`start` starts it."""
        self.settings = settings
        self.paths = data_paths(settings.data_dir)
        self.ocr_workers = ocr_workers
        self.celery_concurrency = celery_concurrency
        self.with_api = with_api
        self._redis: EmbeddedRedis | None = None
        self._children: list[ChildProcess] = []
        self._supervisor = Supervisor()
        self._stopping = threading.Event()

    @property
    def broker_url(self) -> str:
        """The broker every component uses (set once :meth:`start` has started or found it)."""
        return self.settings.redis_url or ""

    def start(self) -> None:
        """Start Redis, the OCR server and the Celery worker; returns when the OCR server is SERVING."""
        self.paths["logs"].mkdir(parents=True, exist_ok=True)
        if self.settings.redis_url:
            log.info("broker: %s (REDIS_URL)", self.settings.redis_url)
        else:
            redis = EmbeddedRedis(RedisConfig(data_dir=self.paths["redis"]))
            redis.start()
            self._redis = redis
            self._supervisor.watch(redis, "redis-server")
            self.settings = dataclasses.replace(self.settings, redis_url=redis.celery_url)
            log.info("broker: embedded Redis %s (append-only file in %s)", self.broker_url, self.paths["redis"])
        self.settings = dataclasses.replace(self.settings, ocr_servers=f"unix:{self.paths['ocr_socket']}")
        env = {**os.environ, **self.settings.to_env()}
        python = [sys.executable, "-m", "textlayer"]
        self._children = [
            ChildProcess(
                "ocr-server",
                [*python, "ocr-server", "--listen", self.settings.ocr_target(), "--workers", str(self.ocr_workers)],
                env,
                self.paths["logs"] / "ocr-server.log",
            ),
            ChildProcess(
                "worker",
                [*python, "worker", "--concurrency", str(self.celery_concurrency)],
                env,
                self.paths["logs"] / "worker.log",
            ),
        ]
        if self.with_api:
            api = [*python, "api", "--listen", self.settings.api_listen]
            self._children.append(ChildProcess("api", api, env, self.paths["logs"] / "api.log"))
        for child in self._children:
            child.start()
        self._wait_for_ocr_server()
        if self.with_api:
            self._wait_for_api(self._children[2])
        for child in self._children:
            self._supervisor.watch(child, child.name)
        threading.Thread(target=self._reconcile, name="reconciler", daemon=True).start()
        log.info("textlayer is up: data in %s, logs in %s", self.settings.data_dir, self.paths["logs"])

    def _wait_for_ocr_server(self, timeout_s: float = 300) -> None:
        from textlayer.worker.client import OcrClient

        ocr = self._children[0]
        deadline = time.monotonic() + timeout_s
        with OcrClient(self.settings.ocr_target()) as client:
            while time.monotonic() < deadline:
                if ocr.exit_cause() is not None:
                    raise TextlayerError(f"the OCR server exited during start-up; see {ocr.log_path}")
                try:
                    client.wait_until_ready(2)
                    return
                except OcrUnavailable:
                    time.sleep(0.5)
        raise TextlayerError(f"the OCR server did not start within {timeout_s:.0f} s; see {ocr.log_path}")

    @property
    def api_url(self) -> str:
        """Where the HTTP API answers."""
        host, _, port = self.settings.api_listen.rpartition(":")
        return f"http://{host}:{port}"

    def _wait_for_api(self, api: ChildProcess, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if api.exit_cause() is not None:
                raise TextlayerError(f"the HTTP API exited during start-up; see {api.log_path}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/healthz", timeout=2):  # noqa: S310 (our own address)
                    return
            except OSError:
                time.sleep(0.2)
        raise TextlayerError(f"the HTTP API did not start within {timeout_s:.0f} s; see {api.log_path}")

    def _reconcile(self) -> None:
        from textlayer.queue.app import configure
        from textlayer.queue.reconciler import Reconciler
        from textlayer.queue.tasks import publish

        configure(self.broker_url)
        reconciler = Reconciler(
            build_pipeline(self.settings), publish, period_s=RECONCILE_EVERY_S, queued_grace_s=QUEUED_GRACE_S
        )
        reconciler.run(self._stopping)

    def wait(self) -> None:
        """Block until SIGTERM or SIGINT."""
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()

    def stop(self) -> None:
        """Warm shutdown: the worker finishes its tasks, the OCR server drains, then Redis stops."""
        self._stopping.set()
        self._supervisor.stop()
        for child in reversed(self._children):
            child.terminate()
        for child in reversed(self._children):
            child.stop(timeout_s=90)
        if self._redis is not None:
            self._redis.stop()
            log.info("embedded Redis stopped")
