"""The service commands of the ``textlayer`` CLI: up, worker, submit, status, get, search, ingest, demo, reindex."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from textlayer.cli.settings import settings_for
from textlayer.config import DEFAULT_TENANT, Settings
from textlayer.elements import PageRecord
from textlayer.errors import TextlayerError, UsageError

if TYPE_CHECKING:
    from textlayer.queue.pipeline import Pipeline

log = logging.getLogger(__name__)

Publish = Callable[[str], None]


def add_job_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the service subcommands on the CLI's subparsers."""

    def tenant_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--tenant", help="whose documents (default: $TEXTLAYER_TENANT or 'default')")

    def api_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--api",
            metavar="URL",
            help="use the HTTP API at URL (default: $TEXTLAYER_API_URL) with $TEXTLAYER_TOKEN instead of the local "
            "files; the tenant is the token's",
        )

    up = commands.add_parser(
        "up",
        help="run the whole service on this machine (Redis, OCR server, Celery worker, reconciler)",
        description="Start the embedded Redis (unless REDIS_URL is set), one OCR server with jailed workers, "
        "a Celery worker and the reconciler; stop them all on Ctrl-C, SIGTERM or SIGHUP. Logs go to DATA_DIR/logs.",
    )
    up.add_argument("--ocr-workers", type=int, default=1, help="jailed OCR workers (default 1)")
    up.add_argument("--concurrency", type=int, default=2, help="Celery worker processes (default 2)")
    up.add_argument("--api-listen", metavar="HOST:PORT", help="where the HTTP API listens ($TEXTLAYER_API_LISTEN)")
    up.set_defaults(handler=_cmd_up)

    worker = commands.add_parser(
        "worker",
        help="run a Celery worker (multi-machine: point REDIS_URL and TEXTLAYER_OCR_SERVERS at the shared services)",
        description="The same as `celery -A textlayer.queue worker`: the app reads its broker, queue and limits "
        "from the TEXTLAYER_* settings and REDIS_URL, and sends task events (celery events, Flower).",
    )
    worker.add_argument("--concurrency", type=int, help="worker processes (default $TEXTLAYER_WORKER_CONCURRENCY or 2)")
    worker.set_defaults(handler=_cmd_worker)

    submit = commands.add_parser("submit", help="queue documents for OCR; prints one job id per file")
    submit.add_argument("files", nargs="+", type=Path)
    submit.add_argument("--wait", action="store_true", help="show progress and wait for the results")
    tenant_option(submit)
    api_option(submit)
    submit.set_defaults(handler=_cmd_submit)

    status = commands.add_parser("status", help="show a job's state, progress and errors")
    status.add_argument("job")
    tenant_option(status)
    api_option(status)
    status.set_defaults(handler=_cmd_status)

    get = commands.add_parser("get", help="download a job's searchable PDF (or its text)")
    get.add_argument("job")
    get.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to write it (default: the upload's name, made safe, with .pdf/.txt/.json, in this directory)",
    )
    kind = get.add_mutually_exclusive_group()
    kind.add_argument("--text", action="store_true", help="the plain text (form feed between pages)")
    kind.add_argument(
        "--json", action="store_true", help="the result JSON: pages, words, boxes, confidences (schemas/)"
    )
    kind.add_argument("--alto", action="store_true", help="ALTO 4 XML: blocks, lines, strings with boxes and WC")
    kind.add_argument("--hocr", action="store_true", help="hOCR (XHTML with ocrx_word boxes)")
    tenant_option(get)
    api_option(get)
    get.set_defaults(handler=_cmd_get)

    search = commands.add_parser("search", help="find documents by the words on their pages")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=20)
    tenant_option(search)
    api_option(search)
    search.set_defaults(handler=_cmd_search)

    ingest = commands.add_parser(
        "ingest",
        help="submit every file of a folder (back-office batches, or a consume folder with --watch)",
        description="Submit each file of DIR once, show a progress bar, then move each file to DIR/done or "
        "DIR/failed (with NAME.reason.txt saying why) and print the failures with their reasons. --watch makes DIR "
        "a consume folder: a new file is submitted once its size and time have kept still for --settle-s seconds "
        "(files still being copied are left alone), and a restart never submits a file twice.",
    )
    ingest.add_argument("directory", type=Path)
    ingest.add_argument("--watch", action="store_true", help="keep consuming new files until interrupted")
    ingest.add_argument(
        "--settle-s",
        type=float,
        default=2.0,
        help="with --watch: seconds a file's size must keep still before it is submitted (default 2)",
    )
    tenant_option(ingest)
    ingest.set_defaults(handler=_cmd_ingest)

    demo = commands.add_parser(
        "demo",
        help="start the service, OCR one document through it, show the result and a search hit, stop",
        description="textlayer up + submit --wait + search in one command, on the embedded defaults.",
    )
    demo.add_argument("file", type=Path)
    demo.set_defaults(handler=_cmd_demo, tenant=DEFAULT_TENANT)

    reindex = commands.add_parser("reindex", help="rebuild the search index from the stored results")
    reindex.set_defaults(handler=_cmd_reindex)


def _cmd_up(args: argparse.Namespace) -> int:
    from textlayer.service.stack import Stack

    logging.getLogger().setLevel(logging.INFO)
    settings = settings_for(args)
    if args.api_listen:
        settings = dataclasses.replace(settings, api_listen=args.api_listen)
    stack = Stack(settings, ocr_workers=args.ocr_workers, celery_concurrency=args.concurrency)
    stack.handle_signals()  # before start(): a signal during start-up stops what has started, cleanly
    try:
        stack.start()
        if not stack.stop_requested:
            print(
                f"textlayer is up; API at {stack.api_url} (docs at /docs); data in {stack.settings.data_dir}; "
                "Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
        stack.wait()
    finally:
        stack.stop()
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import re

    from textlayer.service.stack import Stack

    settings = settings_for(args)
    stack = Stack(settings, with_api=False)  # the demo talks to the stack directly
    print(f"starting textlayer (data in {settings.data_dir}, logs in {stack.paths['logs']})...", file=sys.stderr)
    try:
        stack.start()
        pipeline, publish = _pipeline(stack.settings), _publisher(stack.settings)
        tenant = settings.tenant
        job_id = _submit_file(pipeline, publish, tenant, args.file)
        print(f"submitted {args.file} as job {job_id}")
        if _wait_for(pipeline, tenant, [job_id], [args.file.name]):
            return 2
        text = pipeline.blobs.get(tenant, job_id, "text.txt").decode()
        words = sorted(set(re.findall(r"[A-Za-z]{6,}", text)), key=len, reverse=True)
        if words:
            for hit in pipeline.index.search(tenant, words[0], limit=1):
                print(f'search "{words[0]}": job {hit.document_id} page {hit.page + 1}: {hit.snippet}')
        return 0
    finally:
        stack.stop()


def _cmd_worker(args: argparse.Namespace) -> int:
    # The same app and configuration as `celery -A textlayer.queue worker`: Settings, then this command's flags.
    from textlayer.queue.app import QUEUE, configure
    from textlayer.queue.runtime import broker_url

    settings = settings_for(args)
    concurrency = args.concurrency or settings.worker_concurrency
    # Refuses to start when no broker is there.
    app = configure(broker_url(settings), concurrency=concurrency, max_document_s=settings.max_document_s)
    app.worker_main(["worker", f"--concurrency={concurrency}", "--pool=prefork", "--loglevel=INFO", "-Q", QUEUE])
    return 0


def _pipeline(settings: Settings) -> Pipeline:
    from textlayer.queue.runtime import build_pipeline

    return build_pipeline(settings)


def _publisher(settings: Settings) -> Publish:
    from textlayer.queue.app import configure
    from textlayer.queue.runtime import broker_url
    from textlayer.queue.tasks import publish

    configure(broker_url(settings))
    return publish


def _submit_file(pipeline: Pipeline, publish: Publish, tenant: str, path: Path) -> str:
    try:
        with path.open("rb") as file:
            # One byte past the limit is enough to refuse an oversized file without reading it all.
            data = file.read(pipeline.config.max_upload_bytes + 1)
    except OSError as exc:
        raise TextlayerError(f"cannot read {path}: {exc.strerror}") from exc
    return str(pipeline.submit(tenant, data, filename=path.name, publish=publish))


def _cmd_submit(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings.api_url:
        from textlayer.cli import remote

        return remote.submit(settings, args)
    pipeline, publish = _pipeline(settings), _publisher(settings)
    job_ids = []
    for path in args.files:
        job_id = _submit_file(pipeline, publish, settings.tenant, path)
        job_ids.append(job_id)
        print(f"{job_id}  {path}")
    if not args.wait:
        return 0
    failed = _wait_for(pipeline, settings.tenant, job_ids, [p.name for p in args.files])
    return 2 if failed else 0


def _wait_for(pipeline: Pipeline, tenant: str, job_ids: list[str], names: list[str]) -> int:
    """Progress bars until every job ends; prints each output path or failure; returns failures."""
    from tqdm import tqdm

    bars = {
        job_id: tqdm(total=1, desc=name[:30], unit="page", position=i, file=sys.stderr, leave=True, disable=None)
        for i, (job_id, name) in enumerate(zip(job_ids, names, strict=True))
    }
    open_jobs = set(job_ids)
    failures = 0
    while open_jobs:
        for job_id in sorted(open_jobs):
            job = pipeline.jobs.get(job_id, tenant)
            bar = bars[job_id]
            if job.pages_total and bar.total != job.pages_total:
                bar.total = job.pages_total
            bar.n = job.pages_done
            bar.refresh()
            if job.state.terminal:
                open_jobs.discard(job_id)
                bar.close()
                if job.state == "FAILED":
                    failures += 1
        time.sleep(0.3)
    for job_id, name in zip(job_ids, names, strict=True):
        job = pipeline.jobs.get(job_id, tenant)
        if job.state == "FAILED":
            print(f"{name}: FAILED ({job.reason}): {job.message}")
        else:
            output = pipeline.blobs.path(tenant, job_id, "output.pdf")
            note = f" ({len(job.page_errors)} page(s) without text)" if job.page_errors else ""
            print(f"{name}: {job.state}{note} -> {output}")
    return failures


def _cmd_status(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings.api_url:
        from textlayer.cli import remote

        return remote.status(settings, args)
    job = _pipeline(settings).jobs.get(args.job, settings.tenant)
    print(f"job       {job.id}\nfile      {job.filename}\nstate     {job.state}")
    print(f"pages     {job.pages_done}/{job.pages_total if job.pages_total is not None else '?'}")
    print(f"attempts  {job.attempts}")
    if job.reason:
        print(f"reason    {job.reason}: {job.message}")
    for error in job.page_errors:
        print(f"page {error.page + 1}: {error.reason}: {error.message}")
    return 0 if job.state != "FAILED" else 2


def _cmd_get(args: argparse.Namespace) -> int:
    from textlayer.files import write_atomically
    from textlayer.store import SUCCEEDED_STATES
    from textlayer.store.names import download_name

    settings = settings_for(args)
    if settings.api_url:
        from textlayer.cli import remote

        return remote.get(settings, args)
    pipeline = _pipeline(settings)
    job = pipeline.jobs.get(args.job, settings.tenant)
    if job.state not in SUCCEEDED_STATES:
        raise TextlayerError(f"job {job.id} is {job.state}" + (f" ({job.reason}: {job.message})" if job.reason else ""))
    kind = "json" if args.json else "alto" if args.alto else "hocr" if args.hocr else None
    if kind is not None:
        from textlayer import formats

        raw = (pipeline.blobs.get_page(settings.tenant, job.id, i) for i in range(job.pages_total or 0))
        records = [PageRecord.from_json(record) for record in raw]
        content = formats.render(kind, records, filename=job.filename, job=job.id).encode()
    else:
        content = pipeline.blobs.get(settings.tenant, job.id, "text.txt" if args.text else "output.pdf")

    suffix = {"json": ".json", "alto": ".xml", "hocr": ".hocr"}.get(kind or "", ".txt" if args.text else ".pdf")
    # The stored name is sanitised at upload; download_name keeps a hostile one from choosing a path.
    output = args.output or Path(download_name(job.filename, suffix=suffix))
    write_atomically(output, content, private=False)
    print(output)
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings.api_url:
        from textlayer.cli import remote

        return remote.search(settings, args)
    pipeline = _pipeline(settings)
    hits = pipeline.index.search(settings.tenant, args.query, limit=args.limit)
    for hit in hits:
        try:
            name = pipeline.jobs.get(hit.document_id, settings.tenant).filename
        except TextlayerError:
            name = "?"
        print(f"{hit.document_id}  {name}  page {hit.page + 1}: {hit.snippet}")
    if not hits:
        print("no match", file=sys.stderr)
    return 0 if hits else 1


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""What stops a command: deferred while a submission is half done."""

PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download")
"""Names of files still being copied by the usual tools: never submitted as they are."""


def _ingest_candidates(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.lower().endswith(PARTIAL_SUFFIXES)
    )


@contextlib.contextmanager
def _stops_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (Python runs signal handlers in the main thread only)."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _: received.append(number)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])  # now, with the handler the command had before


def _cmd_ingest(args: argparse.Namespace) -> int:
    import hashlib

    from tqdm import tqdm

    from textlayer.files import write_atomically

    settings = settings_for(args)
    folder: Path = args.directory
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a directory")
    settle_s = args.settle_s if args.watch else 0.0
    pipeline, publish = _pipeline(settings), _publisher(settings)
    done_dir, failed_dir = folder / "done", folder / "failed"
    done_dir.mkdir(exist_ok=True)
    failed_dir.mkdir(exist_ok=True)
    in_flight: dict[str, Path] = {}
    looked: dict[Path, tuple[tuple[int, int], float]] = {}  # size and mtime, and since when they have not changed
    failures: list[str] = []
    finished = 0
    bar = tqdm(total=0, unit="doc", desc="ingest", file=sys.stderr, disable=None)
    while True:
        now = time.monotonic()
        for path in _ingest_candidates(folder):
            if path in in_flight.values():
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            state = (stat.st_size, stat.st_mtime_ns)
            previous = looked.get(path)
            if previous is None or previous[0] != state:
                looked[path] = (state, now)  # new or still growing: wait until it keeps still
                if settle_s > 0:
                    continue
            elif now - previous[1] < settle_s:
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc.strerror)
                continue
            looked.pop(path, None)
            # The key makes a submission after a restart (or of the same file again) return the job it already has.
            key = f"ingest:{hashlib.sha256(data).hexdigest()}:{path.name}"
            with _stops_deferred():  # a stop never leaves a stored job unpublished
                job_id = pipeline.submit(
                    settings.tenant, data, filename=path.name, publish=publish, idempotency_key=key
                )
            in_flight[job_id] = path
            bar.total += 1
            bar.refresh()
        for job_id, path in list(in_flight.items()):
            job = pipeline.jobs.get(job_id, settings.tenant)
            if not job.state.terminal:
                continue
            if job.state == "FAILED":
                write_atomically(
                    failed_dir / f"{path.name}.reason.txt", f"{job.reason}: {job.message}\n", private=False
                )
                shutil.move(str(path), failed_dir / path.name)
                failures.append(f"{path.name}: {job.reason}: {job.message}")
            else:
                shutil.move(str(path), done_dir / path.name)
            del in_flight[job_id]
            finished += 1
            bar.update(1)
        if not in_flight and not looked and not args.watch:
            break
        time.sleep(0.5 if args.watch else 1.0)
    bar.close()
    print(f"{finished - len(failures)} done, {len(failures)} failed")  # bar.n stays 0 when tqdm is disabled
    for line in failures:
        print(f"  {line}")
    return 2 if failures else 0


def _cmd_reindex(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    count = _pipeline(settings).reindex()
    print(f"{count} documents indexed")
    return 0
