"""The endpoints: /v1/documents, /v1/jobs, /v1/search, /healthz, /readyz, /metrics."""

from __future__ import annotations

import base64
import binascii
import json
import pathlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.requests import ClientDisconnect

from textlayer import formats
from textlayer.api.auth import Reader, Writer, context_of
from textlayer.api.errors import ApiError, error_body, not_found
from textlayer.api.metrics import CONTENT_TYPE
from textlayer.api.retention import delete_document
from textlayer.api.schemas import (
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    ErrorBody,
    Health,
    JobList,
    JobOut,
    Readiness,
    SearchHitOut,
    SearchResult,
    job_summary,
)
from textlayer.api.tenants import Principal
from textlayer.api.uploads import accept_upload
from textlayer.elements import PageRecord
from textlayer.errors import TextlayerError
from textlayer.store import SUCCEEDED_STATES, Job, JobNotFound, JobState
from textlayer.store.names import download_headers

router = APIRouter()

MAX_PAGE_SIZE = 100
"""Largest ``limit`` of a listing or a search."""

IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"
"""Printable ASCII; spaces only inside (HTTP strips them at either end)."""

MAX_SEARCH_OFFSET = 10_000
"""How deep search results can be paged."""

_DESCRIPTIONS = {
    400: "Bad request (an empty upload: empty_file)",
    401: "No valid bearer token",
    403: "The token may only read",
    404: "No such job (or another tenant's)",
    408: "The upload stalled",
    409: "Conflict (Idempotency-Key reused for other bytes, a job not finished or still running)",
    413: "The upload is larger than the limit (file_too_large)",
    415: "Not a PDF, PNG, JPEG or TIFF by its first bytes (unsupported_type)",
    422: "A parameter is invalid",
    429: "A tenant limit was reached; see Retry-After",
    503: "A store or the broker is not available now",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    found: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        found[code] = {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        if code == 429:
            found[code]["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds"}}
        if code == 401:
            found[code]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return found


READ_ERRORS = _errors(401, 404, 422, 503)

JobId = Annotated[str, Path(description="The job's id (32 hex digits).", max_length=64)]


def _get_job(principal: Principal, request: Request, job_id: str) -> Job:
    try:
        return context_of(request).jobs.get(job_id, principal.tenant)
    except JobNotFound:
        raise not_found(job_id) from None


def _encode_cursor(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise ApiError(400, "bad_cursor", "the cursor is not one this API returned")
    return value


# -- health and metrics (no token but /readyz) ----------------------------------------------------------------


@router.get("/healthz", response_model=Health, tags=["health"], summary="The process is up")
def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    tags=["health"],
    summary="Redis, the job store, the index and an OCR server answer",
    responses={
        503: {"model": ErrorBody, "description": "A dependency does not answer"},
        **_errors(401),
    },
)
def readyz(request: Request, principal: Reader) -> Any:
    """200 when Redis, the job store, the search index and at least one OCR server (SERVING) answer, else 503.

    Needs a token (any tenant's): which dependency is down is for operators, not for the world.
    """
    checks: dict[str, bool] = {}
    for name, check in context_of(request).ready_checks.items():
        try:
            checks[name] = bool(check())
        except Exception:
            checks[name] = False
    failed = sorted(name for name, ok in checks.items() if not ok)
    if failed:
        return JSONResponse(error_body("not_ready", "not answering: " + ", ".join(failed)), status_code=503)
    return {"status": "ready", "checks": checks}


@router.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Text format"}},
)
def metrics(request: Request) -> Response:
    """Requests by route and status, upload bytes, jobs by state, queue depth, webhook deliveries by outcome."""
    return Response(context_of(request).metrics.render(), media_type=CONTENT_TYPE)


# -- documents --------------------------------------------------------------------------------------


@router.post(
    "/v1/documents",
    status_code=202,
    response_model=JobOut,
    tags=["documents"],
    summary="Upload a document (the raw bytes are the body)",
    responses={
        202: {"description": "Accepted: a new job", "headers": {"Location": {"schema": {"type": "string"}}}},
        200: {
            "model": JobOut,
            "description": "The same Idempotency-Key and bytes as before: the job made then",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **_errors(400, 401, 403, 408, 409, 413, 415, 422, 429, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The document's bytes (PDF, PNG, JPEG or TIFF; the type is read from its first bytes).",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_document(
    request: Request,
    response: Response,
    principal: Writer,
    filename: Annotated[
        str | None, Query(max_length=1024, description="The client's file name (metadata only).")
    ] = None,
    callback_url: Annotated[
        str | None,
        Query(max_length=2048, description="POSTed a signed summary when the job ends (Standard Webhooks)."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Same key + same bytes -> the same job (printable ASCII, no space at either end).",
        ),
    ] = None,
) -> Any:
    """Stream the body to the blob store and queue a job; see the module docstring of textlayer.api.uploads."""
    context = context_of(request)
    try:
        accepted = await accept_upload(
            request,
            context,
            principal.tenant,
            filename=filename,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )
    except ClientDisconnect:
        context.metrics.uploads.labels("disconnected").inc()
        return Response(status_code=499)
    except ApiError as exc:
        context.metrics.uploads.labels("timeout" if exc.status == 408 else "refused").inc()
        raise
    except TextlayerError:
        context.metrics.uploads.labels("refused").inc()
        raise
    context.metrics.uploads.labels("accepted" if accepted.created else "duplicate").inc()
    response.headers["Location"] = f"/v1/jobs/{accepted.job.id}"
    response.status_code = 202 if accepted.created else 200
    return job_summary(accepted.job)


@router.delete(
    "/v1/documents/{job_id}",
    status_code=204,
    tags=["documents"],
    summary="Delete a document: its blobs, index rows, job row and deliveries",
    responses={204: {"description": "Deleted; a later GET is 404"}, **_errors(401, 403, 404, 409, 422, 503)},
)
def delete(request: Request, job_id: JobId, principal: Writer) -> Response:
    """Delete the job and everything it stored; a job being processed is 409 (try again once it ends)."""
    try:
        delete_document(context_of(request), principal.tenant, job_id)
    except JobNotFound:
        raise not_found(job_id) from None
    return Response(status_code=204)


# -- jobs ---------------------------------------------------------------------------------------------


@router.get(
    "/v1/jobs",
    response_model=JobList,
    tags=["jobs"],
    summary="The tenant's jobs",
    responses=_errors(400, 401, 422, 503),
)
def list_jobs(
    request: Request,
    principal: Reader,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page.")] = None,
) -> Any:
    """The tenant's jobs, newest first, a page at a time."""
    after = None
    if cursor is not None:
        value = _decode_cursor(cursor)
        if not isinstance(value.get("t"), int | float) or not isinstance(value.get("i"), str):
            raise ApiError(400, "bad_cursor", "the cursor is not one this API returned")
        after = (float(value["t"]), value["i"])
    jobs = context_of(request).jobs.page(principal.tenant, state=state, limit=limit + 1, after=after)
    more = len(jobs) > limit
    jobs = jobs[:limit]
    next_cursor = _encode_cursor({"t": jobs[-1].created_at, "i": jobs[-1].id}) if more else None
    return {"jobs": [job_summary(job) for job in jobs], "next_cursor": next_cursor}


@router.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"], summary="A job's state", responses=READ_ERRORS)
def get_job(request: Request, job_id: JobId, principal: Reader) -> Any:
    """State, pages done and total, failure reason, page errors, timings."""
    return job_summary(_get_job(principal, request, job_id))


def _finished(principal: Principal, request: Request, job_id: str) -> Job:
    job = _get_job(principal, request, job_id)
    if job.state == JobState.FAILED:
        raise ApiError(409, "job_failed", f"job {job.id} FAILED ({job.reason}): {job.message}")
    if job.state not in SUCCEEDED_STATES:
        raise ApiError(409, "job_not_finished", f"job {job.id} is {job.state.value}; its results come when it ends")
    return job


def _stored(request: Request, job: Job, name: str) -> pathlib.Path:
    """A result file of the job; 404 when it is gone (deleted while the request ran)."""
    path = context_of(request).blobs.path(job.tenant, job.id, name)
    if not path.is_file():
        raise not_found(job.id)
    return path


def _records(request: Request, job: Job) -> list[PageRecord]:
    blobs = context_of(request).blobs
    return [PageRecord.from_json(blobs.get_page(job.tenant, job.id, i)) for i in range(job.pages_total or 0)]


DOWNLOAD_ERRORS = _errors(401, 404, 409, 422, 503)


def _binary(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"content": {media_type: {"schema": {"type": "string", "format": "binary"}}}, "description": description},
        **DOWNLOAD_ERRORS,
    }


@router.get(
    "/v1/jobs/{job_id}/pdf",
    tags=["results"],
    summary="The searchable PDF",
    response_class=Response,
    responses=_binary("application/pdf", "The searchable PDF, as an attachment"),
)
def get_pdf(request: Request, job_id: JobId, principal: Reader) -> Response:
    """The input with its invisible text layer."""
    job = _finished(principal, request, job_id)
    path = _stored(request, job, "output.pdf")
    return FileResponse(path, headers=download_headers(job.filename, suffix=".pdf"), media_type="application/pdf")


@router.get(
    "/v1/jobs/{job_id}/text",
    tags=["results"],
    summary="The plain text",
    response_class=Response,
    responses=_binary("text/plain", "Reading-order text, a form feed between pages"),
)
def get_text(request: Request, job_id: JobId, principal: Reader) -> Response:
    """Reading-order text of every page, a form feed between pages."""
    job = _finished(principal, request, job_id)
    path = _stored(request, job, "text.txt")
    media = "text/plain; charset=utf-8"
    return FileResponse(
        path, headers=download_headers(job.filename, suffix=".txt", content_type=media), media_type=media
    )


def _rendered(request: Request, job_id: str, principal: Principal, kind: str, suffix: str, media: str) -> Response:
    """The finished job's records in ``kind`` (the one result JSON, hOCR or ALTO), as an attachment."""
    job = _finished(principal, request, job_id)
    content = formats.render(kind, _records(request, job), filename=job.filename, job=job.id)
    headers = download_headers(job.filename, suffix=suffix, content_type=media)
    return Response(content.encode(), headers=headers, media_type=media)


@router.get(
    "/v1/jobs/{job_id}/json",
    tags=["results"],
    summary="The result JSON: words, boxes and confidences per page",
    response_class=Response,
    responses=_binary("application/json", "The result JSON (schemas/result.schema.json): a record per page"),
)
def get_json(request: Request, job_id: JobId, principal: Reader) -> Response:
    """Every page's record: its words with their quads and confidences, rotation, whether it was blank or failed."""
    return _rendered(request, job_id, principal, "json", ".json", "application/json")


@router.get(
    "/v1/jobs/{job_id}/hocr",
    tags=["results"],
    summary="hOCR",
    response_class=Response,
    responses=_binary("application/xhtml+xml", "hOCR 1.2"),
)
def get_hocr(request: Request, job_id: JobId, principal: Reader) -> Response:
    """The hOCR 1.2 of every page (served as an attachment, never rendered)."""
    return _rendered(request, job_id, principal, "hocr", ".hocr", "application/xhtml+xml")


@router.get(
    "/v1/jobs/{job_id}/alto",
    tags=["results"],
    summary="ALTO 4 XML",
    response_class=Response,
    responses=_binary("application/xml", "ALTO 4.4: blocks in reading order, lines, strings with boxes and WC"),
)
def get_alto(request: Request, job_id: JobId, principal: Reader) -> Response:
    """The ALTO 4.4 XML of every page (served as an attachment)."""
    return _rendered(request, job_id, principal, "alto", ".xml", "application/xml")


@router.get(
    "/v1/jobs/{job_id}/deliveries",
    response_model=DeliveryList,
    tags=["jobs"],
    summary="The job's webhook deliveries and every attempt",
    responses=READ_ERRORS,
)
def get_deliveries(request: Request, job_id: JobId, principal: Reader) -> Any:
    """Each callback of the job: its state, next attempt, and every attempt with the receiver's status."""
    job = _get_job(principal, request, job_id)
    found = context_of(request).deliveries.for_job(principal.tenant, job.id)
    return DeliveryList(
        deliveries=[
            DeliveryOut(
                id=d.id,
                url=d.url,
                state=d.state,  # type: ignore[arg-type]
                next_attempt_at=d.next_attempt_at if d.state == "pending" else None,
                attempts=[AttemptOut(**vars(a)) for a in d.history],
            )
            for d in found
        ]
    )


# -- search -------------------------------------------------------------------------------------------


@router.get(
    "/v1/search",
    response_model=SearchResult,
    tags=["search"],
    summary="Pages whose text has every word of q",
    responses=_errors(400, 401, 422, 503),
)
def search(
    request: Request,
    principal: Reader,
    q: Annotated[str, Query(max_length=1000, description="Words to find (case and accents ignored, whole words).")],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Any:
    """Hits with the job, the page, a snippet with the matched words marked, and each matched word's box."""
    offset = 0
    if cursor is not None:
        value = _decode_cursor(cursor)
        raw = value.get("o")
        offset = raw if isinstance(raw, int) and not isinstance(raw, bool) else -1
        if not 0 <= offset <= MAX_SEARCH_OFFSET:
            raise ApiError(400, "bad_cursor", "the cursor is not one this API returned")
    context = context_of(request)
    hits = context.index.search(principal.tenant, q, limit=limit + 1, offset=offset)
    more = len(hits) > limit and offset + limit < MAX_SEARCH_OFFSET
    out = []
    for hit in hits[:limit]:
        size: tuple[int | None, int | None, float | None] = (None, None, None)
        try:
            page = PageRecord.from_json(context.blobs.get_page(principal.tenant, hit.document_id, hit.page)).page
            if page is not None:
                size = (page.width, page.height, page.dpi)
        except TextlayerError:
            pass  # results being replaced or deleted: the boxes still stand
        out.append(
            SearchHitOut(
                job_id=hit.document_id,
                page=hit.page,
                snippet=hit.snippet,
                boxes=[list(box) for box in hit.boxes],
                page_width=size[0],
                page_height=size[1],
                dpi=size[2],
            )
        )
    return SearchResult(hits=out, next_cursor=_encode_cursor({"o": offset + limit}) if more else None)
