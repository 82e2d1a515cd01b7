"""The ``textlayer`` command line: the parser, ``main``, and the commands ocr, ocr-server, sandbox and models."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

from textlayer import __version__
from textlayer.cli.api import add_api_commands
from textlayer.cli.jobs import add_job_commands
from textlayer.cli.settings import settings_for
from textlayer.config import Settings
from textlayer.errors import InputDocumentError, OutputInvalid, SandboxCrashed, TextlayerError, UsageError

if TYPE_CHECKING:
    from textlayer.conversion import DocumentConverter
    from textlayer.elements import PageRecord, PageText
    from textlayer.ocr import PageReader
    from textlayer.sandbox import SandboxPolicy

log = logging.getLogger(__name__)

FORMATS = ("text", "json", "hocr", "alto", "pdf")

OUTPUT_TYPES = ("pdf", "pdfa", "pdfa-2", "none")
"""``--output-type``: OCRmyPDF's names (``pdfa-2`` is ``pdfa``; PDF/A-1 and -3 are not made)."""

_SUFFIX_FORMATS = {".pdf": "pdf", ".json": "json", ".hocr": "hocr", ".html": "hocr", ".xml": "alto", ".alto": "alto"}
"""The format an OUTPUT file name implies when neither --format nor --output-type says."""

_OCR_EPILOG = """\
examples:
  textlayer ocr scan.pdf searchable.pdf       add an invisible, selectable text layer
  textlayer ocr -l eng --rotate-pages --deskew --jobs 2 --output-type pdfa in.pdf out.pdf
  textlayer ocr scan.png                      print the text of a scan
  cat scan.pdf | textlayer ocr - - > out.pdf  standard input to standard output
  textlayer ocr photo.jpg out.pdf --sidecar out.txt
  textlayer ocr in.pdf --output-type none --sidecar out.txt
  textlayer ocr book.tiff book.xml            ALTO 4 XML (--format alto); .json, .hocr likewise

Pages of a PDF that already carry text are passed through (--skip-text); a document whose every page
has text is refused with exit status 6 unless --skip-text, --redo-ocr or --force-ocr says what to do.
The document is decoded and read inside jailed processes (seccomp allowlist, namespaces, read-only
private root, no network); `textlayer sandbox check` shows the layers on this host.

exit status (OCRmyPDF's): 0 done, 1 bad arguments, 2 the input file cannot be processed (the reason is
printed), 3 a missing dependency (a model, a language the model set cannot read), 4 the output was
written but is not valid (PDF/A), 6 every page already has text, 8 the input is encrypted,
15 any other error, 130 interrupted.
"""


class _Parser(argparse.ArgumentParser):
    """Bad arguments exit with status 1, as OCRmyPDF's do (argparse's own is 2: an input-file error there)."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and the message, exit 1."""
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _add_ocr_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ocr = commands.add_parser(
        "ocr",
        help="OCR a PDF or image into a searchable PDF, PDF/A, text, JSON, hOCR or ALTO (OCRmyPDF's flags)",
        description="Read the text of a scan (PDF, PNG, JPEG or multi-page TIFF) and write a searchable PDF, or the "
        "text with its word boxes. The flags mean what OCRmyPDF's mean (README.md has the table).",
        usage="textlayer ocr [options] INPUT [OUTPUT]",
        epilog=_OCR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ocr.add_argument(
        "input", metavar="INPUT", help="the document to read: PDF, PNG, JPEG or TIFF; - for standard input"
    )
    ocr.add_argument(
        "output",
        metavar="OUTPUT",
        nargs="?",
        help="where to write: a file, or - for standard output (a PDF unless --format says otherwise); "
        "without it, the text goes to standard output",
    )
    out = ocr.add_argument_group("Output options")
    out.add_argument("-o", "--output", dest="output_option", metavar="FILE", help="the same as OUTPUT")
    out.add_argument(
        "--output-type",
        choices=OUTPUT_TYPES,
        help="pdf: a searchable PDF; pdfa (= pdfa-2): PDF/A-2b for archiving; none: no output file (use --sidecar). "
        "Default: pdf when the output is a PDF ($TEXTLAYER_OUTPUT_TYPE sets it)",
    )
    out.add_argument(
        "--format",
        choices=FORMATS,
        help="text (reading order, form feed between pages), json (the result JSON: schemas/result.schema.json), "
        "hocr (XHTML), alto (ALTO 4 XML) or pdf; default: from OUTPUT's suffix (.pdf .json .hocr .xml), "
        "pdf for OUTPUT -, else text",
    )
    out.add_argument(
        "--sidecar", metavar="FILE", type=Path, help="also write the plain text here (form feed between pages)"
    )

    text = ocr.add_argument_group("OCR options")
    text.add_argument(
        "-l",
        "--language",
        metavar="LANG",
        help="languages on the pages, Tesseract's codes joined by + (eng+deu); one the model set cannot read is "
        "refused with the list it can (the model reads all its scripts at once)",
    )
    modes = text.add_mutually_exclusive_group()
    modes.add_argument(
        "-s",
        "--skip-text",
        action="store_true",
        help="pass pages that already have text through unchanged (the default)",
    )
    modes.add_argument(
        "--redo-ocr",
        action="store_true",
        help="replace an earlier OCR layer (invisible text) with a new one; pages with visible text are passed through",
    )
    modes.add_argument(
        "-f",
        "--force-ocr",
        action="store_true",
        help="OCR every page; a page that had text becomes its rasterised image with the new text layer",
    )
    text.add_argument(
        "--model", help="model set from models_onnx/manifest.toml: small (default, most accurate) or tiny"
    )
    text.add_argument("--dpi", type=int, help="resolution to rasterise PDF pages at (default 300)")
    text.add_argument(
        "--invalidate-signature",
        "--invalidate-digital-signatures",
        dest="invalidate_signature",
        action="store_true",
        help="OCR a digitally signed PDF anyway (refused by default: the new file's signature no longer verifies)",
    )

    image = ocr.add_argument_group("Image preprocessing options")
    image.add_argument(
        "-r",
        "--rotate-pages",
        action="store_true",
        help="turn pages whose text is sideways or upside down so it reads upright",
    )
    image.add_argument(
        "--rotate-pages-threshold",
        type=float,
        default=14.0,
        metavar="CONFIDENCE",
        help="turn a page only when its text, read upright, has at least this mean word confidence in percent "
        "(default 14)",
    )
    image.add_argument(
        "-d", "--deskew", action="store_true", help="straighten skewed pages (the page becomes its straightened image)"
    )

    jobs = ocr.add_argument_group("Job control options")
    jobs.add_argument(
        "-j", "--jobs", type=int, default=1, metavar="N", help="pages read at once = jailed OCR workers (default 1)"
    )
    jobs.add_argument("-q", "--quiet", action="store_true", help="only errors: no progress bar, no notes")
    jobs.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what each step does")
    jobs.add_argument("--no-progress-bar", action="store_true", help="no progress bar (notes and errors still)")
    jobs.add_argument("--max-pixels", type=int, help="largest page accepted, in pixels (default 50000000)")
    jobs.add_argument(
        "--max-image-mpixels",
        type=float,
        metavar="MPX",
        help="the same limit in megapixels (OCRmyPDF's name; default 50)",
    )
    jobs.add_argument("--threads", type=int, help="onnxruntime threads per model (default 1)")
    jobs.add_argument(
        "--server",
        metavar="ADDR",
        help="send the pages to running OCR servers (textlayer ocr-server) instead of OCRing here: "
        "unix:PATH, HOST:PORT, a comma-separated list of IP:PORT, or dns:///NAME:PORT",
    )
    jobs.add_argument(
        "--no-sandbox",
        action="store_true",
        help="debugging only: decode and OCR in this process instead of the seccomp/namespace jail",
    )
    ocr.set_defaults(handler=_cmd_ocr)


_SERVER_EPILOG = """\
examples:
  textlayer ocr-server                                 unix socket in the data directory, 1 worker
  textlayer ocr-server --listen 0.0.0.0:50051 --workers 2 --metrics-port 9464 \\
      --tls-cert server.pem --tls-key server.key --token-file token
  textlayer ocr scan.png --server unix:$HOME/.local/share/textlayer/ocr.sock
  grpcurl -plaintext -unix $HOME/.local/share/textlayer/ocr.sock list     (reflection is on)
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="textlayer",
        description="textlayer turns scanned documents into searchable text with ONNX OCR models.",
    )
    parser.add_argument("--version", action="version", version=f"textlayer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each step does")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the service keeps its state: jobs, index, blobs, Redis, sockets, logs "
        "(default $TEXTLAYER_DATA_DIR or ~/.local/share/textlayer)",
    )
    # Subcommands are _Parsers too (parser_class defaults to the parent's class): bad arguments exit 1 everywhere.
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )

    _add_ocr_command(commands)

    server = commands.add_parser(
        "ocr-server",
        help="serve OCR over gRPC with a pool of jailed workers",
        description="Run the gRPC OCR service (textlayer.rpc.v1.OcrService) with N jailed workers. "
        "Health reports SERVING once every worker is warm and verified; SIGTERM drains and stops; "
        "SIGUSR1 takes the server out of rotation (NOT_SERVING), SIGUSR2 puts it back.",
        epilog=_SERVER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help="unix:PATH, HOST:PORT or [::]:PORT; repeatable (default unix:DATA_DIR/ocr.sock)",
    )
    server.add_argument("--workers", type=int, default=1, help="jailed OCR workers = pages at once (default 1)")
    server.add_argument("--queue", type=int, default=8, help="pages that may wait for a worker (default 8)")
    server.add_argument("--model", help="model set: small (default) or tiny")
    server.add_argument("--threads", type=int, help="onnxruntime threads per worker (default 1)")
    server.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus /metrics on this port")
    server.add_argument("--tls-cert", type=Path, help="server certificate (PEM); turns TLS on")
    server.add_argument("--tls-key", type=Path, help="private key of --tls-cert")
    server.add_argument("--tls-client-ca", type=Path, help="require client certificates signed by this CA (mTLS)")
    server.add_argument(
        "--token-file", type=Path, help="require this bearer token on every call (default: $TEXTLAYER_OCR_TOKEN)"
    )
    server.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="serve without TLS on an address other machines can reach (only on a network you trust)",
    )
    server.set_defaults(handler=_cmd_ocr_server)

    add_job_commands(commands)
    add_api_commands(commands)

    sandbox = commands.add_parser(
        "sandbox",
        help="show how OCR workers are jailed on this host",
        description="Start one jailed OCR worker, verify it from the outside and print the layers in force.",
    )
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    check = sandbox_commands.add_parser(
        "check",
        help="print the jail layers in force on this host",
        description="Start a jailed worker as textlayer ocr would, verify it from /proc and print its layers. "
        "TEXTLAYER_SANDBOX_LAYERS=prefer allows hosts without user namespaces (containers).",
    )
    check.add_argument(
        "--escape-suite",
        action="store_true",
        help="also run the harmless escape probes inside the jail and show how each was stopped",
    )
    check.set_defaults(handler=_cmd_sandbox_check)

    models = commands.add_parser(
        "models",
        help="list the OCR models and verify their sha256",
        description="List every model in the manifest, where it is installed, and whether its hash matches.",
    )
    models.set_defaults(handler=_cmd_models)
    return parser


def _output_plan(args: argparse.Namespace, settings: Settings) -> tuple[str | None, str | None, str]:
    """Where the output goes (None: stdout as text, ``-``: stdout), its format (None: none) and the PDF kind.

    Raises:
        UsageError: the flags contradict each other.
    """
    if args.output is not None and args.output_option is not None:
        raise UsageError("give the output once: OUTPUT or -o FILE, not both")
    output = args.output if args.output is not None else args.output_option
    output_type = {"pdfa-2": "pdfa"}.get(args.output_type, args.output_type)
    if output_type == "none":
        if output not in (None, "-"):
            raise UsageError("--output-type none writes no output file; give - (or nothing) as OUTPUT")
        if args.format is not None:
            raise UsageError("--output-type none writes no output; --format has nothing to format")
        return None, None, "none"
    if output_type is not None and args.format not in (None, "pdf"):
        raise UsageError(f"--output-type {args.output_type} makes a PDF, --format {args.format} does not; choose one")
    if args.format is not None:
        output_format = args.format
    elif output_type is not None or output == "-":
        output_format = "pdf"
    elif output is None:
        output_format = "text"
    else:
        output_format = _SUFFIX_FORMATS.get(Path(output).suffix.lower(), "text")
    if output_format == "pdf" and output in (None, "-") and sys.stdout.isatty():
        raise UsageError("a PDF is not written to a terminal: name an OUTPUT file or redirect standard output")
    return output, output_format, output_type or settings.output_type


def _read_input(name: str, settings: Settings) -> bytes:
    limit = settings.max_upload_mib * 1024 * 1024
    try:
        if name == "-":
            data = sys.stdin.buffer.read(limit + 1)  # never more than one byte past the limit
        else:
            with Path(name).open("rb") as file:
                data = file.read(limit + 1)
    except OSError as exc:
        raise InputDocumentError(f"cannot read {name}: {exc.strerror}", reason="unreadable_file") from exc
    if len(data) > limit:
        raise InputDocumentError(
            f"The file is larger than {settings.max_upload_mib} MiB; split it or lower its resolution "
            "(or raise TEXTLAYER_MAX_UPLOAD_MIB).",
            reason="file_too_large",
        )
    return data


def _cmd_ocr(args: argparse.Namespace) -> int:
    # Imported here so that `textlayer --help` stays instant.
    from tqdm import tqdm

    from textlayer import formats
    from textlayer.files import write_atomically
    from textlayer.media.sniff import document_kind
    from textlayer.ocr import OcrOptions, ocr_document

    verbose = getattr(args, "verbose", False)
    if args.quiet:
        logging.getLogger("textlayer").setLevel(logging.ERROR)
    elif not verbose:
        # A one-shot command says what went wrong in its one error line; the pool's retries are detail.
        logging.getLogger("textlayer.sandbox").setLevel(logging.ERROR)
    else:
        logging.getLogger().setLevel(logging.INFO)
    settings = settings_for(args)
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    output, output_format, pdf_type = _output_plan(args, settings)
    if args.language:
        from textlayer.worker.languages import check_languages

        check_languages(args.language, settings.model)
    data = _read_input(args.input, settings)
    document_kind(data)  # empty or not a document: refused by its magic bytes before any jail starts
    bars: list[tqdm[None]] = []

    def report(record: PageRecord) -> None:
        if record.has_text and record.page is None:
            if not args.quiet:
                print(
                    f"textlayer: page {record.index + 1} already has text; passed through (--force-ocr to OCR it)",
                    file=sys.stderr,
                )
        elif record.page is None:
            log.info("page %d is blank; nothing to read", record.index + 1)
        else:
            log.info(
                "page %d: %d lines, rotation %d, %s",
                record.index + 1,
                len(record.page.lines),
                record.page.rotation,
                {k: round(v, 2) for k, v in record.page.timings_s.items()},
            )
        bars[0].update(1)

    options = OcrOptions(
        parallel_pages=args.jobs,
        force_ocr=args.force_ocr,
        redo_ocr=args.redo_ocr,
        refuse_text_only=not (args.skip_text or args.redo_ocr or args.force_ocr),
        deskew=args.deskew,
        rotate_pages=args.rotate_pages,
        rotate_pages_threshold=args.rotate_pages_threshold,
        output_type=pdf_type if pdf_type != "none" else "pdf",
    )
    with contextlib.ExitStack() as stack:
        converter = stack.enter_context(_converter(args, settings))
        reader = stack.enter_context(_page_reader(args, settings))

        def start_bar(total: int) -> None:
            disable = True if args.quiet or args.no_progress_bar else (total < 2 or None)  # None: only on a terminal
            bars.append(
                stack.enter_context(tqdm(total=total, unit="page", desc="OCR", disable=disable, file=sys.stderr))
            )

        result = ocr_document(
            data, converter, reader, options, on_total=start_bar, on_page=report, build_pdf=output_format == "pdf"
        )
    if args.sidecar is not None:
        write_atomically(args.sidecar, formats.to_text(result.pages), private=False)
    if output_format is None:
        return 0
    if output_format == "pdf":
        assert result.pdf is not None
        content: str | bytes = result.pdf
    else:
        filename = None if args.input == "-" else Path(args.input).name
        content = formats.render(output_format, result.records, filename=filename)
    if output is None or output == "-":
        if isinstance(content, bytes):
            sys.stdout.buffer.write(content)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(content)
    else:
        write_atomically(Path(output), content, private=False)
    if result.pdf_problems:
        raise OutputInvalid("the output was written but is not a valid PDF/A-2b: " + "; ".join(result.pdf_problems))
    return 0


def _converter(args: argparse.Namespace, settings: Settings) -> contextlib.AbstractContextManager[DocumentConverter]:
    """Where the document is parsed: a jailed converter, or this process with --no-sandbox."""
    from textlayer.conversion import InProcessConverter, JailedConverter, converter_policy, document_limits

    limits = dataclasses.replace(document_limits(settings), invalidate_signature=args.invalidate_signature)
    if args.no_sandbox:
        print(
            "textlayer: warning: --no-sandbox: the document is decoded and OCRed in this process, outside the jail; "
            "use it only for debugging and on files you trust",
            file=sys.stderr,
        )
        return contextlib.nullcontext(InProcessConverter(limits))
    return JailedConverter(converter_policy(settings), limits, quarantine_dir=settings.quarantine_dir)


@contextlib.contextmanager
def _page_reader(args: argparse.Namespace, settings: Settings) -> Iterator[PageReader]:
    """What OCRs the pages: the OCR servers (--server), this process (--no-sandbox), or jailed workers."""
    if args.server:
        from textlayer.worker.client import OcrClient

        try:
            client = OcrClient(args.server, token=settings.ocr_token, deadline_s=float(settings.sandbox_deadline_s))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        with client:
            yield client
        return
    if args.no_sandbox:
        from textlayer.worker.ocr_role import InProcessReader
        from textlayer.worker.predictor import OcrPredictor

        yield InProcessReader(
            OcrPredictor.load(settings.model, threads=settings.threads), max_pixels=settings.max_pixels
        )
        return
    from textlayer.worker.jailed import ocr_policy

    reader = _BackgroundJailedReader(ocr_policy(settings, workers=getattr(args, "jobs", 1)), settings.quarantine_dir)
    try:
        yield reader
    finally:
        reader.close()


class _BackgroundJailedReader:
    """Jailed OCR workers, started in the background while the converter reads the document.

    The first page that needs them waits for them; closing stops them (after their start).
    """

    def __init__(self, policy: SandboxPolicy, quarantine_dir: Path) -> None:
        from textlayer.sandbox import SandboxPool

        self._pool = SandboxPool(policy, quarantine_dir=quarantine_dir)
        self._error: BaseException | None = None
        self._starting = threading.Thread(target=self._start, name="ocr-workers", daemon=True)
        self._starting.start()

    def _start(self) -> None:
        try:
            self._pool.start()
        except BaseException as exc:  # re-raised in the thread that needs the workers
            self._error = exc

    def recognize(self, image: bytes, *, dpi: float | None = None, frame: int = 0) -> PageText:
        from textlayer.worker.jailed import JailedReader

        self._starting.join()
        if self._error is not None:
            raise self._error
        return JailedReader(self._pool).recognize(image, dpi=dpi, frame=frame)

    def close(self) -> None:
        self._starting.join()
        self._pool.close()


def _cmd_ocr_server(args: argparse.Namespace) -> int:
    import asyncio

    from textlayer.files import private_dir
    from textlayer.sandbox import SandboxPool
    from textlayer.worker.jailed import JailedReader, ocr_policy
    from textlayer.worker.server import ServerConfig, TlsFiles, check_listen_security, serve

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.INFO)
    settings = settings_for(args)
    if args.workers < 1 or args.queue < 0:
        raise UsageError("--workers must be at least 1 and --queue at least 0")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise UsageError("--tls-client-ca needs --tls-cert and --tls-key (client certificates are checked over TLS)")
    token = settings.ocr_token
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise TextlayerError(f"cannot read {args.token_file}: {exc.strerror}") from exc
    listen = args.listen
    if not listen:
        private_dir(settings.data_dir)
        listen = [f"unix:{settings.data_dir / 'ocr.sock'}"]
    check_listen_security(listen, tls=bool(args.tls_cert), allow_plaintext=args.allow_plaintext)
    config = ServerConfig(
        listen=tuple(listen),
        workers=args.workers,
        queue_size=args.queue,
        metrics_port=args.metrics_port,
        tls=TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None,
        token=token,
        model=settings.model,
    )
    with SandboxPool(ocr_policy(settings, workers=args.workers), quarantine_dir=settings.quarantine_dir) as pool:
        asyncio.run(serve(JailedReader(pool), config))
    return 0


def _cmd_sandbox_check(args: argparse.Namespace) -> int:
    from textlayer.sandbox import SandboxPool, landlock, probes
    from textlayer.worker.jailed import ocr_policy

    settings = settings_for(args)
    print(f"kernel {os.uname().release} {os.uname().machine}; running as uid {os.geteuid()}")
    print(f"Landlock ABI {landlock.abi_version() or 'unavailable'}; layer policy: {settings.sandbox_layers}")
    with SandboxPool(ocr_policy(settings, test_hooks=args.escape_suite)) as pool:
        (worker,) = pool.live_workers
        print(f"worker pid {worker.pid}: verified from /proc (Seccomp 2, NoNewPrivs 1, CapEff 0 on every thread)")
        for layer, value in sorted(pool.layers.items()):
            print(f"  {layer:14} {json.dumps(value)}")
        print("  start-up       " + ", ".join(f"{k} {v:.2f} s" for k, v in worker.timings_s.items()))
        if not args.escape_suite:
            return 0
        escaped = 0
        pid = probes.unused_pid()
        with tempfile.TemporaryDirectory(prefix="textlayer-probe-") as scratch:
            print("escape suite (each probe is harmless outside a jail):")
            for name in probes.PROBES:
                try:
                    header, _ = pool.call({"op": "probe", "name": name, "scratch": scratch, "pid": pid}, retry=False)
                    outcome = str(header.get("outcome"))
                except SandboxCrashed as exc:
                    outcome = f"killed ({exc.reason})"
                    pool.call({"op": "ping"})  # waits for the replacement worker; a success resets the backoff
                escaped += outcome.startswith("escaped")
                print(f"  {name:14} {outcome}")
        print("all probes blocked" if not escaped else f"{escaped} probe(s) ESCAPED")
        return 0 if not escaped else 4


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
        # The reason code is what scripts match on; the sentence is for people.
        code = f" [{exc.reason}]" if isinstance(exc, InputDocumentError) else ""
        print(f"textlayer: error: {exc.message}{code}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("textlayer: interrupted", file=sys.stderr)
        return 130
