"""One jailed worker process seen from the supervisor: launch, READY, outside verification, requests, kill.

Workers start through ``subprocess`` with an argv list (never ``fork`` of the supervisor: gRPC
servers do not survive it) in their own session, so one ``killpg`` ends launcher, reaper and worker.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import logging
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

from textlayer.sandbox.deaths import DeathCause, classify, describe
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.protocol import PREFIX, ProtocolViolation, encode, parse_header, parse_prefix
from textlayer.sandbox.verify import verify_worker

log = logging.getLogger(__name__)

MIB = 1024 * 1024

WORKER_ENVIRONMENT = {
    "ORT_DISABLE_TELEMETRY": "1",  # the onnxruntime wheel's telemetry thread opens sockets
    "MALLOC_ARENA_MAX": "2",  # bounded virtual memory under RLIMIT_AS
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "LANG": "C.UTF-8",
}
"""The whole environment of a worker: nothing of the supervisor's leaks in."""

STDERR_LOG_LINES = 200
"""Lines of a worker's stderr that reach the logs (start-up reports take ~20)."""

_SCM_CREDENTIALS_SIZE = struct.calcsize("iII")


def default_read_only_paths(policy: SandboxPolicy) -> list[str]:
    """What a worker sees: system, interpreter, venv, source tree, ``policy.read_only_paths``, ``policy.packages``."""
    paths = {"/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/sys/devices/system/cpu"}
    # Not sys.path: the worker runs with -I and finds its modules from its own prefix; the
    # supervisor's script directory or cwd must not become visible.
    paths.update({sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).resolve().parents[2])})
    paths.update(policy.read_only_paths)
    for package in policy.packages:
        found = importlib.util.find_spec(package)
        if found is not None and found.submodule_search_locations:
            paths.update(str(Path(p).parent) for p in found.submodule_search_locations)
    return sorted(p for p in paths if Path(p).is_absolute())


class Spawner:
    """One long-lived thread that starts every worker process (PR_SET_PDEATHSIG is per thread)."""

    def __init__(self) -> None:
        """Start the thread; it lives until :meth:`stop`."""
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="textlayer-sandbox-spawner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            action, future = job
            try:
                future.set_result(action())
            except BaseException as exc:
                future.set_exception(exc)
        while True:  # jobs queued behind the stop never run
            try:
                leftover = self._jobs.get_nowait()
            except queue.Empty:
                return
            if leftover is not None:
                leftover[1].set_exception(RuntimeError("the sandbox spawner has stopped"))

    def run(self, action: Callable[[], Any]) -> Any:
        """Run ``action`` on the spawner thread and return its result (or raise its exception)."""
        future: Future[Any] = Future()
        self._jobs.put((action, future))
        if not self._thread.is_alive():
            raise RuntimeError("the sandbox spawner has stopped")
        return future.result()

    def stop(self) -> None:
        """End the thread (children it started get their parent-death signal)."""
        self._jobs.put(None)
        self._thread.join(timeout=5)


class WorkerDied(Exception):
    """A worker ended while we talked to it."""

    def __init__(self, cause: DeathCause, returncode: int | None, detail: str) -> None:
        """Record why (``cause``), how (``returncode``) and what the worker last said (``detail``)."""
        super().__init__(f"{cause.value} ({describe(returncode)}): {detail}")
        self.cause = cause
        self.returncode = returncode
        self.detail = detail


class JailedWorker:
    """One worker process: launch, READY + outside verification, request/reply, kill."""

    def __init__(
        self, worker_id: int, policy: SandboxPolicy, read_only_paths: list[str], faults: tuple[str, ...] = ()
    ) -> None:
        """Describe a worker; :meth:`launch` starts it (``faults``: see :class:`SandboxPool`)."""
        self.worker_id = worker_id
        self.faults = faults
        self.policy = policy
        self.read_only_paths = read_only_paths
        self.pid: int | None = None
        self.layers: dict[str, Any] = {}
        self.timings_s: dict[str, float] = {}
        self.pages = 0
        self.ready = False
        self._killed_for: DeathCause | None = None
        self._last_words: collections.deque[str] = collections.deque(maxlen=40)
        self._next_id = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def launch(self) -> None:
        """Start the process (must run on the pool's spawner thread)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Credentials of every message: the kernel translates the sender's pid into our pid namespace.
        parent.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        config = {
            "policy": json.loads(self.policy.to_json()),
            "fd": child.fileno(),
            "read_only_paths": self.read_only_paths,
            "faults": list(self.faults),
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-B", "-m", "textlayer.sandbox.child", json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(child.fileno(),),
                env=WORKER_ENVIRONMENT,
                cwd="/",
                start_new_session=True,  # its own process group: one killpg ends launcher, reaper and worker
            )
        finally:
            child.close()
        self._sock = parent
        assert self.process.stderr is not None
        threading.Thread(
            target=self._drain_stderr,
            args=(self.process.stderr,),
            name=f"sandbox-worker-{self.worker_id}-stderr",
            daemon=True,
        ).start()

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        # What a worker writes is untrusted: a taken-over one could flood the logs, so only its first
        # lines are logged (the last ones are still kept for the message of its death).
        logged = 0
        with stream:
            for raw in iter(lambda: stream.readline(4096), b""):
                line = raw.decode("utf-8", "replace").rstrip()
                self._last_words.append(line)
                logged += 1
                if logged <= STDERR_LOG_LINES:
                    log.info("sandbox worker %d: %s", self.worker_id, line)
                elif logged == STDERR_LOG_LINES + 1:
                    log.warning("sandbox worker %d: more output than %d lines; not logged", self.worker_id, logged - 1)

    def last_words(self) -> str:
        """The worker's last lines of stderr (for error messages)."""
        return " | ".join(list(self._last_words)[-6:])

    def wait_ready(self) -> None:
        """Wait for READY, then verify the jail from the outside; kill the worker if anything is wrong.

        Raises:
            WorkerDied: it ended before READY (a configuration problem) or failed verification.
        """
        deadline = time.monotonic() + self.policy.start_deadline_s
        header, _, sender_pid = self._receive(deadline, max_payload=MIB, want_credentials=True)
        if header.get("ready") is not True or not isinstance(header.get("layers"), dict):
            self.kill(DeathCause.PROTOCOL)
            raise WorkerDied(DeathCause.PROTOCOL, self._returncode(), "the first frame was not READY")
        assert self.process is not None and sender_pid is not None
        self.pid = sender_pid
        self.layers = header["layers"]
        self.timings_s = {str(k): float(v) for k, v in dict(header.get("timings_s", {})).items()}
        if "no_jail" in self.faults:  # the plain-subprocess benchmark: nothing to verify
            self.ready = True
            return
        outside_uid = self.policy.service_uid if os.geteuid() == 0 else os.geteuid()
        problems = verify_worker(
            sender_pid,
            self.process.pid,
            self.layers,
            require_namespaces=self.policy.layers == "require",
            outside_uid=outside_uid,
        )
        if problems:
            self.kill(DeathCause.CONFIG)
            raise WorkerDied(DeathCause.CONFIG, self._returncode(), "refused by verification: " + "; ".join(problems))
        self.ready = True

    def request(self, header: dict[str, Any], payload: bytes, deadline_s: float) -> tuple[dict[str, Any], bytes]:
        """Send one request and wait for its reply.

        Raises:
            WorkerDied: the worker died, broke the protocol or ran past ``deadline_s`` (then we killed it).
        """
        deadline = time.monotonic() + deadline_s
        self._next_id += 1
        header = {**header, "id": self._next_id}
        frame = encode(header, payload)
        assert self._sock is not None
        try:
            self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
            self._sock.sendall(frame)
        except TimeoutError:
            self.kill(DeathCause.DEADLINE)
            raise WorkerDied(
                DeathCause.DEADLINE, self._returncode(), f"no progress within {deadline_s:.1f} s"
            ) from None
        except OSError as exc:
            raise self._death(f"connection lost while sending ({exc})") from None
        reply, reply_payload, _ = self._receive(deadline, max_payload=self.policy.max_reply_mib * MIB)
        if reply.get("id") != self._next_id:
            self.kill(DeathCause.PROTOCOL)
            raise WorkerDied(DeathCause.PROTOCOL, self._returncode(), "reply to another request")
        return reply, reply_payload

    def _receive(
        self, deadline: float, *, max_payload: int, want_credentials: bool = False
    ) -> tuple[dict[str, Any], bytes, int | None]:
        assert self._sock is not None
        sender: int | None = None
        try:
            prefix = bytearray()
            while len(prefix) < PREFIX.size:
                self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data, ancillary, _, _ = self._sock.recvmsg(
                    PREFIX.size - len(prefix), socket.CMSG_SPACE(_SCM_CREDENTIALS_SIZE)
                )
                if not data:
                    raise EOFError
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and sender is None:
                        sender = struct.unpack("iII", value[:_SCM_CREDENTIALS_SIZE])[0]
                prefix += data
            header_len, payload_len = parse_prefix(bytes(prefix), max_payload)
            body = self._read_exactly(header_len + payload_len, deadline)
            header = parse_header(bytes(body[:header_len]))
        except TimeoutError:
            self.kill(DeathCause.DEADLINE)
            raise WorkerDied(DeathCause.DEADLINE, self._returncode(), "no reply before the deadline") from None
        except (EOFError, ConnectionError):
            raise self._death("connection closed") from None
        except ProtocolViolation as exc:
            self.kill(DeathCause.PROTOCOL)
            raise WorkerDied(DeathCause.PROTOCOL, self._returncode(), str(exc)) from None
        if want_credentials and sender is None:
            self.kill(DeathCause.PROTOCOL)
            raise WorkerDied(DeathCause.PROTOCOL, self._returncode(), "READY came without credentials")
        return header, bytes(body[header_len:]), sender

    def _read_exactly(self, size: int, deadline: float) -> bytearray:
        assert self._sock is not None
        buffer = bytearray(size)
        view = memoryview(buffer)
        filled = 0
        while filled < size:
            self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
            count = self._sock.recv_into(view[filled:])
            if count == 0:
                raise EOFError
            filled += count
        return buffer

    def _returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def _death(self, detail: str) -> WorkerDied:
        """The connection broke: wait for the process to end and say why it died."""
        assert self.process is not None
        self._close_socket()
        try:
            returncode = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill(DeathCause.PROTOCOL)
            returncode = self.process.returncode
        cause = classify(returncode, ready=self.ready, killed_for=self._killed_for)
        words = self.last_words()
        return WorkerDied(cause, returncode, f"{detail}; {words}" if words else detail)

    def kill(self, cause: DeathCause) -> None:
        """SIGKILL the worker's whole process group and reap it."""
        if self._killed_for is None:
            self._killed_for = cause
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_socket()

    def retire(self) -> None:
        """Close the connection (the worker exits on EOF); kill it if it lingers."""
        self._killed_for = self._killed_for or DeathCause.RETIRED
        self._close_socket()
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill(DeathCause.RETIRED)

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
