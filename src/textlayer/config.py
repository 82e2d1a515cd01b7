"""Settings: built once from TEXTLAYER_* variables (unit in the name), then passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from textlayer.documents import DEFAULT_DPI, DEFAULT_MAX_PAGES
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.worker.decode import DEFAULT_MAX_PIXELS
from textlayer.worker.manifest import DEFAULT_MODEL_SET


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = environ.get(name) or choices[0]
    if raw not in choices:
        raise ValueError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``TEXTLAYER_DATA_DIR``, else ``$XDG_DATA_HOME/textlayer``, else ``~/.local/share/textlayer``."""
    if environ.get("TEXTLAYER_DATA_DIR"):
        return Path(environ["TEXTLAYER_DATA_DIR"])
    base = Path(environ["XDG_DATA_HOME"]) if environ.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return base / "textlayer"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with safe defaults."""

    model: str = DEFAULT_MODEL_SET
    """Model set from models_onnx/manifest.toml (``small`` or ``tiny``)."""
    threads: int = 1
    """onnxruntime intra-op threads per model (1 per process is best on shared machines)."""
    max_pixels: int = DEFAULT_MAX_PIXELS
    """Largest page accepted, in pixels."""
    max_pages: int = DEFAULT_MAX_PAGES
    """Most pages accepted per document."""
    pdf_dpi: int = DEFAULT_DPI
    """Resolution PDF pages are rasterised at."""

    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    """All local state (sockets, databases, blobs, logs); ``TEXTLAYER_DATA_DIR``."""
    ocr_token: str | None = field(default=None, repr=False)
    """Bearer token between OCR clients and servers; ``TEXTLAYER_OCR_TOKEN``."""
    job_lease_s: int = 60
    """Lease of a running job; a job whose worker died is taken over after it expires."""
    sandbox_layers: str = "require"
    """``require``: refuse to run without namespaces; ``prefer``: report and go on (containers)."""
    sandbox_deadline_s: int = 120
    """Wall clock for one page inside the jail."""
    sandbox_memory_mib: int = SandboxPolicy.address_space_mib
    """Address-space limit of a jailed worker."""

    def sandbox_policy(self, *, workers: int = 1, test_hooks: bool = False) -> SandboxPolicy:
        """The jail policy these settings describe."""
        return SandboxPolicy(
            layers="prefer" if self.sandbox_layers == "prefer" else "require",
            workers=workers,
            model=self.model,
            threads=self.threads,
            max_pixels=self.max_pixels,
            deadline_s=float(self.sandbox_deadline_s),
            address_space_mib=self.sandbox_memory_mib,
            test_hooks=test_hooks,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read ``TEXTLAYER_*`` variables; unknown values raise ``ValueError``."""
        return cls(
            model=environ.get("TEXTLAYER_MODEL", DEFAULT_MODEL_SET) or DEFAULT_MODEL_SET,
            threads=_int(environ, "TEXTLAYER_OCR_THREADS", 1),
            max_pixels=_int(environ, "TEXTLAYER_MAX_PIXELS", DEFAULT_MAX_PIXELS),
            max_pages=_int(environ, "TEXTLAYER_MAX_PAGES", DEFAULT_MAX_PAGES),
            pdf_dpi=_int(environ, "TEXTLAYER_PDF_DPI", DEFAULT_DPI, minimum=36),
            data_dir=default_data_dir(environ),
            ocr_token=environ.get("TEXTLAYER_OCR_TOKEN") or None,
            job_lease_s=_int(environ, "TEXTLAYER_JOB_LEASE_S", 60, minimum=2),
            sandbox_layers=_choice(environ, "TEXTLAYER_SANDBOX_LAYERS", ("require", "prefer")),
            sandbox_deadline_s=_int(environ, "TEXTLAYER_SANDBOX_DEADLINE_S", 120),
            sandbox_memory_mib=_int(
                environ, "TEXTLAYER_SANDBOX_MEMORY_MIB", SandboxPolicy.address_space_mib, minimum=512
            ),
        )
