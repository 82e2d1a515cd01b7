"""What kind of document a file is, from the magic bytes at offset 0 and nothing else (pure).

The one look at untrusted bytes allowed outside a jail: declared types and file names are
metadata, and a JPEG with a PDF appended is a JPEG (design/RELIABILITY.md, decisions and F12).
"""

from __future__ import annotations

from textlayer.errors import InputDocumentError

_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}

KINDS = ("PDF", "PNG", "JPEG", "TIFF")
"""Every kind of document accepted."""


def sniff_image_format(data: bytes) -> str | None:
    """'PNG', 'JPEG' or 'TIFF' by the magic bytes at offset 0, else None."""
    for magic, name in _IMAGE_MAGIC.items():
        if data.startswith(magic):
            return name
    return None


def document_kind(data: bytes) -> str:
    """'PDF', 'PNG', 'JPEG' or 'TIFF' by magic bytes at offset 0.

    Raises:
        InputDocumentError: empty (``empty_file``) or of another type (``unsupported_type``).
    """
    if not data:
        raise InputDocumentError("The file is empty.", reason="empty_file")
    if data.startswith(b"%PDF-"):
        return "PDF"
    kind = sniff_image_format(data)
    if kind is None:
        raise InputDocumentError(
            "The file is not a PDF, PNG, JPEG or TIFF document (the type is read from the file's first bytes, "
            "not from its name).",
            reason="unsupported_type",
        )
    return kind
