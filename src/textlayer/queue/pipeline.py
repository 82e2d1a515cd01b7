"""The recipe of one job: claim it, OCR its pages through the OCR servers, build the PDF, index it.

No Celery here (tasks.py is a thin shim), so the whole recipe is testable by calling it. Every
side effect is keyed by job id and page, so running a job again (a redelivered message, a
reconciler re-publish after a crash) converges to the same output: pages already stored are not
OCRed again, the PDF is replaced atomically, the index rows of the document are replaced in one
transaction, and only the holder of the job's lease may finish it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from textlayer.conversion import DocumentConverter
from textlayer.elements import PageRecord, PageText
from textlayer.errors import InputDocumentError, TextlayerError
from textlayer.index import SearchIndex
from textlayer.media.sniff import document_kind
from textlayer.ocr import OcrOptions, PageReader, ocr_document
from textlayer.store import SUCCEEDED_STATES, BlobStore, Job, JobState, PageError, SqliteJobStore
from textlayer.store.names import display_name

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""Largest document accepted, in bytes (design/RELIABILITY.md §2.6)."""

MAX_DOCUMENT_S = 3600.0
"""Wall clock for one run of one document."""


@dataclass(frozen=True)
class PipelineConfig:
    """Limits and timings of the job pipeline."""

    lease_s: float = 60.0
    """A job's lease; renewed every quarter of it while the job runs."""
    max_attempts: int = 5
    """Claims of one job before it ends FAILED(too_many_attempts) instead of looping."""
    parallel_pages: int = 4
    """Pages of one document in flight at once (spread over every OCR server and worker)."""
    ocr_wait_s: float = 300.0
    """How long a page waits for an OCR server to come back before it fails (ocr_unavailable)."""
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    """Largest document accepted."""
    max_document_s: float = MAX_DOCUMENT_S
    """Wall clock for one run of a document; past it the job fails (``document_timeout``)."""
    crash_on_filename: str | None = None
    """Tests only: SIGKILL the process running a job with this file name (a poison document)."""
    output_type: str = "pdf"
    """Searchable PDFs as ``pdf`` or ``pdfa`` (PDF/A-2b; ``TEXTLAYER_OUTPUT_TYPE``)."""


@dataclass
class Pipeline:
    """The collaborators of the recipe, passed in (no I/O in constructors)."""

    jobs: SqliteJobStore
    blobs: BlobStore
    index: SearchIndex
    reader: PageReader
    converter: DocumentConverter
    """Parses the upload (page count, rasterising, the searchable PDF), in a jail by default."""
    config: PipelineConfig = PipelineConfig()

    # -- accepting a document -----------------------------------------------------------

    def submit(
        self,
        tenant: str,
        data: bytes,
        *,
        filename: str,
        publish: Callable[[str], None],
        idempotency_key: str | None = None,
    ) -> str:
        """Store an upload, create its job and publish it; refusals end the job FAILED at once.

        Returns:
            The job id (also for a refused document: its status says why).
        """
        job = self.jobs.create(
            tenant,
            filename=display_name(filename),
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            idempotency_key=idempotency_key,
        )
        if job.state != JobState.QUEUED or self.blobs.exists(tenant, job.id, "input"):
            return job.id  # the same idempotency key: the job already exists
        refusal = _refusal(data, self.config)
        if refusal is not None:
            self.jobs.fail(job.id, reason=refusal.reason, message=refusal.message)
            log.info("job %s refused before queueing: %s", job.id, refusal.reason)
            return job.id
        self.blobs.put(tenant, job.id, "input", data)
        publish(job.id)
        return job.id

    # -- running a job ------------------------------------------------------------------

    def process(self, job_id: str) -> JobState | None:
        """Run one job if its lease can be taken; returns its final state, or None when skipped."""
        owner = f"{process_namespace()}:{os.getpid()}:{threading.get_ident()}:{time.time_ns()}"
        self._free_lease_of_dead_local_owner(job_id)
        job = self.jobs.claim(job_id, owner, lease_s=self.config.lease_s, max_attempts=self.config.max_attempts)
        if job is None:
            log.info("job %s not claimed (done, failed, or running elsewhere)", job_id)
            return None
        log.info("job %s claimed (attempt %d) by %s", job_id, job.attempts, owner)
        if self.config.crash_on_filename and job.filename == self.config.crash_on_filename:
            os.kill(os.getpid(), 9)  # fault injection: a document that kills its worker every time
        with self._lease_kept(job_id, owner):
            try:
                reused = self._reuse_earlier_result(job, owner)
                state, page_errors = reused if reused is not None else self._run(job.tenant, job_id, owner)
            except InputDocumentError as exc:
                self.jobs.finish(job_id, owner, JobState.FAILED, reason=exc.reason, message=exc.message)
                log.info("job %s FAILED: %s", job_id, exc.reason)
                return JobState.FAILED
        if not self.jobs.finish(job_id, owner, state, page_errors=page_errors):
            log.warning("job %s: lease lost before finishing; another attempt owns it", job_id)
            return None
        log.info("job %s %s (%d page errors)", job_id, state.value, len(page_errors))
        return state

    def _free_lease_of_dead_local_owner(self, job_id: str) -> None:
        """A pool child killed mid-job leaves a live lease; if its process is gone, free the job now."""
        try:
            job = self.jobs.get(job_id)
        except TextlayerError:
            return
        if job.state != JobState.RUNNING or not job.lease_owner:
            return
        namespace, _, rest = job.lease_owner.partition(":")
        pid = rest.partition(":")[0]
        if namespace == process_namespace() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            log.info("job %s: its previous owner (pid %s) is dead; taking the job over", job_id, pid)
            self.jobs.requeue(job_id, job.lease_owner)

    @contextmanager
    def _lease_kept(self, job_id: str, owner: str) -> Iterator[None]:
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.config.lease_s / 4):
                if not self.jobs.renew(job_id, owner, lease_s=self.config.lease_s):
                    log.warning("job %s: lease lost", job_id)
                    return

        thread = threading.Thread(target=renew, name=f"lease-{job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def _run(self, tenant: str, job_id: str, owner: str) -> tuple[JobState, list[PageError]]:
        data = self.blobs.get(tenant, job_id, "input")
        done = {record.index: record for record in self._records(tenant, job_id, self.blobs.pages(tenant, job_id))}

        def store(record: PageRecord) -> None:
            self.blobs.put_page(tenant, job_id, record.index, record.to_json())
            self.jobs.page_done(job_id, owner, record.index)

        options = OcrOptions(
            parallel_pages=self.config.parallel_pages,
            ocr_wait_s=self.config.ocr_wait_s,
            max_document_s=self.config.max_document_s,
            page_errors=True,
            output_type=self.config.output_type,
        )
        result = ocr_document(
            data,
            self.converter,
            self.reader,
            options,
            done=done,
            on_total=lambda total: self.jobs.set_pages_total(job_id, owner, total),
            on_page=store,
        )
        assert result.pdf is not None
        if result.pdf_problems:  # the input brought what PDF/A forbids (unembedded fonts...): a PDF all the same
            log.warning("job %s: the output is not a valid PDF/A: %s", job_id, "; ".join(result.pdf_problems))
        page_errors = [
            PageError(r.index, r.error_reason, r.error_message or "") for r in result.records if r.error_reason
        ]
        self.blobs.put(tenant, job_id, "output.pdf", result.pdf)
        self.blobs.put(tenant, job_id, "text.txt", "\f".join(p.text if p else "" for p in result.pages).encode())
        self.index.put_document(tenant, job_id, result.pages)
        return (JobState.SUCCEEDED_WITH_ERRORS if page_errors else JobState.SUCCEEDED), page_errors

    def _records(self, tenant: str, job_id: str, indexes: Iterable[int]) -> list[PageRecord]:
        return [PageRecord.from_json(self.blobs.get_page(tenant, job_id, index)) for index in indexes]

    def _reuse_earlier_result(self, job: Job, owner: str) -> tuple[JobState, list[PageError]] | None:
        """The same bytes as an earlier SUCCEEDED job of the tenant: copy its result instead of OCRing again."""
        if self.blobs.pages(job.tenant, job.id):
            return None  # a previous attempt of this job already did work: finish it the normal way
        earlier = self.jobs.earlier_result(job.tenant, job.sha256, other_than=job.id)
        if earlier is None or not earlier.pages_total:
            return None
        try:
            pages = [self.blobs.get_page(job.tenant, earlier.id, i) for i in range(earlier.pages_total)]
            outputs = {name: self.blobs.get(job.tenant, earlier.id, name) for name in ("output.pdf", "text.txt")}
        except TextlayerError:
            return None  # the earlier result is gone (deleted meanwhile): OCR this one
        self.jobs.set_pages_total(job.id, owner, earlier.pages_total)
        results: list[PageText | None] = []
        for raw in pages:
            record = dataclasses.replace(PageRecord.from_json(raw), reused_from=earlier.id)
            self.blobs.put_page(job.tenant, job.id, record.index, record.to_json())
            self.jobs.page_done(job.id, owner, record.index)
            results.append(record.page)
        for name, data in outputs.items():
            self.blobs.put(job.tenant, job.id, name, data)
        self.index.put_document(job.tenant, job.id, results)
        log.info("job %s: the same document as job %s; its result was reused", job.id, earlier.id)
        return JobState.SUCCEEDED, []

    # -- recovery -----------------------------------------------------------------------

    def reindex(self) -> int:
        """Rebuild the search index from the page results in the blob store; returns documents indexed."""
        count = 0
        for tenant, job_id in self.blobs.jobs():
            try:
                job = self.jobs.get(job_id, tenant)
            except TextlayerError:
                continue
            if job.state not in SUCCEEDED_STATES or not job.pages_total:
                continue
            records = self._records(tenant, job_id, range(job.pages_total))
            self.index.put_document(tenant, job_id, [record.page for record in records])
            count += 1
        return count


def process_namespace() -> str:
    """Who can see our pids: host name, boot id and pid namespace (a lease names its owner's pid in it).

    Two hosts, or two containers, with the same host name have other boot ids or pid namespaces: a pid
    that is missing here may be alive there, so only a lease of this very namespace is freed by pid.
    """
    seen = _pid_namespace()
    # Without /proc no pid can be looked up: a name that matches nobody, so no lease is ever freed by pid.
    return f"{socket.gethostname()}@{seen or 'no-proc-' + uuid.uuid4().hex}"


@functools.cache
def _pid_namespace() -> str | None:
    """Boot id and pid namespace, read once per process (neither changes while it runs; pool children share them)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        return f"{boot}-{Path('/proc/self/ns/pid').stat().st_ino}"
    except OSError:
        return None


def _refusal(data: bytes, config: PipelineConfig) -> InputDocumentError | None:
    """Cheap checks before anything is queued: size, emptiness and type by magic bytes."""
    if len(data) > config.max_upload_bytes:
        return InputDocumentError(
            f"The file is {len(data) / 2**20:.0f} MiB; at most {config.max_upload_bytes / 2**20:.0f} MiB are accepted. "
            "Split it or lower its resolution, and upload it again.",
            reason="file_too_large",
        )
    try:
        document_kind(data)
    except InputDocumentError as exc:
        return exc
    return None
