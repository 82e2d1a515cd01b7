"""Settings: built once from TEXTLAYER_* variables (unit in the name), then passed down.

Plain data: imports no component (the document limits' defaults are plain data too). The
command line and the Celery app build one with :meth:`Settings.from_env`; nothing else reads
the environment for a setting, and nothing writes it (children get :meth:`Settings.to_env`).
Each field names its variable (and the least value it accepts) in its metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from textlayer.media.limits import DEFAULT_DPI, DEFAULT_MAX_PAGES, DEFAULT_MAX_PIXELS

DEFAULT_MODEL_SET = "small"
"""Model set of models_onnx/manifest.toml used unless another is asked for (PP-OCRv6 small: the lowest
error on the real scans we measured, README.md)."""

DEFAULT_TENANT = "default"
"""Whose documents, when the command line does not say."""

LAYER_CHOICES = ("require", "prefer")
"""Values of ``TEXTLAYER_SANDBOX_LAYERS``."""

OUTPUT_TYPE_CHOICES = ("pdf", "pdfa")
"""Values of ``TEXTLAYER_OUTPUT_TYPE``."""


def _env(name: str, minimum: int = 1) -> dict[str, Any]:
    return {"env": name, "minimum": minimum}


def _int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``TEXTLAYER_DATA_DIR``, else ``$XDG_DATA_HOME/textlayer``, else ``~/.local/share/textlayer``."""
    if environ.get("TEXTLAYER_DATA_DIR"):
        return Path(environ["TEXTLAYER_DATA_DIR"])
    base = Path(environ["XDG_DATA_HOME"]) if environ.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return base / "textlayer"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with safe defaults."""

    model: str = field(default=DEFAULT_MODEL_SET, metadata=_env("TEXTLAYER_MODEL"))
    """Model set from models_onnx/manifest.toml (``small`` or ``tiny``)."""
    threads: int = field(default=1, metadata=_env("TEXTLAYER_OCR_THREADS"))
    """onnxruntime intra-op threads per model (1 per process is best on shared machines)."""
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata=_env("TEXTLAYER_MAX_PIXELS"))
    """Largest page accepted, in pixels."""
    max_pages: int = field(default=DEFAULT_MAX_PAGES, metadata=_env("TEXTLAYER_MAX_PAGES"))
    """Most pages accepted per document."""
    pdf_dpi: int = field(default=DEFAULT_DPI, metadata=_env("TEXTLAYER_PDF_DPI", minimum=36))
    """Resolution PDF pages are rasterised at."""
    data_dir: Path = field(default_factory=lambda: default_data_dir({}), metadata=_env("TEXTLAYER_DATA_DIR"))
    """All local state (sockets, databases, blobs, logs); default: see :func:`default_data_dir`."""
    ocr_token: str | None = field(default=None, repr=False, metadata=_env("TEXTLAYER_OCR_TOKEN"))
    """Bearer token between OCR clients and servers."""
    job_lease_s: int = field(default=60, metadata=_env("TEXTLAYER_JOB_LEASE_S", minimum=2))
    """Lease of a running job; a job whose worker died is taken over after it expires."""
    sandbox_layers: str = field(default="require", metadata=_env("TEXTLAYER_SANDBOX_LAYERS"))
    """``require``: refuse to run without namespaces; ``prefer``: report and go on (containers)."""
    sandbox_deadline_s: int = field(default=120, metadata=_env("TEXTLAYER_SANDBOX_DEADLINE_S"))
    """Wall clock for one page inside the jail."""
    sandbox_memory_mib: int = field(default=6144, metadata=_env("TEXTLAYER_SANDBOX_MEMORY_MIB", minimum=512))
    """Address-space limit of a jailed OCR worker: model sessions, thread stacks, the largest page."""
    convert_memory_mib: int = field(default=2048, metadata=_env("TEXTLAYER_CONVERT_MEMORY_MIB", minimum=512))
    """Address-space limit of a jailed document converter (decompression bombs die against it)."""
    convert_deadline_s: int = field(default=300, metadata=_env("TEXTLAYER_CONVERT_DEADLINE_S"))
    """Wall clock for one converter request (inspect, a batch of pages, or building the PDF)."""
    max_upload_mib: int = field(default=100, metadata=_env("TEXTLAYER_MAX_UPLOAD_MIB"))
    """Largest document accepted, in MiB; larger ones are refused before they are stored."""
    max_document_s: int = field(default=3600, metadata=_env("TEXTLAYER_MAX_DOCUMENT_S"))
    """Wall clock for one document's whole run; past it the job fails (``document_timeout``)."""
    redis_url: str | None = field(default=None, metadata=_env("REDIS_URL"))
    """The broker; None: the embedded Redis of ``textlayer up`` in the data directory."""
    ocr_servers: str | None = field(default=None, metadata=_env("TEXTLAYER_OCR_SERVERS"))
    """OCR servers; None: the OCR server of ``textlayer up`` on this machine."""
    output_type: str = field(default="pdf", metadata=_env("TEXTLAYER_OUTPUT_TYPE"))
    """Searchable PDFs the service (and ``textlayer ocr`` by default) writes: ``pdf``, or ``pdfa`` for PDF/A-2b."""
    worker_concurrency: int = field(default=2, metadata=_env("TEXTLAYER_WORKER_CONCURRENCY"))
    """Celery worker processes of ``textlayer worker`` and ``celery -A textlayer.queue worker``."""
    tenant: str = field(default=DEFAULT_TENANT, metadata=_env("TEXTLAYER_TENANT"))
    """Default tenant of the command line."""
    api_url: str | None = field(default=None, metadata=_env("TEXTLAYER_API_URL"))
    """The HTTP API the commands submit, status, get and search use instead of the local files (with a token)."""
    token: str | None = field(default=None, repr=False, metadata=_env("TEXTLAYER_TOKEN"))
    """Bearer token of the HTTP API (``textlayer tokens create``)."""
    api_listen: str = field(default="127.0.0.1:8080", metadata=_env("TEXTLAYER_API_LISTEN"))
    """Where ``textlayer api`` and ``textlayer up`` serve the HTTP API (``HOST:PORT``)."""
    retention_days: int | None = field(default=None, metadata=_env("TEXTLAYER_RETENTION_DAYS"))
    """Finished jobs older than this are deleted (blobs, index rows, job row) by a periodic sweep; None: kept."""
    webhook_allow: str | None = field(default=None, metadata=_env("TEXTLAYER_WEBHOOK_ALLOW"))
    """Comma-separated hosts (``hooks.example.com``, ``*.example.com``, ``*``) and networks (``127.0.0.1/32``)
    that callbacks may go to; None: no callbacks. Link-local and metadata addresses are never allowed."""
    webhook_backoff_ms: int = field(default=5000, metadata=_env("TEXTLAYER_WEBHOOK_BACKOFF_MS"))
    """Wait before the second delivery attempt of a webhook; it doubles after each failure (up to 10 hours)."""
    webhook_retry_s: int = field(default=24 * 3600, metadata=_env("TEXTLAYER_WEBHOOK_RETRY_S"))
    """How long a webhook is retried after its first attempt (the last attempt is made at the end of it)."""
    uploads_per_minute: int = field(default=120, metadata=_env("TEXTLAYER_UPLOADS_PER_MINUTE"))
    """Uploads a tenant may start per minute (HTTP API); more are answered 429."""
    max_stored_mib: int = field(default=10240, metadata=_env("TEXTLAYER_MAX_STORED_MIB"))
    """Uploaded bytes a tenant may keep stored, in MiB (HTTP API); past it uploads are answered 429."""
    pages_per_day: int = field(default=20000, metadata=_env("TEXTLAYER_PAGES_PER_DAY"))
    """Pages a tenant's uploads of the last 24 hours may have (HTTP API); past it uploads are answered 429."""
    upload_idle_s: int = field(default=60, metadata=_env("TEXTLAYER_UPLOAD_IDLE_S"))
    """An upload that sends nothing for this long is answered 408 and dropped."""
    crash_on_filename: str | None = field(default=None, metadata=_env("TEXTLAYER_TEST_CRASH_ON_FILENAME"))
    """Tests only (and only with ``TEXTLAYER_TEST_HOOKS=1``): SIGKILL the process that runs a job
    with this file name (a poison document)."""

    def __post_init__(self) -> None:
        """Refuse a value that cannot work."""
        if self.sandbox_layers not in LAYER_CHOICES:
            raise ValueError(f"TEXTLAYER_SANDBOX_LAYERS={self.sandbox_layers!r} must be one of require, prefer")
        if self.output_type not in OUTPUT_TYPE_CHOICES:
            raise ValueError(f"TEXTLAYER_OUTPUT_TYPE={self.output_type!r} must be one of pdf, pdfa")

    @property
    def ocr_socket(self) -> Path:
        """The unix socket of the OCR server that ``textlayer up`` runs."""
        return self.data_dir / "ocr.sock"

    @property
    def quarantine_dir(self) -> Path:
        """Where inputs that made a jailed worker break its seccomp filter are kept for analysis (0700)."""
        return self.data_dir / "quarantine"

    def ocr_target(self) -> str:
        """Where the OCR servers are: :attr:`ocr_servers`, else ``textlayer up``'s socket."""
        return self.ocr_servers or f"unix:{self.ocr_socket}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read ``TEXTLAYER_*`` variables (an empty one counts as unset); bad values raise ``ValueError``."""
        values: dict[str, Any] = {"data_dir": default_data_dir(environ)}
        for spec in fields(cls):
            raw = environ.get(spec.metadata["env"]) or None
            if raw is None or spec.name == "data_dir":
                continue
            is_int = spec.type in ("int", "int | None")
            values[spec.name] = _int(spec.metadata["env"], raw, spec.metadata["minimum"]) if is_int else raw
        if environ.get("TEXTLAYER_TEST_HOOKS") != "1":
            values.pop("crash_on_filename", None)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` in a child process return these settings."""
        values = {spec.metadata["env"]: getattr(self, spec.name) for spec in fields(self)}
        env = {name: str(value) for name, value in values.items() if value is not None}
        if self.crash_on_filename:
            env["TEXTLAYER_TEST_HOOKS"] = "1"
        return env
