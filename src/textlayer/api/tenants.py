"""Tenants, their API tokens (only a hash of each is stored), webhook secrets, limits and upload events (SQLite).

A token reads ``tl_<id>_<secret>``: ``id`` (12 hex digits) names the row, ``secret`` (32 random bytes, base64url)
is checked against the SHA-256 stored for it with a constant-time comparison. A 256-bit random secret needs no slow
password hash: SHA-256 of it cannot be reversed or guessed. The tenant comes from the token only, never from a
request. Each tenant has a webhook secret (``whsec_`` + base64 of 24 random bytes, the Standard Webhooks form) that
signs its callbacks; unlike tokens it is stored as is, since signing needs it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from textlayer.errors import TextlayerError
from textlayer.sqlite_db import SqliteDatabase
from textlayer.store.blobs import ID_PATTERN

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the schema this module creates and reads."""

TOKEN_PREFIX = "tl_"
"""Every token starts with it (secret scanners can match it)."""

UPLOAD_WINDOW_S = 60.0
"""The window of the uploads-per-minute limit."""

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS tenants (
        tenant TEXT PRIMARY KEY,
        webhook_secret TEXT NOT NULL,
        created_at REAL NOT NULL,
        uploads_per_minute INTEGER CHECK (uploads_per_minute > 0),
        max_stored_mib INTEGER CHECK (max_stored_mib > 0),
        pages_per_day INTEGER CHECK (pages_per_day > 0)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS tokens (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants (tenant),
        scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    )
    """,
    "CREATE TABLE IF NOT EXISTS upload_events (tenant TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS upload_events_by_tenant ON upload_events (tenant, at)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


class TenantStoreError(TextlayerError):
    """The tenant store cannot be opened, read or written."""

    retryable = True
    reason = "tenant_store_error"


class Scope(StrEnum):
    """What a token may do: ``read`` (jobs, downloads, search) or ``write`` (also upload and delete)."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the token's tenant and scope."""

    tenant: str
    scope: Scope
    token_id: str

    @property
    def can_write(self) -> bool:
        """True for a ``write`` token."""
        return self.scope == Scope.WRITE


@dataclass(frozen=True)
class TokenInfo:
    """A token as ``textlayer tokens list`` shows it (never its secret)."""

    id: str
    tenant: str
    scope: Scope
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True)
class LimitOverrides:
    """A tenant's own limits; None: the setting's default."""

    uploads_per_minute: int | None = None
    max_stored_mib: int | None = None
    pages_per_day: int | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_tenant(tenant: str) -> str:
    """The tenant name if it can name a blob folder (1-64 letters, digits, ``_.-``), else ValueError."""
    if ID_PATTERN.fullmatch(tenant) is None:
        raise ValueError(f"tenant {tenant[:80]!r} must be 1-64 letters, digits, '_', '.' or '-', starting with one")
    return tenant


class TenantStore(SqliteDatabase):
    """Tenants, tokens and upload events in one SQLite file, shared by the API and the ``tokens`` commands."""

    _noun = "tenant store"
    _error = TenantStoreError
    _schema = _SCHEMA
    _version = SCHEMA_VERSION
    _pragmas = ("PRAGMA foreign_keys = ON",)

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        """Open the tenant store at ``path`` (its folder must exist), creating it when missing.

        Raises:
            TenantStoreError: The file cannot be opened or is not a tenant store of this version.
        """
        super().__init__(path, busy_timeout_ms=busy_timeout_ms)

    def create_token(self, tenant: str, scope: Scope | str = Scope.WRITE, *, now: float | None = None) -> str:
        """A new token for ``tenant`` (the tenant is created with a webhook secret on its first token).

        Returns:
            The token; it is shown once and cannot be read back.

        Raises:
            ValueError: The tenant name cannot be used or the scope is unknown.
        """
        check_tenant(tenant)
        scope = Scope(scope)
        at = time.time() if now is None else now
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self._write("create a token") as conn:
            conn.execute(
                "INSERT OR IGNORE INTO tenants (tenant, webhook_secret, created_at) VALUES (?, ?, ?)",
                (tenant, "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(), at),
            )
            conn.execute(
                "INSERT INTO tokens (id, tenant, scope, sha256, created_at) VALUES (?, ?, ?, ?, ?)",
                (token_id, tenant, scope.value, _digest(secret), at),
            )
        log.info("created %s token %s for tenant %r", scope.value, token_id, tenant)
        return f"{TOKEN_PREFIX}{token_id}_{secret}"

    def authenticate(self, token: str) -> Principal | None:
        """The tenant and scope of a live token, else None (unknown, revoked or malformed: callers cannot tell)."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        token_id, _, secret = token[len(TOKEN_PREFIX) :].partition("_")
        if not token_id or not secret:
            return None
        with self._read("check a token") as conn:
            row = conn.execute(
                "SELECT tenant, scope, sha256 FROM tokens WHERE id = ? AND revoked_at IS NULL", (token_id,)
            ).fetchone()
        # Compared even for an unknown id, so the time taken does not tell whether the id exists.
        expected = row[2] if row is not None else _digest("")
        if not hmac.compare_digest(expected, _digest(secret)) or row is None:
            return None
        return Principal(tenant=row[0], scope=Scope(row[1]), token_id=token_id)

    def tokens(self) -> list[TokenInfo]:
        """Every token, oldest first."""
        with self._read("list tokens") as conn:
            rows = conn.execute("SELECT id, tenant, scope, created_at, revoked_at FROM tokens ORDER BY created_at, id")
            return [TokenInfo(r[0], r[1], Scope(r[2]), float(r[3]), r[4]) for r in rows.fetchall()]

    def revoke(self, token_id: str, *, now: float | None = None) -> bool:
        """Revoke a token (effective for the next request); False when there is no such live token."""
        at = time.time() if now is None else now
        with self._write("revoke a token") as conn:
            cursor = conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, token_id.strip())
            )
        return cursor.rowcount == 1

    def webhook_secret(self, tenant: str) -> str | None:
        """The tenant's webhook signing secret (``whsec_...``), None for an unknown tenant."""
        with self._read("read a webhook secret") as conn:
            row = conn.execute("SELECT webhook_secret FROM tenants WHERE tenant = ?", (tenant,)).fetchone()
        return None if row is None else str(row[0])

    def set_limits(self, tenant: str, limits: LimitOverrides) -> bool:
        """Give the tenant its own limits (None fields: back to the defaults); False for an unknown tenant."""
        with self._write("set a tenant's limits") as conn:
            cursor = conn.execute(
                "UPDATE tenants SET uploads_per_minute = ?, max_stored_mib = ?, pages_per_day = ? WHERE tenant = ?",
                (limits.uploads_per_minute, limits.max_stored_mib, limits.pages_per_day, tenant),
            )
        return cursor.rowcount == 1

    def limits(self, tenant: str) -> LimitOverrides:
        """The tenant's own limits (all None when it has none)."""
        with self._read("read a tenant's limits") as conn:
            row = conn.execute(
                "SELECT uploads_per_minute, max_stored_mib, pages_per_day FROM tenants WHERE tenant = ?", (tenant,)
            ).fetchone()
        return LimitOverrides() if row is None else LimitOverrides(*row)

    def take_upload_slot(self, tenant: str, per_minute: int, *, now: float | None = None) -> float | None:
        """Count an upload against the tenant's per-minute limit (sliding window), in one transaction.

        Returns:
            None when the upload may go ahead (it is counted), else the seconds until a slot frees up.
        """
        at = time.time() if now is None else now
        with self._write("count an upload") as conn:
            conn.execute("DELETE FROM upload_events WHERE tenant = ? AND at <= ?", (tenant, at - UPLOAD_WINDOW_S))
            count, oldest = conn.execute(
                "SELECT count(*), min(at) FROM upload_events WHERE tenant = ?", (tenant,)
            ).fetchone()
            if int(count) >= per_minute:
                return max(0.0, float(oldest) + UPLOAD_WINDOW_S - at)
            conn.execute("INSERT INTO upload_events (tenant, at) VALUES (?, ?)", (tenant, at))
        return None
