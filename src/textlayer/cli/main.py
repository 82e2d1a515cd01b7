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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textlayer import __version__
from textlayer.cli.api import add_api_commands
from textlayer.cli.jobs import add_job_commands
from textlayer.cli.settings import settings_for
from textlayer.config import Settings
from textlayer.errors import InputDocumentError, SandboxCrashed, TextlayerError

if TYPE_CHECKING:
    from textlayer.conversion import DocumentConverter
    from textlayer.elements import PageRecord
    from textlayer.ocr import PageReader

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
The document is decoded and read inside a jailed worker process (seccomp allowlist, namespaces,
read-only private root, no network); `textlayer sandbox check` shows the layers on this host.
Exit status: 0 done, 2 the input cannot be processed (the reason is printed), 3 model problem.
"""


_SERVER_EPILOG = """\
examples:
  textlayer ocr-server                                 unix socket in the data directory, 1 worker
  textlayer ocr-server --listen 0.0.0.0:50051 --workers 2 --metrics-port 9464 \\
      --tls-cert server.pem --tls-key server.key --token-file token
  textlayer ocr scan.png --server unix:$HOME/.local/share/textlayer/ocr.sock
  grpcurl -plaintext -unix $HOME/.local/share/textlayer/ocr.sock list     (reflection is on)
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    ocr.add_argument(
        "--invalidate-signature",
        action="store_true",
        help="OCR a digitally signed PDF anyway (refused by default: the new file's signature no longer verifies)",
    )
    ocr.add_argument("--max-pixels", type=int, help="largest page accepted, in pixels (default 50000000)")
    ocr.add_argument("--threads", type=int, help="onnxruntime threads per model (default 1)")
    ocr.add_argument(
        "--server",
        metavar="ADDR",
        help="send the pages to running OCR servers (textlayer ocr-server) instead of OCRing here: "
        "unix:PATH, HOST:PORT, a comma-separated list of IP:PORT, or dns:///NAME:PORT",
    )
    ocr.add_argument(
        "--no-sandbox",
        action="store_true",
        help="debugging only: decode and OCR in this process instead of the seccomp/namespace jail",
    )
    ocr.set_defaults(handler=_cmd_ocr)

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


def _cmd_ocr(args: argparse.Namespace) -> int:
    # Imported here so that `textlayer --help` stays instant.
    from tqdm import tqdm

    from textlayer import formats
    from textlayer.files import write_atomically
    from textlayer.ocr import OcrOptions, ocr_document

    if not args.verbose:
        # A one-shot command says what went wrong in its one error line; the pool's retries are detail.
        logging.getLogger("textlayer.sandbox").setLevel(logging.ERROR)
    settings = settings_for(args)
    output_format = args.format or ("pdf" if args.output and args.output.suffix.lower() == ".pdf" else "text")
    if output_format == "pdf" and args.output is None:
        raise TextlayerError("--format pdf needs -o OUTPUT.pdf (a PDF is not written to a terminal)")
    limit = settings.max_upload_mib * 1024 * 1024
    try:
        with args.input.open("rb") as file:
            data = file.read(limit + 1)  # never more than one byte past the limit
    except OSError as exc:
        raise TextlayerError(f"cannot read {args.input}: {exc.strerror}") from exc
    if len(data) > limit:
        raise InputDocumentError(
            f"The file is larger than {settings.max_upload_mib} MiB; split it or lower its resolution "
            "(or raise TEXTLAYER_MAX_UPLOAD_MIB).",
            reason="file_too_large",
        )
    bars: list[tqdm[None]] = []

    def report(record: PageRecord) -> None:
        if record.has_text and record.page is None:
            print(
                f"textlayer: page {record.index + 1} already has text; skipped (--force-ocr to OCR it)", file=sys.stderr
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

    with contextlib.ExitStack() as stack:
        converter = stack.enter_context(_converter(args, settings))
        reader = stack.enter_context(_page_reader(args, settings))

        def start_bar(total: int) -> None:
            bars.append(
                stack.enter_context(
                    tqdm(total=total, unit="page", desc="OCR", disable=total < 2 or None, file=sys.stderr)
                )
            )

        result = ocr_document(
            data,
            converter,
            reader,
            OcrOptions(force_ocr=args.force_ocr),
            on_total=start_bar,
            on_page=report,
            build_pdf=output_format == "pdf",
        )
    if output_format == "pdf":
        assert result.pdf is not None
        output: str | bytes = result.pdf
    else:
        render = {"text": formats.to_text, "json": formats.to_json, "hocr": formats.to_hocr}[output_format]
        output = render(result.pages)
    if args.sidecar is not None:
        write_atomically(args.sidecar, formats.to_text(result.pages), private=False)
    if args.output is None:
        sys.stdout.write(str(output))
    else:
        write_atomically(args.output, output, private=False)
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
    return JailedConverter(converter_policy(settings), limits)


@contextlib.contextmanager
def _page_reader(args: argparse.Namespace, settings: Settings) -> Iterator[PageReader]:
    """What OCRs the pages: the OCR servers (--server), this process (--no-sandbox), or jailed workers."""
    if args.server:
        from textlayer.worker.client import OcrClient

        try:
            client = OcrClient(args.server, token=settings.ocr_token, deadline_s=float(settings.sandbox_deadline_s))
        except ValueError as exc:
            raise TextlayerError(str(exc)) from exc
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
    from textlayer.sandbox import SandboxPool
    from textlayer.worker.jailed import JailedReader, ocr_policy

    with SandboxPool(ocr_policy(settings)) as pool:
        yield JailedReader(pool)


def _cmd_ocr_server(args: argparse.Namespace) -> int:
    import asyncio

    from textlayer.files import private_dir
    from textlayer.sandbox import SandboxPool
    from textlayer.worker.jailed import JailedReader, ocr_policy
    from textlayer.worker.server import ServerConfig, TlsFiles, check_listen_security, serve

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.INFO)
    settings = settings_for(args)
    if args.workers < 1 or args.queue < 0:
        raise TextlayerError("--workers must be at least 1 and --queue at least 0")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise TextlayerError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise TextlayerError(
            "--tls-client-ca needs --tls-cert and --tls-key (client certificates are checked over TLS)"
        )
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
    with SandboxPool(ocr_policy(settings, workers=args.workers)) as pool:
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
