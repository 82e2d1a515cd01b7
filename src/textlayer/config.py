"""Settings: built once from TEXTLAYER_* variables (unit in the name), then passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from textlayer.limits import DEFAULT_DPI, DEFAULT_MAX_PAGES, DEFAULT_MAX_PIXELS, DocumentLimits
from textlayer.sandbox.policy import SandboxPolicy
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
    convert_memory_mib: int = 2048
    """Address-space limit of a jailed document converter (decompression bombs die against it)."""
    convert_deadline_s: int = 300
    """Wall clock for one converter request (inspect, a batch of pages, or building the PDF)."""
    max_upload_mib: int = 100
    """Largest document accepted, in MiB; larger ones are refused before they are stored."""
    max_document_s: int = 3600
    """Wall clock for one document's whole run; past it the job fails (``document_timeout``)."""

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

    def conversion_policy(self, *, test_hooks: bool = False) -> SandboxPolicy:
        """The jail of a document converter: no models, a 2 GiB address space (PDFium aborts past it)."""
        return SandboxPolicy(
            role="convert",
            layers="prefer" if self.sandbox_layers == "prefer" else "require",
            workers=1,
            max_pixels=self.max_pixels,
            deadline_s=float(self.convert_deadline_s),
            address_space_mib=self.convert_memory_mib,
            max_request_mib=self.max_upload_mib * 2 + 16,
            max_reply_mib=self.max_upload_mib * 3 + 64,
            recycle_after_pages=200,
            recycle_above_rss_mib=1024,
            test_hooks=test_hooks,
        )

    def document_limits(self) -> DocumentLimits:
        """Page, pixel and dpi limits of one document."""
        return DocumentLimits(max_pixels=self.max_pixels, max_pages=self.max_pages, dpi=self.pdf_dpi)

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
            convert_memory_mib=_int(environ, "TEXTLAYER_CONVERT_MEMORY_MIB", 2048, minimum=512),
            convert_deadline_s=_int(environ, "TEXTLAYER_CONVERT_DEADLINE_S", 300),
            max_upload_mib=_int(environ, "TEXTLAYER_MAX_UPLOAD_MIB", 100),
            max_document_s=_int(environ, "TEXTLAYER_MAX_DOCUMENT_S", 3600),
        )
