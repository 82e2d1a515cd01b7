"""A streamed upload: body -> a part file in the blob root (hashed and sniffed on the way) -> a job, or a refusal.

Never held whole in memory: chunks go to the part file as they come (the server stops reading from a client whose
chunks pile up). Refused as soon as it can be: 413 from ``Content-Length`` before a byte is read, or when the bytes
received pass the limit; 415 from the first eight bytes; 400 when empty; 408 when the client stops sending for
``TEXTLAYER_UPLOAD_IDLE_S``; 429 (limits) before reading. Only a complete upload makes a job: its row is created,
the part file is renamed to ``{tenant}/{job}/input`` and the job is published. A client that disconnects, or any
refusal, leaves no part file, row or message. The same ``Idempotency-Key`` with the same bytes returns the job made
the first time (200); with other bytes, 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from textlayer.api.context import ApiContext
from textlayer.api.errors import ApiError
from textlayer.api.limits import Admission, admit_upload, stored_full
from textlayer.api.webhooks import CallbackRefused
from textlayer.files import fsync_dir, make_dirs
from textlayer.media.sniff import document_kind
from textlayer.store import Job
from textlayer.store.names import display_name

log = logging.getLogger(__name__)

MIB = 1024 * 1024

SNIFF_BYTES = 8
"""Enough bytes to tell every accepted type by its magic (PNG's is the longest)."""

MAX_IDEMPOTENCY_KEY_CHARS = 255


@dataclass(frozen=True)
class Accepted:
    """The job an upload made, or found (``created`` False: its Idempotency-Key's first job)."""

    job: Job
    created: bool


def _too_large(limit_mib: int) -> ApiError:
    return ApiError(
        413,
        "file_too_large",
        f"the upload is larger than {limit_mib} MiB; split the document or lower its resolution",
    )


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise ApiError(400, "bad_request", "Content-Length must be a whole number")
    return int(raw)


def _check_key(key: str | None) -> None:
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isprintable() and key.isascii()):
        raise ApiError(400, "bad_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters")


def _open_part(folder: Path) -> tuple[Path, IO[bytes]]:
    make_dirs(folder)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    return Path(name), os.fdopen(fd, "wb")


def _finish_part(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


async def _receive(request: Request, context: ApiContext, file: IO[bytes], admission: Admission) -> tuple[int, str]:
    """Copy the body into ``file``; returns its size and SHA-256, or raises the refusal."""
    settings = context.settings
    limit = settings.max_upload_mib * MIB
    digest = hashlib.sha256()
    head = b""
    size = 0
    stream = request.stream()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(anext(stream), settings.upload_idle_s)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise ApiError(
                    408,
                    "upload_timeout",
                    f"nothing was received for {settings.upload_idle_s} s; the upload was dropped",
                ) from None
            if not chunk:
                continue
            size += len(chunk)
            context.metrics.upload_bytes.inc(len(chunk))
            if size > limit:
                raise _too_large(settings.max_upload_mib)
            if size > admission.room_bytes:
                raise stored_full(admission.max_stored_mib)
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) == SNIFF_BYTES:
                    document_kind(head)  # InputDocumentError: unsupported_type (415)
            digest.update(chunk)
            # A write of one chunk to the page cache takes microseconds: not worth a thread hop.
            file.write(chunk)
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
    document_kind(head)  # empty_file (400), or a short file's type
    return size, digest.hexdigest()


def _commit(
    context: ApiContext,
    tenant: str,
    part: Path,
    *,
    size: int,
    sha256: str,
    filename: str | None,
    idempotency_key: str | None,
    callback_url: str | None,
) -> Accepted:
    """Create the job (or find the key's), move the part file into place, add its callback, publish it."""
    job, created = context.jobs.create_if_new(
        tenant,
        filename=display_name(filename),
        size_bytes=size,
        sha256=sha256,
        idempotency_key=idempotency_key,
    )
    if not created:
        if job.sha256 != sha256:
            raise ApiError(
                409,
                "idempotency_conflict",
                f"the Idempotency-Key was used for another document (job {job.id}); use a new key for new bytes",
            )
        return Accepted(job, created=False)
    target = context.blobs.path(tenant, job.id, "input")
    try:
        make_dirs(target.parent)
        part.replace(target)
        fsync_dir(target.parent)
    except OSError as exc:
        context.jobs.fail(job.id, reason="blob_write_failed", message=f"the upload could not be stored: {exc}")
        raise ApiError(503, "blob_write_failed", "the upload could not be stored; try again") from exc
    if callback_url:
        context.deliveries.add(tenant, job.id, callback_url)
    try:
        context.publish(job.id)
    except Exception as exc:  # the job row is the outbox: the reconciler publishes it again
        log.warning("job %s accepted but not published (%s); the reconciler will publish it", job.id, exc)
    log.info("job %s accepted for tenant %r (%d bytes)", job.id, tenant, size)
    return Accepted(job, created=True)


async def accept_upload(
    request: Request,
    context: ApiContext,
    tenant: str,
    *,
    filename: str | None,
    callback_url: str | None,
    idempotency_key: str | None,
) -> Accepted:
    """Receive one upload and make its job (see the module docstring).

    Raises:
        ApiError: A refusal (400, 408, 409, 413, 422, 429, 503).
        InputDocumentError: Empty (400) or not a PDF, PNG, JPEG or TIFF (415).
        starlette.requests.ClientDisconnect: The client went away; nothing was left behind.
    """
    settings = context.settings
    declared = _declared_length(request)
    if declared is not None and declared > settings.max_upload_mib * MIB:
        raise _too_large(settings.max_upload_mib)
    _check_key(idempotency_key)
    if callback_url:
        try:
            await run_in_threadpool(context.policy.check, callback_url)
        except CallbackRefused as exc:
            raise ApiError(422, exc.reason, exc.message) from exc
    admission = await run_in_threadpool(admit_upload, settings, context.tenants, context.jobs, tenant, declared)
    part, file = await run_in_threadpool(_open_part, context.uploads_dir)
    try:
        try:
            size, sha256 = await _receive(request, context, file, admission)
            await run_in_threadpool(_finish_part, file)
        finally:
            file.close()
        return await run_in_threadpool(
            _commit,
            context,
            tenant,
            part,
            size=size,
            sha256=sha256,
            filename=filename,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
        )
    finally:
        # Gone when it became a job's input; anything else (a refusal, a disconnect) leaves nothing behind.
        part.unlink(missing_ok=True)
