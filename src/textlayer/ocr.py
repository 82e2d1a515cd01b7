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

from textlayer.build_options import BuildOptions
from textlayer.conversion import DocumentConverter
from textlayer.elements import PageRecord, PageText
from textlayer.errors import InputDocumentError, OcrUnavailable, PriorOcrFound, TextlayerError
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
    """Also OCR PDF pages that already have text, and replace them by their image in the PDF (``--force-ocr``)."""
    redo_ocr: bool = False
    """OCR again pages whose only text is invisible (an earlier OCR layer), replacing that layer (``--redo-ocr``)."""
    refuse_text_only: bool = False
    """Refuse a document whose every page already has text (:class:`PriorOcrFound`, exit 6) instead of passing it
    through: ``textlayer ocr`` without ``--skip-text``, ``--redo-ocr`` or ``--force-ocr``, as OCRmyPDF does."""
    deskew: bool = False
    """Straighten skewed page images before OCR; those pages become their straightened image (``--deskew``)."""
    rotate_pages: bool = False
    """Turn pages for display so their text reads upright (``--rotate-pages``)..."""
    rotate_pages_threshold: float = 14.0
    """...when the page, read upright, has a mean word confidence of at least this (percent)."""
    output_type: str = "pdf"
    """``pdf`` or ``pdfa`` (PDF/A-2b, checked: :attr:`OcrResult.pdf_problems`)."""
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
    pdf_problems: tuple[str, ...] = ()
    """Why the PDF is not what was asked (a PDF/A check failed); empty when it is."""

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
    skews: dict[int, float] = {}

    def read(page: EncodedPage) -> None:
        if page.skew_deg:
            skews[page.index] = page.skew_deg
        record = read_page(page, reader, options)
        if on_page is not None:
            on_page(record)
        records[page.index] = record

    todo = [index for index in range(total) if index not in records]
    with concurrent.futures.ThreadPoolExecutor(options.parallel_pages, thread_name_prefix="page") as pool:
        pending: set[concurrent.futures.Future[None]] = set()
        try:
            pages = converter.pages(
                data, todo, force_ocr=options.force_ocr, redo_ocr=options.redo_ocr, deskew=options.deskew
            )
            for page in pages:
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
    if options.refuse_text_only and total and all(record.has_text and record.page is None for record in ordered):
        raise PriorOcrFound(
            "Every page already has text, so there is nothing to OCR; --skip-text passes the document through, "
            "--redo-ocr replaces an earlier OCR layer, --force-ocr rasterises and OCRs every page."
        )
    if not build_pdf:
        return OcrResult(ordered)
    build = build_options(ordered, skews, options)
    with_text = [r.index for r in ordered if r.has_text and r.index not in build.rasterize]
    built = converter.build_pdf(data, [r.page for r in ordered], with_text, build)
    return OcrResult(ordered, built.pdf, built.problems)


def build_options(records: list[PageRecord], skews: Mapping[int, float], options: OcrOptions) -> BuildOptions:
    """What the PDF build must do besides the text layers: rasterised pages, turned pages, PDF/A."""
    rasterize = {index: angle for index, angle in skews.items() if records[index].page is not None}
    if options.force_ocr:  # a page with text that was OCRed becomes its image: never two text layers
        rasterize.update({r.index: skews.get(r.index, 0.0) for r in records if r.has_text and r.page is not None})
    rotate: dict[int, int] = {}
    if options.rotate_pages:
        for record in records:
            page = record.page
            if page is None or not page.rotation or not page.words:
                continue
            confidence = 100.0 * sum(w.confidence for w in page.words) / len(page.words)
            if confidence >= options.rotate_pages_threshold:
                rotate[record.index] = page.rotation
            else:
                log.info(
                    "page %d: rotation %d not applied (confidence %.0f)", record.index + 1, page.rotation, confidence
                )
    return BuildOptions(output_type=options.output_type, rasterize=rasterize, rotate=rotate, redo_ocr=options.redo_ocr)


def _check_time(started: float, limit_s: float | None) -> None:
    elapsed = time.monotonic() - started
    if limit_s is not None and elapsed > limit_s:
        raise InputDocumentError(
            f"The document took more than {limit_s:g} s to process and was stopped "
            f"after {elapsed:.0f} s; split it into smaller documents.",
            reason="document_timeout",
        )
