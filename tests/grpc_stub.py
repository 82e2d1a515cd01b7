"""A real OCR gRPC server whose pages are read by a deterministic stand-in (for fault tests).

``python -m tests.grpc_stub --listen 127.0.0.1:PORT [--delay S] [--token T] [--calls FILE]``:
the real server code (health, drain on SIGTERM, interceptors, error mapping) with a recognizer
that answers after ``--delay`` seconds with one line naming the image's size, and appends one
line per handled page to ``--calls``. An image starting with ``BAD`` is refused as corrupt.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from textlayer.elements import Line, PageText, Word
from textlayer.errors import InputDocumentError
from textlayer.worker.server import ServerConfig, TlsFiles, serve


class StubRecognizer:
    def __init__(self, delay_s: float, calls: Path | None) -> None:
        self.delay_s = delay_s
        self.calls = calls

    def recognize(self, image: bytes, *, dpi=None, frame=0, deadline_s=None) -> PageText:
        if self.calls is not None:
            with self.calls.open("a") as fh:
                fh.write(f"{time.time()}\n")
        if image.startswith(b"BAD"):
            raise InputDocumentError("The PNG image is corrupt or truncated.", reason="corrupt_image")
        time.sleep(self.delay_s)
        quad = ((0.0, 0.0), (10.0, 0.0), (10.0, 5.0), (0.0, 5.0))
        word = Word(f"{len(image)}-bytes", quad, 0.99)
        return PageText(100, 50, 0, (Line((word,), quad, 0.99),), dpi, {"stub": self.delay_s})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--token")
    parser.add_argument("--calls", type=Path)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--queue", type=int, default=64)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--tls", nargs=3, type=Path, metavar=("CERT", "KEY", "CLIENT_CA"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stub %(message)s")
    config = ServerConfig(
        listen=(args.listen,),
        workers=args.workers,
        queue_size=args.queue,
        token=args.token,
        drain_s=1.0,
        grace_s=10,
        metrics_port=args.metrics_port,
        tls=TlsFiles(*args.tls) if args.tls else None,
    )
    asyncio.run(serve(StubRecognizer(args.delay, args.calls), config, ready=lambda: print("READY", flush=True)))


if __name__ == "__main__":
    main()
