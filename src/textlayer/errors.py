"""The textlayer exception tree; behaviour (retryable, gRPC status, exit code, reason) lives in class attributes."""

from __future__ import annotations


class TextlayerError(Exception):
    """Base of every error textlayer raises on purpose."""

    retryable: bool = False
    grpc_status: str = "INTERNAL"
    exit_code: int = 1
    reason: str = "error"
    """Stable machine-readable reason code (job stores and APIs report it)."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        """Keep the human message; ``reason`` overrides the class's reason code."""
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InputDocumentError(TextlayerError):
    """Uploaded document unusable (not an image/PDF, encrypted, a bomb...); the message says why in plain words."""

    grpc_status = "INVALID_ARGUMENT"
    exit_code = 2
    reason = "bad_input"


class ModelError(TextlayerError):
    """A model file is missing, tampered with or does not match the manifest (sha256, shape)."""

    grpc_status = "FAILED_PRECONDITION"
    exit_code = 3
    reason = "model_error"


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
