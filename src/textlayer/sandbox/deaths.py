"""Why a jailed worker died, from its exit status and what the supervisor did (pure)."""

from __future__ import annotations

import signal
from enum import StrEnum

from textlayer.sandbox.protocol import EXIT_CONFIG, EXIT_PROTOCOL


class DeathCause(StrEnum):
    """Every way a worker can end, each with its own handling (design/SANDBOX.md §5)."""

    POLICY_VIOLATION = "policy_violation"
    """SIGSYS: the seccomp filter killed it; a security event, the input is kept."""
    DEADLINE = "deadline"
    """We SIGKILLed it because a page ran past its deadline."""
    KILLED = "killed"
    """SIGKILL we did not send: the kernel's OOM killer or an operator."""
    CPU_LIMIT = "cpu_limit"
    """SIGXCPU: the lifetime CPU backstop."""
    CRASH = "crash"
    """SIGABRT, SIGSEGV, another signal or an unexpected exit status."""
    PROTOCOL = "protocol"
    """It broke the frame protocol (its own exit 65, or we killed it for a bad reply)."""
    CONFIG = "config"
    """It ended before READY: the jail or the models cannot start here; restarting will not help."""
    RETIRED = "retired"
    """We closed it on purpose (recycling, shutdown)."""


def classify(returncode: int, *, ready: bool, killed_for: DeathCause | None) -> DeathCause:
    """Name the cause of a death; ``returncode`` is the launcher's ``Popen.returncode`` (``-signal`` for a signal)."""
    if killed_for is not None:
        return killed_for
    if not ready:
        return DeathCause.CONFIG
    if returncode == -signal.SIGSYS:
        return DeathCause.POLICY_VIOLATION
    if returncode == -signal.SIGKILL:
        return DeathCause.KILLED
    if returncode == -signal.SIGXCPU:
        return DeathCause.CPU_LIMIT
    if returncode == EXIT_PROTOCOL:
        return DeathCause.PROTOCOL
    if returncode == EXIT_CONFIG:
        return DeathCause.CONFIG
    if returncode == 0:
        return DeathCause.RETIRED
    return DeathCause.CRASH


def describe(returncode: int | None) -> str:
    """``exit 3`` or ``SIGABRT`` for logs and error messages."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit {returncode}"
