"""The OCR cluster's fault scenarios (RELIABILITY.md §3.3) against real gRPC servers.

Each server is a real ``textlayer.worker.server`` process on loopback whose pages are read by a
deterministic stand-in (``tests/grpc_stub.py``), so that servers can be killed, stopped, drained
and slowed at will; the happy path with jailed workers is in test_grpc_service.py.
"""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from textlayer.errors import InputDocumentError, OcrUnavailable, TextlayerError
from textlayer.worker.client import OcrClient

REPO = Path(__file__).resolve().parents[2]
PAGE_2MIB = b"P" * (2 * 1024 * 1024)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StubServer:
    """One OCR server process with a deterministic recognizer; counts the pages it handles."""

    def __init__(self, tmp_path: Path, name: str, *, delay_s: float = 0.1, extra: tuple[str, ...] = ()) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.calls_file = tmp_path / f"{name}.calls"
        self.calls_file.touch()
        command = [
            sys.executable, "-m", "tests.grpc_stub", "--listen", self.address, "--delay", str(delay_s),
            "--calls", str(self.calls_file), *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout.readline().strip() == "READY"

    def calls(self, after: float = 0.0) -> int:
        return sum(1 for line in self.calls_file.read_text().split() if float(line) > after)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()


@pytest.fixture
def servers(tmp_path):
    started: list[StubServer] = []

    def start(name: str, **kwargs) -> StubServer:
        server = StubServer(tmp_path, name, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _load(client: OcrClient, *, calls: int, threads: int, page: bytes = PAGE_2MIB, deadline_s: float = 10.0):
    def one(_: int):
        started = time.monotonic()
        try:
            client.recognize(page, deadline_s=deadline_s)
            return None
        except TextlayerError as exc:
            return exc, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return [r for r in pool.map(one, range(calls)) if r is not None]


def test_g1_killing_one_server_mid_call_loses_no_call(servers):
    a, b = servers("a", delay_s=0.6), servers("b", delay_s=0.6)
    with OcrClient([a.address, b.address]) as client:
        client.wait_until_ready(10)
        with concurrent.futures.ThreadPoolExecutor(1) as killer:
            killer.submit(lambda: (time.sleep(0.3), a.signal(signal.SIGKILL)))
            failures = _load(client, calls=24, threads=24)
    assert failures == []
    assert a.calls() > 0 and b.calls() >= 24  # a took calls, died, and b answered all 24


def test_g2_sigterm_drains_a_server_without_losing_calls(servers):
    a, b = servers("a", delay_s=0.05), servers("b", delay_s=0.05)
    with OcrClient([a.address, b.address]) as client:
        client.wait_until_ready(10)
        _load(client, calls=8, threads=4, page=b"warm")
        with concurrent.futures.ThreadPoolExecutor(1) as background:
            load = background.submit(_load, client, calls=200, threads=4, page=b"page")
            time.sleep(0.5)
            stopped_at = time.time()
            a.signal(signal.SIGTERM)
            failures = load.result()
    assert failures == []
    assert a.process.wait(timeout=30) == 0
    assert a.calls(after=stopped_at + 1.0) == 0


def test_g3_not_serving_server_gets_no_new_calls_within_a_second(servers):
    a, b = servers("a", delay_s=0.02), servers("b", delay_s=0.02)
    with OcrClient([a.address, b.address]) as client:
        client.wait_until_ready(10)
        assert _load(client, calls=10, threads=2, page=b"warm") == []
        assert a.calls() > 0
        drained_at = time.time()
        a.signal(signal.SIGUSR1)  # out of rotation, still running
        time.sleep(1.0)
        assert _load(client, calls=40, threads=4, page=b"page") == []
    assert a.process.poll() is None
    assert a.calls(after=drained_at + 1.0) == 0


def test_g4_all_servers_down_fails_fast(servers):
    a, b = servers("a"), servers("b")
    addresses = [a.address, b.address]
    a.stop()
    b.stop()
    with OcrClient(addresses) as client:
        started = time.monotonic()
        with pytest.raises(OcrUnavailable):
            client.recognize(b"page", deadline_s=30)
        assert time.monotonic() - started < 2.0


@pytest.mark.slow
def test_g5_hung_server_is_ejected(servers):
    a, b = servers("a", delay_s=0.05), servers("b", delay_s=0.05)
    deadline_s = 1.0
    with OcrClient([a.address, b.address], outlier_interval_s=2.0) as client:
        client.wait_until_ready(10)
        assert _load(client, calls=4, threads=2, page=b"warm") == []
        a.signal(signal.SIGSTOP)  # hung: its TCP connections stay open
        failures: list[tuple[float, TextlayerError, float]] = []
        started = time.monotonic()
        served = 0
        while time.monotonic() - started < 40:
            call_started = time.monotonic()
            try:
                client.recognize(b"page", deadline_s=deadline_s)
                served += 1
            except TextlayerError as exc:
                failures.append((call_started - started, exc, time.monotonic() - call_started))
        a.signal(signal.SIGCONT)
    print(f"G5: {len(failures)} failed, {served} served in 40 s; failures at {[round(t, 1) for t, _, _ in failures]} s")
    assert len(failures) <= 10, [f"{t:.1f}s" for t, _, _ in failures]
    for _, exc, elapsed in failures:
        assert isinstance(exc, OcrUnavailable) and exc.reason == "ocr_deadline"
        assert abs(elapsed - deadline_s) <= 0.1 * deadline_s + 0.05
    assert served > 100


def test_g6_oversized_page_is_refused_before_sending(servers):
    a = servers("a")
    with OcrClient(a.address) as client, pytest.raises(InputDocumentError) as caught:
        client.recognize(b"x" * (33 * 1024 * 1024))
    assert caught.value.reason == "page_image_too_large"
    assert a.calls() == 0


def test_g7_slow_server_hits_the_deadline(servers):
    a = servers("a", delay_s=3.0)
    with OcrClient(a.address) as client:
        client.wait_until_ready(10)
        started = time.monotonic()
        with pytest.raises(OcrUnavailable) as caught:
            client.recognize(b"page", deadline_s=1.0)
    assert caught.value.reason == "ocr_deadline"
    assert 0.9 <= time.monotonic() - started < 1.5


def test_refused_page_keeps_its_reason_and_is_not_retried(servers):
    a = servers("a")
    with OcrClient(a.address) as client, pytest.raises(InputDocumentError) as caught:
        client.recognize(b"BAD image bytes")
    assert caught.value.reason == "corrupt_image"
    assert a.calls() == 1


def test_full_queue_answers_resource_exhausted(servers):
    a = servers("a", delay_s=1.0, extra=("--workers", "1", "--queue", "0"))
    with OcrClient(a.address) as client:
        client.wait_until_ready(10)
        failures = _load(client, calls=3, threads=3, page=b"page")
    assert failures and all("RESOURCE_EXHAUSTED" in exc.message for exc, _ in failures)


def test_g9_calls_without_the_token_never_reach_the_handler(servers):
    a = servers("a", extra=("--token", "s3cret"))
    for token in (None, "wrong"):
        with OcrClient(a.address, token=token) as client, pytest.raises(TextlayerError) as caught:
            client.recognize(b"page")
        assert caught.value.reason == "unauthenticated"
    assert a.calls() == 0
    with OcrClient(a.address, token="s3cret") as client:
        assert client.recognize(b"page").text == "4-bytes"
    assert a.calls() == 1


def test_token_is_never_sent_in_plaintext_to_another_machine():
    with pytest.raises(ValueError, match="plaintext"):
        OcrClient("10.1.2.3:50051", token="s3cret")


def test_metrics_count_requests_by_status(servers):
    port = _free_port()
    a = servers("a", extra=("--metrics-port", str(port)))
    with OcrClient(a.address) as client:
        client.recognize(b"page")
        with pytest.raises(InputDocumentError):
            client.recognize(b"BAD")
    # The server counts a call after its reply is on the wire: poll briefly rather than race it.
    deadline = time.monotonic() + 10
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        if 'code="INVALID_ARGUMENT"} 1.0' in text or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 'textlayer_ocr_requests_total{code="OK"} 1.0' in text
    assert 'textlayer_ocr_requests_total{code="INVALID_ARGUMENT"} 1.0' in text
    assert "textlayer_ocr_request_seconds_bucket" in text and "textlayer_ocr_queue_depth" in text


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all made here."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def issue(name: str, issuer_key, issuer_name, *, ca: bool = False, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name or subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        return key, cert

    ca_key, ca_cert = issue("textlayer test CA", None, None, ca=True)
    server_key, server_cert = issue(
        "localhost", ca_key, ca_cert.subject, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    client_key, client_cert = issue("celery-worker", ca_key, ca_cert.subject)
    paths = {}
    for name, key, cert in (
        ("ca", ca_key, ca_cert),
        ("server", server_key, server_cert),
        ("client", client_key, client_cert),
    ):
        paths[f"{name}.pem"] = directory / f"{name}.pem"
        paths[f"{name}.pem"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{name}.key"] = directory / f"{name}.key"
        paths[f"{name}.key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return paths


def test_mtls_with_a_token_admits_only_certified_clients(servers, tmp_path):
    files = _certificates(tmp_path)
    a = servers(
        "a",
        extra=("--token", "s3cret", "--tls", str(files["server.pem"]), str(files["server.key"]), str(files["ca.pem"])),
    )
    certified = {"tls_ca": files["ca.pem"], "tls_cert": files["client.pem"], "tls_key": files["client.key"]}
    with OcrClient(a.address, token="s3cret", **certified) as client:
        assert client.recognize(b"page").text == "4-bytes"
    # No client certificate: the handshake fails.
    with (
        OcrClient(a.address, token="s3cret", tls_ca=files["ca.pem"], deadline_s=3) as client,
        pytest.raises(OcrUnavailable),
    ):
        client.recognize(b"page")
    with OcrClient(a.address, token="wrong", **certified) as client, pytest.raises(TextlayerError) as caught:
        client.recognize(b"page")
    assert caught.value.reason == "unauthenticated"
    assert a.calls() == 1
