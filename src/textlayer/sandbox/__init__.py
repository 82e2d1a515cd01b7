"""The jail: OCR models run in seccomp + namespace-restricted worker processes (design/SANDBOX.md)."""

from __future__ import annotations

from textlayer.sandbox.deaths import DeathCause
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.pool import SandboxPool

__all__ = ["DeathCause", "SandboxPolicy", "SandboxPool"]
