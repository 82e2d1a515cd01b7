"""The house's import rules as data, and the engine that checks a source tree against them (ast only)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

COMPONENTS: dict[str, tuple[str, ...]] = {
    # Plain data: imports no component.
    "plain": (
        "textlayer",
        "textlayer.elements",
        "textlayer.errors",
        "textlayer.config",
        "textlayer.build_options",
        "textlayer.files",
        "textlayer.media.limits",
        "textlayer.media.pages",
    ),
    "media": ("textlayer.media",),
    "engine": (
        "textlayer.worker.engine",
        "textlayer.worker.predictor",
        "textlayer.worker.detection",
        "textlayer.worker.recognition",
        "textlayer.worker.orientation",
        "textlayer.worker.words",
        "textlayer.worker.layout",
        "textlayer.worker.manifest",
    ),
    "ocr_service": ("textlayer.worker", "textlayer.rpc"),
    "jail": ("textlayer.sandbox",),
    "pdf": ("textlayer.pdf_overlay",),
    "conversion": ("textlayer.conversion",),
    "recipe": ("textlayer.ocr", "textlayer.formats"),
    "db": ("textlayer.sqlite_db",),
    "store": ("textlayer.store",),
    "index": ("textlayer.index",),
    "queue": ("textlayer.queue",),
    "service": ("textlayer.service",),
    "api": ("textlayer.api",),
    "cli": ("textlayer.cli", "textlayer.__main__"),
}
"""Which modules make up each component: a module belongs to the component of its longest prefix."""

ALLOWED: dict[str, set[str]] = {
    "plain": set(),
    "media": {"plain"},  # the standard library, its parsers and errors
    "engine": {"plain", "media"},  # no queue, store, index, PDF layer or jail
    "jail": {"plain"},  # nothing of the application
    "pdf": {"plain", "media"},  # no engine, no queue
    "ocr_service": {"plain", "media", "engine", "jail"},
    "conversion": {"plain", "media", "jail", "pdf"},
    "recipe": {"plain", "media", "conversion"},
    "db": {"plain"},
    "store": {"plain", "db"},  # no Celery, no engine
    "index": {"plain", "db"},
    "queue": {"plain", "media", "conversion", "recipe", "store", "index", "ocr_service", "service"},
    "service": {"plain", "queue", "ocr_service"},
    # The HTTP API: the stores, the index and the publisher; db for its own SQLite tables, recipe for the hOCR
    # rendering, ocr_service for the OCR servers' health in /readyz. No conversion: it never parses a document.
    "api": {"plain", "media", "db", "store", "index", "queue", "recipe", "ocr_service"},
    "cli": set(COMPONENTS),
}
"""The components each component may import, besides itself."""

FORBIDDEN_PACKAGES: dict[str, set[str]] = {
    "store": {"celery", "kombu", "onnxruntime", "grpc"},
    "index": {"celery", "kombu", "onnxruntime", "grpc"},
    "api": {"celery", "kombu", "onnxruntime", "redis", "pypdf", "pypdfium2", "cv2", "PIL"},
    "engine": {"celery", "kombu", "grpc", "redis"},
    "jail": {"celery", "kombu", "grpc", "redis", "onnxruntime", "pypdf", "pypdfium2", "cv2", "PIL"},
    "plain": {"celery", "kombu", "grpc", "redis", "onnxruntime", "pypdf", "pypdfium2", "cv2", "PIL", "numpy"},
}
"""Third-party packages a component must not import."""


@dataclass(frozen=True)
class Violation:
    """One import that crosses a boundary, or one cycle."""

    module: str
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.module} imports {self.imported}: {self.why}"


def component_of(module: str, components: Mapping[str, tuple[str, ...]] = COMPONENTS) -> str | None:
    """The component of ``module`` (longest matching prefix), None outside the package."""
    best, best_len = None, -1
    for name, prefixes in components.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = name, len(prefix)
    return best


def module_name(path: Path, root: Path) -> str:
    """``src/textlayer/a/b.py`` -> ``textlayer.a.b`` (``__init__`` names its package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every module ``source`` imports, anywhere in the file (function bodies and TYPE_CHECKING too)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return found


def check(sources: Mapping[str, tuple[str, bool]]) -> list[Violation]:
    """Check modules ``{name: (source, is_package)}`` against the rules; returns every violation."""
    known = set(sources)
    graph: dict[str, set[str]] = {}
    violations: list[Violation] = []
    for module, (source, is_package) in sorted(sources.items()):
        own = component_of(module)
        graph[module] = set()
        for imported in sorted(imports_of(source, module, is_package, known)):
            top = imported.split(".")[0]
            if top != "textlayer":
                if own and top in FORBIDDEN_PACKAGES.get(own, set()):
                    violations.append(Violation(module, imported, f"{own} must not import {top}"))
                continue
            if imported in known:
                graph[module].add(imported)
            other = component_of(imported)
            if own is None or other is None or other == own:
                continue
            if other not in ALLOWED[own]:
                violations.append(Violation(module, imported, f"{own} must not import {other}"))
    violations.extend(_cycles(graph))
    return violations


def _cycles(graph: Mapping[str, Iterable[str]]) -> list[Violation]:
    """One violation per import cycle between modules (a package's ``__init__`` re-exports excepted)."""
    found: list[Violation] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodules (re-exports) is not a cycle
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                found.append(Violation(node, nxt, "import cycle " + " -> ".join(cycle)))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def read_tree(src: Path) -> dict[str, tuple[str, bool]]:
    """Every module under ``src/textlayer`` except the generated gRPC code."""
    root = src.parent
    return {
        module_name(path, root): (path.read_text(), path.name == "__init__.py")
        for path in sorted(src.rglob("*.py"))
        if "rpc" not in path.relative_to(src).parts[:1]
    }
