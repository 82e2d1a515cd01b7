"""`textlayer up`: the whole service on one machine, started, supervised and stopped together.

Embedded Redis (unless ``REDIS_URL``), one OCR server with N jailed workers, a Celery worker and
the reconciler; each logs to ``DATA_DIR/logs``. A child that dies is restarted with backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from textlayer.config import Settings
from textlayer.errors import TextlayerError
from textlayer.queue.runtime import build_pipeline, data_paths

log = logging.getLogger(__name__)

RECONCILE_EVERY_S = 10.0
"""How often jobs stuck in QUEUED or with an expired lease are published again."""

QUEUED_GRACE_S = 60.0
"""A QUEUED job older than this has probably lost its message (broker crash before AOF fsync)."""


@dataclass
class _Child:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    restarts: int = 0


class Stack:
    """Start, watch and stop every component of the service on this machine."""

    def __init__(self, settings: Settings, *, ocr_workers: int = 1, celery_concurrency: int = 2) -> None:
        """Describe the stack; :meth:`start` starts it."""
        self.settings = settings
        self.paths = data_paths(settings.data_dir)
        self.ocr_workers = ocr_workers
        self.celery_concurrency = celery_concurrency
        self.broker_url = ""
        self._redis: object | None = None
        self._children: list[_Child] = []
        self._stopping = threading.Event()

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TEXTLAYER_DATA_DIR": str(self.settings.data_dir),
            "REDIS_URL": self.broker_url,
            "TEXTLAYER_OCR_SERVERS": f"unix:{self.paths['ocr_socket']}",
        }

    def start(self) -> None:
        """Start Redis, the OCR server and the Celery worker; returns when the OCR server is SERVING."""
        self.paths["logs"].mkdir(parents=True, exist_ok=True)
        if os.environ.get("REDIS_URL"):
            self.broker_url = os.environ["REDIS_URL"]
            log.info("broker: %s (REDIS_URL)", self.broker_url)
        else:
            from textlayer.queue.broker import EmbeddedRedis, RedisConfig

            redis = EmbeddedRedis(RedisConfig(data_dir=self.paths["redis"]))
            redis.start()
            redis.supervise()
            self._redis = redis
            self.broker_url = redis.celery_url
            log.info("broker: embedded Redis %s (append-only file in %s)", self.broker_url, self.paths["redis"])
        python = [sys.executable, "-m", "textlayer"]
        self._children = [
            _Child(
                "ocr-server",
                [*python, "ocr-server", "--listen", f"unix:{self.paths['ocr_socket']}"]
                + ["--workers", str(self.ocr_workers)],
                self.paths["logs"] / "ocr-server.log",
            ),
            _Child(
                "worker",
                [*python, "worker", "--concurrency", str(self.celery_concurrency)],
                self.paths["logs"] / "worker.log",
            ),
        ]
        for child in self._children:
            self._spawn(child)
        self._wait_for_ocr_server()
        threading.Thread(target=self._watch, name="stack-watch", daemon=True).start()
        threading.Thread(target=self._reconcile, name="reconciler", daemon=True).start()
        log.info("textlayer is up: data in %s, logs in %s", self.settings.data_dir, self.paths["logs"])

    def _spawn(self, child: _Child) -> None:
        if child.log_file is None:
            child.log_file = child.log_path.open("ab")
        child.process = subprocess.Popen(
            child.command, env=self._env(), stdin=subprocess.DEVNULL, stdout=child.log_file, stderr=child.log_file
        )
        log.info("%s started (pid %d), log %s", child.name, child.process.pid, child.log_path)

    def _wait_for_ocr_server(self, timeout_s: float = 300) -> None:
        from textlayer.worker.client import OcrClient

        ocr = self._children[0]
        deadline = time.monotonic() + timeout_s
        with OcrClient(f"unix:{self.paths['ocr_socket']}") as client:
            while time.monotonic() < deadline:
                assert ocr.process is not None
                if ocr.process.poll() is not None:
                    raise TextlayerError(f"the OCR server exited during start-up; see {ocr.log_path}")
                try:
                    client.wait_until_ready(2)
                    return
                except TextlayerError:
                    time.sleep(0.5)
        raise TextlayerError(f"the OCR server did not start within {timeout_s:.0f} s; see {ocr.log_path}")

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for child in self._children:
                if child.process is not None and child.process.poll() is not None and not self._stopping.is_set():
                    child.restarts += 1
                    delay_s = min(2.0**child.restarts, 30.0)
                    log.error(
                        "%s exited with %s; restarting in %.0f s (see %s)",
                        child.name,
                        child.process.returncode,
                        delay_s,
                        child.log_path,
                    )
                    if self._stopping.wait(delay_s):
                        return
                    self._spawn(child)

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
        for child in reversed(self._children):
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in reversed(self._children):
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 90 s; killing it", child.name)
                child.process.kill()
                child.process.wait()
            if child.log_file is not None:
                child.log_file.close()
            log.info("%s stopped", child.name)
        if self._redis is not None:
            self._redis.stop()  # type: ignore[attr-defined]
            log.info("embedded Redis stopped")
