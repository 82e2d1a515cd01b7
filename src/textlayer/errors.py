"""The textlayer exception tree; behaviour (retryable, gRPC status, exit code, reason) lives in class attributes.

Exit codes are OCRmyPDF's (``ocrmypdf.ExitCode``), so scripts written for it read ours the same way::

    TextlayerError            15 other error
    ├── UsageError             1 bad arguments or settings
    ├── InputDocumentError     2 the input file (8 when it is encrypted: REASON_EXIT_CODES)
    ├── ModelError             3 a missing dependency (model package or file)
    ├── OutputInvalid          4 the output was written but does not validate (PDF/A)
    ├── PriorOcrFound          6 every page already has text; nothing to do
    ├── SandboxError, OcrUnavailable, SearchIndexError   15
    (Ctrl-C: 130)
"""

from __future__ import annotations

from typing import ClassVar


class TextlayerError(Exception):
    """Base of every error textlayer raises on purpose."""

    retryable: bool = False
    grpc_status: str = "INTERNAL"
    exit_code: int = 15
    """The command line's exit status for this error (OCRmyPDF's ``other_error``)."""
    reason: str = "error"
    """Stable machine-readable reason code (job stores and APIs report it)."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        """Keep the human message; ``reason`` overrides the class's reason code."""
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class UsageError(TextlayerError):
    """The command line or a setting asks for something that cannot work (OCRmyPDF's ``bad_args``)."""

    exit_code = 1
    reason = "bad_arguments"


class InputDocumentError(TextlayerError):
    """Uploaded document unusable (not an image/PDF, encrypted, a bomb...); the message says why in plain words."""

    grpc_status = "INVALID_ARGUMENT"
    exit_code = 2
    reason = "bad_input"
    REASON_EXIT_CODES: ClassVar[dict[str, int]] = {"encrypted_pdf": 8}
    """Reasons with an exit status of their own (OCRmyPDF's ``encrypted_pdf``); the reason crosses the jail, the
    class does not."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        """As :class:`TextlayerError`; the exit code follows the reason."""
        super().__init__(message, reason=reason)
        self.exit_code = self.REASON_EXIT_CODES.get(self.reason, type(self).exit_code)


class ModelError(TextlayerError):
    """A model file is missing, tampered with or does not match the manifest (sha256, shape)."""

    grpc_status = "FAILED_PRECONDITION"
    exit_code = 3
    reason = "model_error"


class OutputInvalid(TextlayerError):
    """The output was written but does not meet what was asked of it (a PDF/A check failed); the message lists why."""

    exit_code = 4
    reason = "output_invalid"


class PriorOcrFound(TextlayerError):
    """Every page already has text: nothing to OCR (``--skip-text`` copies the file, ``--force-ocr`` redoes it)."""

    exit_code = 6
    reason = "prior_ocr_found"


class SandboxError(TextlayerError):
    """The jailed worker failed."""

    reason = "sandbox_error"


class SandboxTimeout(SandboxError):
    """The jailed worker ran past its wall clock and was killed (the pool retries once)."""

    retryable = True
    grpc_status = "DEADLINE_EXCEEDED"
    reason = "timeout"


class SandboxCrashed(SandboxError):
    """The jailed worker died (signal, OOM or seccomp kill); ``reason`` names the cause."""

    reason = "worker_crashed"
    returncode: int | None = None
    """The worker launcher's exit status (``-signal`` for a signal), when known."""


class OcrUnavailable(TextlayerError):
    """No OCR server could be reached."""

    retryable = True
    grpc_status = "UNAVAILABLE"
    reason = "ocr_unavailable"


class SearchIndexError(TextlayerError):
    """The search index could not be read or written."""

    reason = "search_index_error"
