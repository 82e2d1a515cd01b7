"""The API's one error shape ``{"error": {"code", "message"}}``: an ApiError carries its HTTP status and headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textlayer.errors import InputDocumentError, TextlayerError

STATUS_BY_REASON: dict[str, int] = {
    "empty_file": 400,
    "file_too_large": 413,
    "unsupported_type": 415,
    "job_not_found": 404,
    "job_running": 409,
    "blob_not_found": 404,
    "job_store_error": 503,
    "search_index_error": 503,
    "stack_not_running": 503,
}
"""HTTP status of a :class:`~textlayer.errors.TextlayerError` that reaches the API, by its reason code."""


class ApiError(TextlayerError):
    """A refusal with an HTTP status; ``reason`` is the ``code`` of the error body."""

    def __init__(self, status: int, reason: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        """Refuse with ``status``, the stable ``reason`` code, a sentence, and extra response ``headers``."""
        super().__init__(message, reason=reason)
        self.status = status
        self.headers = dict(headers or {})


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message}}


def status_of(exc: TextlayerError) -> int:
    """The HTTP status that answers ``exc``."""
    if isinstance(exc, ApiError):
        return exc.status
    if exc.reason in STATUS_BY_REASON:
        return STATUS_BY_REASON[exc.reason]
    if isinstance(exc, InputDocumentError):
        return 422
    return 503 if exc.retryable else 500


def not_found(job_id: str) -> ApiError:
    """The answer for a job that does not exist or belongs to another tenant (the same, so ids cannot be probed)."""
    return ApiError(404, "job_not_found", f"there is no job {job_id[:64]!r}")
