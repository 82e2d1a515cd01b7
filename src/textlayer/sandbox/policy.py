"""SandboxPolicy: how jailed workers are confined, as plain data with units and safe defaults."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

LayerPolicy = Literal["require", "prefer"]

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class SandboxPolicy:
    """Everything the supervisor and the jailed worker need to agree on.

    Isolation is on unless turned off. ``layers="require"`` (production) refuses a worker
    without its namespaces; ``"prefer"`` (containers, CI without user namespaces) reports
    what is missing and goes on. seccomp and no_new_privs are mandatory under both.
    """

    role: str = "textlayer.sandbox.handlers"
    """Module the worker imports before lockdown; its ``start(policy, write, timings)`` returns the
    request handlers (default: the null role, ``ping`` and test hooks only)."""
    role_options: dict[str, Any] = field(default_factory=dict)
    """Plain JSON values for the role (a model set, a pixel limit); the jail passes them on unread."""
    read_only_paths: tuple[str, ...] = ()
    """Absolute paths the role needs to see besides the system, the interpreter and the venv (models)."""
    packages: tuple[str, ...] = ()
    """Top-level packages the role imports; their install locations are bound read-only."""
    layers: LayerPolicy = "require"
    """Namespaces/Landlock: ``require`` fails closed without them, ``prefer`` reports and continues."""
    workers: int = 1
    """Long-lived jailed workers in a pool."""
    threads: int = 1
    """onnxruntime intra-op threads per model inside a worker."""
    deadline_s: float = 120.0
    """Wall clock for one page; past it the worker's process group is SIGKILLed."""
    start_deadline_s: float = 120.0
    """Wall clock for a worker to load its models, warm up and report READY."""
    address_space_mib: int = 6144
    """RLIMIT_AS of a worker (virtual memory: model sessions, thread stacks, the largest page)."""
    open_files: int = 64
    """RLIMIT_NOFILE of a worker."""
    cpu_lifetime_s: int = 0
    """RLIMIT_CPU backstop over a worker's whole life (SIGXCPU); 0 = none, the per-page deadline rules."""
    max_request_mib: int = 64
    """Largest encoded page image sent into a worker."""
    max_reply_mib: int = 32
    """Largest reply accepted from a worker (its JSON word boxes); more is a protocol violation."""
    recycle_after_pages: int = 500
    """A worker is replaced after this many pages (bounds slow leaks and arena high-water marks)."""
    recycle_above_rss_mib: int = 2500
    """A worker whose resident memory passes this after a page is replaced."""
    restart_backoff_s: float = 0.5
    """First delay before replacing a dead worker; doubles per consecutive failure."""
    restart_backoff_max_s: float = 30.0
    """Longest delay between restarts."""
    service_uid: int = 65534
    """When the supervisor runs as root, workers drop to this uid (nobody) before anything else."""
    service_gid: int = 65534
    """Group of ``service_uid``."""
    test_hooks: bool = False
    """Let the worker answer fault-injection and escape-probe requests (tests and ``sandbox check``)."""

    def __post_init__(self) -> None:
        """Refuse values that cannot work, with the field name in the message."""
        if not _MODULE_NAME.fullmatch(self.role):
            raise ValueError(f"role must be a dotted module name, not {self.role!r}")
        if self.layers not in ("require", "prefer"):
            raise ValueError(f"layers must be 'require' or 'prefer', not {self.layers!r}")
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            minimum = 0 if spec.name in ("cpu_lifetime_s", "service_uid", "service_gid") else 1
            if spec.name.endswith("_s") and spec.name != "cpu_lifetime_s":
                minimum = 0
            if value < minimum or (spec.name in ("deadline_s", "start_deadline_s") and value <= 0):
                raise ValueError(f"{spec.name}={value} is out of range")

    def to_json(self) -> str:
        """The policy as JSON (it crosses into the worker on its command line)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SandboxPolicy:
        """Parse :meth:`to_json` output; unknown fields are an error."""
        raw: dict[str, Any] = json.loads(text)
        known = {spec.name for spec in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown sandbox policy fields: {sorted(unknown)}")
        for name in ("read_only_paths", "packages"):
            if name in raw:
                raw[name] = tuple(raw[name])
        return cls(**raw)
