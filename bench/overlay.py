"""Searchable-PDF benchmark: textlayer's invisible text layer vs OCRmyPDF's, on the same page images."""

from __future__ import annotations

import os

# Set before anything imports onnxruntime.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import argparse
import importlib
import importlib.util
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
DEFAULT_OUT_DIR = REPO / "bench" / "out"
DEFAULT_OCRMYPDF_VENV = Path("/tmp/ocrmypdf-venv")
GENERATED = "generated"
OURS = "textlayer"
THEIRS = "ocrmypdf"
DEFAULT_IMAGE_DPI = 300.0
"""What textlayer assumes when an image records no resolution; OCRmyPDF is given the same."""

DESCRIPTION = """\
Benchmark the searchable PDF that textlayer writes (textlayer.pdf_overlay.build_searchable_pdf)
against OCRmyPDF's, on the same page images, and read both back with pdfplumber.

Pages: the generated pages of tests/pages.py (each kind clean plus --gen-seeds degraded
variants, encoded as --gen-format at --gen-dpi with the dpi recorded), and every image of every
set in the shared eval folder (default ../shared/eval next to the repository; skipped with a
note when absent). --limit N takes the first N pages of each set.

textlayer: each page is decoded and OCRed ONCE (OcrPredictor, --threads onnxruntime threads);
then build_searchable_pdf(image bytes, [page]) is timed --repeat times (median, after one
untimed warm-up build). "Image-only" = build_searchable_pdf(image bytes, [None]).
OCRmyPDF: run as a subprocess (`ocrmypdf --output-type pdf --jobs 1 -l eng --optimize 0
--image-dpi D --sidecar`, OMP_THREAD_LIMIT=--threads), one untimed warm-up run; "image-only" =
the same command with --ocr-engine none. --optimize 0 keeps its lossless image optimiser
from changing the image, so the size difference is the text layer. Skipped, with the reason,
when it is not installed (see --ocrmypdf).

Columns (per tool; CER in percent, case-insensitive, score.py's normalisation: NFKC, quotes and
dashes folded, whitespace runs -> one space; micro-averaged over the set):
  layer ms/pg   textlayer: median build_searchable_pdf wall time per page (OCR excluded).
                OCRmyPDF: its whole run with --ocr-engine none (process start, image->PDF,
                no OCR): the closest thing it has to "everything but the OCR".
  total s/pg    textlayer: OCR + layer (models loaded once, in process); OCRmyPDF: the whole
                subprocess with Tesseract (includes ~1 s of process start-up).
  +KB/pg img    output size - image-only PDF size of the same tool: the text layer's cost.
  +KB/pg in     output size - input image file size.
  CER           pdfplumber extract_text() (its default geometric row order) vs ground truth.
  CER-flow      extract_text(use_text_flow=True): the layer's own order (two columns stay apart).
  CER-nosp      CER of extract_text() with all spaces deleted on both sides.
  CER-geo       both sides re-ordered into the same geometric rows (needs score.py): order-free.
  box-F1        pdfplumber words (points -> image pixels) vs true words: IoU >= 0.5, same text.
  fidelity      CER of extract_text(use_text_flow=True) vs the tool's OWN OCR text (textlayer's
                PageText, OCRmyPDF's --sidecar): what the layer loses, OCR errors excluded.
  img kept      pages whose image is in the PDF unchanged (JPEG: the same bytes; other
                formats: the same decoded pixels).
Ratio lines per set: ours/OCRmyPDF (below 1 = ours smaller/faster/better).

Output: tables on stdout; per-page numbers as JSON under --out (default
bench/out/overlay-<timestamp>/), plus the PDFs with --keep-pdfs.
"""


# --------------------------------------------------------------------------- pages and scoring


@dataclass
class Page:
    """One benchmark page: its ground truth and its image file bytes."""

    set_name: str
    ident: str
    data: bytes
    suffix: str  # ".jpg", ".png", ... (OCRmyPDF wants a file)
    truth_text: str
    truth_words: list[dict[str, Any]]


@dataclass
class Result:
    """One tool's output for one page, and its numbers."""

    ok: bool = True
    error: str = ""
    layer_s: float = 0.0
    total_s: float = 0.0
    size: int = 0
    image_only_size: int | None = None
    input_size: int = 0
    image_kept: bool | None = None
    text: str = ""  # pdfplumber extract_text()
    flow_text: str = ""  # pdfplumber extract_text(use_text_flow=True)
    own_text: str = ""  # the tool's own OCR text
    words: list[dict[str, Any]] = field(default_factory=list)  # pdfplumber words, image pixels
    page_pt: tuple[float, float] = (0.0, 0.0)  # the output page's size


_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u00ad": None,
    }
)


def norm_ci(text: str) -> str:
    """score.py's case-insensitive normalisation."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD)
    return re.sub(r"\s+", " ", text).strip().lower()


def distance(a: str, b: str) -> int:
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(a, b))


def load_scorer(eval_dir: Path) -> ModuleType | None:
    """The eval folder's reference scorer (for CER-geo and box-F1), or None."""
    path = eval_dir / "score.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("eval_score", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated_pages(limit: int | None, dpi: int, seeds: int, fmt: str) -> list[Page] | str:
    """Pages of tests/pages.py, or a reason string when that module is unusable."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        pages_mod = importlib.import_module("tests.pages")
        variants = []
        for kind in pages_mod.PAGE_KINDS:
            clean = pages_mod.make_page(kind, dpi)
            variants.append((f"{kind}_clean", clean))
            variants += [(f"{kind}_deg{seed}", pages_mod.degrade(clean, seed)) for seed in range(seeds)]
    except Exception as exc:  # someone else's file, possibly mid-edit: skip, don't crash
        return f"tests/pages.py unusable ({type(exc).__name__}: {exc})"
    encode = pages_mod.page_to_jpeg if fmt == "jpeg" else pages_mod.page_to_png
    out = []
    for ident, gp in variants[:limit] if limit else variants:
        words = [{"text": w.text, "box": [float(c) for c in w.box]} for w in gp.words]
        out.append(Page(GENERATED, ident, encode(gp), ".jpg" if fmt == "jpeg" else ".png", gp.text, words))
    return out


def eval_pages(eval_dir: Path, sets: list[str] | None, limit: int | None) -> dict[str, list[Page]]:
    """Pages of every eval set (folders with a manifest.json), read at run time, never copied."""
    found = sorted(p.parent.name for p in eval_dir.glob("*/manifest.json"))
    out: dict[str, list[Page]] = {}
    for name in found:
        if sets and name not in sets:
            continue
        manifest = json.loads((eval_dir / name / "manifest.json").read_text(encoding="utf-8"))
        images = manifest["images"][:limit] if limit else manifest["images"]
        out[name] = [
            Page(
                name,
                entry["id"],
                (eval_dir / name / entry["file"]).read_bytes(),
                Path(entry["file"]).suffix.lower(),
                entry["text"],
                entry["words"],
            )
            for entry in images
        ]
    return out


def with_dpi(page: Page, dpi: int) -> Page:
    """The page with ``dpi`` recorded in its file when it is a PNG or TIFF that records none (pixels unchanged)."""
    from PIL import Image

    with Image.open(io.BytesIO(page.data)) as image:
        if image.info.get("dpi") or image.format not in ("PNG", "TIFF"):
            return page
        buffer = io.BytesIO()
        image.save(buffer, format=image.format, dpi=(dpi, dpi))
    return Page(page.set_name, page.ident, buffer.getvalue(), page.suffix, page.truth_text, page.truth_words)


# --------------------------------------------------------------------------- reading PDFs back


def read_back(pdf: bytes, result: Result, image_size: tuple[int, int]) -> None:
    """Text, flow text and words (in image pixels) of the first page, with pdfplumber."""
    import pdfplumber

    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        page = doc.pages[0]
        result.page_pt = (float(page.width), float(page.height))
        result.text = page.extract_text() or ""
        result.flow_text = page.extract_text(use_text_flow=True) or ""
        sx, sy = image_size[0] / float(page.width), image_size[1] / float(page.height)
        result.words = [
            {"text": w["text"], "box": [w["x0"] * sx, w["top"] * sy, w["x1"] * sx, w["bottom"] * sy]}
            for w in page.extract_words()
        ]


def image_kept(pdf: bytes, source: bytes, suffix: str) -> bool | None:
    """Whether the page's only image is the input unchanged (bytes for JPEG, pixels otherwise)."""
    import numpy as np
    from PIL import Image, ImageOps
    from pypdf import PdfReader

    try:
        page = PdfReader(io.BytesIO(pdf)).pages[0]
        xobjects = page["/Resources"]["/XObject"]
        images = [x.get_object() for x in xobjects.values() if x.get_object().get("/Subtype") == "/Image"]
        if len(images) != 1:
            return False
        if suffix in (".jpg", ".jpeg"):
            return bool(images[0].get_data() == source)
        stored = np.asarray(page.images[0].image.convert("L"))
        original = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(source))).convert("L"))
        return stored.shape == original.shape and bool((stored == original).all())
    except Exception:  # a structure we don't follow (e.g. a Form XObject): unknown
        return None


# --------------------------------------------------------------------------- the two tools


class Textlayer:
    """Our pipeline: OCR once in process, then time build_searchable_pdf alone."""

    def __init__(self, model: str, threads: int, repeat: int) -> None:
        from textlayer.media.images import decode_image
        from textlayer.pdf_overlay import build_searchable_pdf
        from textlayer.worker.predictor import OcrPredictor

        self.build = build_searchable_pdf
        self.decode = decode_image
        self.predictor = OcrPredictor.load(model, threads=threads)
        self.repeat = repeat
        self.warm = False

    def run(self, page: Page) -> tuple[Result, bytes]:
        result = Result(input_size=len(page.data))
        start = time.perf_counter()
        frame = self.decode(page.data)[0]
        ocr = self.predictor.recognize(frame.image, dpi=frame.dpi)
        ocr_s = time.perf_counter() - start
        result.own_text = ocr.text
        if not self.warm:
            self.build(page.data, [ocr])  # fonts, imports: not part of any page's time
            self.warm = True
        times = []
        pdf = b""
        for _ in range(self.repeat):
            start = time.perf_counter()
            pdf = self.build(page.data, [ocr])
            times.append(time.perf_counter() - start)
        result.layer_s = statistics.median(times)
        result.total_s = ocr_s + result.layer_s
        result.size = len(pdf)
        try:
            result.image_only_size = len(self.build(page.data, [None]))
        except Exception as exc:
            result.error = f"image-only build failed: {type(exc).__name__}: {exc}"
        result.image_kept = image_kept(pdf, page.data, page.suffix)
        height, width = frame.image.shape[:2]
        read_back(pdf, result, (width, height))
        return result, pdf


def find_ocrmypdf(explicit: str | None) -> tuple[list[str] | None, str]:
    """The OCRmyPDF command and its version line, or None and why not."""
    candidates = [explicit] if explicit else [shutil.which("ocrmypdf"), str(DEFAULT_OCRMYPDF_VENV / "bin" / "ocrmypdf")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            try:
                version = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=60)
            except OSError as exc:
                return None, f"{candidate} does not run ({exc})"
            if version.returncode == 0:
                return [candidate], version.stdout.strip()
            return None, f"{candidate} --version failed: {version.stderr.strip()[-300:]}"
    if shutil.which("tesseract") is None:
        return None, "neither ocrmypdf nor tesseract is installed"
    return None, (
        "ocrmypdf not found (install it outside the project venv: "
        f"python3 -m venv {DEFAULT_OCRMYPDF_VENV} && {DEFAULT_OCRMYPDF_VENV}/bin/pip install ocrmypdf)"
    )


class Ocrmypdf:
    """OCRmyPDF as a subprocess, with Tesseract, on one image file at a time."""

    def __init__(self, command: list[str], threads: int, workdir: Path) -> None:
        self.command = command
        self.env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}
        self.workdir = workdir

    def _run(
        self, source: Path, target: Path, dpi: float, *extra: str
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        args = [
            *self.command,
            "--output-type",
            "pdf",
            "--jobs",
            "1",
            "-l",
            "eng",
            "--optimize",
            "0",
            "--image-dpi",
            str(round(dpi)),
            *extra,
            str(source),
            str(target),
        ]
        start = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, env=self.env, timeout=900)
        return time.perf_counter() - start, done

    def run(self, page: Page, dpi: float) -> tuple[Result, bytes]:
        result = Result(input_size=len(page.data))
        source = self.workdir / f"in{page.suffix}"
        source.write_bytes(page.data)
        target, bare, sidecar = self.workdir / "out.pdf", self.workdir / "bare.pdf", self.workdir / "out.txt"
        result.total_s, done = self._run(source, target, dpi, "--sidecar", str(sidecar))
        if done.returncode != 0:
            return Result(ok=False, error=f"exit {done.returncode}: {done.stderr.strip()[-500:]}"), b""
        result.layer_s, bare_done = self._run(source, bare, dpi, "--ocr-engine", "none")
        if bare_done.returncode == 0:
            result.image_only_size = bare.stat().st_size
        else:
            result.error = f"image-only run failed: {bare_done.stderr.strip()[-300:]}"
        pdf = target.read_bytes()
        result.size = len(pdf)
        result.own_text = sidecar.read_text(encoding="utf-8", errors="replace")
        result.image_kept = image_kept(pdf, page.data, page.suffix)
        return result, pdf


# --------------------------------------------------------------------------- aggregation


def aggregate(pages: list[Page], results: list[Result], scorer: ModuleType | None) -> dict[str, Any]:
    """Set-level numbers of one tool (micro-averaged CERs)."""
    pairs = [(p, r) for p, r in zip(pages, results, strict=True) if r.ok]
    if not pairs:
        return {"pages": 0}

    def cer(pred_of: Any, nospace: bool = False, truth_of: Any = None) -> float:
        errors = total = 0
        for page, result in pairs:
            truth, pred = norm_ci(truth_of(page, result) if truth_of else page.truth_text), norm_ci(pred_of(result))
            if nospace:
                truth, pred = truth.replace(" ", ""), pred.replace(" ", "")
            errors += distance(pred, truth)
            total += len(truth)
        return errors / max(1, total)

    n = len(pairs)
    out: dict[str, Any] = {
        "pages": n,
        "layer_ms": 1000 * statistics.mean(r.layer_s for _, r in pairs),
        "total_s": statistics.mean(r.total_s for _, r in pairs),
        "added_in_kb": statistics.mean(r.size - r.input_size for _, r in pairs) / 1024,
        "cer": cer(lambda r: r.text),
        "cer_flow": cer(lambda r: r.flow_text),
        "cer_nosp": cer(lambda r: r.text, nospace=True),
        "fidelity": cer(lambda r: r.flow_text, truth_of=lambda p, r: r.own_text),
        "kept": sum(bool(r.image_kept) for _, r in pairs),
    }
    only = [r.size - r.image_only_size for _, r in pairs if r.image_only_size is not None]
    out["added_img_kb"] = statistics.mean(only) / 1024 if len(only) == n else None
    if scorer is not None:
        manifest = {"images": [{"id": p.ident, "text": p.truth_text, "words": p.truth_words} for p, _ in pairs]}
        pred = {"images": {p.ident: {"text": r.text, "words": r.words} for p, r in pairs}}
        agg, _ = scorer.score(manifest, pred)
        out["cer_geo"] = agg.get("cer_geo_ci")
        out["box_f1"] = agg.get("box_ci_f1")
    return out


COLUMNS = (
    ("pages", "pages", "{:d}"),
    ("layer_ms", "layer ms/pg", "{:.0f}"),
    ("total_s", "total s/pg", "{:.2f}"),
    ("added_img_kb", "+KB/pg img", "{:.1f}"),
    ("added_in_kb", "+KB/pg in", "{:.1f}"),
    ("cer", "CER", "{:.2%}"),
    ("cer_flow", "CER-flow", "{:.2%}"),
    ("cer_nosp", "CER-nosp", "{:.2%}"),
    ("cer_geo", "CER-geo", "{:.2%}"),
    ("box_f1", "box-F1", "{:.1%}"),
    ("fidelity", "fidelity", "{:.2%}"),
    ("kept", "img kept", "{:d}"),
)


def table(name: str, rows: dict[str, dict[str, Any]]) -> str:
    header = ["tool", *(title for _, title, _ in COLUMNS)]
    body = []
    for tool, numbers in rows.items():
        cells = [tool]
        for key, _, spec in COLUMNS:
            value = numbers.get(key)
            cells.append("-" if value is None else spec.format(value))
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [f"== {name} =="]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *body]]
    return "\n".join(lines)


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    def ratio(key: str) -> str:
        a, b = ours.get(key), theirs.get(key)
        if a is None or b is None:
            return "-"
        if b == 0:
            return "inf" if a else "1.00 (both 0)"
        return f"{a / b:.2f}"

    return [
        "  ours/OCRmyPDF (below 1: ours smaller, faster or more accurate):",
        f"    CER {ratio('cer')}  CER-flow {ratio('cer_flow')}  CER-nosp {ratio('cer_nosp')}  "
        f"CER-geo {ratio('cer_geo')}  fidelity {ratio('fidelity')}",
        f"    bytes added vs image-only {ratio('added_img_kb')}  vs input {ratio('added_in_kb')}",
        f"    time: layer vs OCRmyPDF without OCR {ratio('layer_ms')}  end to end {ratio('total_s')}",
    ]


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/overlay.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, help="first N pages of each set")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR, help="shared eval folder")
    parser.add_argument("--sets", help="comma-separated eval sets (default: all found)")
    parser.add_argument("--no-generated", action="store_true", help="leave out the generated pages")
    parser.add_argument("--gen-dpi", type=int, default=200, help="resolution of the generated pages (default 200)")
    parser.add_argument("--gen-seeds", type=int, default=1, help="degraded variants per page kind (default 1)")
    parser.add_argument("--gen-format", choices=("jpeg", "png"), default="jpeg", help="generated page files")
    parser.add_argument(
        "--missing-dpi",
        type=int,
        help="record this resolution in PNG/TIFF pages that have none (a lossless re-save, done before either "
        "tool sees the file); default: leave them, so both tools use 300",
    )
    parser.add_argument("--model", default="small", help="textlayer model set (default small)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime / Tesseract threads (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="timed build_searchable_pdf calls per page")
    parser.add_argument("--ocrmypdf", help="the ocrmypdf executable (default: on PATH, else /tmp/ocrmypdf-venv)")
    parser.add_argument("--no-ocrmypdf", action="store_true", help="benchmark textlayer alone")
    parser.add_argument("--out", type=Path, help="output folder (default bench/out/overlay-<timestamp>)")
    parser.add_argument("--keep-pdfs", action="store_true", help="also save every PDF under --out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sets: dict[str, list[Page]] = {}
    if not args.no_generated:
        generated = generated_pages(args.limit, args.gen_dpi, args.gen_seeds, args.gen_format)
        if isinstance(generated, str):
            print(f"generated pages skipped: {generated}")
        else:
            sets[GENERATED] = generated
    if args.eval_dir.is_dir():
        sets.update(eval_pages(args.eval_dir, args.sets.split(",") if args.sets else None, args.limit))
    else:
        print(f"eval folder not found at {args.eval_dir}: real scans skipped")
    if not sets:
        print("no pages to benchmark")
        return 0
    if args.missing_dpi:
        sets = {name: [with_dpi(page, args.missing_dpi) for page in pages] for name, pages in sets.items()}
    scorer = load_scorer(args.eval_dir) if args.eval_dir.is_dir() else None
    if scorer is None:
        print("score.py not available: CER-geo and box-F1 left out")

    ours = Textlayer(args.model, args.threads, args.repeat)
    print(f"textlayer: model set {args.model}, {args.threads} thread(s), layer timed {args.repeat}x per page")
    theirs_cmd, why = (None, "--no-ocrmypdf") if args.no_ocrmypdf else find_ocrmypdf(args.ocrmypdf)
    print(f"OCRmyPDF: {why if theirs_cmd is None else ' '.join(theirs_cmd) + ' (' + why + ')'}")
    out_dir = args.out or DEFAULT_OUT_DIR / time.strftime("overlay-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    print("pages: " + ", ".join(f"{name} {len(pages)}" for name, pages in sets.items()))

    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "ocrmypdf": why, "sets": {}}
    with tempfile.TemporaryDirectory(prefix="bench-overlay-") as tmp:
        theirs = Ocrmypdf(theirs_cmd, args.threads, Path(tmp)) if theirs_cmd else None
        if theirs is not None:
            first = next(iter(sets.values()))[0]
            warm, _ = theirs.run(first, DEFAULT_IMAGE_DPI)  # untimed: page cache, Python byte code
            if not warm.ok:
                print(f"OCRmyPDF skipped: it failed on the first page ({warm.error})")
                theirs = None
        for name, pages in sets.items():
            results: dict[str, list[Result]] = {OURS: [], THEIRS: []}
            for i, page in enumerate(pages, 1):
                mine, pdf = ours.run(page)
                results[OURS].append(mine)
                line = f"  [{name} {i}/{len(pages)}] {page.ident}: ours {mine.total_s:.1f}s"
                line += f" layer {mine.layer_s * 1000:.0f}ms"
                if args.keep_pdfs:
                    (out_dir / f"{name}_{page.ident}_{OURS}.pdf").write_bytes(pdf)
                if theirs is not None:
                    from PIL import Image

                    with Image.open(io.BytesIO(page.data)) as image:
                        size = image.size
                        dpi = float(image.info.get("dpi", (0,))[0]) or DEFAULT_IMAGE_DPI
                    other, other_pdf = theirs.run(page, dpi)
                    if other.ok:
                        read_back(other_pdf, other, size)
                        if args.keep_pdfs:
                            (out_dir / f"{name}_{page.ident}_{THEIRS}.pdf").write_bytes(other_pdf)
                        line += f" | OCRmyPDF {other.total_s:.1f}s"
                        if abs(other.page_pt[0] - mine.page_pt[0]) > 0.01 * mine.page_pt[0]:
                            line += f" (page sizes differ: ours {mine.page_pt}, OCRmyPDF {other.page_pt} pt)"
                    else:
                        line += f" | OCRmyPDF FAILED {other.error[:120]}"
                    results[THEIRS].append(other)
                print(line, flush=True)
            rows = {OURS: aggregate(pages, results[OURS], scorer)}
            if results[THEIRS]:
                rows[THEIRS] = aggregate(pages, results[THEIRS], scorer)
            print()
            print(table(f"{name} ({len(pages)} pages)", rows))
            if THEIRS in rows and rows[THEIRS].get("pages"):
                print("\n".join(ratios(rows[OURS], rows[THEIRS])))
            print()
            report["sets"][name] = {
                "aggregate": rows,
                "pages": {
                    tool: [{"id": p.ident, **asdict(r)} for p, r in zip(pages, rs, strict=False)]
                    for tool, rs in results.items()
                },
            }
    (out_dir / "results.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(f"per-page numbers: {out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
