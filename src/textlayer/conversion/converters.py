"""Document conversion behind one interface: jailed (the default everywhere) or in-process (debugging).

A converter inspects an upload (type, pages, encryption, signature), rasterises its pages for
OCR and builds the searchable PDF. :class:`JailedConverter` does all three in a jailed worker
without models, so the Celery worker, the CLI and the OCR server's supervisor never run pypdf,
PDFium, Pillow or OpenCV on untrusted bytes; what comes back is checked like any untrusted reply.
This module itself imports none of those libraries.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from textlayer.build_options import BuildOptions, BuiltPdf
from textlayer.config import Settings
from textlayer.conversion import wire
from textlayer.elements import PageText
from textlayer.errors import InputDocumentError, SandboxCrashed, SandboxTimeout
from textlayer.media.limits import DocumentLimits
from textlayer.media.pages import EncodedPage, Inspection
from textlayer.sandbox import SandboxPolicy, SandboxPool

log = logging.getLogger(__name__)

T = TypeVar("T")

RENDER_MAX_PAGES = 64
"""Most pages asked for in one request to a converter (each request carries the whole document)."""

RENDER_PIXEL_BUDGET = 40_000_000
"""A converter stops rendering a request after the page that spends this many pixels (~5 scanned pages)."""

ROLE = "textlayer.conversion.converter_role"
"""The module a jailed converter starts."""

PACKAGES = ("numpy", "cv2", "PIL", "pypdfium2", "pypdfium2_raw", "pypdf", "reportlab")
"""What the converter role imports inside the jail."""


def converter_policy(settings: Settings, *, test_hooks: bool = False) -> SandboxPolicy:
    """The jail of a document converter: no models, a 2 GiB address space (PDFium aborts past it)."""
    return SandboxPolicy(
        role=ROLE,
        packages=PACKAGES,
        layers="prefer" if settings.sandbox_layers == "prefer" else "require",
        workers=1,
        deadline_s=float(settings.convert_deadline_s),
        address_space_mib=settings.convert_memory_mib,
        max_request_mib=settings.max_upload_mib * 2 + 16,
        max_reply_mib=settings.max_upload_mib * 3 + 64,
        recycle_after_pages=200,
        recycle_above_rss_mib=1024,
        test_hooks=test_hooks,
    )


def document_limits(settings: Settings) -> DocumentLimits:
    """Page, pixel and dpi limits of one document."""
    return DocumentLimits(max_pixels=settings.max_pixels, max_pages=settings.max_pages, dpi=settings.pdf_dpi)


class DocumentConverter(Protocol):
    """Inspects, rasterises and rebuilds documents (the untrusted-parsing half of a job)."""

    def inspect(self, data: bytes) -> Inspection:
        """Type and page count; refuses a document that cannot be processed (InputDocumentError)."""
        ...

    def pages(
        self,
        data: bytes,
        indexes: Sequence[int],
        *,
        force_ocr: bool = False,
        redo_ocr: bool = False,
        deskew: bool = False,
    ) -> Iterator[EncodedPage]:
        """The given pages, encoded for OCR, in order (see :func:`textlayer.media.documents.render_pages`)."""
        ...

    def build_pdf(
        self,
        data: bytes,
        pages: Sequence[PageText | None],
        pages_with_text: Collection[int],
        options: BuildOptions | None = None,
    ) -> BuiltPdf:
        """The searchable PDF of the document, checked as PDF/A when ``options`` ask for one."""
        ...


# -- converters ------------------------------------------------------------------------------


def _in_batches(indexes: Sequence[int], render: Callable[[list[int]], list[EncodedPage]]) -> Iterator[EncodedPage]:
    """The pages, asked for at most :data:`RENDER_MAX_PAGES` at a time.

    A converter answers a prefix when its pixel budget runs out; the rest is asked for again.
    """
    todo = list(indexes)
    while todo:
        batch = render(todo[:RENDER_MAX_PAGES])
        yield from batch
        todo = todo[len(batch) :]


class InProcessConverter:
    """Parses in this process: only for ``textlayer ocr --no-sandbox`` on trusted files."""

    def __init__(self, limits: DocumentLimits) -> None:
        """Apply ``limits`` to every document."""
        self.limits = limits

    def inspect(self, data: bytes) -> Inspection:
        """See :class:`DocumentConverter`."""
        from textlayer.media.documents import inspect_document  # in this process: --no-sandbox only

        return inspect_document(data, self.limits)

    def pages(
        self,
        data: bytes,
        indexes: Sequence[int],
        *,
        force_ocr: bool = False,
        redo_ocr: bool = False,
        deskew: bool = False,
    ) -> Iterator[EncodedPage]:
        """See :class:`DocumentConverter`."""
        from textlayer.media.documents import render_pages

        options = {"force_ocr": force_ocr, "redo_ocr": redo_ocr, "deskew": deskew}
        return _in_batches(
            indexes, lambda asked: render_pages(data, asked, self.limits, **options, pixel_budget=RENDER_PIXEL_BUDGET)
        )

    def build_pdf(
        self,
        data: bytes,
        pages: Sequence[PageText | None],
        pages_with_text: Collection[int],
        options: BuildOptions | None = None,
    ) -> BuiltPdf:
        """See :class:`DocumentConverter`."""
        from textlayer.pdf_overlay import build_searchable_pdf, pdfa_problems

        options = options or BuildOptions()
        pdf = build_searchable_pdf(data, pages, pages_with_text=pages_with_text, options=options)
        return BuiltPdf(pdf, tuple(pdfa_problems(pdf)) if options.output_type == "pdfa" else ())


class JailedConverter:
    """Converts in jailed workers without models; started on first use, safe to share between threads."""

    def __init__(self, policy: SandboxPolicy, limits: DocumentLimits, *, quarantine_dir: Path | None = None) -> None:
        """``policy`` names the converter role (:func:`converter_policy`); nothing starts before the first document.

        ``quarantine_dir`` keeps documents that made a converter break its seccomp filter, for analysis.
        """
        if policy.role != ROLE:
            raise ValueError(f"a JailedConverter needs a policy with role={ROLE!r}")
        self.policy = policy
        self.limits = limits
        self.quarantine_dir = quarantine_dir
        self._pool: SandboxPool | None = None
        self._lock = threading.Lock()

    def _started(self) -> SandboxPool:
        with self._lock:
            if self._pool is None:
                self._pool = SandboxPool(self.policy, quarantine_dir=self.quarantine_dir).start()
                atexit.register(self.close)
            return self._pool

    def close(self) -> None:
        """Stop the converters (they also die with this process)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> JailedConverter:
        """Nothing to do: workers start on first use."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close."""
        self.close()

    def _call(self, header: dict[str, Any], payload: bytes, parse: Callable[[dict[str, Any], bytes], T]) -> T:
        try:
            return self._started().call_parsed(header, payload, parse)
        except InputDocumentError as exc:
            if exc.reason != "poison_page":
                raise
            raise InputDocumentError(
                "Reading the document crashed its sandboxed converter twice; the file is damaged or built to "
                f"exhaust the reader (for example a decompression bomb). ({exc.message})",
                reason="parse_crashed",
            ) from None
        except SandboxTimeout as exc:
            raise InputDocumentError(
                f"Reading the document took longer than {self.policy.deadline_s:.0f} s and was stopped. ({exc})",
                reason="parse_timeout",
            ) from None
        except SandboxCrashed as exc:
            if exc.reason == "protocol":
                raise
            raise InputDocumentError(
                f"Reading the document crashed its sandboxed converter ({exc.message}).", reason="parse_crashed"
            ) from None

    def inspect(self, data: bytes) -> Inspection:
        """See :class:`DocumentConverter`."""
        parse = functools.partial(wire.decode_inspection, max_pages=self.limits.max_pages)
        return self._call({"op": "inspect", "limits": self.limits.to_dict()}, data, parse)

    def pages(
        self,
        data: bytes,
        indexes: Sequence[int],
        *,
        force_ocr: bool = False,
        redo_ocr: bool = False,
        deskew: bool = False,
    ) -> Iterator[EncodedPage]:
        """See :class:`DocumentConverter`."""
        options = {"force_ocr": force_ocr, "redo_ocr": redo_ocr, "deskew": deskew}

        def render(asked: list[int]) -> list[EncodedPage]:
            request = {"op": "render", "limits": self.limits.to_dict(), "pages": asked, **options}
            request["pixel_budget"] = RENDER_PIXEL_BUDGET
            return self._call(request, data, functools.partial(wire.decode_rendered, indexes=asked, document=data))

        return _in_batches(indexes, render)

    def build_pdf(
        self,
        data: bytes,
        pages: Sequence[PageText | None],
        pages_with_text: Collection[int],
        options: BuildOptions | None = None,
    ) -> BuiltPdf:
        """See :class:`DocumentConverter`."""
        return self._call(*wire.encode_build_request(data, pages, pages_with_text, options), wire.built_pdf)
