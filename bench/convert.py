"""Converter jail overhead: inspect + rasterise + rebuild a scanned PDF, jailed vs in-process.

Run: .venv/bin/python bench/convert.py [--rounds 7] [--pages 20]
"""

from __future__ import annotations

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = REPO.parent / "shared" / "eval"
DEFAULT_OUT = REPO / "bench" / "out" / "convert.json"

DESCRIPTION = """\
Compares, in ONE run and on the same PDF, the two document converters:
  in-process  InProcessConverter (textlayer ocr --no-sandbox): PDFium, pypdf, reportlab in this process
  jailed      JailedConverter (the default everywhere): the same code in a jailed worker without models,
              the document sent in for every request, page PNGs and the output PDF sent back
One round = inspect the document, rasterise every page at 300 dpi (as the pipeline asks for them) and
rebuild it as a searchable PDF (no words: the text layer's cost is the same for both). Rounds
alternate the order of the two modes; the median of the per-round ratios jailed / in-process is
reported (the machine is shared and noisy, so side-by-side ratios matter more than absolute times).
The jailed converter's start-up (spawn -> verified READY) is reported separately.
The PDF: samples/two-column-scan.jpg and real scans from the eval sets (when found), one per page.
"""


def _scan_pdf(eval_dir: Path, pages: int) -> tuple[bytes, list[str]]:
    from reportlab.pdfgen import canvas

    files = [REPO / "samples" / "two-column-scan.jpg"]
    for set_dir in sorted(p for p in eval_dir.glob("*") if p.is_dir()):
        files += sorted(f for f in set_dir.rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg"))[: pages // 2]
    files = files[:pages]
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(612, 792))
    for file in files:
        pdf.drawImage(str(file), 0, 0, width=612, height=792)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue(), [f.name for f in files]


def _round(converter, data: bytes) -> float:
    started = time.perf_counter()
    total = converter.inspect(data).pages
    pages = list(converter.pages(data, range(total)))
    converter.build_pdf(data, [None] * total, [p.index for p in pages if p.has_text])
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="rounds per mode (default 7)")
    parser.add_argument("--pages", type=int, default=20, help="pages in the test PDF (default 20)")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    sys.path[:0] = [str(REPO / "src")]
    from textlayer.config import Settings
    from textlayer.conversion import InProcessConverter, JailedConverter, converter_policy, document_limits

    print(DESCRIPTION)
    data, names = _scan_pdf(args.eval_dir, args.pages)
    print(f"document: {len(names)} pages, {len(data) / 1e6:.1f} MB ({', '.join(names[:4])}, ...)")
    settings = Settings(sandbox_layers=os.environ.get("TEXTLAYER_SANDBOX_LAYERS", "require"))
    in_process = InProcessConverter(document_limits(settings))
    started = time.perf_counter()
    with JailedConverter(converter_policy(settings), document_limits(settings)) as jailed:
        jailed._started()
        start_s = time.perf_counter() - started
        times: dict[str, list[float]] = {"in-process": [], "jailed": []}
        for number in range(args.rounds):
            order = [("in-process", in_process), ("jailed", jailed)]
            for name, converter in order if number % 2 == 0 else order[::-1]:
                times[name].append(_round(converter, data))
        deaths = dict(jailed._started().deaths)
    ratios = [j / p for j, p in zip(times["jailed"], times["in-process"], strict=True)]
    result = {
        "pages": len(names),
        "rounds": args.rounds,
        "median_round_s": {name: statistics.median(values) for name, values in times.items()},
        "ms_per_page": {name: 1000 * statistics.median(values) / len(names) for name, values in times.items()},
        "jailed_over_in_process": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "jailed_start_s": start_s,
        "worker_deaths": deaths,
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
