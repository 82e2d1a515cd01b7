"""Per-tenant limits of the API: uploads per minute, bytes stored, pages per day; refusals are 429 + Retry-After."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from textlayer.api.errors import ApiError
from textlayer.api.tenants import TenantStore
from textlayer.config import Settings
from textlayer.store import SqliteJobStore

MIB = 1024 * 1024

DAY_S = 86400.0
"""The window of the pages-per-day limit."""

STORED_RETRY_AFTER_S = 3600
"""Retry-After of a full store: it frees up only when the tenant deletes documents or retention does."""


@dataclass(frozen=True)
class Admission:
    """What an upload may still add."""

    room_bytes: int
    """Bytes the tenant may still store (the upload is refused when it passes them)."""
    max_stored_mib: int
    """The tenant's stored-bytes limit, for the refusal's message."""


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def stored_full(max_stored_mib: int) -> ApiError:
    """The refusal of an upload that would pass the tenant's stored-bytes limit."""
    return ApiError(
        429,
        "quota_exceeded",
        f"the tenant stores its limit of {max_stored_mib} MiB; delete documents to make room",
        headers=_retry_after(STORED_RETRY_AFTER_S),
    )


def admit_upload(
    settings: Settings,
    tenants: TenantStore,
    jobs: SqliteJobStore,
    tenant: str,
    declared_bytes: int | None,
    *,
    now: float | None = None,
) -> Admission:
    """Check the tenant's limits before an upload's body is read, and count the upload.

    Raises:
        ApiError: 429 ``quota_exceeded`` (bytes stored, pages per day) or ``rate_limited`` (uploads per minute), with
            ``Retry-After``.
    """
    at = time.time() if now is None else now
    own = tenants.limits(tenant)
    max_stored_mib = own.max_stored_mib or settings.max_stored_mib
    pages_per_day = own.pages_per_day or settings.pages_per_day
    per_minute = own.uploads_per_minute or settings.uploads_per_minute
    usage = jobs.usage(tenant, since=at - DAY_S)
    room = max_stored_mib * MIB - usage.bytes_stored
    if room <= 0 or (declared_bytes is not None and declared_bytes > room):
        raise stored_full(max_stored_mib)
    if usage.pages_since >= pages_per_day:
        wait = (usage.oldest_since or at) + DAY_S - at
        raise ApiError(
            429,
            "quota_exceeded",
            f"the tenant's documents of the last 24 hours have {usage.pages_since} pages; the limit is {pages_per_day}",
            headers=_retry_after(wait),
        )
    wait_s = tenants.take_upload_slot(tenant, per_minute, now=at)
    if wait_s is not None:
        raise ApiError(
            429,
            "rate_limited",
            f"at most {per_minute} uploads a minute; try again in {max(1, math.ceil(wait_s))} s",
            headers=_retry_after(wait_s),
        )
    return Admission(room_bytes=room, max_stored_mib=max_stored_mib)
