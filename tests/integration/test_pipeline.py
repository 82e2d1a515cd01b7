"""The job pipeline end to end: real Redis, real Celery worker processes, real gRPC, real jailed workers."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pdfplumber
import pytest
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from tests.integration.test_sandbox import LAYERS
from tests.pages import make_page, page_to_jpeg, page_to_png
from tests.redis_server import private_redis
from tests.service import LEASE_S, Service
from textlayer.config import Settings
from textlayer.store import JobState

pytestmark = [pytest.mark.redis, pytest.mark.sandbox, pytest.mark.onnx, pytest.mark.slow]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("pipeline"))
    yield running
    running.close()


def _scan_pdf(pages) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(612, 792))
    for page in pages:
        pdf.drawImage(ImageReader(io.BytesIO(page_to_png(page))), 0, 0, width=612, height=792)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _tiff(pages) -> bytes:
    images = [Image.fromarray(p.image) for p in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, format="TIFF", save_all=True, append_images=images[1:], dpi=(100, 100))
    return buffer.getvalue()


def test_a_pdf_a_jpeg_and_a_tiff_become_searchable(service):
    receipt, fonts, table = (make_page(kind, dpi=100) for kind in ("receipt", "fonts", "table"))
    jobs = {
        service.submit("scan.pdf", _scan_pdf([fonts])): "scan.pdf",
        service.submit("photo.jpg", page_to_jpeg(receipt)): "photo.jpg",
        service.submit("pages.tiff", _tiff([receipt, fonts, table])): "pages.tiff",
    }
    finished = service.wait(list(jobs))
    assert {job.state for job in finished.values()} == {"SUCCEEDED"}, finished
    for job_id in jobs:
        pdf_bytes = service.pipeline.blobs.get("default", job_id, "output.pdf")
        text = service.pipeline.blobs.get("default", job_id, "text.txt").decode().split("\f")
        with pdfplumber.open(io.BytesIO(pdf_bytes)) as pdf:
            extracted = [page.extract_text() or "" for page in pdf.pages]
        assert len(extracted) == len(text)
        for ocr_text, pdf_text in zip(text, extracted, strict=True):
            # pdfplumber orders table cells and columns its own way: compare the words, not their order.
            assert sorted(ocr_text.split()) == sorted(pdf_text.split()) and ocr_text.strip()
    tiff_job = next(job_id for job_id, name in jobs.items() if name == "pages.tiff")
    word = table.words[0].text
    hits = service.pipeline.index.search("default", word)
    assert any(hit.document_id == tiff_job and hit.page == 2 for hit in hits), hits
    assert service.pipeline.index.search("other-tenant", word) == []


def test_the_same_bytes_again_reuse_the_earlier_result(service):
    scan = page_to_png(make_page("two_column", dpi=90))
    (first,) = service.wait([service.submit("first.png", scan)]).values()
    (second,) = service.wait([service.submit("second.png", scan)]).values()
    assert first.state == second.state == "SUCCEEDED" and first.id != second.id
    record = json.loads(service.pipeline.blobs.get_page("default", second.id, 0))
    assert record["reused_from"] == first.id  # not OCRed again (design decision on duplicates)
    for name in ("output.pdf", "text.txt"):
        assert service.pipeline.blobs.get("default", second.id, name) == service.pipeline.blobs.get(
            "default", first.id, name
        )
    word = make_page("two_column", dpi=90).words[0].text
    assert {first.id, second.id} <= {hit.document_id for hit in service.pipeline.index.search("default", word)}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.png", "empty_file"),
        ("garbage.pdf", "unsupported_type"),
        ("truncated.png", "corrupt_image"),
        ("bomb.png", "image_too_large"),
        ("locked.pdf", "encrypted_pdf"),
        ("huge.pdf", "too_many_pages"),
    ],
)
def test_bad_inputs_end_failed_with_their_reason(service, name, reason):
    png = page_to_png(make_page("receipt", dpi=100))
    data = {
        "empty.png": b"",
        "garbage.pdf": os.urandom(2048),
        "truncated.png": png[: len(png) // 2],
        "bomb.png": _png_bomb(),
        "locked.pdf": _pdf_with(pages=1, password="secret"),
        "huge.pdf": _pdf_with(pages=5000),
    }[name]
    job = service.wait([service.submit(name, data)])
    (state,) = job.values()
    assert state.state == "FAILED" and state.reason == reason, state
    assert state.message


def _pdf_with(*, pages: int, password: str | None = None) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    if password:
        writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _png_bomb() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_c1_killing_a_pool_child_mid_task_still_succeeds_once(service):
    pages = [make_page(kind, dpi=100) for kind in ("fonts", "table", "receipt", "two_column")]
    job_id = service.submit("long.tiff", _tiff(pages))
    deadline = time.monotonic() + 60
    while service.pipeline.jobs.get(job_id).state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for child in service.worker_children():
        os.kill(child, signal.SIGKILL)
    (job,) = service.wait([job_id]).values()
    assert job.state == "SUCCEEDED" and job.attempts >= 2
    assert service.pipeline.index.page_count("default", job_id) == len(pages)


def test_poison_document_fails_after_the_attempt_cap_and_others_succeed(service):
    poison = service.submit("poison.png", page_to_png(make_page("receipt", dpi=100)))
    healthy = service.submit("healthy.jpg", page_to_jpeg(make_page("receipt", dpi=100)))
    finished = service.wait([poison, healthy], timeout_s=300)
    assert finished[poison].state == "FAILED" and finished[poison].reason == "too_many_attempts"
    assert finished[healthy].state == "SUCCEEDED"


def test_c3_killing_the_whole_worker_recovers_through_the_lease(service):
    job_id = service.submit("whole.tiff", _tiff([make_page(k, dpi=100) for k in ("fonts", "table", "receipt")]))
    deadline = time.monotonic() + 60
    while service.pipeline.jobs.get(job_id).state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for pid in [*service.worker_children(), service.worker.pid]:
        os.kill(pid, signal.SIGKILL)
    service.worker.wait()
    killed_at = time.monotonic()
    service.worker = service.start_worker()
    (job,) = service.wait([job_id], timeout_s=120).values()
    assert job.state == "SUCCEEDED"
    assert time.monotonic() - killed_at < LEASE_S + 1.0 + 60  # lease + reconciler period + the OCR itself


def test_r1_killing_redis_with_200_jobs_queued_loses_none(tmp_path):
    import redis as redis_client
    from celery import Celery

    from textlayer.queue.app import celery_settings

    broker = private_redis(tmp_path / "r1")
    publisher = Celery("r1-publisher")
    publisher.conf.update(celery_settings(broker.celery_url))
    try:
        for index in range(200):
            publisher.send_task("textlayer.process", args=(f"job-{index:03d}",))
        time.sleep(1.5)  # appendfsync everysec
        os.kill(broker.pid, signal.SIGKILL)
        broker.start()
        client = redis_client.Redis.from_url(broker.redis_url)
        try:
            assert client.llen("textlayer") == 200
        finally:
            client.close()
    finally:
        publisher.close()
        broker.stop()


def _cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "textlayer", *args], env=service.env, capture_output=True, text=True, timeout=300
    )


def test_cli_submit_wait_status_get_and_search(service, tmp_path):
    page = make_page("receipt", dpi=100)
    scan = tmp_path / "receipt.png"
    scan.write_bytes(page_to_png(page))
    submitted = _cli(service, "submit", str(scan), "--wait")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[0]
    assert "SUCCEEDED ->" in submitted.stdout and "output.pdf" in submitted.stdout
    status = _cli(service, "status", job_id)
    assert "state     SUCCEEDED" in status.stdout and "pages     1/1" in status.stdout
    out = tmp_path / "out.pdf"
    assert _cli(service, "get", job_id, "-o", str(out)).returncode == 0
    assert out.read_bytes().startswith(b"%PDF-")
    text = tmp_path / "out.txt"
    assert _cli(service, "get", job_id, "-o", str(text), "--text").returncode == 0
    word = max(re.findall(r"[A-Za-z]{5,}", text.read_text()), key=len)
    found = _cli(service, "search", word)
    assert found.returncode == 0 and job_id in found.stdout and "page 1" in found.stdout
    assert _cli(service, "search", word, "--tenant", "someone-else").returncode == 1
    missing = _cli(service, "status", "0" * 32)
    assert missing.returncode != 0 and "textlayer: error:" in missing.stderr


def test_cli_ingest_moves_files_to_done_and_failed(service, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jpg").write_bytes(page_to_jpeg(make_page("receipt", dpi=100)))
    (inbox / "b.png").write_bytes(page_to_png(make_page("fonts", dpi=100)))
    (inbox / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a pdf")
    result = _cli(service, "ingest", str(inbox))
    assert result.returncode == 2, result.stderr
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["a.jpg", "b.png"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["broken.pdf", "broken.pdf.reason.txt"]
    assert (inbox / "failed" / "broken.pdf.reason.txt").read_text().startswith("corrupt_pdf: ")
    assert "2 done, 1 failed" in result.stdout and "broken.pdf: corrupt_pdf" in result.stdout


def test_reindex_rebuilds_the_index_from_the_blob_store(service):
    job_id = service.submit("again.jpg", page_to_jpeg(make_page("receipt", dpi=100)))
    (job,) = service.wait([job_id]).values()
    assert job.state == "SUCCEEDED"
    text = service.pipeline.blobs.get("default", job_id, "text.txt").decode()
    word = max(re.findall(r"[A-Za-z]{5,}", text), key=len)
    service.pipeline.index.delete_document("default", job_id)
    assert not any(hit.document_id == job_id for hit in service.pipeline.index.search("default", word))
    env = {k: v for k, v in service.env.items() if k != "TEXTLAYER_DATA_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "textlayer", "--data-dir", str(service.data_dir), "reindex"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "documents indexed" in result.stdout, result.stderr
    assert any(hit.document_id == job_id for hit in service.pipeline.index.search("default", word))


def test_document_timeout_fires_in_the_celery_worker_before_celerys_own_limits(service):
    """Release gate item 4: the document's wall clock ends the job, once, with its reason (not Celery's soft limit)."""
    from textlayer.queue.app import celery_settings

    limits = celery_settings("redis://127.0.0.1:1/0", max_document_s=3600)
    assert (
        3600
        < limits["task_soft_time_limit"]
        < limits["task_time_limit"]
        < limits["broker_transport_options"]["visibility_timeout"]
    )
    service.replace_worker(TEXTLAYER_MAX_DOCUMENT_S="1")
    try:
        pages = [make_page(kind, dpi=110) for kind in ("fonts", "table", "receipt")]
        job_id = service.submit("slow.tiff", _tiff(pages))
        job = service.wait([job_id])[job_id]
        assert (job.state, job.reason, job.attempts) == (JobState.FAILED, "document_timeout", 1), job
        assert "more than 1 s" in job.message
    finally:
        service.replace_worker()


def test_a_document_past_its_wall_time_fails_with_document_timeout(tmp_path):
    """The pipeline in this process, over a real jailed converter and a real jailed OCR pool."""
    from textlayer.conversion import JailedConverter, converter_policy, document_limits
    from textlayer.index import open_index
    from textlayer.queue.pipeline import Pipeline, PipelineConfig
    from textlayer.sandbox import SandboxPool
    from textlayer.store import BlobStore, SqliteJobStore
    from textlayer.worker.jailed import JailedReader, ocr_policy

    settings = Settings(sandbox_layers=LAYERS)
    pages = [make_page(kind, dpi=100) for kind in ("fonts", "table", "receipt")]
    with (
        SandboxPool(ocr_policy(settings)) as pool,
        JailedConverter(converter_policy(settings), document_limits(settings)) as converter,
    ):
        pipeline = Pipeline(
            jobs=SqliteJobStore(tmp_path / "jobs.db"),
            blobs=BlobStore(tmp_path / "blobs"),
            index=open_index(tmp_path / "index.db"),
            reader=JailedReader(pool),
            converter=converter,
            config=PipelineConfig(max_document_s=0.5, parallel_pages=1),
        )
        job_id = pipeline.submit("default", _tiff(pages), filename="slow.tiff", publish=lambda _: None)
        assert pipeline.process(job_id) == JobState.FAILED
    job = pipeline.jobs.get(job_id)
    assert job.reason == "document_timeout" and "0.5 s" in job.message
