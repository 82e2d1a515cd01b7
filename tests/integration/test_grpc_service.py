"""`textlayer ocr-server` for real: jailed workers behind gRPC on a unix socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.test_sandbox import LAYERS
from tests.pages import make_page, page_to_png
from textlayer.errors import InputDocumentError
from textlayer.worker.client import OcrClient

pytestmark = [pytest.mark.sandbox, pytest.mark.onnx]


@pytest.fixture(scope="module")
def ocr_server(tmp_path_factory):
    socket_path = tmp_path_factory.mktemp("server") / "ocr.sock"
    address = f"unix:{socket_path}"
    env = {**os.environ, "TEXTLAYER_SANDBOX_LAYERS": LAYERS}
    command = [sys.executable, "-m", "textlayer", "ocr-server", "--listen", address, "--workers", "1"]
    log = tmp_path_factory.mktemp("server-log") / "server.log"
    with log.open("w") as sink, subprocess.Popen(command, env=env, stderr=sink) as server:
        try:
            with OcrClient(address) as client:
                client.wait_until_ready(120)
                deadline = time.monotonic() + 120
                while _health(address) != health_pb2.HealthCheckResponse.SERVING:
                    assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                    time.sleep(0.2)
            yield address, server, log
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        try:
            return (
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            )
        except grpc.RpcError:
            return -1


def test_pages_through_the_server_equal_pages_read_in_process(ocr_server):
    from textlayer.media.images import decode_image
    from textlayer.worker.predictor import OcrPredictor

    address, _, _ = ocr_server
    page = make_page("two_column", dpi=150)
    png = page_to_png(page)
    with OcrClient(address) as client:
        served = client.recognize(png, request_id="equal-1")
    local = OcrPredictor.load(threads=1).recognize(decode_image(png)[0].image, dpi=page.dpi)
    assert served.text == local.text and len(served.text) > 200
    assert [w.quad for w in served.words] == [w.quad for w in local.words]
    assert [w.confidence for w in served.words] == pytest.approx([w.confidence for w in local.words])


def test_hostile_pages_are_invalid_argument_and_the_server_keeps_serving(ocr_server):
    import struct
    import zlib

    address, server, _ = ocr_server

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))  # claims 10 Gpx
    bomb = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    with OcrClient(address) as client:
        for data, reason in [(bomb, "image_too_large"), (os.urandom(4096), "unsupported_type")]:
            with pytest.raises(InputDocumentError) as caught:
                client.recognize(data)
            assert caught.value.reason == reason
        assert "TOTAL" in client.recognize(page_to_png(make_page("receipt", dpi=120))).text.upper()
    assert server.poll() is None


def test_cli_ocr_through_the_server_matches_in_process(ocr_server, tmp_path):
    address, _, _ = ocr_server
    source = tmp_path / "receipt.png"
    source.write_bytes(page_to_png(make_page("receipt", dpi=150)))
    remote = subprocess.run(
        [sys.executable, "-m", "textlayer", "ocr", str(source), "--server", address], capture_output=True, text=True
    )
    local = subprocess.run(
        [sys.executable, "-m", "textlayer", "ocr", str(source), "--no-sandbox"], capture_output=True, text=True
    )
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout and "TOTAL" in remote.stdout.upper()


def test_reflection_lists_the_service(ocr_server):
    address, _, _ = ocr_server
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {service.name for service in response.list_services_response.service}
    assert {"textlayer.rpc.v1.OcrService", "grpc.health.v1.Health"} <= names


def test_a_call_past_its_deadline_kills_the_busy_worker_which_is_replaced(ocr_server):
    from textlayer.errors import OcrUnavailable

    address, _, log = ocr_server
    page = page_to_png(make_page("fonts", dpi=200))
    with OcrClient(address) as client:
        with pytest.raises(OcrUnavailable) as caught:
            client.recognize(page, deadline_s=0.3)
        assert caught.value.reason == "ocr_deadline"
        assert client.recognize(page_to_png(make_page("receipt", dpi=100))).text
    assert "deadline" in log.read_text()


def test_sigterm_stops_the_server_and_its_workers(ocr_server):
    address, server, log = ocr_server
    workers = [
        int(line.split("(pid ")[1].split(")")[0]) for line in log.read_text().splitlines() if "ready (pid" in line
    ]
    assert workers
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    time.sleep(0.5)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert "OCR server stopped" in log.read_text()
