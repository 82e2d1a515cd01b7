"""SandboxPool: the supervisor of long-lived jailed OCR workers.

It starts each worker (``python -m textlayer.sandbox.child``) from one long-lived thread (the
parent-death signal follows the *thread* that spawned a child), verifies every worker from the
outside before routing a page to it, enforces a deadline per page by killing the worker's
process group, classifies every death, restarts with backoff, refuses a page that killed two
workers, and recycles workers after N pages or above an RSS threshold. Everything a worker sends
is untrusted: sizes are capped, JSON is validated, a bad reply kills the worker.
"""

from __future__ import annotations

import collections
import hashlib
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

import textlayer
from textlayer.elements import PageText
from textlayer.errors import InputDocumentError, SandboxCrashed, SandboxError, SandboxTimeout
from textlayer.sandbox.deaths import DeathCause, classify, describe
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.protocol import PREFIX, ProtocolViolation, encode, parse_header, parse_prefix
from textlayer.sandbox.verify import resident_mib, verify_worker

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

POISON_STRIKES = 2
"""A page that killed this many workers is refused."""

_SCM_CREDENTIALS_SIZE = struct.calcsize("iII")


def default_read_only_paths() -> list[str]:
    """What a worker needs to see: the system libraries, the interpreter, the venv, the package, the models."""
    paths = {"/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/sys/devices/system/cpu"}
    # Not sys.path: the worker runs with -I and finds its modules from its own prefix; the
    # supervisor's script directory or cwd must not become visible.
    paths.update({sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(textlayer.__file__).parent.parent)})
    from textlayer.worker.manifest import default_manifest_path, load_manifest

    paths.add(str(default_manifest_path().parent))
    for spec in load_manifest().models.values():
        try:
            paths.add(str(spec.locate().parent))
        except Exception:  # a missing model package is reported by the worker's own start-up
            continue
    for package in ("numpy", "cv2", "onnxruntime", "PIL"):
        found = importlib.util.find_spec(package)
        if found is not None and found.submodule_search_locations:
            paths.update(str(Path(p).parent) for p in found.submodule_search_locations)
    return sorted(p for p in paths if os.path.isabs(p))


class _Spawner:
    """One long-lived thread that starts every worker process (PR_SET_PDEATHSIG is per thread)."""

    def __init__(self) -> None:
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

    def run(self, action: Callable[[], Any]) -> Any:
        future: Future[Any] = Future()
        self._jobs.put((action, future))
        return future.result()

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)


class WorkerDied(Exception):
    """A worker ended while we talked to it."""

    def __init__(self, cause: DeathCause, returncode: int | None, detail: str) -> None:
        super().__init__(f"{cause.value} ({describe(returncode)}): {detail}")
        self.cause = cause
        self.returncode = returncode
        self.detail = detail


class JailedWorker:
    """One worker process: launch, READY + outside verification, request/reply, kill."""

    def __init__(self, worker_id: int, policy: SandboxPolicy, read_only_paths: list[str]) -> None:
        """Describe a worker; :meth:`launch` starts it."""
        self.worker_id = worker_id
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

    # -- start ----------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the process (must run on the pool's spawner thread)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Credentials of every message: the kernel translates the sender's pid into our pid namespace.
        parent.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        config = {"policy": json.loads(self.policy.to_json()), "fd": child.fileno(), "read_only_paths": self.read_only_paths}
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
            target=self._drain_stderr, args=(self.process.stderr,), name=f"sandbox-worker-{self.worker_id}-stderr", daemon=True
        ).start()

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        for raw in iter(lambda: stream.readline(4096), b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._last_words.append(line)
            log.info("sandbox worker %d: %s", self.worker_id, line)

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

    # -- requests -------------------------------------------------------------------------

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
            raise WorkerDied(DeathCause.DEADLINE, self._returncode(), f"no progress within {deadline_s:.1f} s") from None
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
                data, ancillary, _, _ = self._sock.recvmsg(PREFIX.size - len(prefix), socket.CMSG_SPACE(_SCM_CREDENTIALS_SIZE))
                if not data:
                    raise EOFError
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and sender is None:
                        sender = struct.unpack("iII", value[:_SCM_CREDENTIALS_SIZE])[0]
                prefix += data
            header_len, payload_len = parse_prefix(bytes(prefix), max_payload)
            body = self._read_exactly(header_len + payload_len, deadline)
            header = parse_header(body[:header_len])
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

    # -- ending ---------------------------------------------------------------------------

    def _returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def _death(self, detail: str) -> WorkerDied:
        """The connection broke: wait for the process to end and say why it died."""
        assert self.process is not None
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
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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


class SandboxPool:
    """N long-lived jailed OCR workers behind one blocking ``recognize`` call (thread-safe).

    Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        policy: SandboxPolicy | None = None,
        *,
        read_only_paths: list[str] | None = None,
        quarantine_dir: Path | None = None,
    ) -> None:
        """Configure the pool; nothing starts before :meth:`start`.

        Args:
            policy: confinement and limits (safe defaults).
            read_only_paths: what workers may see (default: interpreter, venv, package, models).
            quarantine_dir: where pages that triggered a seccomp kill are kept for analysis.
        """
        self.policy = policy or SandboxPolicy()
        self._paths = read_only_paths
        self._quarantine_dir = quarantine_dir
        self._idle: queue.Queue[JailedWorker] = queue.Queue()
        self._lock = threading.Lock()
        self._live: set[JailedWorker] = set()
        self._starting = 0
        self._next_worker_id = 0
        self._consecutive_failures = 0
        self._config_error: str | None = None
        self._closed = False
        self._strikes: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._spawner: _Spawner | None = None
        self.deaths: collections.Counter[str] = collections.Counter()
        """Worker deaths by :class:`DeathCause` value."""
        self.security_events: list[dict[str, Any]] = []
        """Seccomp kills: when, which worker, the page's sha256."""
        self.layers: dict[str, Any] = {}
        """What the first verified worker reported (namespaces, Landlock, seccomp, rlimits)."""
        self.start_timings_s: list[dict[str, float]] = []

    def __enter__(self) -> SandboxPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> SandboxPool:
        """Start every worker and wait until all are verified.

        Raises:
            SandboxError: a worker could not start or failed verification (fail closed).
        """
        if self._paths is None:
            self._paths = default_read_only_paths()
        self._spawner = _Spawner()
        workers = [self._launch() for _ in range(self.policy.workers)]
        failures = []
        for worker in workers:
            try:
                self._await_ready(worker)
            except WorkerDied as exc:
                failures.append(f"worker {worker.worker_id}: {exc}")
        if failures:
            self.close()
            raise SandboxError("the OCR sandbox could not start: " + "; ".join(failures), reason="sandbox_unavailable")
        log.info("sandbox: %d worker(s) verified; layers %s", len(workers), json.dumps(self.layers, sort_keys=True))
        return self

    def _launch(self) -> JailedWorker:
        assert self._spawner is not None and self._paths is not None
        with self._lock:
            self._next_worker_id += 1
            worker = JailedWorker(self._next_worker_id, self.policy, self._paths)
            self._starting += 1
        try:
            self._spawner.run(worker.launch)
        except BaseException:
            with self._lock:
                self._starting -= 1
            raise
        return worker

    def _await_ready(self, worker: JailedWorker) -> None:
        try:
            worker.wait_ready()
        except WorkerDied as exc:
            with self._lock:
                self._starting -= 1
                self.deaths[exc.cause.value] += 1
                self._config_error = f"{exc}"
            log.error("sandbox worker %d did not start: %s", worker.worker_id, exc)
            raise
        with self._lock:
            self._starting -= 1
            self._live.add(worker)
            if not self.layers:
                self.layers = worker.layers
            self.start_timings_s.append(worker.timings_s)
        log.info(
            "sandbox worker %d ready (pid %s) in %.1f s",
            worker.worker_id,
            worker.pid,
            worker.timings_s.get("total", 0.0),
        )
        self._idle.put(worker)

    def _replace_later(self, delay_s: float) -> None:
        """Start a replacement in the background after ``delay_s`` (backoff)."""
        with self._lock:
            if self._closed:
                return
            self._starting += 1

        def replace() -> None:
            time.sleep(delay_s)
            with self._lock:
                self._starting -= 1
                if self._closed:
                    return
            try:
                worker = self._launch()
                self._await_ready(worker)
            except WorkerDied:
                pass  # a start-up failure is a configuration error: no restart loop
            except Exception as exc:
                log.error("sandbox: could not start a replacement worker: %s", exc)

        threading.Thread(target=replace, name="textlayer-sandbox-restart", daemon=True).start()

    def _retire(self, worker: JailedWorker, cause: DeathCause | None) -> None:
        with self._lock:
            self._live.discard(worker)
        if cause is None:
            worker.retire()
            self._replace_later(0.0)
            return
        worker.kill(cause)
        with self._lock:
            self.deaths[cause.value] += 1
            self._consecutive_failures += 1
            delay = min(
                self.policy.restart_backoff_s * 2 ** (self._consecutive_failures - 1), self.policy.restart_backoff_max_s
            )
        self._replace_later(delay)

    def close(self) -> None:
        """Retire every worker and stop the spawner thread (workers die with it anyway)."""
        with self._lock:
            self._closed = True
            workers = list(self._live)
            self._live.clear()
        for worker in workers:
            worker.retire()
        while True:
            try:
                self._idle.get_nowait().retire()
            except queue.Empty:
                break
        if self._spawner is not None:
            self._spawner.stop()
            self._spawner = None

    @property
    def live_workers(self) -> list[JailedWorker]:
        """Workers that are verified and not retired."""
        with self._lock:
            return sorted(self._live, key=lambda w: w.worker_id)

    # -- requests -------------------------------------------------------------------------

    def _acquire(self) -> JailedWorker:
        waited_until = time.monotonic() + self.policy.start_deadline_s + self.policy.restart_backoff_max_s
        while True:
            try:
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                pass
            with self._lock:
                if self._closed:
                    raise SandboxError("the OCR sandbox is closed", reason="sandbox_unavailable")
                hopeless = not self._live and not self._starting
                error = self._config_error
            if hopeless or time.monotonic() > waited_until:
                raise SandboxError(
                    f"no jailed OCR worker is available ({error or 'all workers busy or restarting'})",
                    reason="sandbox_unavailable",
                )

    def call(self, header: dict[str, Any], payload: bytes = b"", *, retry: bool = True) -> tuple[dict[str, Any], bytes]:
        """Send one request to a worker; with ``retry`` a death is retried once, and a second one refuses the input.

        Raises:
            SandboxTimeout: the page ran past the deadline (twice with ``retry``).
            SandboxCrashed: the worker died; ``reason`` is the :class:`DeathCause`.
            InputDocumentError: ``poison_page``, the input killed two workers.
            SandboxError: no worker can start.
        """
        if len(payload) > self.policy.max_request_mib * MIB:
            raise InputDocumentError(
                f"The page image is {len(payload) / MIB:.0f} MiB; at most {self.policy.max_request_mib} MiB are accepted.",
                reason="page_too_large",
            )
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode() + payload).hexdigest()
        attempts = 2 if retry else 1
        for attempt in range(1, attempts + 1):
            worker = self._acquire()
            try:
                reply = worker.request(header, payload, self.policy.deadline_s)
            except WorkerDied as death:
                self._retire(worker, death.cause)
                self._record_death(worker, death, digest, payload)
                strikes = self._strike(digest) if retry else 0
                if strikes >= POISON_STRIKES:
                    raise InputDocumentError(
                        f"This page made the OCR worker fail {strikes} times ({death.cause.value}) and was refused; "
                        "the file may be damaged or crafted.",
                        reason="poison_page",
                    ) from None
                if attempt == attempts:
                    raise self._error_for(death) from None
                log.warning("sandbox: retrying the page in a fresh worker after %s", death)
                continue
            with self._lock:
                self._consecutive_failures = 0
            worker.pages += 1
            self._release(worker, recycle=reply[0].get("error") == "memory")
            return reply
        raise AssertionError("unreachable")

    def recognize(self, image: bytes, *, dpi: float | None = None, frame: int = 0) -> PageText:
        """OCR one encoded page image (PNG, JPEG or TIFF bytes, decoded inside the jail).

        Raises:
            InputDocumentError: the image is unreadable, too large, or a poison page.
            SandboxTimeout, SandboxCrashed, SandboxError: see :meth:`call`.
        """
        header, payload = self.call({"op": "ocr", "dpi": dpi, "frame": frame}, image)
        if not header.get("ok"):
            kind, message = header.get("error"), str(header.get("message", "unknown error"))[:2000]
            if kind in ("input", "memory"):
                raise InputDocumentError(message, reason=str(header.get("reason", "bad_input"))[:64])
            raise SandboxError(f"OCR failed inside the sandbox: {message}", reason="ocr_failed")
        try:
            page = PageText.from_dict(json.loads(payload))
            if page.rotation not in (0, 90, 180, 270) or page.width < 1 or page.height < 1:
                raise ValueError("impossible page geometry")
        except Exception as exc:  # the reply is untrusted: anything malformed is a protocol violation
            raise SandboxCrashed(f"a sandbox worker sent a malformed page result ({exc})", reason="protocol") from exc
        return page

    def _release(self, worker: JailedWorker, *, recycle: bool) -> None:
        rss = resident_mib(worker.pid) if worker.pid else 0.0
        if recycle or worker.pages >= self.policy.recycle_after_pages or rss > self.policy.recycle_above_rss_mib:
            log.info("sandbox: recycling worker %d after %d pages (RSS %.0f MiB)", worker.worker_id, worker.pages, rss)
            with self._lock:
                self.deaths[DeathCause.RETIRED.value] += 1
            self._retire(worker, None)
            return
        self._idle.put(worker)

    def _strike(self, digest: str) -> int:
        with self._lock:
            strikes = self._strikes.pop(digest, 0) + 1
            self._strikes[digest] = strikes
            while len(self._strikes) > 1000:
                self._strikes.popitem(last=False)
            return strikes

    def _record_death(self, worker: JailedWorker, death: WorkerDied, digest: str, payload: bytes) -> None:
        if death.cause is DeathCause.POLICY_VIOLATION:
            event = {"time": time.time(), "worker": worker.worker_id, "sha256": digest}
            self.security_events.append(event)
            log.error(
                "SECURITY: sandbox worker %d was killed by its seccomp filter (SIGSYS) while reading input sha256 %s",
                worker.worker_id,
                digest,
            )
            if self._quarantine_dir is not None:
                self._quarantine_dir.mkdir(parents=True, exist_ok=True)
                (self._quarantine_dir / f"{digest}.bin").write_bytes(payload)
        else:
            log.warning("sandbox worker %d died: %s", worker.worker_id, death)

    @staticmethod
    def _error_for(death: WorkerDied) -> SandboxError:
        if death.cause is DeathCause.DEADLINE:
            return SandboxTimeout(f"the page ran past the OCR deadline and its worker was killed ({death.detail})")
        if death.cause is DeathCause.CONFIG:
            return SandboxError(f"the OCR sandbox cannot run here: {death.detail}", reason="sandbox_unavailable")
        error = SandboxCrashed(f"the OCR worker died: {death}", reason=death.cause.value)
        error.returncode = death.returncode
        return error
