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
import json
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from textlayer.elements import PageText
from textlayer.errors import InputDocumentError, SandboxCrashed, SandboxTimeout
from textlayer.sniff import KINDS

if TYPE_CHECKING:
    from textlayer.limits import DocumentLimits
    from textlayer.sandbox import SandboxPool
    from textlayer.sandbox.policy import SandboxPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RENDER_MAX_PAGES = 64
"""Most pages asked for in one request to a converter (each request carries the whole document)."""

RENDER_PIXEL_BUDGET = 40_000_000
"""A converter stops rendering a request after the page that spends this many pixels (~5 scanned pages)."""


@dataclass(frozen=True)
class EncodedPage:
    """One page on its way to OCR: encoded image bytes (never decoded here) and which frame.

    ``data`` is None for a page that needs no OCR: it already has text, or it is blank.
    """

    index: int
    data: bytes | None
    frame: int = 0
    dpi: float | None = None
    has_text: bool = False
    blank: bool = False


@dataclass(frozen=True)
class Inspection:
    """What a converter learnt about a document: its kind ('PDF', 'PNG', 'JPEG', 'TIFF') and page count."""

    kind: str
    pages: int


class DocumentConverter(Protocol):
    """Inspects, rasterises and rebuilds documents (the untrusted-parsing half of a job)."""

    def inspect(self, data: bytes) -> Inspection:
        """Type and page count; refuses a document that cannot be processed (InputDocumentError)."""
        ...

    def pages(self, data: bytes, indexes: Sequence[int], *, force_ocr: bool = False) -> Iterator[EncodedPage]:
        """The given pages, encoded for OCR, in order."""
        ...

    def build_pdf(self, data: bytes, pages: Sequence[PageText | None], pages_with_text: Collection[int]) -> bytes:
        """The searchable PDF of the document."""
        ...


# -- the wire format between the supervisor and a jailed converter --------------------------


def encode_rendered(pages: Sequence[EncodedPage], document: bytes) -> tuple[dict[str, Any], bytes]:
    """A ``render`` reply: one header entry per page, the encoded images concatenated."""
    entries, blobs = [], []
    for page in pages:
        same = page.data is not None and page.data is document
        data = b"" if same or page.data is None else page.data
        entries.append(
            {
                "index": page.index,
                "dpi": page.dpi,
                "has_text": page.has_text,
                "blank": page.blank,
                "ocr": page.data is not None,
                "same": same,
                "length": len(data),
            }
        )
        blobs.append(data)
    return {"ok": True, "pages": entries}, b"".join(blobs)


def decode_rendered(
    header: dict[str, Any], payload: bytes, indexes: Sequence[int], document: bytes
) -> list[EncodedPage]:
    """Check a ``render`` reply (untrusted) and turn it into pages.

    Raises:
        InputDocumentError: the converter refused the document or a page.
        SandboxCrashed: the reply is malformed (``reason="protocol"``).
    """
    _raise_refusal(header)
    try:
        entries = header["pages"]
        # A converter may answer a prefix (its pixel budget), never nothing and never more.
        if not isinstance(entries, list) or not 1 <= len(entries) <= len(indexes):
            raise ValueError(f"{len(entries) if isinstance(entries, list) else '?'} pages for {len(indexes)} asked")
        offset, pages = 0, []
        for entry, index in zip(entries, indexes[: len(entries)], strict=True):
            if entry["index"] != index or not all(isinstance(entry[k], bool) for k in ("has_text", "blank", "ocr")):
                raise ValueError(f"bad page entry {entry!r:.200}")
            dpi = entry["dpi"]
            if dpi is not None and not (isinstance(dpi, int | float) and 1 <= dpi <= 2400):
                raise ValueError(f"impossible dpi {dpi!r:.40}")
            length = int(entry["length"])
            if length < 0 or offset + length > len(payload):
                raise ValueError("page lengths do not add up")
            data: bytes | None = None
            if entry["ocr"]:
                data = document if entry["same"] is True else payload[offset : offset + length]
                if entry["same"] is not True and not data.startswith(PNG_MAGIC):
                    raise ValueError("a page image is not a PNG")
            offset += length
            dpi = None if dpi is None else float(dpi)
            pages.append(EncodedPage(index, data, 0, dpi, entry["has_text"], entry["blank"]))
        if offset != len(payload):
            raise ValueError("trailing bytes after the page images")
        return pages
    except (KeyError, TypeError, ValueError) as exc:
        raise SandboxCrashed(f"a converter sent a malformed render reply ({exc})", reason="protocol") from exc


def encode_build_request(
    document: bytes, pages: Sequence[PageText | None], pages_with_text: Collection[int]
) -> tuple[dict[str, Any], bytes]:
    """A ``build`` request: the document, then the OCR results as JSON."""
    results = json.dumps(
        {"pages": [p.to_dict() if p else None for p in pages], "with_text": sorted(pages_with_text)},
        separators=(",", ":"),
    ).encode()
    return {"op": "build", "document_bytes": len(document)}, document + results


def decode_build_request(header: dict[str, Any], payload: bytes) -> tuple[bytes, list[PageText | None], list[int]]:
    """Inverse of :func:`encode_build_request` (inside the jail)."""
    split = int(header["document_bytes"])
    results = json.loads(payload[split:])
    pages = [PageText.from_dict(p) if p else None for p in results["pages"]]
    return payload[:split], pages, [int(i) for i in results["with_text"]]


def _raise_refusal(header: dict[str, Any]) -> None:
    if header.get("ok"):
        return
    message = str(header.get("message", "unknown error"))[:2000]
    if header.get("error") in ("input", "memory"):
        raise InputDocumentError(message, reason=str(header.get("reason", "bad_input"))[:64])
    # An unexpected error while parsing this document would recur on every attempt: end the job
    # with it (and the message for the bug report) instead of retrying up to the attempt cap.
    raise InputDocumentError(
        f"The document could not be converted because of an unexpected error in the converter ({message}).",
        reason="conversion_failed",
    )


def _built_pdf(header: dict[str, Any], pdf: bytes) -> bytes:
    _raise_refusal(header)
    if not pdf.startswith(b"%PDF-") or b"%%EOF" not in pdf[-1024:]:
        raise SandboxCrashed("a converter sent something that is not a PDF", reason="protocol")
    return pdf


# -- converters ------------------------------------------------------------------------------


class InProcessConverter:
    """Parses in this process: only for ``textlayer ocr --no-sandbox`` on trusted files."""

    def __init__(self, limits: DocumentLimits) -> None:
        """Apply ``limits`` to every document."""
        self.limits = limits

    def inspect(self, data: bytes) -> Inspection:
        """See :class:`DocumentConverter`."""
        from textlayer.documents import inspect_document

        return inspect_document(data, self.limits)

    def pages(self, data: bytes, indexes: Sequence[int], *, force_ocr: bool = False) -> Iterator[EncodedPage]:
        """See :class:`DocumentConverter`."""
        from textlayer.documents import render_pages

        todo = list(indexes)
        while todo:
            batch = render_pages(
                data, todo[:RENDER_MAX_PAGES], self.limits, force_ocr=force_ocr, pixel_budget=RENDER_PIXEL_BUDGET
            )
            yield from batch
            todo = todo[len(batch) :]

    def build_pdf(self, data: bytes, pages: Sequence[PageText | None], pages_with_text: Collection[int]) -> bytes:
        """See :class:`DocumentConverter`."""
        from textlayer.pdf_overlay import build_searchable_pdf

        return build_searchable_pdf(data, pages, pages_with_text=pages_with_text)


class JailedConverter:
    """Converts in jailed workers without models; started on first use, safe to share between threads."""

    def __init__(self, policy: SandboxPolicy, limits: DocumentLimits) -> None:
        """``policy`` must have ``role="convert"``; nothing starts before the first document."""
        if policy.role != "convert":
            raise ValueError("a JailedConverter needs a policy with role='convert'")
        self.policy = policy
        self.limits = limits
        self._pool: SandboxPool | None = None
        self._lock = threading.Lock()

    def _started(self) -> SandboxPool:
        with self._lock:
            if self._pool is None:
                from textlayer.sandbox import SandboxPool

                self._pool = SandboxPool(self.policy).start()
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
        return self._call({"op": "inspect", "limits": self.limits.to_dict()}, data, self._inspection)

    def _inspection(self, header: dict[str, Any], payload: bytes) -> Inspection:
        _raise_refusal(header)
        kind, pages = header.get("kind"), header.get("pages")
        if kind not in KINDS or not isinstance(pages, int) or not 1 <= pages <= self.limits.max_pages or payload:
            raise SandboxCrashed(
                f"a converter sent an impossible inspection ({kind!r:.20}, {pages!r:.20})", reason="protocol"
            )
        return Inspection(kind, pages)

    def pages(self, data: bytes, indexes: Sequence[int], *, force_ocr: bool = False) -> Iterator[EncodedPage]:
        """See :class:`DocumentConverter`."""
        todo = list(indexes)
        while todo:
            asked = todo[:RENDER_MAX_PAGES]
            request = {
                "op": "render",
                "limits": self.limits.to_dict(),
                "pages": asked,
                "force_ocr": force_ocr,
                "pixel_budget": RENDER_PIXEL_BUDGET,
            }
            batch = self._call(request, data, functools.partial(decode_rendered, indexes=asked, document=data))
            yield from batch
            todo = todo[len(batch) :]

    def build_pdf(self, data: bytes, pages: Sequence[PageText | None], pages_with_text: Collection[int]) -> bytes:
        """See :class:`DocumentConverter`."""
        return self._call(*encode_build_request(data, pages, pages_with_text), _built_pdf)
