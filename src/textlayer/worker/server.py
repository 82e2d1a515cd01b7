"""The gRPC OCR server: a SandboxPool of jailed workers behind ``OcrService`` (one of two grpc imports).

Health says SERVING only once every worker is warm and verified; SIGTERM drains (NOT_SERVING, a pause so clients move
away, then a graceful stop); SIGUSR1/SIGUSR2 take the server out of and back into rotation without stopping it. A
bounded queue answers RESOURCE_EXHAUSTED when full. Errors map to status codes; the reason code of a refused page
travels in the ``textlayer-reason`` trailing metadata.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hmac
import ipaddress
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from textlayer.elements import PageText
from textlayer.errors import InputDocumentError, SandboxError, TextlayerError
from textlayer.rpc.v1 import ocr_pb2, ocr_pb2_grpc
from textlayer.worker import messages
from textlayer.worker.metrics import ServerMetrics

log = logging.getLogger(__name__)

SERVICE_NAME = ocr_pb2.DESCRIPTOR.services_by_name["OcrService"].full_name
"""``textlayer.rpc.v1.OcrService``: the health service reports this name."""

REASON_KEY = "textlayer-reason"
"""Trailing metadata key carrying the stable reason code of a refused page."""

MIB = 1024 * 1024

SUPPORTED_LANGUAGES = frozenset({"en", "zh", "zh-Hans", "zh-Hant", "fr", "de", "es", "it", "pt", "nl"})
"""Languages the PP-OCRv6 character set covers (Latin scripts and Chinese)."""


class PageRecognizer(Protocol):
    """What the servicer needs: a SandboxPool, or a deterministic stand-in in fault tests."""

    def recognize(
        self, image: bytes, *, dpi: float | None = None, frame: int = 0, deadline_s: float | None = None
    ) -> PageText:
        """OCR one encoded page image."""
        ...


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for TLS; with ``client_ca`` clients must present a certificate it signed (mTLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class ServerConfig:
    """How the server listens and how much it takes in."""

    listen: Sequence[str] = ("unix:textlayer-ocr.sock",)
    """Addresses: ``unix:PATH`` (single-machine default), ``HOST:PORT``, ``[::]:PORT``."""
    workers: int = 1
    """Pages OCRed at once (the jailed worker count)."""
    queue_size: int = 8
    """Pages allowed to wait for a worker; one more is answered RESOURCE_EXHAUSTED."""
    max_message_mib: int = 32
    """Largest request or reply (a 300-dpi A4 page is 1-25 MiB encoded)."""
    drain_s: float = 1.0
    """After SIGTERM, how long NOT_SERVING is shown before the server stops taking calls."""
    grace_s: float = 30.0
    """How long calls in progress may finish after that."""
    metrics_port: int = 0
    """Prometheus metrics on this HTTP port (0 = off)."""
    metrics_host: str = "127.0.0.1"
    """Interface of the metrics endpoint."""
    tls: TlsFiles | None = None
    """TLS (and mTLS) for multi-machine use."""
    token: str | None = field(default=None, repr=False)
    """Bearer token every OcrService call must carry (health checks are exempt)."""
    model: str = ""
    """The model set the workers run (checked against a request's ``options.model``)."""


def is_loopback(address: str) -> bool:
    """Whether a gRPC address stays on this machine: ``unix:``/``unix-abstract:`` or a loopback host.

    ``unixbox.corp:50051`` is a host name, not a unix socket; ``0.0.0.0`` and ``[::]`` listen on every interface.
    """
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.removeprefix("dns:///").rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen_security(listen: Sequence[str], *, tls: bool, allow_plaintext: bool) -> None:
    """Refuse to serve plaintext on an address other machines can reach, unless explicitly allowed.

    Raises:
        TextlayerError: a non-loopback address without TLS (``insecure_listen``).
    """
    exposed = [address for address in listen if not is_loopback(address)]
    if exposed and not tls and not allow_plaintext:
        raise TextlayerError(
            f"refusing to serve page images and tokens in plaintext on {', '.join(exposed)}: give --tls-cert and "
            "--tls-key, listen on unix: or 127.0.0.1, or pass --allow-plaintext on a network you trust",
            reason="insecure_listen",
        )


def grpc_options(max_message_mib: int) -> list[tuple[str, Any]]:
    """Channel arguments shared by server and client: message sizes and keepalive that agree."""
    return [
        ("grpc.max_send_message_length", max_message_mib * MIB),
        ("grpc.max_receive_message_length", max_message_mib * MIB),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
        ("grpc.max_connection_age_ms", 300_000),
        ("grpc.max_connection_age_grace_ms", 60_000),
    ]


def _status_for(exc: TextlayerError) -> grpc.StatusCode:
    if isinstance(exc, SandboxError) and exc.reason == "sandbox_unavailable":
        return grpc.StatusCode.UNAVAILABLE
    return getattr(grpc.StatusCode, exc.grpc_status, grpc.StatusCode.INTERNAL)


class OcrServicer(ocr_pb2_grpc.OcrServiceServicer):
    """RecognizePage: validate, wait for a slot, OCR in the pool (a thread), map errors to status codes."""

    def __init__(self, recognizer: PageRecognizer, config: ServerConfig, metrics: ServerMetrics) -> None:
        """Serve pages with ``recognizer`` (called in a thread pool: it blocks)."""
        self._recognizer = recognizer
        self._config = config
        self._metrics = metrics
        self._capacity = config.workers + config.queue_size
        self._in_flight = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(self._capacity, thread_name_prefix="ocr-call")
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    async def RecognizePage(  # noqa: N802 (the generated interface's name)
        self, request: ocr_pb2.PageRequest, context: grpc.aio.ServicerContext
    ) -> ocr_pb2.PageResult:
        """OCR one page; see the .proto for the status codes."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await self._recognize(request, context)
        except _Abort as abort:
            code = abort.code
            if abort.reason:
                context.set_trailing_metadata(((REASON_KEY, abort.reason),))
            await context.abort(abort.code, abort.message)
            raise AssertionError("unreachable") from None
        finally:
            self._metrics.observe(code.name, time.perf_counter() - started)

    async def _recognize(self, request: ocr_pb2.PageRequest, context: grpc.aio.ServicerContext) -> ocr_pb2.PageResult:
        options = request.options
        if options.model and self._config.model and options.model != self._config.model:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"this server runs model set {self._config.model!r}, not {options.model!r}",
                "model_mismatch",
            )
        unsupported = sorted(set(options.languages) - SUPPORTED_LANGUAGES)
        if unsupported:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"languages not supported by the models: {', '.join(unsupported)}",
                "unsupported_language",
            )
        if self._in_flight >= self._capacity:
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"the OCR queue is full ({self._capacity} pages); retry later", ""
            )
        self._in_flight += 1
        self._metrics.set_queue_depth(max(self._in_flight - self._config.workers, 0))
        try:
            remaining = context.time_remaining()
            call = functools.partial(
                self._recognizer.recognize,
                bytes(request.image),
                dpi=request.dpi or None,
                frame=request.frame,
                deadline_s=None if remaining is None else max(remaining, 0.001),
            )
            try:
                page = await asyncio.get_running_loop().run_in_executor(self._executor, call)
            except InputDocumentError as exc:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message, exc.reason) from exc
            except TextlayerError as exc:
                raise _Abort(_status_for(exc), exc.message, exc.reason) from exc
        finally:
            self._in_flight -= 1
            self._metrics.set_queue_depth(max(self._in_flight - self._config.workers, 0))
        log.info("page %s: %d lines from %d bytes", request.request_id or "-", len(page.lines), len(request.image))
        return messages.page_to_proto(page, request_id=request.request_id, server=self.name)

    def close(self) -> None:
        """Stop the call threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, reason: str) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses OcrService calls without ``authorization: Bearer <token>`` before any handler runs."""

    def __init__(self, token: str) -> None:
        """Check against ``token`` (compared in constant time)."""
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Let health checks through (clients' channels check health without credentials)."""
        method = handler_call_details.method or ""
        if method.startswith("/grpc.health.v1.Health/"):
            return await continuation(handler_call_details)
        supplied = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        supplied_bytes = supplied.encode() if isinstance(supplied, str) else bytes(supplied)
        if hmac.compare_digest(supplied_bytes, self._expected):
            return await continuation(handler_call_details)

        async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")

        return grpc.unary_unary_rpc_method_handler(refuse)


async def serve(recognizer: PageRecognizer, config: ServerConfig, *, ready: Callable[[], None] | None = None) -> None:
    """Serve a started SandboxPool (or stand-in) until SIGTERM/SIGINT, then drain and stop; ``ready()`` once SERVING."""
    metrics = ServerMetrics(deaths=getattr(recognizer, "deaths", None))
    if config.metrics_port:
        metrics.serve(config.metrics_host, config.metrics_port)
    interceptors = [TokenInterceptor(config.token)] if config.token else []
    server = grpc.aio.server(options=grpc_options(config.max_message_mib), interceptors=interceptors)
    servicer = OcrServicer(recognizer, config, metrics)
    ocr_pb2_grpc.add_OcrServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    for address in config.listen:
        if config.tls is not None:
            credentials = grpc.ssl_server_credentials(
                [(config.tls.key.read_bytes(), config.tls.cert.read_bytes())],
                root_certificates=config.tls.client_ca.read_bytes() if config.tls.client_ca else None,
                require_client_auth=config.tls.client_ca is not None,
            )
            bound = server.add_secure_port(address, credentials)
        else:
            bound = server.add_insecure_port(address)
        if address.startswith("unix:"):
            Path(address.removeprefix("unix://").removeprefix("unix:")).chmod(0o660)
        log.info("OCR server listening on %s%s", address, f" (port {bound})" if bound and ":" in address else "")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def set_serving(serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        log.info("health: %s", "SERVING" if serving else "NOT_SERVING (draining)")
        for name in ("", SERVICE_NAME):
            loop.create_task(health.set(name, status))

    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGUSR1, set_serving, False)
    loop.add_signal_handler(signal.SIGUSR2, set_serving, True)
    log.info("OCR server SERVING as %s (%d worker(s), queue %d)", servicer.name, config.workers, config.queue_size)
    if ready is not None:
        ready()
    await stopping.wait()
    log.info("OCR server stopping: NOT_SERVING, draining for %.1f s", config.drain_s)
    await health.enter_graceful_shutdown()
    await asyncio.sleep(config.drain_s)
    await server.stop(config.grace_s)
    servicer.close()
    metrics.close()
    log.info("OCR server stopped")
