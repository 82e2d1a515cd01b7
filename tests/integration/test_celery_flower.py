"""Celery as its users know it: `celery -A textlayer.queue worker`, task events in Flower, `textlayer get` in the
result shapes, and `textlayer ingest --watch` as a consume folder.

One private Redis, one OCR server, one worker started by Celery's own command, and Flower, for the module.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jsonschema
import pikepdf
import pytest
import xmlschema

from tests.integration.test_sandbox import LAYERS
from tests.redis_server import free_tcp_port, private_redis
from tests.small_pages import pdf_of, png, share_found, small_receipt, words
from textlayer.store import SqliteJobStore
from textlayer.worker.client import OcrClient

pytestmark = [pytest.mark.redis, pytest.mark.onnx, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ALTO_DIR = ROOT / "tests" / "resources" / "alto"
TERMINAL = {"SUCCEEDED", "SUCCEEDED_WITH_ERRORS", "FAILED"}


def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        self.redis = private_redis(root)
        self.flower_port = free_tcp_port()
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis.celery_url,
            "TEXTLAYER_DATA_DIR": str(self.data_dir),
            "TEXTLAYER_OCR_SERVERS": f"unix:{self.data_dir / 'ocr.sock'}",
            "TEXTLAYER_SANDBOX_LAYERS": LAYERS,
            "TEXTLAYER_WORKER_CONCURRENCY": "1",
            "TEXTLAYER_OUTPUT_TYPE": "pdfa",
            "FLOWER_UNAUTHENTICATED_API": "true",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ocr_server = self.spawn(
            "ocr-server", [str(BIN / "textlayer"), "ocr-server", "--listen", self.env["TEXTLAYER_OCR_SERVERS"]]
        )
        # Celery's own commands, with nothing but the app's name: the app configures itself from the settings.
        self.flower = self.spawn(
            "flower",
            [
                str(BIN / "celery"),
                "-A",
                "textlayer.queue",
                "flower",
                f"--port={self.flower_port}",
                "--address=127.0.0.1",
            ],
        )
        self.worker = self.spawn("worker", [str(BIN / "celery"), "-A", "textlayer.queue", "worker", "--loglevel=INFO"])
        self.events = self.spawn("events", [str(BIN / "celery"), "-A", "textlayer.queue", "events", "--dump"])
        with OcrClient(self.env["TEXTLAYER_OCR_SERVERS"]) as client:
            client.wait_until_ready(180)
        _wait_for(lambda: self.flower_api("workers?refresh=1"), 60, "Flower to see the worker")
        self.jobs = SqliteJobStore(self.data_dir / "jobs.db")

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, cwd=self.root)
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def flower_api(self, path: str):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.flower_port}/api/{path}", timeout=5) as reply:
                return json.loads(reply.read())
        except OSError:
            return None

    def textlayer(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "textlayer"), *args],
            env=self.env,
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.redis.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("celery"))
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def finished_job(stack):
    (stack.root / "small.png").write_bytes(png(small_receipt()))
    result = stack.textlayer("submit", "small.png", "--wait")
    assert result.returncode == 0, result.stderr + stack.log("worker")
    return result.stdout.split()[0]


def test_celery_worker_command_runs_like_textlayer_worker(stack, finished_job):
    job = stack.jobs.get(finished_job)
    assert job.state == "SUCCEEDED"
    queues = subprocess.run(
        [str(BIN / "celery"), "-A", "textlayer.queue", "inspect", "active_queues", "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert queues.returncode == 0, queues.stderr
    (worker_queues,) = json.loads(queues.stdout).values()
    assert [q["name"] for q in worker_queues] == ["textlayer"]  # the queue from the app's configuration
    stats = subprocess.run(
        [str(BIN / "celery"), "-A", "textlayer.queue", "inspect", "stats", "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (worker_stats,) = json.loads(stats.stdout).values()
    assert worker_stats["pool"]["max-concurrency"] == 1  # TEXTLAYER_WORKER_CONCURRENCY


def test_flower_shows_the_task(stack, finished_job):
    def succeeded():
        tasks = stack.flower_api("tasks") or {}
        return [
            t
            for t in tasks.values()
            if t.get("name") == "textlayer.process"
            and finished_job in str(t.get("args"))
            and t.get("state") == "SUCCESS"
        ]

    (task,) = _wait_for(succeeded, 30, "Flower to report the task") or [None]
    assert task["received"] and task["started"] and task["succeeded"]  # the worker sends task events


def test_celery_events_sees_the_task(stack, finished_job):
    def dumped() -> str:
        return (stack.root / "events.log").read_text(errors="replace")

    _wait_for(lambda: f"task succeeded: textlayer.process({finished_job}-" in dumped(), 30, "the events dump")
    for event in ("task sent", "task received", "task started"):  # the publisher sends "sent" too
        assert f"{event}: textlayer.process({finished_job}-" in dumped()


def test_the_service_writes_pdfa_when_the_setting_says(stack, finished_job):
    result = stack.textlayer("get", finished_job, "-o", "service.pdf")
    assert result.returncode == 0, result.stderr
    with pikepdf.open(stack.root / "service.pdf") as pdf, pdf.open_metadata() as xmp:
        assert xmp.get("pdfaid:part") == "2" and xmp.get("pdfaid:conformance") == "B"
        assert pdf.Root.OutputIntents[0].S == "/GTS_PDFA1"


def test_get_json_and_alto_in_the_documented_shapes(stack, finished_job):
    result = stack.textlayer("get", finished_job, "--json", "-o", "result.json")
    assert result.returncode == 0, result.stderr
    document = json.loads((stack.root / "result.json").read_text())
    jsonschema.validate(document, json.loads((ROOT / "schemas" / "result.schema.json").read_text()))
    assert document["document"] == {"filename": "small.png", "job": finished_job, "pages": 1}
    found = [w["text"] for line in document["pages"][0]["page"]["lines"] for w in line["words"]]
    assert share_found(words(small_receipt().text), found) >= 0.8

    result = stack.textlayer("get", finished_job, "--alto", "-o", "result.xml")
    assert result.returncode == 0, result.stderr
    schema = xmlschema.XMLSchema(
        str(ALTO_DIR / "alto-4-4.xsd"),
        locations=[("http://www.w3.org/1999/xlink", str(ALTO_DIR / "xlink.xsd"))],
        use_location_hints=False,
    )
    schema.validate(str(stack.root / "result.xml"))
    assert "<fileName>small.png</fileName>" in (stack.root / "result.xml").read_text()

    result = stack.textlayer("get", finished_job, "--hocr", "-o", "result.hocr")
    assert result.returncode == 0, result.stderr
    check = subprocess.run(
        [str(BIN / "hocr-spec"), "--parse-strict", str(stack.root / "result.hocr")], capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_ingest_watch_is_a_consume_folder(stack):
    inbox = stack.root / "inbox"
    inbox.mkdir()
    scan = pdf_of(small_receipt())  # a page to OCR
    tenant_jobs = lambda: [j for j in stack.jobs.list("default", limit=1000) if j.filename != "small.png"]  # noqa: E731

    watcher = subprocess.Popen(
        [str(BIN / "textlayer"), "ingest", str(inbox), "--watch", "--settle-s", "1.5"],
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Half a file, then the rest 0.7 s later: only the whole file is ever submitted.
        with (inbox / "scan.pdf").open("wb") as half:
            half.write(scan[: len(scan) // 2])
            half.flush()
            time.sleep(0.7)
            half.write(scan[len(scan) // 2 :])
        (inbox / "notes.txt").write_text("not a document")
        _wait_for(lambda: len(tenant_jobs()) == 2, 30, "both files to be submitted")
    finally:
        watcher.send_signal(signal.SIGINT)  # a restart...
        assert watcher.wait(timeout=30) == 130
    restarted = subprocess.Popen(
        [str(BIN / "textlayer"), "ingest", str(inbox), "--watch", "--settle-s", "0.5"],
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(
            lambda: (inbox / "done" / "scan.pdf").exists() and (inbox / "failed" / "notes.txt").exists(),
            120,
            "the files to be moved",
        )
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.wait(timeout=30)
    jobs = tenant_jobs()
    assert sorted(j.filename for j in jobs) == ["notes.txt", "scan.pdf"]  # ...submits nothing twice
    (job,) = [j for j in jobs if j.filename == "scan.pdf"]
    assert job.sha256 == hashlib.sha256(scan).hexdigest() and job.state == "SUCCEEDED"
    assert (inbox / "failed" / "notes.txt.reason.txt").read_text().startswith("unsupported_type: ")
    assert sorted(p.name for p in inbox.iterdir()) == ["done", "failed"]
