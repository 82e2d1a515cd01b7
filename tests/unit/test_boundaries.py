"""The house's boundaries: components import only what the rules allow, engines live in one module each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit import import_rules

SRC = Path(__file__).resolve().parents[2] / "src" / "textlayer"

OWNERS = {
    "onnxruntime": ["worker/engine.py"],
    "pypdfium2": ["media/documents.py"],
    "pypdf": ["conversion/converter_role.py", "media/documents.py", "pdf_overlay/merge.py"],
    "grpc": ["worker/client.py", "worker/server.py"],
    "celery": ["queue/app.py"],
    "redis": ["service/redis.py"],
    # What the tests read outputs back with; the product itself writes PDF/A with pypdf and ALTO as plain text.
    "pikepdf": [],
    "xmlschema": [],
    "jsonschema": [],
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
    "textlayer.cli.jobs",
    "textlayer.config",
    "textlayer.conversion",
    "textlayer.ocr",
    "textlayer.service.stack",
    "textlayer.worker.jailed",
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


def test_no_import_crosses_a_boundary_and_no_module_cycle():
    violations = import_rules.check(import_rules.read_tree(SRC))
    assert not violations, "\n".join(map(str, violations))


def test_every_module_belongs_to_a_component():
    orphans = [m for m in import_rules.read_tree(SRC) if import_rules.component_of(m) is None]
    assert not orphans


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "textlayer.media.images",
            "from textlayer.worker.predictor import OcrPredictor",
            "media must not import engine",
        ),
        ("textlayer.sandbox.pool", "from textlayer.elements import PageText", None),
        ("textlayer.sandbox.pool", "from textlayer.worker import jailed", "jail must not import ocr_service"),
        ("textlayer.sandbox.pool", "import textlayer.conversion.wire", "jail must not import conversion"),
        ("textlayer.worker.detection", "from textlayer.queue.app import app", "engine must not import queue"),
        ("textlayer.pdf_overlay.build", "from ..worker import predictor", "pdf must not import engine"),
        ("textlayer.store.jobs", "from celery import Celery", "store must not import celery"),
        (
            "textlayer.index.base",
            "def f():\n    from textlayer.worker import predictor",
            "index must not import engine",
        ),
        ("textlayer.config", "from textlayer.sandbox.policy import SandboxPolicy", "plain must not import jail"),
        ("textlayer.queue.tasks", "from textlayer.store import BlobStore", None),
    ],
)
def test_the_rule_engine_catches_a_crossing_import(module, source, expected):
    tree = {
        module: (source, False),
        "textlayer.worker.predictor": ("", False),
        "textlayer.worker.jailed": ("", False),
        "textlayer.worker": ("", True),
        "textlayer.conversion.wire": ("", False),
    }
    found = [str(v) for v in import_rules.check(tree) if v.module == module]
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0]


def test_the_rule_engine_finds_cycles():
    tree = {
        "textlayer.store.a": ("from textlayer.store import b", False),
        "textlayer.store.b": ("import textlayer.store.c", False),
        "textlayer.store.c": ("from textlayer.store.a import x", False),
        "textlayer.store": ("", True),
    }
    cycles = [str(v) for v in import_rules.check(tree) if "cycle" in v.why]
    assert cycles == [
        "textlayer.store.c imports textlayer.store.a: import cycle "
        "textlayer.store.a -> textlayer.store.b -> textlayer.store.c -> textlayer.store.a"
    ]
