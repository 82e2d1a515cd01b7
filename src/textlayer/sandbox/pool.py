"""SandboxPool: the supervisor of long-lived jailed workers (any role).

It starts each worker from one long-lived thread (the parent-death signal follows the *thread* that spawned a child),
routes a page only to a worker verified from the outside, enforces a deadline per page by killing the worker's process
group, classifies every death, restarts with backoff, refuses a page that killed two workers, and recycles workers after
N pages or above an RSS threshold. Everything a worker sends is untrusted: sizes are capped, JSON is validated, a bad
reply kills the worker.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from textlayer.errors import InputDocumentError, SandboxCrashed, SandboxError, SandboxTimeout
from textlayer.files import private_dir, write_atomically
from textlayer.sandbox.deaths import DeathCause
from textlayer.sandbox.launcher import JailedWorker, Spawner, WorkerDied, default_read_only_paths
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.verify import resident_mib

log = logging.getLogger(__name__)

MIB = 1024 * 1024

POISON_STRIKES = 2
"""A page that killed this many workers is refused."""


T = TypeVar("T")


def _raw(header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    return header, payload


class SandboxPool:
    """N long-lived jailed workers behind one blocking :meth:`call_parsed` (thread-safe); ``with`` or start/close."""

    def __init__(
        self,
        policy: SandboxPolicy | None = None,
        *,
        read_only_paths: list[str] | None = None,
        quarantine_dir: Path | None = None,
        inject_faults: tuple[str, ...] = (),
    ) -> None:
        """Configure the pool; nothing starts before :meth:`start`.

        ``policy`` holds confinement and limits (safe defaults); ``read_only_paths``, what workers may see, defaults to
        :func:`default_read_only_paths`; ``quarantine_dir`` keeps pages that triggered a seccomp kill, for analysis.
        ``inject_faults`` (tests and benchmarks only, with ``policy.test_hooks``): ``no_seccomp`` (a worker without its
        filter, which verification must refuse), ``no_namespaces`` (the host refuses namespaces, as in a container) or
        ``no_jail`` (a plain subprocess with the same IPC, unverified, for ``bench/sandbox.py``).
        """
        if inject_faults and not (policy and policy.test_hooks):
            raise ValueError("inject_faults needs a policy with test_hooks=True")
        self._faults = inject_faults
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
        self._spawner: Spawner | None = None
        self.deaths: collections.Counter[str] = collections.Counter()
        """Worker deaths by :class:`DeathCause` value."""
        self.security_events: list[dict[str, Any]] = []
        """Seccomp kills: when, which worker, the page's sha256."""
        self.layers: dict[str, Any] = {}
        """What the first verified worker reported (namespaces, Landlock, seccomp, rlimits)."""
        self.start_timings_s: list[dict[str, float]] = []

    @property
    def quarantine_dir(self) -> Path | None:
        """Where inputs that made a worker break the seccomp filter are kept (None: not kept)."""
        return self._quarantine_dir

    def __enter__(self) -> SandboxPool:
        """Start the pool."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Close the pool."""
        self.close()

    def start(self) -> SandboxPool:
        """Start every worker and wait until all are verified.

        Raises:
            SandboxError: a worker could not start or failed verification (fail closed).
        """
        if self._paths is None:
            self._paths = default_read_only_paths(self.policy)
        self._spawner = Spawner()
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
            worker = JailedWorker(self._next_worker_id, self.policy, self._paths, self._faults)
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

    def _acquire(self, deadline: float) -> JailedWorker:
        patience_s = self.policy.start_deadline_s + self.policy.restart_backoff_max_s
        waited_until = min(deadline, time.monotonic() + patience_s)
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
            if time.monotonic() > deadline:
                raise SandboxTimeout("no OCR worker became free before the deadline")
            if hopeless or time.monotonic() > waited_until:
                raise SandboxError(
                    f"no jailed OCR worker is available ({error or 'all workers busy or restarting'})",
                    reason="sandbox_unavailable",
                )

    def call(
        self, header: dict[str, Any], payload: bytes = b"", *, retry: bool = True, deadline_s: float | None = None
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request to a worker and return its raw reply; see :meth:`call_parsed`."""
        return self.call_parsed(header, payload, _raw, retry=retry, deadline_s=deadline_s)

    def call_parsed(
        self,
        header: dict[str, Any],
        payload: bytes,
        parse: Callable[[dict[str, Any], bytes], T],
        *,
        retry: bool = True,
        deadline_s: float | None = None,
    ) -> T:
        """Send one request to a worker; with ``retry`` a death is retried once, and a second one refuses the input.

        ``parse`` checks and converts the (untrusted) reply before the worker serves anyone else:
        when it raises ``SandboxCrashed(reason="protocol")`` the worker is killed, never reused.
        ``deadline_s`` (the caller's own deadline, e.g. a gRPC call's) shortens the policy's page
        deadline; it covers waiting for a free worker, the request and a retry.

        Raises:
            SandboxTimeout: the page ran past the deadline (twice with ``retry``).
            SandboxCrashed: the worker died; ``reason`` is the :class:`DeathCause`.
            InputDocumentError: ``poison_page``, the input killed two workers.
            SandboxError: no worker can start.
        """
        if len(payload) > self.policy.max_request_mib * MIB:
            raise InputDocumentError(
                f"The page image is {len(payload) / MIB:.0f} MiB; "
                f"at most {self.policy.max_request_mib} MiB are accepted.",
                reason="page_too_large",
            )
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode() + payload).hexdigest()
        attempts = 2 if retry else 1
        deadline = time.monotonic() + (self.policy.deadline_s if deadline_s is None else deadline_s)
        for attempt in range(1, attempts + 1):
            worker = self._acquire(deadline)
            try:
                remaining = max(min(deadline - time.monotonic(), self.policy.deadline_s), 0.001)
                reply = worker.request(header, payload, remaining)
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
            except BaseException:
                # Interrupted mid-conversation (KeyboardInterrupt, a bug): the stream cannot be trusted.
                self._retire(worker, DeathCause.PROTOCOL)
                raise
            with self._lock:
                self._consecutive_failures = 0
            worker.pages += 1
            try:
                parsed = parse(*reply)
            except SandboxCrashed as exc:
                if exc.reason != "protocol":
                    self._release(worker, recycle=False)
                    raise
                # A malformed reply: the input may have taken the worker over; it serves no one else.
                log.error("sandbox worker %d sent a malformed reply (%s); killed", worker.worker_id, exc.message)
                self._retire(worker, DeathCause.PROTOCOL)
                raise
            except BaseException:
                self._release(worker, recycle=False)
                raise
            self._release(worker, recycle=reply[0].get("error") == "memory")
            return parsed
        raise AssertionError("unreachable")

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
                # Kept for analysis, for our user alone: the input may be another tenant's document.
                write_atomically(private_dir(self._quarantine_dir) / f"{digest}.bin", payload)
                log.error("SECURITY: the input is kept in %s", self._quarantine_dir / f"{digest}.bin")
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
