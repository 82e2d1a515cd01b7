"""The HTTP API under test: a real stack behind `textlayer api` (uvicorn), and a real webhook receiver."""

from __future__ import annotations

import http.server
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.redis_server import free_tcp_port
from tests.service import TERMINAL, Service

WEBHOOK_BACKOFF_MS = 200
"""Webhook retries of the test stack come fast: 0.2 s, 0.4 s, 0.8 s..."""

UPLOAD_IDLE_S = 4
"""A stalled upload of the test stack is dropped after this long."""


@dataclass
class ApiStack:
    """The running stack and the API in front of it."""

    service: Service
    url: str
    env: dict[str, str]
    api: subprocess.Popen[bytes]
    log: Path

    def textlayer(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a textlayer command against the stack's data directory."""
        return subprocess.run(
            [sys.executable, "-m", "textlayer", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def token(self, tenant: str, scope: str = "write") -> str:
        """A new token of ``tenant`` (from the tenant store the CLI's ``tokens create`` writes)."""
        from textlayer.api.context import api_paths
        from textlayer.api.tenants import TenantStore

        with TenantStore(api_paths(self.service.data_dir)["tenants"]) as store:
            return store.create_token(tenant, scope)

    def cli_token(self, tenant: str, scope: str = "write") -> str:
        """A new token of ``tenant``, made by ``textlayer tokens create``."""
        made = self.textlayer("tokens", "create", "--tenant", tenant, "--scope", scope)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    def client(self, token: str | None, **kwargs: object) -> httpx.Client:
        """An HTTP client of the API with ``token``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def wait_jobs(self, client: httpx.Client, job_ids: list[str], timeout_s: float = 240) -> dict[str, dict]:
        """Poll the API until every job has ended."""
        deadline = time.monotonic() + timeout_s
        while True:
            jobs = {job_id: client.get(f"/v1/jobs/{job_id}").json() for job_id in job_ids}
            if all(job["state"] in TERMINAL for job in jobs.values()):
                return jobs
            assert time.monotonic() < deadline, f"jobs not finished: {jobs}"
            time.sleep(0.3)

    def api_log(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Received:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A real HTTP server on loopback that records webhooks and fails the first ``fail_first`` calls per path."""

    url: str
    fail_first: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout_s: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(found := self.on(path)) < count:
            assert time.monotonic() < deadline, f"{path}: {len(found)} of {count} requests: {found}"
            time.sleep(0.05)
        return found


def start_stack(root: Path) -> Iterator[ApiStack]:
    """Start the stack and the API under ``root``; stop them when the generator is closed."""
    service = Service(root)
    port = free_tcp_port()
    env = {
        **service.env,
        "TEXTLAYER_API_LISTEN": f"127.0.0.1:{port}",
        "TEXTLAYER_WEBHOOK_ALLOW": "127.0.0.1/32",
        "TEXTLAYER_WEBHOOK_BACKOFF_MS": str(WEBHOOK_BACKOFF_MS),
        "TEXTLAYER_UPLOAD_IDLE_S": str(UPLOAD_IDLE_S),
    }
    log = root / "logs" / "api.log"
    with log.open("ab") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "textlayer", "api", "--listen", f"127.0.0.1:{port}"], env=env, stdout=out, stderr=out
        )
    running = ApiStack(service, f"http://127.0.0.1:{port}", env, api, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert api.poll() is None, running.api_log()
            try:
                if httpx.get(f"{running.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, running.api_log()
            time.sleep(0.1)
        yield running
    finally:
        api.send_signal(signal.SIGTERM)
        try:
            api.wait(timeout=30)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()
        service.close()


def start_receiver() -> Iterator[Receiver]:
    """Serve a :class:`Receiver` on a free loopback port until the generator is closed."""
    state: dict[str, Receiver] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            me = state["receiver"]
            with me.lock:
                seen = sum(1 for r in me.received if r.path == self.path)
                status = 500 if seen < me.fail_first.get(self.path, 0) else 204
                me.received.append(Received(self.path, dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()


def job_ids_in(text: str) -> set[str]:
    """Every 32-hex-digit id in a response body."""
    return set(re.findall(r"[0-9a-f]{32}", text))


def payload(received: Received) -> dict:
    """A webhook's JSON body."""
    return json.loads(received.body)


def raw_post(url: str, path: str, headers: dict[str, str]) -> socket.socket:
    """Open a connection and send a POST's head only; the caller sends the body (or not) and reads the answer."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    conn.sendall((head + "\r\n").encode())
    return conn


def read_response(conn: socket.socket, timeout_s: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length (status, lower-case headers, body)."""
    conn.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]
