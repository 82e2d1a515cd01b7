"""Client file names: untrusted metadata, made safe to store, show, log and offer for download.

Storage keys never use them (always ``{tenant}/{job_id}/...``); results are served as attachments with
``nosniff`` so a polyglot upload cannot render in the browser (RELIABILITY.md §2.7, S3 of §3.5).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

__all__ = ["MAX_NAME_BYTES", "MAX_EXTENSION_CHARS", "display_name", "download_name", "download_headers"]

MAX_NAME_BYTES = 255
"""Most file systems cap a name at 255 bytes; so do we, in UTF-8."""

MAX_EXTENSION_CHARS = 16
"""A part after the last dot this short is an extension worth keeping when a name is truncated."""

FALLBACK_NAME = "document"

# Cc: controls (NUL, CR, LF, ESC...), Cf: format (bidi overrides and isolates, zero-width chars, BOM, tags),
# Zl/Zp: line and paragraph separators. They hide or reorder what a person sees, or split log and header lines.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})

# Windows opens a device instead of a file for these, whatever the extension (and trailing spaces).
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{device}{n}" for device in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)

# type/subtype with optional parameters, printable ASCII only: nothing here can end a header line.
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(?:;[\x20-\x7e]*)?")

# Not in the quoted ASCII fallback: quote and backslash would end or escape the quoted string, ; and , split
# the header in lax parsers, % is percent-decoded by some user agents (RFC 6266 appendix D).
_FALLBACK_UNSAFE = frozenset('"\\;,%')


def display_name(raw: str | bytes | None) -> str:
    """The client's file name made safe to store, show and log.

    Bytes are decoded as UTF-8, invalid sequences replaced. Only the last path component is kept, the name is
    NFC-normalised, invisible characters are removed, whitespace is collapsed, leading dots are stripped, Windows
    device names are prefixed with ``_`` and the result fits in ``MAX_NAME_BYTES`` bytes of UTF-8 (keeping a short
    extension). The result is never empty (``"document"`` when nothing usable is left), and
    ``display_name(display_name(x)) == display_name(x)``.

    Raises:
        TypeError: ``raw`` is not a string, bytes or None (a caller's bug, not a bad name).
    """
    if raw is None:
        text = ""
    elif isinstance(raw, bytes | bytearray):
        text = bytes(raw).decode("utf-8", errors="replace")
    elif isinstance(raw, str):
        text = raw
    else:
        raise TypeError(f"a file name is str, bytes or None, not {type(raw).__name__}")

    # Removal comes before NFC so that a mark split from its letter by a removed character still composes.
    text = unicodedata.normalize("NFC", _visible(text))
    # After NFC: composition never produces a separator, so nothing can reappear once the path is cut.
    text = re.split(r"[/\\]", text)[-1]
    # str.split() knows Unicode whitespace (NBSP, ideographic space...): one plain space per run.
    text = " ".join(text.split())
    # No hidden files, no "." or ".."; a space uncovered by the dots goes too.
    text = text.lstrip(". ")
    if not text:
        return FALLBACK_NAME
    text = _truncate(text, MAX_NAME_BYTES)
    if _is_windows_reserved(text):
        # The prefix is kept by a second truncation, which only ever cuts at the end.
        text = _truncate("_" + text, MAX_NAME_BYTES)
    return text


def download_name(display: str, *, suffix: str = ".pdf") -> str:
    """File name offered for a download of the searchable result: the stem of the display name + ``suffix``.

    ``scan.jpg`` gives ``scan.pdf``, ``document`` gives ``document.pdf``. The display name is cleaned first (so a raw
    name works too) and so is the result, so any input gives a safe name.
    """
    name = display_name(display)
    stem, dot, _extension = name.rpartition(".")
    # No leading dot survives display_name, so a dot found here always has a non-empty stem before it.
    return display_name((stem if dot else name) + suffix)


def download_headers(display: str, *, suffix: str = ".pdf", content_type: str = "application/pdf") -> dict[str, str]:
    """HTTP headers for serving a result: safe content type, attachment disposition, nosniff.

    ``Content-Disposition`` carries an ASCII ``filename`` for old user agents and the exact name (from
    :func:`download_name` with ``suffix``) as ``filename*`` (RFC 6266, RFC 5987). ``attachment``, ``nosniff`` and a
    sandboxing CSP keep a polyglot result from being rendered or run by the browser. No value can contain CR, LF or
    NUL. ``content_type`` is a fixed value chosen by the caller, checked.

    Raises:
        ValueError: ``content_type`` is not a plain printable-ASCII ``type/subtype[; params]``.
    """
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise ValueError(f"not a safe content type: {content_type!r}")
    name = download_name(display, suffix=suffix)
    fallback = "".join("_" if not (" " <= char <= "~") or char in _FALLBACK_UNSAFE else char for char in name)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    return {
        "Content-Type": content_type,
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    }


def _visible(text: str) -> str:
    """``text`` without invisible characters: whitespace ones become a space, the others go."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            # A lone surrogate (e.g. from surrogateescape) cannot be encoded: replace it like bad UTF-8.
            kept.append("\ufffd")
        elif category not in _INVISIBLE_CATEGORIES:
            kept.append(char)
        elif char.isspace():
            # Tab, CR, LF, NEL, U+2028...: keep the words apart, "a\nb" reads "a b" rather than "ab".
            kept.append(" ")
    return "".join(kept)


def _truncate(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` bytes of UTF-8 at a character boundary, keeping a short extension."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension) <= MAX_EXTENSION_CHARS:
        kept = dot + extension
        # The stem keeps at least limit - 65 bytes (16 four-byte chars and a dot), so it is never cut to nothing.
        return _cut(stem, limit - len(kept.encode())).rstrip() + kept
    return _cut(name, limit).rstrip()


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that fits in ``limit`` bytes of UTF-8."""
    # Only the last character can be cut in half; "ignore" drops its leftover bytes.
    return text.encode()[:limit].decode("utf-8", errors="ignore")


def _is_windows_reserved(name: str) -> bool:
    """Whether Windows would open a device for ``name`` (``CON``, ``con.txt``, ``LPT1 .tar.gz``...)."""
    base = name.split(".", 1)[0].rstrip(" ")
    # ASCII-only case folding: "ı".upper() is "I", but Windows does not take "conın$" for "CONIN$".
    return "".join(char.upper() if char.isascii() else char for char in base) in _WINDOWS_RESERVED
