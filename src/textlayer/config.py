"""Settings: built once from TEXTLAYER_* variables (unit in the name), then passed down.

Plain data: imports no component (the document limits' defaults are plain data too). The
command line and the Celery app build one with :meth:`Settings.from_env`; nothing else reads
the environment for a setting, and nothing writes it (children get :meth:`Settings.to_env`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from textlayer.media.limits import DEFAULT_DPI, DEFAULT_MAX_PAGES, DEFAULT_MAX_PIXELS

DEFAULT_MODEL_SET = "small"
"""Model set of models_onnx/manifest.toml used unless another is asked for (PP-OCRv6 small: the lowest
error on the real scans we measured, README.md)."""

DEFAULT_TENANT = "default"
"""Whose documents, when the command line does not say."""

DEFAULT_SANDBOX_MEMORY_MIB = 6144
"""Address space of a jailed OCR worker: model sessions, thread stacks, the largest page."""


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

    data_dir: Path = field(default_factory=lambda: default_data_dir({}))
    """All local state (sockets, databases, blobs, logs); ``TEXTLAYER_DATA_DIR``."""
    ocr_token: str | None = field(default=None, repr=False)
    """Bearer token between OCR clients and servers; ``TEXTLAYER_OCR_TOKEN``."""
    job_lease_s: int = 60
    """Lease of a running job; a job whose worker died is taken over after it expires."""
    sandbox_layers: str = "require"
    """``require``: refuse to run without namespaces; ``prefer``: report and go on (containers)."""
    sandbox_deadline_s: int = 120
    """Wall clock for one page inside the jail."""
    sandbox_memory_mib: int = DEFAULT_SANDBOX_MEMORY_MIB
    """Address-space limit of a jailed worker."""
    convert_memory_mib: int = 2048
    """Address-space limit of a jailed document converter (decompression bombs die against it)."""
    convert_deadline_s: int = 300
    """Wall clock for one converter request (inspect, a batch of pages, or building the PDF)."""
    max_upload_mib: int = 100
    """Largest document accepted, in MiB; larger ones are refused before they are stored."""
    max_document_s: int = 3600
    """Wall clock for one document's whole run; past it the job fails (``document_timeout``)."""
    redis_url: str | None = None
    """The broker (``REDIS_URL``); None: the embedded Redis of ``textlayer up`` in the data directory."""
    ocr_servers: str | None = None
    """OCR servers (``TEXTLAYER_OCR_SERVERS``); None: the OCR server of ``textlayer up`` on this machine."""
    tenant: str = DEFAULT_TENANT
    """Default tenant of the command line (``TEXTLAYER_TENANT``)."""
    crash_on_filename: str | None = None
    """Tests only (``TEXTLAYER_TEST_HOOKS=1`` and ``TEXTLAYER_TEST_CRASH_ON_FILENAME``): SIGKILL the
    process that runs a job with this file name (a poison document)."""

    @property
    def ocr_socket(self) -> Path:
        """The unix socket of the OCR server that ``textlayer up`` runs."""
        return self.data_dir / "ocr.sock"

    def ocr_target(self) -> str:
        """Where the OCR servers are: :attr:`ocr_servers`, else ``textlayer up``'s socket."""
        return self.ocr_servers or f"unix:{self.ocr_socket}"

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
            sandbox_memory_mib=_int(environ, "TEXTLAYER_SANDBOX_MEMORY_MIB", DEFAULT_SANDBOX_MEMORY_MIB, minimum=512),
            convert_memory_mib=_int(environ, "TEXTLAYER_CONVERT_MEMORY_MIB", 2048, minimum=512),
            convert_deadline_s=_int(environ, "TEXTLAYER_CONVERT_DEADLINE_S", 300),
            max_upload_mib=_int(environ, "TEXTLAYER_MAX_UPLOAD_MIB", 100),
            max_document_s=_int(environ, "TEXTLAYER_MAX_DOCUMENT_S", 3600),
            redis_url=environ.get("REDIS_URL") or None,
            ocr_servers=environ.get("TEXTLAYER_OCR_SERVERS") or None,
            tenant=environ.get("TEXTLAYER_TENANT") or DEFAULT_TENANT,
            crash_on_filename=(
                environ.get("TEXTLAYER_TEST_CRASH_ON_FILENAME") or None
                if environ.get("TEXTLAYER_TEST_HOOKS") == "1"
                else None
            ),
        )

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` in a child process return these settings."""
        env = {
            "TEXTLAYER_MODEL": self.model,
            "TEXTLAYER_OCR_THREADS": str(self.threads),
            "TEXTLAYER_MAX_PIXELS": str(self.max_pixels),
            "TEXTLAYER_MAX_PAGES": str(self.max_pages),
            "TEXTLAYER_PDF_DPI": str(self.pdf_dpi),
            "TEXTLAYER_DATA_DIR": str(self.data_dir),
            "TEXTLAYER_JOB_LEASE_S": str(self.job_lease_s),
            "TEXTLAYER_SANDBOX_LAYERS": self.sandbox_layers,
            "TEXTLAYER_SANDBOX_DEADLINE_S": str(self.sandbox_deadline_s),
            "TEXTLAYER_SANDBOX_MEMORY_MIB": str(self.sandbox_memory_mib),
            "TEXTLAYER_CONVERT_MEMORY_MIB": str(self.convert_memory_mib),
            "TEXTLAYER_CONVERT_DEADLINE_S": str(self.convert_deadline_s),
            "TEXTLAYER_MAX_UPLOAD_MIB": str(self.max_upload_mib),
            "TEXTLAYER_MAX_DOCUMENT_S": str(self.max_document_s),
            "TEXTLAYER_TENANT": self.tenant,
        }
        optional = {
            "TEXTLAYER_OCR_TOKEN": self.ocr_token,
            "REDIS_URL": self.redis_url,
            "TEXTLAYER_OCR_SERVERS": self.ocr_servers,
        }
        env.update({name: value for name, value in optional.items() if value})
        if self.crash_on_filename:
            env.update(TEXTLAYER_TEST_HOOKS="1", TEXTLAYER_TEST_CRASH_ON_FILENAME=self.crash_on_filename)
        return env
