"""ocr_document: THE recipe (inspect, rasterise, OCR pages in parallel, build the searchable PDF).

Used by ``textlayer ocr`` and the Celery pipeline alike; the collaborators come in as arguments
(a converter that parses the document, a reader that OCRs a page image), so the recipe runs the
same with jails, gRPC servers or in-process parts. Pure orchestration: no parser, no model here.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from textlayer.conversion import DocumentConverter
from textlayer.elements import PageRecord, PageText
from textlayer.errors import InputDocumentError, OcrUnavailable, TextlayerError
from textlayer.media.pages import EncodedPage

log = logging.getLogger(__name__)


class PageReader(Protocol):
    """What reads a page: an OcrClient, a JailedReader or an InProcessReader."""

    def recognize(self, image: bytes, *, dpi: float | None = None, frame: int = 0) -> PageText:
        """OCR one encoded page image."""
        ...


@dataclass(frozen=True)
class OcrOptions:
    """How one document is read."""

    parallel_pages: int = 1
    """Pages in flight at once (spread over every OCR server and worker)."""
    force_ocr: bool = False
    """Also OCR PDF pages that already have text."""
    ocr_wait_s: float = 0.0
    """How long a page waits for an OCR server to come back before it fails (``ocr_unavailable``)."""
    max_document_s: float | None = None
    """Wall clock for the whole document; past it ``document_timeout``."""
    page_errors: bool = False
    """A page that cannot be read keeps its error and the others go on (the service); off, it ends the run."""


def read_page(page: EncodedPage, reader: PageReader, options: OcrOptions) -> PageRecord:
    """OCR one page, waiting up to ``options.ocr_wait_s`` for the OCR servers to come back.

    Raises:
        TextlayerError: the page could not be read and ``options.page_errors`` is off.
    """
    record = PageRecord(page.index, has_text=page.has_text, blank=page.blank)
    if page.data is None:
        return record
    waited_until = time.monotonic() + options.ocr_wait_s
    delay_s = 0.5
    while True:
        try:
            return dataclasses.replace(record, page=reader.recognize(page.data, dpi=page.dpi, frame=page.frame))
        except OcrUnavailable as exc:
            if time.monotonic() + delay_s <= waited_until:
                log.warning("page %d: %s; retrying in %.1f s", page.index + 1, exc.message, delay_s)
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)
                continue
            if not options.page_errors:
                raise
            message = f"No OCR server could read the page ({exc.message})."
            return dataclasses.replace(record, error_reason="ocr_unavailable", error_message=message)
        except TextlayerError as exc:
            if not options.page_errors:
                raise
            return dataclasses.replace(record, error_reason=exc.reason, error_message=exc.message)


@dataclass(frozen=True)
class OcrResult:
    """Every page's record in page order, and the searchable PDF when one was asked for."""

    records: list[PageRecord]
    pdf: bytes | None = None

    @property
    def pages(self) -> list[PageText | None]:
        """The OCR result of each page (None: text already there, blank, or failed)."""
        return [record.page for record in self.records]


def ocr_document(
    data: bytes,
    converter: DocumentConverter,
    reader: PageReader,
    options: OcrOptions = OcrOptions(),
    *,
    done: Mapping[int, PageRecord] | None = None,
    on_total: Callable[[int], object] | None = None,
    on_page: Callable[[PageRecord], object] | None = None,
    build_pdf: bool = True,
) -> OcrResult:
    """Read a whole document: inspect it, rasterise and OCR its pages in parallel, build its PDF.

    Args:
        data: the document's bytes (untrusted: parsed by ``converter`` only).
        converter: inspects, rasterises and rebuilds the document.
        reader: OCRs one page image.
        options: parallelism, OCR of text pages, patience with OCR servers, time limit.
        done: records of pages read by an earlier attempt (not read again).
        on_total: called with the page count before any page is read.
        on_page: called with each new record as soon as it exists (from a worker thread).
        build_pdf: also build the searchable PDF.

    Raises:
        InputDocumentError: the document is refused, every page failed, or it took too long.
        TextlayerError: a page could not be read and ``options.page_errors`` is off.
    """
    started = time.monotonic()
    total = converter.inspect(data).pages
    if on_total is not None:
        on_total(total)
    records: dict[int, PageRecord] = dict(done or {})

    def read(page: EncodedPage) -> None:
        record = read_page(page, reader, options)
        if on_page is not None:
            on_page(record)
        records[page.index] = record

    todo = [index for index in range(total) if index not in records]
    with concurrent.futures.ThreadPoolExecutor(options.parallel_pages, thread_name_prefix="page") as pool:
        pending: set[concurrent.futures.Future[None]] = set()
        try:
            for page in converter.pages(data, todo, force_ocr=options.force_ocr):
                # Bounded: never more than 2x parallel_pages rasterised pages in memory.
                pending.add(pool.submit(read, page))
                if len(pending) >= 2 * options.parallel_pages:
                    finished, pending = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
                    for future in finished:
                        future.result()
                _check_time(started, options.max_document_s)
            for future in concurrent.futures.as_completed(pending):
                future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    _check_time(started, options.max_document_s)
    ordered = [records[index] for index in range(total)]
    failed = [record for record in ordered if record.error_reason]
    if failed and len(failed) == total:
        first = failed[0]
        message = first.error_message or ""
        raise InputDocumentError(
            f"No page could be read; page 1: {message}" if total > 1 else message, reason=first.error_reason or ""
        )
    pdf = None
    if build_pdf:
        pdf = converter.build_pdf(data, [r.page for r in ordered], [r.index for r in ordered if r.has_text])
    return OcrResult(ordered, pdf)


def _check_time(started: float, limit_s: float | None) -> None:
    elapsed = time.monotonic() - started
    if limit_s is not None and elapsed > limit_s:
        raise InputDocumentError(
            f"The document took more than {limit_s:g} s to process and was stopped "
            f"after {elapsed:.0f} s; split it into smaller documents.",
            reason="document_timeout",
        )
