"""Frames between the supervisor and a jailed worker: ``u32 total | u32 header_len | JSON header | payload``.

Never pickle: both sides treat what they receive as untrusted, check sizes before allocating
and reject anything malformed as a protocol violation. Pure, apart from the read/write helpers
that take a file descriptor.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from typing import Any

from textlayer.errors import InputDocumentError, TextlayerError

PREFIX = struct.Struct("<II")
"""Total length (header + payload) and header length, little-endian."""

MAX_HEADER_BYTES = 64 * 1024
"""Headers are small JSON objects; anything bigger is hostile."""

EXIT_PROTOCOL = 65
"""Exit status of a worker that received a malformed or oversized frame."""

EXIT_CONFIG = 78
"""Exit status of a worker whose jail could not be built as the policy requires (no restart loop)."""


class ProtocolViolation(Exception):
    """A frame broke the protocol (too big, malformed, truncated); the connection cannot be trusted."""


def encode(header: dict[str, Any], payload: bytes | memoryview = b"") -> bytes:
    """One frame; the header must be JSON-serialisable."""
    raw_header = json.dumps(header, separators=(",", ":")).encode()
    if len(raw_header) > MAX_HEADER_BYTES:
        raise ProtocolViolation(f"header of {len(raw_header)} bytes is over {MAX_HEADER_BYTES}")
    return PREFIX.pack(len(raw_header) + len(payload), len(raw_header)) + raw_header + bytes(payload)


def parse_prefix(prefix: bytes, max_payload_bytes: int) -> tuple[int, int]:
    """Check a frame's 8-byte prefix against the caps; returns (header length, payload length)."""
    if len(prefix) != PREFIX.size:
        raise ProtocolViolation("truncated frame prefix")
    total, header_len = PREFIX.unpack(prefix)
    if header_len > MAX_HEADER_BYTES or header_len > total:
        raise ProtocolViolation(f"bad header length {header_len} (frame {total})")
    payload_len = total - header_len
    if payload_len > max_payload_bytes:
        raise ProtocolViolation(f"payload of {payload_len} bytes is over the cap of {max_payload_bytes}")
    return header_len, payload_len


def parse_header(raw: bytes) -> dict[str, Any]:
    """Decode a JSON header that must be an object."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolViolation(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolViolation("header is not a JSON object")
    return header


def read_exactly(fd: int, view: memoryview) -> None:
    """Fill ``view`` from ``fd`` (``readv`` into a caller-owned buffer: no allocation per read)."""
    filled = 0
    while filled < len(view):
        count = os.readv(fd, [view[filled:]])
        if count == 0:
            raise EOFError("peer closed the connection")
        filled += count


def write_all(fd: int, data: bytes) -> None:
    """Write the whole frame (``write`` only: the worker's filter has no send/sendmsg)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def raise_for_error_reply(header: dict[str, Any], failure: Callable[[str], TextlayerError]) -> None:
    """Turn an error reply (untrusted, from :class:`~textlayer.sandbox.handlers.Handlers`) into an exception.

    The input's own faults (``input``, ``memory``) keep their reason code; anything else becomes
    ``failure(message)``, which each role words for its callers.

    Raises:
        InputDocumentError: the worker refused the input.
        TextlayerError: what ``failure`` returns, for every other error.
    """
    if header.get("ok"):
        return
    message = str(header.get("message", "unknown error"))[:2000]
    if header.get("error") in ("input", "memory"):
        raise InputDocumentError(message, reason=str(header.get("reason", "bad_input"))[:64])
    raise failure(message)
