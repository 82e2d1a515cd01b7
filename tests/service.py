"""A running textlayer stack for integration tests: private Redis, an OCR server, a Celery worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.integration.test_sandbox import LAYERS
from tests.redis_server import private_redis
from textlayer.config import Settings
from textlayer.queue.reconciler import Reconciler
from textlayer.queue.runtime import build_pipeline
from textlayer.worker.client import OcrClient

LEASE_S = 6
TERMINAL = {"SUCCEEDED", "SUCCEEDED_WITH_ERRORS", "FAILED"}


class Service:
    """Redis + OCR server + Celery worker as separate processes over one data directory."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        self.logs = root / "logs"
        self.logs.mkdir()
        self.redis = private_redis(root / "redis")
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis.celery_url,
            "TEXTLAYER_DATA_DIR": str(self.data_dir),
            "TEXTLAYER_OCR_SERVERS": f"unix:{self.data_dir / 'ocr.sock'}",
            "TEXTLAYER_JOB_LEASE_S": str(LEASE_S),
            "TEXTLAYER_SANDBOX_LAYERS": LAYERS,
            "TEXTLAYER_TEST_HOOKS": "1",
            "TEXTLAYER_TEST_CRASH_ON_FILENAME": "poison.png",
        }
        self.ocr_server = self._spawn("ocr-server", "ocr-server", "--listen", self.env["TEXTLAYER_OCR_SERVERS"])
        with OcrClient(self.env["TEXTLAYER_OCR_SERVERS"]) as client:
            client.wait_until_ready(180)
        self.worker = self.start_worker()
        settings = Settings(data_dir=self.data_dir, job_lease_s=LEASE_S)
        from textlayer.queue.app import configure
        from textlayer.queue.broker import queue_depth
        from textlayer.queue.tasks import publish

        configure(self.redis.celery_url)
        self.publish = publish
        self.pipeline = build_pipeline(settings)
        self._stop = threading.Event()
        reconciler = Reconciler(self.pipeline, publish, period_s=1.0, queued_grace_s=30.0, queue_depth=queue_depth)
        self._reconciler = threading.Thread(target=reconciler.run, args=(self._stop,), daemon=True)
        self._reconciler.start()

    def _spawn(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        command = [sys.executable, "-m", "textlayer", *args]
        process = subprocess.Popen(command, env={**self.env, **env}, stdout=log, stderr=log)
        log.close()
        return process

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        """A Celery worker with the service's environment, plus ``env``."""
        return self._spawn("worker", "worker", "--concurrency", "2", **env)

    def replace_worker(self, **env: str) -> None:
        """Stop the worker (warm shutdown) and start another with ``env`` on top of the service's environment."""
        self.worker.send_signal(signal.SIGTERM)
        self.worker.wait(timeout=60)
        self.worker = self.start_worker(**env)

    def submit(self, name: str, data: bytes) -> str:
        return self.pipeline.submit("default", data, filename=name, publish=self.publish)

    def wait(self, job_ids: list[str], timeout_s: float = 240) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            jobs = {job_id: self.pipeline.jobs.get(job_id) for job_id in job_ids}
            if all(job.state in TERMINAL for job in jobs.values()):
                return jobs
            time.sleep(0.3)
        raise AssertionError(f"jobs not finished: {jobs}; worker log: {(self.logs / 'worker.log').read_text()[-3000:]}")

    def worker_children(self) -> list[int]:
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.worker.pid:
                children.append(int(stat.parent.name))
        return children

    def close(self) -> None:
        self._stop.set()
        for process in (self.worker, self.ocr_server):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.worker, self.ocr_server):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.redis.stop()
