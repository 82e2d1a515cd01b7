"""The ``textlayer`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from textlayer import __version__
from textlayer.config import Settings
from textlayer.errors import TextlayerError

log = logging.getLogger(__name__)

FORMATS = ("text", "json", "hocr", "pdf")

_OCR_EPILOG = """\
examples:
  textlayer ocr scan.png                      print the text of a scan
  textlayer ocr scan.pdf -o searchable.pdf    add an invisible, selectable text layer
  textlayer ocr photo.jpg -o out.pdf --sidecar out.txt
  textlayer ocr invoice.pdf --format hocr -o invoice.hocr
  textlayer ocr receipt.jpg --model tiny      faster, somewhat less accurate

Pages of a PDF that already carry text are reported and left alone unless --force-ocr
(even then, a searchable PDF never gets a second text layer on such a page).
Exit status: 0 done, 2 the input cannot be processed (the reason is printed), 3 model problem.
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textlayer",
        description="textlayer turns scanned documents into searchable text with ONNX OCR models.",
    )
    parser.add_argument("--version", action="version", version=f"textlayer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each step does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ocr = commands.add_parser(
        "ocr",
        help="OCR an image or PDF and print or save its text",
        description="Read the text of a scan (PDF, PNG, JPEG or multi-page TIFF) with its word boxes.",
        epilog=_OCR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ocr.add_argument("input", type=Path, help="the document to read")
    ocr.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    ocr.add_argument(
        "--format",
        choices=FORMATS,
        help="text (reading order, form feed between pages), json (words, boxes, confidences), "
        "hocr (XHTML with ocrx_word boxes) or pdf (the document with an invisible text layer); "
        "default: pdf when OUTPUT ends in .pdf, else text",
    )
    ocr.add_argument("--sidecar", type=Path, help="also write the plain text here (form feed between pages)")
    ocr.add_argument("--model", help="model set from models_onnx/manifest.toml: small (default, most accurate) or tiny")
    ocr.add_argument("--dpi", type=int, help="resolution to rasterise PDF pages at (default 300)")
    ocr.add_argument("--force-ocr", action="store_true", help="also OCR PDF pages that already have text")
    ocr.add_argument("--max-pixels", type=int, help="largest page accepted, in pixels (default 50000000)")
    ocr.add_argument("--threads", type=int, help="onnxruntime threads per model (default 1)")
    ocr.set_defaults(handler=_cmd_ocr)

    models = commands.add_parser(
        "models",
        help="list the OCR models and verify their sha256",
        description="List every model in the manifest, where it is installed, and whether its hash matches.",
    )
    models.set_defaults(handler=_cmd_models)
    return parser


def _settings_for(args: argparse.Namespace) -> Settings:
    try:
        base = Settings.from_env(os.environ)
    except ValueError as exc:
        raise TextlayerError(f"bad setting: {exc}") from exc
    overrides = {
        "model": args.model,
        "pdf_dpi": args.dpi,
        "max_pixels": args.max_pixels,
        "threads": args.threads,
    }
    values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
    return Settings(**values)


def _cmd_ocr(args: argparse.Namespace) -> int:
    # Imported here so that `textlayer --help` stays instant.
    from tqdm import tqdm

    from textlayer import formats
    from textlayer.documents import DocumentLimits, count_pages, iter_pages
    from textlayer.elements import PageText
    from textlayer.worker.predictor import OcrPredictor

    settings = _settings_for(args)
    output_format = args.format or ("pdf" if args.output and args.output.suffix.lower() == ".pdf" else "text")
    if output_format == "pdf" and args.output is None:
        raise TextlayerError("--format pdf needs -o OUTPUT.pdf (a PDF is not written to a terminal)")
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        raise TextlayerError(f"cannot read {args.input}: {exc.strerror}") from exc
    limits = DocumentLimits(max_pixels=settings.max_pixels, max_pages=settings.max_pages, dpi=settings.pdf_dpi)
    total = count_pages(data, limits)
    predictor = OcrPredictor.load(settings.model, threads=settings.threads)
    pages: list[PageText | None] = []
    pages_with_text: list[int] = []
    with tqdm(total=total, unit="page", desc="OCR", disable=total < 2 or None, file=sys.stderr) as bar:
        for page in iter_pages(data, limits, force_ocr=args.force_ocr):
            if page.has_text:
                pages_with_text.append(page.index)
            if page.image is None:
                print(
                    f"textlayer: page {page.index + 1} already has text; skipped (--force-ocr to OCR it)",
                    file=sys.stderr,
                )
                pages.append(None)
            else:
                result = predictor.recognize(page.image, dpi=page.dpi)
                log.info(
                    "page %d: %d lines, rotation %d, %s",
                    page.index + 1,
                    len(result.lines),
                    result.rotation,
                    {k: round(v, 2) for k, v in result.timings_s.items()},
                )
                pages.append(result)
            bar.update(1)
    if output_format == "pdf":
        from textlayer.pdf_overlay import build_searchable_pdf

        output: str | bytes = build_searchable_pdf(data, pages, pages_with_text=pages_with_text)
    else:
        render = {"text": formats.to_text, "json": formats.to_json, "hocr": formats.to_hocr}[output_format]
        output = render(pages)
    if args.sidecar is not None:
        _write_atomically(args.sidecar, formats.to_text(pages))
    if args.output is None:
        sys.stdout.write(str(output))
    else:
        _write_atomically(args.output, output)
    return 0


def _write_atomically(path: Path, content: str | bytes) -> None:
    """Write via a temporary file + rename, so a failure never leaves half a file."""
    directory = path.resolve().parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cmd_models(args: argparse.Namespace) -> int:
    from textlayer.worker.manifest import load_manifest, sha256_of

    manifest = load_manifest()
    print(f"manifest: {manifest.path}")
    for name, roles in sorted(manifest.sets.items()):
        print(f"set {name}: " + ", ".join(f"{role}={model}" for role, model in roles.items()))
    failures = 0
    for spec in manifest.models.values():
        installed = spec.installed_version()
        try:
            path = spec.locate()
            actual = sha256_of(path) if path.is_file() else "missing"
        except TextlayerError:
            path, actual = None, "package not installed"
        ok = actual == spec.sha256
        failures += not ok
        status = "ok" if ok else f"MISMATCH (found {actual})"
        version_note = "" if installed == spec.version else f" [installed {installed}]"
        print(
            f"  {spec.name:24} {spec.role:16} {spec.package}=={spec.version}{version_note} {spec.path}  sha256 {status}"
        )
    if failures:
        print(f"textlayer: error: {failures} model file(s) failed verification", file=sys.stderr)
        return 3
    print("all models verified")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textlayer`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except TextlayerError as exc:
        print(f"textlayer: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
