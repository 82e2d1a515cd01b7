"""OCR service throughput and latency: gRPC server with 1 and 2 jailed workers vs in-process OCR.

Run: .venv/bin/python bench/grpc.py [--pages 10] [--clients 4]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# This file is named like the grpc package: drop its own folder from the import path before
# anything imports grpc, or `import grpc` would find this script.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import tempfile
import time

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = REPO.parent / "shared" / "eval"
DEFAULT_OUT = REPO / "bench" / "out" / "grpc.json"

DESCRIPTION = """\
Compares, in ONE run and on the same encoded page images:
  in-process  decode_image + OcrPredictor.recognize in this process, one page at a time (1 core)
  1 worker    `textlayer ocr-server --workers 1` on a unix socket, reached through OcrClient
  2 workers   the same server with --workers 2
Per-page overhead at 1 worker: one client, pages sent one at a time, alternating page by page
with the in-process run; the median of per-page latency ratios server / in-process.
Throughput: --clients concurrent clients send every page once (pages/s, p50/p99 latency);
2 workers / 1 worker is the scaling on this 2-core machine. 1 onnxruntime thread everywhere.
"""


def _pages(eval_dir: Path, count: int) -> list[bytes]:
    pages = [(REPO / "samples" / "two-column-scan.jpg").read_bytes()]
    for set_dir in sorted(p for p in eval_dir.glob("*") if p.is_dir()):
        images = sorted(f for f in set_dir.rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
        pages += [f.read_bytes() for f in images[: count // 2]]
    return (pages * count)[:count]


def _start_server(workers: int, socket_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    address = f"unix:{socket_dir / f'ocr-{workers}.sock'}"
    command = [sys.executable, "-m", "textlayer", "ocr-server", "--listen", address, "--workers", str(workers)]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    return server, address


def _throughput(client: object, pages: list[bytes], clients: int) -> dict[str, float]:
    latencies: list[float] = []

    def one(data: bytes) -> None:
        started = time.perf_counter()
        client.recognize(data)  # type: ignore[attr-defined]
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, pages))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "pages_per_s": len(pages) / wall,
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10, help="pages per measurement (default 10)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for throughput (default 4)")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    from textlayer.media.images import decode_image
    from textlayer.worker.client import OcrClient
    from textlayer.worker.predictor import OcrPredictor

    print(DESCRIPTION)
    pages = _pages(args.eval_dir, args.pages)
    predictor = OcrPredictor.load(threads=1)
    results: dict[str, object] = {"pages": len(pages), "clients": args.clients}
    with tempfile.TemporaryDirectory(prefix="textlayer-bench-") as tmp:
        for workers in (1, 2):
            server, address = _start_server(workers, Path(tmp))
            try:
                with OcrClient(address, deadline_s=600) as client:
                    client.wait_until_ready(180)
                    for _ in range(60):  # SERVING comes after the workers' warm-up
                        try:
                            client.recognize(pages[0])
                            break
                        except Exception:
                            time.sleep(1)
                    if workers == 1:
                        ratios, local_s, remote_s = [], [], []
                        for data in pages:
                            started = time.perf_counter()
                            predictor.recognize(decode_image(data)[0].image)
                            local = time.perf_counter() - started
                            started = time.perf_counter()
                            client.recognize(data)
                            remote = time.perf_counter() - started
                            ratios.append(remote / local)
                            local_s.append(local)
                            remote_s.append(remote)
                        results["in_process_median_s"] = statistics.median(local_s)
                        results["one_worker_sequential_median_s"] = statistics.median(remote_s)
                        results["overhead_ratio_1_worker"] = statistics.median(ratios)
                        started = time.perf_counter()
                        for data in pages:
                            predictor.recognize(decode_image(data)[0].image)
                        results["in_process_pages_per_s"] = len(pages) / (time.perf_counter() - started)
                    results[f"throughput_{workers}_worker"] = _throughput(client, pages, args.clients)
                    print(f"{workers} worker(s): {results[f'throughput_{workers}_worker']}", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=120)
    one = results["throughput_1_worker"]["pages_per_s"]  # type: ignore[index]
    two = results["throughput_2_worker"]["pages_per_s"]  # type: ignore[index]
    results["scaling_2_over_1"] = two / one
    print()
    print(
        f"in-process: {results['in_process_median_s']:.2f} s/page median, "
        + f"{results['in_process_pages_per_s']:.2f} pages/s"
    )
    print(
        f"1 worker, one page at a time: {results['one_worker_sequential_median_s']:.2f} s/page median; "
        f"server / in-process = {results['overhead_ratio_1_worker']:.3f} (median of per-page ratios)"
    )
    for workers in (1, 2):
        t = results[f"throughput_{workers}_worker"]
        print(
            f"{workers} worker(s), {args.clients} clients: {t['pages_per_s']:.2f} pages/s, "  # type: ignore[index]
            f"p50 {t['p50_s']:.2f} s, p99 {t['p99_s']:.2f} s"  # type: ignore[index]
        )
    print(f"2 workers / 1 worker throughput: {results['scaling_2_over_1']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
