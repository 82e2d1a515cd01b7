"""The hostile-document corpus (design/RELIABILITY.md §4) through the real pipeline, 3 jobs at a time.

Every file must end in its expected state with its reason code, the Celery worker processes must
stay alive and never load a document parser (only jailed children parse), memory must stay under
the budget, nothing may be written outside the blob root, and ``textlayer ocr`` must refuse each bad
file with the same reason and nothing but one error line.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from tests.hostile_corpus import CorpusFile, build_corpus
from tests.integration.test_sandbox import LAYERS
from tests.service import TERMINAL, Service

pytestmark = [pytest.mark.redis, pytest.mark.sandbox, pytest.mark.onnx, pytest.mark.slow]

IN_FLIGHT = 3
CELERY_RSS_BUDGET_MIB = 1024
"""Peak resident memory allowed to any Celery worker process (the parsers' memory is in their jails)."""

PARSER_LIBRARIES = ("pdfium", "PIL/_imaging", "cv2/", "_pypdf", "reportlab", "onnxruntime")
"""Fragments of shared-object paths that must never be mapped into a Celery worker process."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[CorpusFile]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("hostile"))
    yield running
    running.close()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler:
    """Samples the RSS of the whole worker tree (Celery processes and their jails) every 50 ms."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            total = sum(_status_kib(pid, "VmRSS") for pid in _descendants(self.root))
            self.samples.append((time.monotonic(), total))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self, start: float, end: float) -> float:
        inside = [kib for at, kib in self.samples if start <= at <= end]
        return max(inside, default=0) / 1024


def _text_of(pdf: bytes) -> str:
    document = pdfium.PdfDocument(pdf)
    try:
        return " ".join(document[i].get_textpage().get_text_bounded() for i in range(len(document)))
    finally:
        document.close()


def _active_content(pdf: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"].get_object()
    found = [key for key in ("/OpenAction", "/AA") if key in root]
    names = root.get("/Names")
    if names is not None:
        found += [key for key in ("/JavaScript", "/EmbeddedFiles") if key in names.get_object()]
    for number, page in enumerate(reader.pages):
        if "/AA" in page:
            found.append(f"page {number} /AA")
        for ref in page.get("/Annots") or []:
            annotation = ref.get_object()
            action = annotation.get("/A")
            if action is not None and action.get_object().get("/S") in ("/Launch", "/JavaScript"):
                found.append(f"page {number} {action.get_object().get('/S')}")
            if annotation.get("/Subtype") == "/FileAttachment":
                found.append(f"page {number} file attachment")
    return found


def test_every_corpus_file_ends_with_its_expected_state_and_reason(service, corpus):
    celery_before = {service.worker.pid, *service.worker_children()}
    started: dict[str, tuple[CorpusFile, float]] = {}
    results: dict[str, tuple[CorpusFile, object, float, float]] = {}
    queue = list(corpus)
    with MemorySampler(service.worker.pid) as memory:
        while queue or started:
            while queue and len(started) < IN_FLIGHT:
                item = queue.pop(0)
                job_id = service.submit(item.name, item.path.read_bytes())
                started[job_id] = (item, time.monotonic())
            time.sleep(0.2)
            for job_id in list(started):
                job = service.pipeline.jobs.get(job_id)
                if job.state in TERMINAL:
                    item, began = started.pop(job_id)
                    results[job_id] = (item, job, began, time.monotonic())
                elif time.monotonic() - started[job_id][1] > 300:
                    raise AssertionError(f"{started[job_id][0].name} did not finish: {job}")
        table = [(item, job, end - begin, memory.peak_mib(begin, end)) for item, job, begin, end in results.values()]

    print("\n| # | file | expected | got | time (s) | peak RSS of the worker tree (MiB) |")
    print("|---|---|---|---|---|---|")
    for item, job, seconds, peak in sorted(table, key=lambda row: row[0].row):
        expected = "/".join(sorted(item.states)) + " " + "/".join(sorted(str(r) for r in item.reasons))
        got = f"{job.state} {job.reason}"
        print(f"| {item.row} | {item.name[:40]!r} | {expected} | {got} | {seconds:.1f} | {peak:.0f} |")

    wrong = [
        f"{item.name[:60]!r}: got {job.state} {job.reason} ({job.message}), "
        f"expected {set(item.states)} {set(item.reasons)}"
        for item, job, _, _ in table
        if job.state not in item.states or job.reason not in item.reasons
    ]
    assert not wrong, "\n".join(wrong)

    # The Celery processes are the ones that were there before: none died, none loaded a parser.
    assert service.worker.poll() is None
    celery_after = {service.worker.pid, *service.worker_children()}
    assert celery_after == celery_before
    for pid in celery_after:
        assert _status_kib(pid, "VmHWM") / 1024 < CELERY_RSS_BUDGET_MIB
    # Nor did the OCR server's supervisor: only its jailed children decode page images.
    for pid in (*celery_after, service.ocr_server.pid):
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert not [lib for lib in PARSER_LIBRARIES if lib in maps], f"process {pid} mapped a parser"

    # Outputs: the right page count, the expected words, no active content, not encrypted.
    for item, job, _, _ in table:
        if job.state == "FAILED":
            assert job.message and len(job.message) > 10
            continue
        pdf = service.pipeline.blobs.get("default", job.id, "output.pdf")
        assert not PdfReader(io.BytesIO(pdf)).is_encrypted
        assert _active_content(pdf) == [], item.name
        if item.pages is not None:
            assert len(PdfReader(io.BytesIO(pdf)).pages) == item.pages, item.name
        if item.text is not None:
            assert item.text.lower() in _text_of(pdf).lower(), item.name
        assert "/" not in job.filename and "\x00" not in job.filename and len(job.filename.encode()) <= 255

    # Nothing outside the blob root: only the databases, the socket and blobs/{tenant}/{job}/...
    job_ids = {job.id for _, job, _, _ in table}
    for path in service.data_dir.rglob("*"):
        relative = path.relative_to(service.data_dir)
        if relative.parts[0] == "blobs":
            assert len(relative.parts) < 3 or relative.parts[2] in job_ids or path.is_dir(), relative
            continue
        assert relative.parts[0].startswith(("jobs.db", "index.db", "ocr.sock")), relative


def test_textlayer_ocr_gives_each_bad_file_the_same_reason_and_writes_nothing_else(corpus, tmp_path):
    env = {**os.environ, "TEXTLAYER_SANDBOX_LAYERS": LAYERS}
    failures = []
    refused = [item for item in corpus if item.states == frozenset({"FAILED"})]
    for item in {item.path: item for item in refused}.values():
        output = tmp_path / "out.pdf"
        run = subprocess.run(
            [sys.executable, "-m", "textlayer", "ocr", str(item.path), "-o", str(output)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        lines = run.stderr.strip().splitlines()
        reasons = {line.rsplit("[", 1)[-1].rstrip("]") for line in lines}
        if run.returncode == 0 or run.stdout or len(lines) != 1 or not reasons <= {str(r) for r in item.reasons}:
            failures.append(f"{item.path.name}: rc={run.returncode} stdout={run.stdout[:200]!r} stderr={lines}")
        if output.exists():
            failures.append(f"{item.path.name}: an output was written")
    assert not failures, "\n".join(failures)
