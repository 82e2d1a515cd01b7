"""Each third-party engine is imported in exactly one module (the style guide's seams)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "textlayer"

OWNERS = {
    "onnxruntime": ["worker/engine.py"],
    "pypdfium2": ["documents.py"],
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
