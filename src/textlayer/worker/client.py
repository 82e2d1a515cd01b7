"""OcrClient: one gRPC channel over a cluster of OCR servers (the other grpc import).

Round-robin over every server, client-side health checking (a draining server gets no new
calls), outlier detection (a hung server that keeps its TCP connection is ejected), retries of
UNAVAILABLE with backoff and a retry budget, a deadline on every call, and a per-call retry
buffer big enough for megabyte page images (design/RELIABILITY.md §2.4, F7, F8).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from textlayer.elements import PageText
from textlayer.errors import InputDocumentError, ModelError, OcrUnavailable, TextlayerError
from textlayer.rpc.v1 import ocr_pb2, ocr_pb2_grpc
from textlayer.worker import messages
from textlayer.worker.server import REASON_KEY, SERVICE_NAME, grpc_options, is_loopback

log = logging.getLogger(__name__)

MIB = 1024 * 1024

DEFAULT_DEADLINE_S = 120.0
"""Deadline of one page call, retries included."""

_READY_POLL_S = 0.1
"""Pause between two health checks while a connected server is not SERVING yet (warming up, draining)."""


def service_config(*, deadline_s: float, outlier_interval_s: float = 5.0) -> dict[str, Any]:
    """The channel's service config: balancing, health checking, retries, throttling."""
    return {
        "loadBalancingConfig": [
            {
                "outlier_detection_experimental": {
                    "interval": f"{outlier_interval_s}s",
                    "baseEjectionTime": "30s",
                    "maxEjectionTime": "300s",
                    "maxEjectionPercent": 50,
                    "failurePercentageEjection": {
                        "threshold": 50,
                        "enforcementPercentage": 100,
                        "minimumHosts": 2,
                        "requestVolume": 2,
                    },
                    "childPolicy": [{"round_robin": {}}],
                }
            }
        ],
        "healthCheckConfig": {"serviceName": SERVICE_NAME},
        "methodConfig": [
            {
                "name": [{"service": SERVICE_NAME}],
                "timeout": f"{deadline_s}s",
                "waitForReady": False,
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        # Retries stop while fewer than maxTokens/2 tokens are left (each failure costs 1, each success
        # gives back 0.1): a killed server fails every call it held at once, so the budget must cover
        # a burst of in-flight calls (10 tokens let only 5 of 12 retry), yet still end a retry storm.
        "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.1},
    }


def channel_target(servers: str | Sequence[str]) -> str:
    """One gRPC target for a list of servers.

    ``["127.0.0.1:50051", "127.0.0.1:50052"]`` becomes ``ipv4:127.0.0.1:50051,127.0.0.1:50052``
    (``localhost`` counts as 127.0.0.1); a single entry (``unix:PATH``, ``dns:///ocr.internal:50051``,
    ``host:port``) is used as it is.
    """
    if isinstance(servers, str):
        servers = [s for s in servers.split(",") if s]
    if not servers:
        raise ValueError("no OCR server given")
    if len(servers) == 1:
        return servers[0]
    hosts = []
    for server in servers:
        host, _, port = server.rpartition(":")
        host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        try:
            version = ipaddress.ip_address(host).version
        except ValueError:
            raise ValueError(
                f"a list of servers must be IP:PORT entries (use one dns:/// name instead): {server}"
            ) from None
        hosts.append((version, f"[{host}]:{port}" if version == 6 else f"{host}:{port}"))
    versions = {v for v, _ in hosts}
    if len(versions) != 1:
        raise ValueError("a list of servers cannot mix IPv4 and IPv6")
    return f"ipv{versions.pop()}:" + ",".join(address for _, address in hosts)


def _is_local(target: str) -> bool:
    addresses = target.split(":", 1)[1] if target.startswith(("ipv4:", "ipv6:")) else target
    return all(is_loopback(entry) for entry in addresses.split(",")) if not is_loopback(target) else True


class OcrClient:
    """Sends page images to the OCR cluster and returns their PageText. Thread-safe; one per process."""

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        token: str | None = None,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        max_message_mib: int = 32,
        outlier_interval_s: float = 5.0,
    ) -> None:
        """Open a channel (connections are made lazily, on the first call).

        Args:
            servers: ``unix:PATH``, ``HOST:PORT``, a list of ``IP:PORT``, or ``dns:///NAME:PORT``.
            deadline_s: default deadline of one page, retries included.
            token: bearer token the servers require.
            tls_ca: CA that signed the servers' certificates (turns TLS on).
            tls_cert: client certificate for mTLS.
            tls_key: its private key.
            max_message_mib: must match the servers' limit.
            outlier_interval_s: how often hung servers are looked for.

        Raises:
            ValueError: a token on a plaintext channel to another machine, or a bad server list.
        """
        self.target = channel_target(servers)
        if token and tls_ca is None and not _is_local(self.target):
            raise ValueError("refusing to send a bearer token over plaintext to another machine: configure TLS")
        self.deadline_s = deadline_s
        self._max_request_bytes = max_message_mib * MIB - 64 * 1024
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        options = [
            *grpc_options(max_message_mib),
            ("grpc.service_config", self._service_config(deadline_s, outlier_interval_s)),
            ("grpc.enable_retries", 1),
            ("grpc.per_rpc_retry_buffer_size", 64 * MIB),  # else MiB-sized pages are never retried (F7)
            ("grpc.retry_buffer_size", 256 * MIB),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls_ca.read_bytes(),
                private_key=tls_key.read_bytes() if tls_key else None,
                certificate_chain=tls_cert.read_bytes() if tls_cert else None,
            )
            self._channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.target, options=options)
        self._stub = ocr_pb2_grpc.OcrServiceStub(self._channel)  # type: ignore[no-untyped-call]

    @staticmethod
    def _service_config(deadline_s: float, outlier_interval_s: float) -> str:
        return json.dumps(service_config(deadline_s=deadline_s, outlier_interval_s=outlier_interval_s))

    def __enter__(self) -> OcrClient:
        """Use the client in a with block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the channel."""
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def wait_until_ready(self, timeout_s: float) -> None:
        """Block until a server reports SERVING for the OCR service (start-up scripts and tests).

        Asks the standard health service (``grpc.health.v1.Health/Check``) with ``wait_for_ready``,
        so the call itself waits for a connection, and nothing runs in the background. A connectivity
        watcher (``grpc.channel_ready_future``, ``channel.subscribe``) runs a gRPC polling thread that
        outlives the wait (a future that timed out even stays subscribed); a ``close()`` that came
        while it was between two calls into the channel made it print ``Exception in thread ...
        ValueError: Cannot invoke RPC: Channel closed!``.

        Raises:
            OcrUnavailable: no server reported SERVING in time.
        """
        deadline = time.monotonic() + timeout_s
        check = health_pb2_grpc.HealthStub(self._channel).Check
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        last = "no answer"
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                status = check(request, timeout=remaining, wait_for_ready=True).status
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    return  # no health service: connected is all one can know (gRPC's own health checking agrees)
                last = code.name
            else:
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            time.sleep(min(_READY_POLL_S, max(deadline - time.monotonic(), 0.0)))
        raise OcrUnavailable(f"no OCR server at {self.target} reported SERVING within {timeout_s:g} s ({last})")

    def serving(self, timeout_s: float = 2.0) -> bool:
        """Whether an OCR server of the channel answers its health check with SERVING within ``timeout_s``."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=timeout_s)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def recognize(
        self,
        image: bytes,
        *,
        dpi: float | None = None,
        frame: int = 0,
        request_id: str | None = None,
        deadline_s: float | None = None,
        model: str = "",
        languages: Sequence[str] = (),
    ) -> PageText:
        """OCR one encoded page image (PNG, JPEG or TIFF bytes) on the cluster.

        Raises:
            InputDocumentError: the page is too big to send, or a server refused it (reason kept).
            OcrUnavailable: no server could take it (retry later), or the deadline passed.
            ModelError: the servers run another model set.
            TextlayerError: authentication failed or the server failed.
        """
        if len(image) > self._max_request_bytes:
            raise InputDocumentError(
                f"The page image is {len(image) / MIB:.1f} MiB; at most {self._max_request_bytes / MIB:.0f} MiB "
                "can be sent to the OCR servers.",
                reason="page_image_too_large",
            )
        request = ocr_pb2.PageRequest(
            request_id=request_id or uuid.uuid4().hex,
            image=image,
            frame=frame,
            dpi=dpi or 0.0,
            options=ocr_pb2.PageOptions(languages=list(languages), model=model),
        )
        try:
            result = self._stub.RecognizePage(
                request, timeout=deadline_s or self.deadline_s, metadata=self._metadata, wait_for_ready=False
            )
        except grpc.RpcError as exc:
            raise _mapped(exc) from exc
        try:
            return messages.page_from_proto(result)
        except ValueError as exc:
            raise TextlayerError(f"an OCR server sent a malformed result ({exc})", reason="ocr_failed") from exc


def _mapped(exc: grpc.RpcError) -> TextlayerError:
    """The most specific textlayer error for a gRPC failure."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    trailers = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    reason = str(trailers.get(REASON_KEY, "")) or None
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InputDocumentError(details, reason=reason or "bad_input")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return OcrUnavailable(f"the OCR call ran past its deadline ({details})", reason="ocr_deadline")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return OcrUnavailable(f"no OCR server could take the page ({code.name}: {details})")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return ModelError(details)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return TextlayerError(f"the OCR server refused our credentials ({details})", reason="unauthenticated")
    return TextlayerError(f"the OCR server failed ({code.name}: {details})", reason="ocr_failed")
