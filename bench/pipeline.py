"""The whole service under load: 50 pages through `textlayer up` vs in-process OCR vs OCRmyPDF.

Run: .venv/bin/python bench/pipeline.py [--pages 50]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# bench/grpc.py would shadow the grpc package that the OCR client imports: drop this folder from the path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import argparse
import json
import multiprocessing
import shutil
import statistics
import subprocess
import tempfile
import time

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = REPO.parent / "shared" / "eval"
DEFAULT_OUT = REPO / "bench" / "out" / "pipeline.json"

DESCRIPTION = """\
Compares, in ONE run, on the same page images (each image one document):
  pipeline    `textlayer up --ocr-workers 2 --concurrency 2` (embedded Redis, OCR server with 2
              jailed workers, Celery worker, SQLite job store and FTS5 index); all documents
              submitted at once; pages/s = pages / (last finish - first submit); per-document
              latency = finish - submit (p50/p99)
  in-process  the same pages OCRed by 2 processes (1 onnxruntime thread each, what the 2 jailed
              workers do) without queue, gRPC, jail, PDF or index: the floor the pipeline is
              compared with (overhead = pipeline wall time / in-process wall time)
  ocrmypdf    `ocrmypdf --jobs 2` on one PDF holding the same images, when ocrmypdf is on PATH
"""


def _pages(eval_dir: Path, count: int) -> list[tuple[str, bytes]]:
    files = [REPO / "samples" / "two-column-scan.jpg"]
    for set_dir in sorted(p for p in eval_dir.glob("*") if p.is_dir()):
        files += sorted(f for f in set_dir.rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
    chosen = (files * (count // max(len(files), 1) + 1))[:count]
    return [(f"{i:03d}-{f.name}", f.read_bytes()) for i, f in enumerate(chosen)]


def _ocr_in_process(datas: list[bytes]) -> float:
    from textlayer.media.images import decode_image
    from textlayer.worker.predictor import OcrPredictor

    predictor = OcrPredictor.load(threads=1)
    started = time.perf_counter()
    for data in datas:
        predictor.recognize(decode_image(data)[0].image)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    print(DESCRIPTION)
    pages = _pages(args.eval_dir, args.pages)
    results: dict[str, object] = {"pages": len(pages)}

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        halves = [[d for _, d in pages[0::2]], [d for _, d in pages[1::2]]]
        started = time.perf_counter()
        pool.map(_ocr_in_process, halves)
        results["in_process_wall_s"] = time.perf_counter() - started
    print(f"in-process, 2 processes: {results['in_process_wall_s']:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TEXTLAYER_OCR_SERVERS")}
        env["TEXTLAYER_DATA_DIR"] = str(data_dir)
        log_path = Path(tmp) / "up.log"
        with log_path.open("w") as log:
            up = subprocess.Popen(
                [sys.executable, "-m", "textlayer", "up", "--ocr-workers", "2", "--concurrency", "2"],
                env=env,
                stdout=log,
                stderr=log,
            )
        try:
            while "textlayer is up" not in log_path.read_text():
                if up.poll() is not None:
                    raise SystemExit(log_path.read_text())
                time.sleep(0.2)
            os.environ["TEXTLAYER_DATA_DIR"] = str(data_dir)
            from textlayer.config import Settings
            from textlayer.queue.app import configure
            from textlayer.queue.runtime import broker_url, build_pipeline
            from textlayer.queue.tasks import publish

            settings = Settings.from_env(os.environ)
            configure(broker_url(settings))
            pipeline = build_pipeline(settings)
            submitted: dict[str, float] = {}
            first = time.time()
            for name, data in pages:
                submitted[pipeline.submit("bench", data, filename=name, publish=publish)] = time.time()
            while True:
                jobs = [pipeline.jobs.get(job_id) for job_id in submitted]
                if all(job.terminal for job in jobs):
                    break
                time.sleep(0.5)
            last = max(job.updated_at for job in jobs)
            latencies = sorted(job.updated_at - submitted[job.id] for job in jobs)
            results["pipeline_wall_s"] = last - first
            results["pipeline_pages_per_s"] = len(pages) / (last - first)
            results["pipeline_states"] = {s: sum(1 for j in jobs if j.state == s) for s in {j.state for j in jobs}}
            results["latency_p50_s"] = statistics.median(latencies)
            results["latency_p99_s"] = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
        finally:
            up.terminate()
            up.wait(timeout=180)
    results["pipeline_over_in_process"] = results["pipeline_wall_s"] / results["in_process_wall_s"]  # type: ignore[operator]

    ocrmypdf = shutil.which("ocrmypdf") or os.environ.get("OCRMYPDF")
    if ocrmypdf:
        import img2pdf  # type: ignore[import-not-found]  # OCRmyPDF's own dependency

        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "in.pdf"
            source.write_bytes(img2pdf.convert([d for _, d in pages]))
            started = time.perf_counter()
            subprocess.run([ocrmypdf, "--jobs", "2", "-q", str(source), str(Path(tmp) / "out.pdf")], check=True)
            results["ocrmypdf_wall_s"] = time.perf_counter() - started
            results["pipeline_speed_over_ocrmypdf"] = results["ocrmypdf_wall_s"] / results["pipeline_wall_s"]  # type: ignore[operator]
    else:
        results["ocrmypdf"] = "not installed (put ocrmypdf on PATH or set OCRMYPDF)"

    print()
    print(f"{len(pages)} pages ({len(pages)} documents)")
    print(
        f"  pipeline:   {results['pipeline_wall_s']:.1f} s, {results['pipeline_pages_per_s']:.2f} pages/s, "
        f"latency p50 {results['latency_p50_s']:.1f} s, p99 {results['latency_p99_s']:.1f} s, "
        + f"{results['pipeline_states']}"
    )
    print(f"  in-process: {results['in_process_wall_s']:.1f} s (2 processes, OCR only)")
    print(f"  pipeline / in-process wall time: {results['pipeline_over_in_process']:.3f}")
    if "ocrmypdf_wall_s" in results:
        print(
            f"  ocrmypdf --jobs 2: {results['ocrmypdf_wall_s']:.1f} s; pipeline is "
            f"{results['pipeline_speed_over_ocrmypdf']:.2f}x as fast"
        )
    else:
        print(f"  ocrmypdf: {results['ocrmypdf']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
