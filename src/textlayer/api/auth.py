"""Bearer authentication: every endpoint but /healthz and /metrics needs a token; the tenant comes from it alone."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from textlayer.api.context import ApiContext
from textlayer.api.errors import ApiError
from textlayer.api.tenants import Principal

bearer = HTTPBearer(auto_error=False, description="A token from `textlayer tokens create`.")
"""The security scheme (documented in /openapi.json)."""


def context_of(request: Request) -> ApiContext:
    """The process's :class:`ApiContext`."""
    context: ApiContext = request.app.state.context
    return context


def reader(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Principal:
    """The caller, with a ``read`` or ``write`` token.

    Raises:
        ApiError: 401 ``unauthorized`` without a live token (missing, malformed, unknown or revoked alike).
    """
    principal = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        principal = context_of(request).tenants.authenticate(credentials.credentials)
    if principal is None:
        raise ApiError(401, "unauthorized", "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return principal


def writer(principal: Annotated[Principal, Depends(reader)]) -> Principal:
    """The caller, with a ``write`` token (uploads and deletions).

    Raises:
        ApiError: 401 as :func:`reader`; 403 ``insufficient_scope`` for a ``read`` token.
    """
    if not principal.can_write:
        raise ApiError(403, "insufficient_scope", "this token may only read; uploads and deletions need a write token")
    return principal


Reader = Annotated[Principal, Depends(reader)]
"""A parameter that is the caller with any token."""

Writer = Annotated[Principal, Depends(writer)]
"""A parameter that is the caller with a write token."""
