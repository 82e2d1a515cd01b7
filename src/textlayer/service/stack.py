"""`textlayer up`: the whole service on one machine, started, supervised and stopped together.

Embedded Redis (unless ``REDIS_URL``), one OCR server with N jailed workers, a Celery worker, the HTTP API
(``TEXTLAYER_API_LISTEN``) and the reconciler; each logs to ``DATA_DIR/logs``. One :class:`Supervisor` restarts any
that dies. SIGTERM, SIGINT (Ctrl-C) or SIGHUP, even during start-up, stops them all (:meth:`Stack.handle_signals`).
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
from textlayer.files import private_dir
from textlayer.queue.runtime import build_pipeline, data_paths
from textlayer.service.processes import ChildProcess
from textlayer.service.redis import EmbeddedRedis, RedisConfig
from textlayer.service.supervisor import Supervisor

log = logging.getLogger(__name__)

RECONCILE_EVERY_S = 10.0
"""How often jobs stuck in QUEUED or with an expired lease are published again."""

QUEUED_GRACE_S = 60.0
"""A QUEUED job older than this has probably lost its message (broker crash before AOF fsync)."""

_START_POLL_S = 0.05
"""Pause between two looks at a starting OCR server (its socket, then its health)."""

_SIGNAL_POLL_S = 0.1
"""How often the main thread looks whether a stop signal arrived (see :meth:`Stack.wait`)."""

_THREAD_JOIN_S = 15.0
"""How long :meth:`Stack.stop` waits for the reconciling thread to finish its round."""


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
        self._reconciler: threading.Thread | None = None
        self._stop_signal: int | None = None
        self._handling_signals = False

    def handle_signals(self) -> None:
        """Make SIGTERM, SIGINT and SIGHUP stop the stack from now on, also during :meth:`start` (main thread only).

        SIGHUP too: the children run in sessions of their own, so when the terminal goes away only ``up`` hears of
        it, and stops them. The handler only records the signal: Python runs it in the main thread between two
        bytecodes, possibly while that thread holds a lock (an ``Event.set()`` there could deadlock with it).
        """

        def record(signum: int, _frame: object) -> None:
            self._stop_signal = signum

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, record)
        self._handling_signals = True

    @property
    def stop_requested(self) -> bool:
        """Whether SIGTERM, SIGINT or SIGHUP arrived since :meth:`handle_signals`."""
        return self._stop_signal is not None

    @property
    def broker_url(self) -> str:
        """The broker every component uses (set once :meth:`start` has started or found it)."""
        return self.settings.redis_url or ""

    def start(self) -> None:
        """Start Redis, the OCR server and the Celery worker; returns when the OCR server is SERVING.

        Returns early, with the stack partly started, when a stop is requested meanwhile (see
        :meth:`handle_signals`); :meth:`stop` stops what was started.
        """
        private_dir(self.settings.data_dir)
        private_dir(self.paths["logs"])
        if self.settings.redis_url:
            log.info("broker: %s (REDIS_URL)", self.settings.redis_url)
        else:
            redis = EmbeddedRedis(RedisConfig(data_dir=self.paths["redis"]))
            redis.start()
            self._redis = redis
            self._supervisor.watch(redis, "redis-server")
            self.settings = dataclasses.replace(self.settings, redis_url=redis.celery_url)
            log.info("broker: embedded Redis %s (append-only file in %s)", self.broker_url, self.paths["redis"])
        if self.stop_requested:
            return
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
        if self.with_api and not self.stop_requested:
            self._wait_for_api(self._children[2])
        if self.stop_requested:
            log.info("stop requested during start-up")
            return
        for child in self._children:
            self._supervisor.watch(child, child.name)
        self._reconciler = threading.Thread(target=self._reconcile, name="reconciler", daemon=True)
        self._reconciler.start()
        log.info("textlayer is up: data in %s, logs in %s", self.settings.data_dir, self.paths["logs"])

    def _wait_for_ocr_server(self, timeout_s: float = 300) -> None:
        """Return once the OCR server reports SERVING; fail as soon as it exits.

        The socket appears only once the server's workers are warm, so its absence is polled cheaply and a
        channel is opened only when it is there: a channel opened earlier backs off between its failed
        connection attempts (1 s, 1.6 s, 2.6 s...) and notices the server seconds late.
        """
        from textlayer.worker.client import OcrClient

        ocr = self._children[0]
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0 and not self.stop_requested:
            if ocr.exit_cause() is not None:
                raise TextlayerError(f"the OCR server exited during start-up; see {ocr.log_path}")
            if self.settings.ocr_socket.exists():  # or a stale one: this fresh channel fails, the next retries
                with OcrClient(self.settings.ocr_target()) as client:
                    try:
                        client.wait_until_ready(min(2.0, remaining))
                        return
                    except OcrUnavailable:
                        pass
            time.sleep(_START_POLL_S)
        if not self.stop_requested:
            raise TextlayerError(f"the OCR server did not start within {timeout_s:.0f} s; see {ocr.log_path}")

    @property
    def api_url(self) -> str:
        """Where the HTTP API answers."""
        host, _, port = self.settings.api_listen.rpartition(":")
        return f"http://{host}:{port}"

    def _wait_for_api(self, api: ChildProcess, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stop_requested:
            if api.exit_cause() is not None:
                raise TextlayerError(f"the HTTP API exited during start-up; see {api.log_path}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/healthz", timeout=2):  # noqa: S310 (our own address)
                    return
            except OSError:
                time.sleep(_START_POLL_S)
        if not self.stop_requested:
            raise TextlayerError(f"the HTTP API did not start within {timeout_s:.0f} s; see {api.log_path}")

    def _reconcile(self) -> None:
        from textlayer.queue.app import configure
        from textlayer.queue.broker import queue_depth
        from textlayer.queue.reconciler import Reconciler
        from textlayer.queue.tasks import publish

        configure(self.broker_url)
        reconciler = Reconciler(
            build_pipeline(self.settings),
            publish,
            period_s=RECONCILE_EVERY_S,
            queued_grace_s=QUEUED_GRACE_S,
            queue_depth=queue_depth,
        )
        reconciler.run(self._stopping)

    def wait(self) -> None:
        """Block until SIGTERM, SIGINT or SIGHUP (main thread only; calls :meth:`handle_signals` if need be).

        A timed sleep, not ``Event.wait()``: the kernel may hand a signal to any thread (gRPC's, the
        supervisor's), and a main thread blocked on a lock without a timeout never gets back to the
        interpreter to run the handler (``up`` ignored the SIGTERM and hung).
        """
        if not self._handling_signals:
            self.handle_signals()
        while not self.stop_requested:
            time.sleep(_SIGNAL_POLL_S)

    def stop(self) -> None:
        """Warm shutdown: the worker finishes its tasks, the OCR server drains, then Redis stops."""
        self._stopping.set()
        self._supervisor.stop()  # first: once it is gone it cannot restart a child that stop() already passed
        for child in reversed(self._children):
            child.terminate()
        for child in reversed(self._children):
            child.stop(timeout_s=90)
        if self._reconciler is not None:  # a round in progress publishes to Redis: let it end first
            self._reconciler.join(_THREAD_JOIN_S)
            if self._reconciler.is_alive():
                log.warning("reconciler still busy after %.0f s; stopping without it", _THREAD_JOIN_S)
        if self._redis is not None:
            self._redis.stop()
            log.info("embedded Redis stopped")
