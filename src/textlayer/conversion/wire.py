"""The wire format between the host and a jailed converter; every reply is checked like untrusted input.

Pure: used on the host (:mod:`textlayer.conversion.converters`) and inside the jail
(:mod:`textlayer.conversion.converter_role`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from textlayer.build_options import MAX_SKEW_DEG, BuildOptions, BuiltPdf
from textlayer.elements import PageText
from textlayer.errors import InputDocumentError, SandboxCrashed, TextlayerError
from textlayer.media.pages import EncodedPage, Inspection
from textlayer.media.sniff import KINDS
from textlayer.sandbox.protocol import raise_for_error_reply

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
                "skew": page.skew_deg,
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
            skew = entry.get("skew", 0.0)
            if not (isinstance(skew, int | float) and abs(skew) <= MAX_SKEW_DEG):
                raise ValueError(f"impossible skew {skew!r:.40}")
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
            pages.append(EncodedPage(index, data, 0, dpi, entry["has_text"], entry["blank"], float(skew)))
        if offset != len(payload):
            raise ValueError("trailing bytes after the page images")
        return pages
    except (KeyError, TypeError, ValueError) as exc:
        raise SandboxCrashed(f"a converter sent a malformed render reply ({exc})", reason="protocol") from exc


def encode_build_request(
    document: bytes,
    pages: Sequence[PageText | None],
    pages_with_text: Collection[int],
    options: BuildOptions | None = None,
) -> tuple[dict[str, Any], bytes]:
    """A ``build`` request: the document, then the OCR results and the build options as JSON."""
    results = json.dumps(
        {
            "pages": [p.to_dict() if p else None for p in pages],
            "with_text": sorted(pages_with_text),
            "options": (options or BuildOptions()).to_dict(),
        },
        separators=(",", ":"),
    ).encode()
    return {"op": "build", "document_bytes": len(document)}, document + results


def decode_build_request(
    header: dict[str, Any], payload: bytes
) -> tuple[bytes, list[PageText | None], list[int], BuildOptions]:
    """Inverse of :func:`encode_build_request` (inside the jail)."""
    split = int(header["document_bytes"])
    results = json.loads(payload[split:])
    pages = [PageText.from_dict(p) if p else None for p in results["pages"]]
    options = BuildOptions.from_dict(results.get("options") or {})
    return payload[:split], pages, [int(i) for i in results["with_text"]], options


def _conversion_failed(message: str) -> TextlayerError:
    # An unexpected error while parsing this document would recur on every attempt: end the job
    # with it (and the message for the bug report) instead of retrying up to the attempt cap.
    return InputDocumentError(
        f"The document could not be converted because of an unexpected error in the converter ({message}).",
        reason="conversion_failed",
    )


def _raise_refusal(header: dict[str, Any]) -> None:
    raise_for_error_reply(header, _conversion_failed)


def built_pdf(header: dict[str, Any], pdf: bytes) -> BuiltPdf:
    """Check a ``build`` reply: a refusal raises, and what comes back must look like a PDF.

    Raises:
        InputDocumentError: the converter refused the document.
        SandboxCrashed: the reply is not a PDF (``reason="protocol"``).
    """
    _raise_refusal(header)
    problems = header.get("problems", [])
    if not pdf.startswith(b"%PDF-") or b"%%EOF" not in pdf[-1024:]:
        raise SandboxCrashed("a converter sent something that is not a PDF", reason="protocol")
    if not isinstance(problems, list) or len(problems) > 20 or not all(isinstance(p, str) for p in problems):
        raise SandboxCrashed("a converter sent an impossible list of problems", reason="protocol")
    return BuiltPdf(pdf, tuple(p[:300] for p in problems))


def decode_inspection(header: dict[str, Any], payload: bytes, *, max_pages: int) -> Inspection:
    """Check an ``inspect`` reply (untrusted).

    Raises:
        InputDocumentError: the converter refused the document.
        SandboxCrashed: the reply is impossible (``reason="protocol"``).
    """
    _raise_refusal(header)
    kind, pages = header.get("kind"), header.get("pages")
    if kind not in KINDS or not isinstance(pages, int) or not 1 <= pages <= max_pages or payload:
        raise SandboxCrashed(
            f"a converter sent an impossible inspection ({kind!r:.20}, {pages!r:.20})", reason="protocol"
        )
    return Inspection(kind, pages)
