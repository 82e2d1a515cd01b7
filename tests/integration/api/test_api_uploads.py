"""Uploads through the HTTP API: limits before reading, slow and vanishing clients, idempotency, refusals."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api_stack import UPLOAD_IDLE_S, ApiStack, raw_post, read_response
from tests.pages import make_page, page_to_png

pytestmark = [pytest.mark.redis, pytest.mark.sandbox, pytest.mark.onnx, pytest.mark.slow]

MIB = 1024 * 1024
LIMIT = 100 * MIB
CORRUPT_PDF = b"%PDF-1.7\n" + b"\0" * 4096  # passes the magic-byte check, fails fast in the worker


def _leftovers(stack: ApiStack, tenant: str) -> list[str]:
    blobs = stack.service.data_dir / "blobs"
    parts = [p.name for p in (blobs / ".uploads").glob("*")] if (blobs / ".uploads").exists() else []
    return parts + [p.name for p in (blobs / tenant).glob("*")]


def test_a_declared_length_past_the_limit_is_refused_with_413_before_a_byte_is_sent(stack):
    token = stack.token("big")
    conn = raw_post(
        stack.url,
        "/v1/documents",
        {"Authorization": f"Bearer {token}", "Content-Length": str(LIMIT + 1), "Content-Type": "application/pdf"},
    )
    with conn:
        status, _, body = read_response(conn, timeout_s=10)  # the body was never sent
    assert status == 413 and b'"file_too_large"' in body


def test_a_chunked_upload_is_refused_with_413_once_it_passes_the_limit(stack):
    token = stack.token("big-chunked")
    conn = raw_post(stack.url, "/v1/documents", {"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"})
    chunk = b"\x89PNG\r\n\x1a\n" + b"\0" * (MIB - 8)
    with conn:
        for _ in range(LIMIT // MIB):
            conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        conn.sendall(b"1\r\nX\r\n")  # byte LIMIT + 1; the body never ends (no last chunk)
        status, _, body = read_response(conn)
    assert status == 413 and b'"file_too_large"' in body
    assert _leftovers(stack, "big-chunked") == []
    with stack.client(token) as client:
        assert client.get("/v1/jobs").json()["jobs"] == []


def test_a_slow_upload_neither_blocks_other_clients_nor_holds_a_worker(stack):
    slow_token, fast_token = stack.token("slow"), stack.token("fast")
    body_chunks = [CORRUPT_PDF[: 64 * 1024]] + [b"\0" * (64 * 1024)] * 47  # 3 MiB at 0.5 MiB/s: 6 s
    started = threading.Event()
    answer: dict[str, object] = {}

    def slow_upload() -> None:
        def trickle():
            started.set()
            for chunk in body_chunks:
                yield chunk
                time.sleep(len(chunk) / (512 * 1024))

        with stack.client(slow_token) as client:
            answer["response"] = client.post("/v1/documents", content=trickle())

    thread = threading.Thread(target=slow_upload)
    thread.start()
    started.wait(10)
    scan = page_to_png(make_page("receipt", dpi=100))
    with stack.client(fast_token) as fast, stack.client(slow_token) as slow:
        latencies = []
        for _ in range(10):
            began = time.monotonic()
            assert fast.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - began)
        job = fast.post("/v1/documents", params={"filename": "receipt.png"}, content=scan).json()
        assert slow.get("/v1/jobs").json()["jobs"] == []  # no row, so no message and no worker, while it uploads
        while fast.get(f"/v1/jobs/{job['id']}").json()["state"] == "QUEUED":
            time.sleep(0.05)
        assert thread.is_alive(), "a worker should have taken the other job while the slow upload was going on"
        (done,) = stack.wait_jobs(fast, [job["id"]]).values()
        thread.join(30)
    assert done["state"] == "SUCCEEDED", done
    assert max(latencies) < 0.5, latencies
    response = answer["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 202, response


def test_a_client_that_disconnects_mid_upload_leaves_no_blob_row_or_message(stack):
    token = stack.token("vanishing")
    conn = raw_post(stack.url, "/v1/documents", {"Authorization": f"Bearer {token}", "Content-Length": str(5 * MIB)})
    conn.sendall(CORRUPT_PDF + b"\0" * MIB)
    time.sleep(0.3)
    conn.close()
    with stack.client(token) as client:
        deadline = time.monotonic() + 10
        while 'outcome="disconnected"' not in (metrics := client.get("/metrics").text):
            assert time.monotonic() < deadline, metrics[-2000:]
            time.sleep(0.1)
        assert client.get("/v1/jobs").json()["jobs"] == []
    assert _leftovers(stack, "vanishing") == []


def test_a_stalled_upload_is_dropped_with_408(stack):
    token = stack.token("stalled")
    conn = raw_post(stack.url, "/v1/documents", {"Authorization": f"Bearer {token}", "Content-Length": str(MIB)})
    with conn:
        conn.sendall(CORRUPT_PDF)
        status, _, body = read_response(conn, timeout_s=UPLOAD_IDLE_S + 10)
    assert status == 408 and b'"upload_timeout"' in body
    assert _leftovers(stack, "stalled") == []


def test_the_same_upload_with_the_same_key_ten_times_at_once_makes_one_job(stack):
    token = stack.token("idempotent")
    document = CORRUPT_PDF + os.urandom(64 * 1024)

    def upload(_: int) -> httpx.Response:
        with stack.client(token) as client:
            return client.post("/v1/documents", content=document, headers={"Idempotency-Key": "order-42"})

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(upload, range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert {r.headers["location"] for r in responses} == {f"/v1/jobs/{responses[0].json()['id']}"}
    with stack.client(token) as client:
        assert len(client.get("/v1/jobs").json()["jobs"]) == 1
        other = client.post("/v1/documents", content=document + b"x", headers={"Idempotency-Key": "order-42"})
        assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
        assert len(client.get("/v1/jobs").json()["jobs"]) == 1
    assert [p for p in (stack.service.data_dir / "blobs" / ".uploads").glob("*")] == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "empty_file"),
        (b"GIF89a" + b"\0" * 100, 415, "unsupported_type"),
        (b"<html><script>alert(1)</script>%PDF-1.7", 415, "unsupported_type"),
        (b"PK\x03\x04" + b"\0" * 100, 415, "unsupported_type"),
    ],
)
def test_a_refused_upload_gets_its_reason_code_and_makes_no_job(stack, body, status, code):
    token = stack.token("refusals")
    with stack.client(token) as client:
        response = client.post("/v1/documents", content=body)
        assert response.status_code == status
        assert response.json() == {"error": {"code": code, "message": response.json()["error"]["message"]}}
        assert client.get("/v1/jobs").json()["jobs"] == []


def test_tokens_are_checked_and_scoped(stack):
    read_token, write_token = stack.cli_token("scoped", "read"), stack.cli_token("scoped")
    with stack.client(None) as anonymous:
        response = anonymous.get("/v1/jobs")
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert anonymous.get("/v1/jobs", headers={"Authorization": "Bearer tl_0123456789ab_nope"}).status_code == 401
        assert anonymous.get("/healthz").status_code == 200 and anonymous.get("/metrics").status_code == 200
    with stack.client(read_token) as reader:
        assert reader.get("/v1/jobs").status_code == 200
        refused = reader.post("/v1/documents", content=CORRUPT_PDF)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    revoked = stack.textlayer("tokens", "revoke", write_token.split("_")[1])
    assert revoked.returncode == 0, revoked.stderr
    with stack.client(write_token) as writer:
        assert writer.get("/v1/jobs").status_code == 401
    listing = stack.textlayer("tokens", "list").stdout
    assert write_token.split("_")[1] in listing and write_token.split("_")[2] not in listing
    stored = (stack.service.data_dir / "tenants.db").read_bytes()
    assert write_token.encode() not in stored and write_token.split("_")[2].encode() not in stored


def test_limits_answer_429_with_retry_after(stack):
    token = stack.token("limited")
    assert stack.textlayer("tokens", "limits", "--tenant", "limited", "--uploads-per-minute", "2").returncode == 0
    with stack.client(token) as client:
        assert [client.post("/v1/documents", content=b"").status_code for _ in range(2)] == [400, 400]
        limited = client.post("/v1/documents", content=CORRUPT_PDF)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
    token = stack.token("small-store")
    assert stack.textlayer("tokens", "limits", "--tenant", "small-store", "--stored-mib", "1").returncode == 0
    with stack.client(token) as client:
        full = client.post("/v1/documents", content=CORRUPT_PDF + b"\0" * (2 * MIB))
        assert full.status_code == 429 and full.json()["error"]["code"] == "quota_exceeded"
        assert int(full.headers["retry-after"]) >= 1
        assert client.get("/v1/jobs").json()["jobs"] == []
