"""Request dispatch inside a jailed worker: the base every role builds on; runs inside the jail.

A *role* is a module of the application (``SandboxPolicy.role``) with a function
``start(policy, write, timings) -> Handlers``: the worker imports it after its namespaces are
built and before lockdown, so everything the role needs later is loaded while files can still be
opened, and its warm-up drives every path untrusted input can reach once (design/SANDBOX.md R4).
This module is itself the null role: ``ping`` and, with test hooks, fault injection and probes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from textlayer.errors import InputDocumentError
from textlayer.sandbox import probes
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.protocol import PREFIX

Reply = tuple[dict[str, Any], bytes]


class Handlers:
    """Request dispatch of one worker: ``ping`` always, fault injection with test hooks; roles add their ops."""

    def __init__(self, policy: SandboxPolicy, write: Callable[[bytes], None]) -> None:
        """``write`` sends raw bytes (fault injection only); a role adds its ops to ``self._ops``."""
        self._policy = policy
        self._write = write
        self._ops: dict[str, Callable[[dict[str, Any], bytes], Reply]] = {"ping": self._ping}
        if policy.test_hooks:
            self._ops.update(
                probe=self._probe,
                hang=self._hang,
                crash=self._crash,
                allocate=self._allocate,
                reply=self._bad_reply,
                say=self._say,
            )

    memory_reason = "input_too_large"
    memory_message = "The input needs more memory than a jailed worker may use."

    def handle(self, header: dict[str, Any], payload: bytes) -> Reply:
        """Answer one request; failures become error replies, never exceptions."""
        op = self._ops.get(str(header.get("op")))
        if op is None:
            return {"ok": False, "error": "protocol", "message": f"unknown op {header.get('op')!r}"}, b""
        try:
            return op(header, payload)
        except InputDocumentError as exc:
            return {"ok": False, "error": "input", "reason": exc.reason, "message": exc.message}, b""
        except MemoryError:
            return {
                "ok": False,
                "error": "memory",
                "reason": self.memory_reason,
                "message": self.memory_message,
            }, b""
        except Exception as exc:  # a bug or a model failure: report it, the worker stays usable
            return {"ok": False, "error": "internal", "message": f"{type(exc).__name__}: {exc}"[:2000]}, b""

    def _ping(self, header: dict[str, Any], payload: bytes) -> Reply:
        return {"ok": True}, b""

    # -- fault injection (policy.test_hooks only) ---------------------------------------

    def _probe(self, header: dict[str, Any], payload: bytes) -> Reply:
        probe = probes.PROBES[str(header["name"])]
        return {"ok": True, "outcome": probe(str(header.get("scratch", "/nonexistent")), int(header["pid"]))}, b""

    def _hang(self, header: dict[str, Any], payload: bytes) -> Reply:
        deadline = time.monotonic() + float(header.get("seconds", 3600))
        while time.monotonic() < deadline:
            if header.get("spin"):
                continue
            time.sleep(0.05)
        return {"ok": True}, b""

    def _crash(self, header: dict[str, Any], payload: bytes) -> Reply:
        how = header.get("how", "abort")
        if how == "abort":
            os.abort()
        if how == "segv":
            ctypes.string_at(0)
        if how == "signal":
            os.kill(os.getpid(), int(header.get("signal", signal.SIGBUS)))
        os._exit(int(header.get("code", 3)))

    def _allocate(self, header: dict[str, Any], payload: bytes) -> Reply:
        block = b"\x01" * (int(header["mib"]) * 1024 * 1024)  # filled, so every page is resident
        return {"ok": True, "bytes": block.count(1)}, b""

    def _say(self, header: dict[str, Any], payload: bytes) -> Reply:
        line = (str(header.get("text", "noise"))[:200] + "\n").encode()
        for _ in range(int(header.get("lines", 1))):
            os.write(2, line)
        return {"ok": True}, b""

    def _bad_reply(self, header: dict[str, Any], payload: bytes) -> Reply:
        kind = header.get("kind")
        if kind == "oversized":
            self._write(PREFIX.pack(0x7FFFFFFF, 2) + b"{}")
        elif kind == "garbage":
            self._write(PREFIX.pack(6, 6) + b"\xff\xfe[1,2")
        elif kind == "bad_page":
            return {"ok": True}, b'{"width": "wide", "lines": 7}'
        return {"ok": True}, b""


def start(policy: SandboxPolicy, write: Callable[[bytes], None], timings: dict[str, float]) -> Handlers:
    """The null role's start-up: nothing to load (``sandbox check`` and the jail's own tests)."""
    return Handlers(policy, write)
