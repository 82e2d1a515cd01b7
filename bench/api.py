"""The HTTP API alone: uploads accepted per second and upload latency, and the API process's memory under big uploads.

Run: .venv/bin/python bench/api.py [--uploads 400] [--clients 16] [--big 10]

The OCR side is paused (no Celery worker, no OCR server): a private embedded Redis and `textlayer api` on a free
loopback port over a temp data directory, so jobs queue up and only the API is measured.

  1. throughput: --clients concurrent asyncio clients (httpx) upload --uploads 1 MB scans (the sample scan padded to
     1 MB; each makes a new job); uploads accepted per second = accepted / wall time; latency per upload, p50/p99.
  2. memory: --big concurrent uploads of 100 MB each, streamed from the client in 1 MiB chunks; the API process's
     RSS is sampled every 20 ms from /proc; reported: RSS before, peak during (must stay under 200 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "api.json"
MB = 1_000_000
MEMORY_BUDGET_MB = 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _scan_1mb() -> bytes:
    scan = (REPO / "samples" / "two-column-scan.jpg").read_bytes()
    return scan + os.urandom(MB - len(scan))  # data after the JPEG's end is ignored by decoders


async def _throughput(url: str, token: str, uploads: int, clients: int) -> dict[str, float]:
    body = _scan_1mb()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(uploads):
        queue.put_nowait(n)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            while True:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                began = time.perf_counter()
                response = await http.post("/v1/documents", params={"filename": f"scan-{n}.jpg"}, content=body)
                latencies.append(time.perf_counter() - began)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - began
    latencies.sort()
    return {
        "uploads": uploads,
        "clients": clients,
        "accepted": statuses.get(202, 0),
        "statuses": statuses,  # type: ignore[dict-item]
        "wall_s": round(wall, 2),
        "accepted_per_s": round(statuses.get(202, 0) / wall, 1),
        "mb_per_s": round(uploads * len(body) / MB / wall, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
    }


async def _memory(url: str, token: str, pid: int, big: int) -> dict[str, float]:
    chunk = os.urandom(1024 * 1024)
    size = 100 * MB
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(_rss_mb(pid))
            time.sleep(0.02)

    async def upload(n: int) -> int:
        async def body():
            yield b"%PDF-1.7\n"
            sent = 9
            while sent < size:
                piece = chunk[: min(len(chunk), size - sent)]
                sent += len(piece)
                yield piece

        headers = {"Authorization": f"Bearer {token}", "Content-Length": str(size)}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
            response = await http.post("/v1/documents", params={"filename": f"big-{n}.pdf"}, content=body())
            return response.status_code

    before = _rss_mb(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    statuses = await asyncio.gather(*(upload(n) for n in range(big)))
    wall = time.perf_counter() - began
    stop.set()
    sampler.join()
    return {
        "uploads": big,
        "size_mb": size / MB,
        "statuses": sorted(statuses),  # type: ignore[dict-item]
        "wall_s": round(wall, 2),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(max(samples), 1),
        "under_budget": max(samples) < MEMORY_BUDGET_MB,  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=400)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--big", type=int, default=10)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    from textlayer.api.context import api_paths
    from textlayer.api.tenants import TenantStore
    from textlayer.service.redis import EmbeddedRedis, RedisConfig

    with tempfile.TemporaryDirectory(prefix="textlayer-bench-api-") as scratch:
        root = Path(scratch)
        redis = EmbeddedRedis(RedisConfig(data_dir=root / "redis", port=_free_port()))
        redis.start()
        port = _free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis.celery_url,
            "TEXTLAYER_DATA_DIR": str(root / "data"),
            "TEXTLAYER_UPLOADS_PER_MINUTE": "1000000",
            "TEXTLAYER_MAX_STORED_MIB": "1000000",
        }
        (root / "data").mkdir()
        with TenantStore(api_paths(root / "data")["tenants"]) as tenants:
            token = tenants.create_token("bench")
        log = (root / "api.log").open("wb")
        api = subprocess.Popen(
            [sys.executable, "-m", "textlayer", "api", "--listen", f"127.0.0.1:{port}"], env=env, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or api.poll() is not None:
                        raise SystemExit((root / "api.log").read_text()) from None
                    time.sleep(0.1)
            print(f"API pid {api.pid} at {url}; OCR side paused (no worker, no OCR server)", flush=True)
            asyncio.run(_throughput(url, token, 32, args.clients))  # warm-up
            throughput = asyncio.run(_throughput(url, token, args.uploads, args.clients))
            print("throughput:", json.dumps(throughput), flush=True)
            memory = asyncio.run(_memory(url, token, api.pid, args.big))
            print("memory:", json.dumps(memory), flush=True)
        finally:
            api.terminate()
            api.wait(30)
            redis.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"throughput": throughput, "memory": memory}, indent=1))
    print(f"wrote {args.out}")
    return 0 if memory["under_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
