"""The generic jail: untrusted work runs in seccomp + namespace-restricted worker processes (design/SANDBOX.md).

Imports nothing of the application: a role (OCR worker, document converter) is a module named by
``SandboxPolicy.role`` that builds on :class:`~textlayer.sandbox.handlers.Handlers`.
"""

from __future__ import annotations

from textlayer.sandbox.deaths import DeathCause
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.pool import SandboxPool

__all__ = ["DeathCause", "SandboxPolicy", "SandboxPool"]
