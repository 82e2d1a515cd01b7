"""Each third-party engine is imported in exactly one module (the style guide's seams)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "textlayer"

OWNERS = {
    "onnxruntime": ["worker/engine.py"],
    "pypdfium2": ["documents.py"],
    "pypdf": ["pdf_overlay/merge.py", "sandbox/convert_handlers.py"],
    "grpc": ["worker/client.py", "worker/server.py"],
    "celery": ["queue/app.py"],
    "redis": ["queue/broker.py"],
}


@pytest.mark.parametrize(("package", "owners"), sorted(OWNERS.items()))
def test_dependency_is_imported_where_the_style_guide_says(package, owners):
    pattern = re.compile(rf"^\s*(import|from)\s+{package}\b", re.MULTILINE)
    generated = SRC / "rpc"  # protoc's output imports grpc itself
    importers = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if not p.is_relative_to(generated) and pattern.search(p.read_text())
    )
    assert importers == owners


def test_engine_disables_onnxruntime_telemetry_before_importing_it():
    text = (SRC / "worker" / "engine.py").read_text()
    assert text.index('os.environ["ORT_DISABLE_TELEMETRY"] = "1"') < text.index("import onnxruntime")


UNTRUSTED_PARSERS = ("pypdf", "pypdfium2", "PIL", "cv2", "reportlab", "numpy", "onnxruntime")
"""What parses or computes on document bytes: loaded only inside jailed workers."""

HOST_SIDE = (
    "textlayer.cli",
    "textlayer.cli_jobs",
    "textlayer.config",
    "textlayer.conversion",
    "textlayer.queue.pipeline",
    "textlayer.queue.runtime",
    "textlayer.queue.tasks",
    "textlayer.sandbox.pool",
    "textlayer.worker.client",
    "textlayer.worker.server",
)
"""The Celery worker, the CLI and the OCR server's supervisor."""


def test_host_side_modules_do_not_even_import_a_document_parser():
    # A fresh interpreter: this test process has long imported everything.
    code = (
        "import importlib, sys\n"
        f"for name in {HOST_SIDE!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {UNTRUSTED_PARSERS!r}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
