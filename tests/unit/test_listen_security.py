"""Plaintext tokens and page images never leave the machine unless someone asked for it (release gate item 9)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from textlayer.worker.client import OcrClient
from textlayer.worker.server import is_loopback


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("unix:/run/textlayer/ocr.sock", True),
        ("unix-abstract:textlayer", True),
        ("127.0.0.1:50051", True),
        ("127.8.9.10:50051", True),
        ("[::1]:50051", True),
        ("localhost:50051", True),
        ("dns:///localhost:50051", True),
        ("unixbox.corp:50051", False),
        ("unix.example.org:50051", False),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.0.0.5:50051", False),
        ("dns:///ocr.internal:50051", False),
    ],
)
def test_only_unix_sockets_and_loopback_hosts_count_as_local(address, local):
    assert is_loopback(address) is local


@pytest.mark.parametrize("servers", ["unixbox.corp:50051", "127.0.0.1:50051,10.0.0.5:50051", "dns:///ocr.internal:1"])
def test_a_token_is_never_sent_in_plaintext_to_another_machine(servers):
    with pytest.raises(ValueError, match="plaintext"):
        OcrClient(servers, token="secret")


def test_a_token_may_go_to_a_local_server_in_plaintext():
    OcrClient("127.0.0.1:50051,127.0.0.2:50052", token="secret").close()


def _server(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "textlayer", "ocr-server", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_server_refuses_plaintext_on_every_interface():
    result = _server("--listen", "0.0.0.0:0")
    assert result.returncode != 0
    assert "refusing to serve page images and tokens in plaintext on 0.0.0.0:0" in result.stderr


def test_a_client_ca_without_a_server_certificate_is_an_error_not_ignored(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read")
    result = _server("--listen", "127.0.0.1:0", "--tls-client-ca", str(ca))
    assert result.returncode != 0 and "--tls-client-ca needs --tls-cert" in result.stderr
