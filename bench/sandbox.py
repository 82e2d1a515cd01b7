"""Jail overhead: per-page latency jailed vs plain subprocess vs in-process, and worker start-up time.

Run: .venv/bin/python bench/sandbox.py [--iterations 30] [--starts 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = REPO.parent / "shared" / "eval"
DEFAULT_OUT = REPO / "bench" / "out" / "sandbox.json"

DESCRIPTION = """\
Compares, in ONE run and on the same encoded page images, three ways to OCR a page:
  in-process  decode_image(bytes) + OcrPredictor.recognize() in this process (textlayer ocr --no-sandbox)
  plain       a SandboxPool worker started with the test-only fault "no_jail": same subprocess, same
              frames and IPC, same decode + OCR, but no namespaces, rlimits, Landlock or seccomp
  jailed      a SandboxPool worker with the default policy (what textlayer ocr uses)
Each iteration OCRs one page in all three modes, in a rotating order; the per-iteration ratios
are summarised by their median (the machine is shared and noisy, so ratios measured side by side
matter more than absolute times). All modes use 1 onnxruntime thread and the same model set.
Start-up: spawn -> verified READY of a jailed and a plain worker, alternating, median of --starts.
Pages: samples/two-column-scan.jpg plus the first --eval-pages images of each eval set (when found).
"""


def _pages(eval_dir: Path, per_set: int) -> list[tuple[str, bytes]]:
    pages = [("sample/two-column-scan.jpg", (REPO / "samples" / "two-column-scan.jpg").read_bytes())]
    for set_dir in sorted(p for p in eval_dir.glob("*") if p.is_dir()):
        images = sorted(f for f in set_dir.rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))
        pages += [(f"{set_dir.name}/{f.name}", f.read_bytes()) for f in images[:per_set]]
    return pages


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=30, help="pages OCRed per mode (default 30)")
    parser.add_argument("--starts", type=int, default=5, help="worker start-ups timed per kind (default 5)")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--eval-pages", type=int, default=2, help="images taken from each eval set (default 2)")
    parser.add_argument("--model", default="small")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    from textlayer.config import Settings
    from textlayer.media.images import decode_image
    from textlayer.sandbox import SandboxPool
    from textlayer.worker.jailed import JailedReader, ocr_policy
    from textlayer.worker.predictor import OcrPredictor

    pages = _pages(args.eval_dir, args.eval_pages)
    print(DESCRIPTION)
    print(f"pages: {', '.join(name for name, _ in pages)}")
    policy = ocr_policy(Settings(model=args.model, sandbox_layers="require"), test_hooks=True)

    starts: dict[str, list[float]] = {"jailed": [], "plain": []}
    for _ in range(args.starts):
        for kind, faults in (("jailed", ()), ("plain", ("no_jail",))):
            pool = SandboxPool(policy, inject_faults=faults)
            starts[kind].append(_timed(pool.start))
            pool.close()

    predictor = OcrPredictor.load(args.model, threads=1)

    def in_process(data: bytes) -> None:
        predictor.recognize(decode_image(data)[0].image)

    times: dict[str, list[float]] = {"in-process": [], "plain": [], "jailed": []}
    with SandboxPool(policy) as jailed, SandboxPool(policy, inject_faults=("no_jail",)) as plain:
        modes: dict[str, Callable[[bytes], object]] = {
            "in-process": in_process,
            "plain": JailedReader(plain).recognize,
            "jailed": JailedReader(jailed).recognize,
        }
        names = list(modes)
        for _, data in pages:  # warm every mode on every page once
            for name in names:
                modes[name](data)
        for iteration in range(args.iterations):
            _, data = pages[iteration % len(pages)]
            order = names[iteration % 3 :] + names[: iteration % 3]
            for name in order:
                times[name].append(_timed(lambda name=name, data=data: modes[name](data)))
            print(
                f"  {iteration + 1:3d}/{args.iterations} "
                + "  ".join(f"{name} {times[name][-1] * 1000:7.0f} ms" for name in names),
                flush=True,
            )
        layers_in_force = jailed.layers

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    summary = {
        "pages": [name for name, _ in pages],
        "iterations": args.iterations,
        "median_ms": {name: statistics.median(values) * 1000 for name, values in times.items()},
        "ratio_jailed_over_plain": ratio("jailed", "plain"),
        "ratio_jailed_over_in_process": ratio("jailed", "in-process"),
        "ratio_plain_over_in_process": ratio("plain", "in-process"),
        "startup_median_s": {kind: statistics.median(values) for kind, values in starts.items()},
        "layers": layers_in_force,
        "python": sys.version.split()[0],
    }
    print()
    print(f"per-page latency, median of {args.iterations} ({len(pages)} pages cycled):")
    for name, value in summary["median_ms"].items():
        print(f"  {name:11} {value:8.0f} ms")
    print(f"  jailed / plain subprocess   {summary['ratio_jailed_over_plain']:.3f}  (median of per-page ratios)")
    print(f"  jailed / in-process         {summary['ratio_jailed_over_in_process']:.3f}")
    print(f"  plain  / in-process         {summary['ratio_plain_over_in_process']:.3f}")
    print("worker start-up, spawn -> verified READY, median of", args.starts)
    for kind, value in summary["startup_median_s"].items():
        print(f"  {kind:7} {value * 1000:6.0f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
