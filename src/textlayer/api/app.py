"""The ASGI app (FastAPI): routes, the one error shape, metrics, and the dispatcher and sweeper threads; ``serve``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from textlayer import __version__
from textlayer.api.context import ApiContext, open_context
from textlayer.api.deliveries import Dispatcher
from textlayer.api.errors import ApiError, error_body, status_of
from textlayer.api.metrics import MetricsMiddleware
from textlayer.api.retention import Sweeper
from textlayer.api.routes import router
from textlayer.config import Settings
from textlayer.errors import TextlayerError

log = logging.getLogger(__name__)

DESCRIPTION = """\
Upload scanned documents (PDF, PNG, JPEG, TIFF), follow their jobs, download searchable PDFs, text, JSON and hOCR,
and search the words of every page. Every endpoint but /healthz and /metrics needs `Authorization: Bearer <token>`
(`textlayer tokens create --tenant T`); a token sees its own tenant's documents only. Errors are always
`{"error": {"code": "...", "message": "..."}}`.
"""


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


async def _textlayer_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TextlayerError)
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s: %s (%s)", request.method, request.url.path, exc.message, exc.reason)
    headers = exc.headers if isinstance(exc, ApiError) else None
    return _error_response(status, exc.reason, exc.message, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return _error_response(422, "invalid_request", "; ".join(parts) or "the request is invalid")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return _error_response(500, "internal_error", "an unexpected error; it was logged")


def create_app(context: ApiContext, *, background: bool = True) -> FastAPI:
    """The API over ``context``; with ``background``, the webhook dispatcher and the retention sweeper run with it."""
    settings = context.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dispatcher = Dispatcher(
            context.deliveries,
            context.jobs,
            context.tenants,
            context.policy,
            backoff_s=settings.webhook_backoff_ms / 1000,
            retry_s=float(settings.webhook_retry_s),
            on_outcome=lambda outcome: context.metrics.webhook_attempts.labels(outcome).inc(),
        )
        sweeper = Sweeper(context)
        if background:
            dispatcher.start()
            sweeper.start()
        try:
            yield
        finally:
            if background:
                dispatcher.stop()
                sweeper.stop()

    app = FastAPI(
        title="textlayer",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # served below from the swagger-ui-bundle wheel: FastAPI's default loads it from a CDN
        redoc_url=None,
    )
    _serve_docs_offline(app)
    app.state.context = context
    app.include_router(router)
    app.add_exception_handler(TextlayerError, _textlayer_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(MetricsMiddleware, metrics=context.metrics)
    return app


def _serve_docs_offline(app: FastAPI) -> None:
    """Interactive docs at ``/docs`` with Swagger UI's files from a pinned wheel (no CDN, works offline)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="textlayer API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> host and port.

    Raises:
        ValueError: Not of that form.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"--listen wants HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def check_listen(host: str, *, tls: bool, allow_plaintext: bool) -> None:
    """Refuse to take tokens and documents in plaintext on an address other machines can reach, unless allowed.

    Raises:
        TextlayerError: A non-loopback host without TLS (``insecure_listen``).
    """
    from textlayer.worker.server import is_loopback  # the OCR server's rule, for one host

    if not is_loopback(f"[{host}]:0" if ":" in host else f"{host}:0") and not tls and not allow_plaintext:
        raise TextlayerError(
            f"refusing to take tokens and documents in plaintext on {host}: give --tls-cert and --tls-key, listen on "
            "127.0.0.1 (behind a TLS proxy), or pass --allow-plaintext on a network you trust",
            reason="insecure_listen",
        )


def serve(
    settings: Settings,
    listen: str,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    allow_plaintext: bool = False,
) -> None:
    """Serve the API on ``listen`` until SIGTERM or SIGINT (uvicorn, one process, HTTP/1.1 by httptools).

    Raises:
        TextlayerError: The listen address is malformed or reachable in plaintext (see :func:`check_listen`), or the
            stack cannot be reached (see :func:`open_context`).
    """
    import uvicorn

    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise TextlayerError(str(exc)) from exc
    if bool(tls_cert) != bool(tls_key):
        raise TextlayerError("--tls-cert and --tls-key go together")
    check_listen(host, tls=tls_cert is not None, allow_plaintext=allow_plaintext)
    context = open_context(settings)
    try:
        config = uvicorn.Config(
            create_app(context),
            host=host,
            port=port,
            http="httptools",
            lifespan="on",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=10,
            log_level="info",
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
        server = uvicorn.Server(config)
        log.info("textlayer API on %s://%s:%d (docs at /docs)", "https" if tls_cert else "http", host, port)
        server.run()
    finally:
        context.close()
