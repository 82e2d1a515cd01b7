"""Starting and stopping the service leaves nothing behind: no traceback, no process, no unflushed Redis (issue 20).

What raced: ``OcrClient.wait_until_ready`` waited with ``grpc.channel_ready_future``, whose
connectivity poller thread outlives the future by up to 0.2 s; the readiness wait of ``up`` and
``demo`` closed the channel right after, and the poller then called into the closed channel:
``Exception in thread ... ValueError: Cannot invoke RPC: Channel closed!``. It now asks the health
service (no thread). ``up`` also raced with its own signals: one that came before ``wait()``
installed the handlers killed it and orphaned its children, one that the kernel handed to
another thread never woke a main thread blocked in ``Event.wait()`` (``up`` hung), and a Ctrl-C
during start-up also reached the children, killing the OCR server mid-import (a traceback in its log).

The end-to-end checks run each command ``TEXTLAYER_CLEAN_EXIT_RUNS`` times (default 20) and fail on
a non-zero exit, a ``Traceback`` or ``Exception in thread`` in its output or its children's logs, or
any of its processes still running afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_sandbox import LAYERS
from textlayer.errors import OcrUnavailable
from textlayer.worker.client import OcrClient

REPO = Path(__file__).resolve().parents[2]
SCAN = REPO / "samples" / "two-column-scan.jpg"
RUNS = int(os.environ.get("TEXTLAYER_CLEAN_EXIT_RUNS", "20"))
NOISE = ("Traceback", "Exception in thread")
GONE_GRACE_S = 5.0
"""How long a process of a finished command may take to disappear (a parent-death signal is asynchronous)."""


def _env(data_dir: Path) -> dict[str, str]:
    """The child's environment: its own data dir, never the machine's Redis or OCR servers."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TEXTLAYER_OCR_SERVERS")}
    return {
        **env,
        "TEXTLAYER_DATA_DIR": str(data_dir),
        "TEXTLAYER_SANDBOX_LAYERS": LAYERS,
        "ORT_DISABLE_TELEMETRY": "1",
    }


# -- processes ------------------------------------------------------------------------------------


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (tells a live process from a recycled pid), None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(child) for child in (task / "children").read_text().split())
    except OSError:
        pass
    return found


def _descendants(root: int) -> set[int]:
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = set().union(*(_children(pid) for pid in frontier)) - found
        found |= frontier
    return found


def _describe(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:160].decode(errors="replace")
    except OSError:
        return f"{pid} gone"
    return f"{pid} " + " ".join(line for line in status if line.startswith(("Name", "State", "PPid"))) + f" {cmdline}"


class ProcessTree:
    """Every process of one command: its descendants, sampled while it runs, and whatever carries its marker.

    The marker (the run's own data dir) is looked for in each process's command line and environment,
    which catches a child whose parent died before a sample saw it. Jailed workers get a clean
    environment; the samples catch those.
    """

    def __init__(self, root: int, marker: Path) -> None:
        self.root = root
        self.marker = str(marker).encode()
        self.seen: dict[int, int] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _record(self, pids: set[int]) -> None:
        for pid in pids:
            started = _start_time(pid)
            if started is not None:
                self.seen.setdefault(pid, started)

    def _sample(self) -> None:
        while True:
            self._record({self.root} | _descendants(self.root))
            if self._done.wait(0.05):
                return

    def _marked(self) -> set[int]:
        marked = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if self.marker in (entry / "cmdline").read_bytes() or self.marker in (entry / "environ").read_bytes():
                    marked.add(int(entry.name))
            except OSError:
                continue
        return marked

    def alive(self) -> list[int]:
        self._record(self._marked())
        return sorted(pid for pid, started in self.seen.items() if _start_time(pid) == started)

    def survivors(self) -> list[str]:
        """Stop sampling; the processes still running after the grace period, described (empty: all gone)."""
        self._done.set()
        self._thread.join()
        deadline = time.monotonic() + GONE_GRACE_S
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [_describe(pid) for pid in left]


def _noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(word in line for word in NOISE)]


def _log_noise(data_dir: Path) -> list[str]:
    """Tracebacks in the logs of the stack's children (their output is not the command's), and the logs' ends."""
    found = []
    for log in [*sorted((data_dir / "logs").glob("*.log")), data_dir / "redis" / "redis.log"]:
        text = log.read_text(errors="replace") if log.exists() else ""
        if _noise(text):
            found += [f"{log.name}: {line}" for line in _noise(text)] + [f"{log.name} ends with:\n{text[-1500:]}"]
    return found


def _summary(name: str, durations: list[float], failures: list[str]) -> str:
    clean = len(durations) - len(failures)
    return f"{name}: {clean}/{len(durations)} clean runs, median {statistics.median(durations):.1f} s" + "".join(
        f"\n  {failure}" for failure in failures
    )


# -- the readiness wait itself (fast: a stub OCR server) -----------------------------------------


@pytest.fixture
def stub_server(tmp_path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    address = f"unix:{tmp_path / 'stub.sock'}"
    command = [sys.executable, "-m", "tests.grpc_stub", "--listen", address]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as server:
        assert server.stdout is not None and server.stdout.readline().strip() == "READY"
        yield address, server
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


class ThreadWatch:
    """The exceptions threads die of, and the threads still running when :meth:`look` is called."""

    def __enter__(self) -> ThreadWatch:
        self.before = set(threading.enumerate())
        self.problems: list[str] = []
        self._previous_hook = threading.excepthook
        threading.excepthook = lambda args: self.problems.append(
            f"{args.thread.name if args.thread else '?'} died: {args.exc_type.__name__}: {args.exc_value}"
        )
        return self

    def look(self) -> None:
        self.problems += [f"still running: {thread.name}" for thread in set(threading.enumerate()) - self.before]

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # gRPC's connectivity poller wakes every 0.2 s: give a leftover one the time to fail
        self.look()
        threading.excepthook = self._previous_hook


def test_waiting_for_a_server_leaves_no_thread_behind(stub_server):
    address, _ = stub_server
    with ThreadWatch() as watch:
        for _ in range(30):
            with OcrClient(address) as client:
                client.wait_until_ready(10)
                watch.look()  # a connectivity watcher's poller outlives its future, until close() or 0.2 s
    assert watch.problems == []


def test_waiting_for_no_server_times_out_without_a_thread(tmp_path):
    with ThreadWatch() as watch, OcrClient(f"unix:{tmp_path / 'nobody.sock'}") as client:
        started = time.monotonic()
        with pytest.raises(OcrUnavailable, match="reported SERVING within 1 s"):
            client.wait_until_ready(1.0)
        assert time.monotonic() - started < 1.5
    assert watch.problems == []


def test_a_server_out_of_rotation_is_not_ready(stub_server):
    address, server = stub_server
    server.send_signal(signal.SIGUSR1)  # NOT_SERVING, still answering
    with OcrClient(address) as client:
        time.sleep(0.3)
        with pytest.raises(OcrUnavailable):
            client.wait_until_ready(1.0)
        server.send_signal(signal.SIGUSR2)  # back in rotation
        client.wait_until_ready(10)


# -- the real commands, RUNS times each ------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.sandbox
@pytest.mark.onnx
@pytest.mark.slow
def test_demo_exits_cleanly_every_time(tmp_path):
    # The race is at shutdown, whatever the page: a one-line scan keeps 20 runs short (test_up.py runs the
    # README's own command on samples/two-column-scan.jpg).
    scan = _one_line_scan(tmp_path / "line.png")
    durations: list[float] = []
    failures: list[str] = []
    for run in range(RUNS):
        data_dir = tmp_path / f"run{run}"
        started = time.monotonic()
        demo = subprocess.Popen(
            [sys.executable, "-m", "textlayer", "demo", str(scan)],
            env=_env(data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        tree = ProcessTree(demo.pid, data_dir)
        stdout, stderr = demo.communicate(timeout=600)
        durations.append(time.monotonic() - started)
        problems = [f"exit status {demo.returncode}"] if demo.returncode != 0 else []
        if "SUCCEEDED ->" not in stdout:
            problems.append("no SUCCEEDED line")
        problems += _noise(stdout + stderr) + _log_noise(data_dir)
        problems += [f"left running: {process}" for process in tree.survivors()]
        if problems:
            failures.append(f"run {run + 1}: " + "; ".join(problems) + f"\n{stderr[-2000:]}")
        else:
            shutil.rmtree(data_dir)
    print(_summary("textlayer demo", durations, failures))
    assert not failures, _summary("textlayer demo", durations, failures)


def _one_line_scan(path: Path) -> Path:
    import cv2
    import numpy as np

    page = np.full((160, 900, 3), 255, np.uint8)
    cv2.putText(page, "Restoration plan 2014", (30, 100), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (20, 20, 20), 3, cv2.LINE_AA)
    cv2.imwrite(str(path), page)
    return path


@pytest.mark.sandbox
@pytest.mark.onnx
@pytest.mark.slow
def test_ocr_through_a_real_server_exits_cleanly_every_time(tmp_path):
    scan = _one_line_scan(tmp_path / "line.png")  # the race is at shutdown: a small page keeps 20 runs short
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    address = f"unix:{server_dir / 'ocr.sock'}"
    server_log = server_dir / "ocr-server.log"
    with server_log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "textlayer", "ocr-server", "--listen", address, "--workers", "1"],
            env=_env(server_dir),
            stdout=sink,
            stderr=sink,
        )
    server_tree = ProcessTree(server.pid, server_dir)
    durations: list[float] = []
    failures: list[str] = []
    try:
        with OcrClient(address) as client:
            client.wait_until_ready(300)
        for run in range(RUNS):
            data_dir = tmp_path / f"run{run}"
            started = time.monotonic()
            ocr = subprocess.Popen(
                [sys.executable, "-m", "textlayer", "ocr", "--server", address, str(scan)],
                env=_env(data_dir),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            tree = ProcessTree(ocr.pid, data_dir)
            stdout, stderr = ocr.communicate(timeout=300)
            durations.append(time.monotonic() - started)
            problems = [f"exit status {ocr.returncode}"] if ocr.returncode != 0 else []
            if "restoration" not in stdout.lower():
                problems.append(f"not the scan's text: {stdout[:200]!r}")
            problems += _noise(stdout + stderr)
            problems += [f"left running: {process}" for process in tree.survivors()]
            if problems:
                failures.append(f"run {run + 1}: " + "; ".join(problems) + f"\n{stderr[-2000:]}")
    finally:
        server.send_signal(signal.SIGTERM)
        server_status = server.wait(timeout=120)
    print(_summary("textlayer ocr --server", durations, failures))
    assert not failures, _summary("textlayer ocr --server", durations, failures)
    assert server_status == 0, server_log.read_text()[-3000:]
    assert _noise(server_log.read_text()) == [], server_log.read_text()[-3000:]
    assert server_tree.survivors() == []


UP_CYCLES = 2
"""``up`` cycles per way of stopping it, on one data dir; the last one is stopped during its start-up."""


def _stop(up: subprocess.Popen[bytes], how: str) -> None:
    if how == "Ctrl-C":  # what a terminal does: SIGINT to the whole foreground process group
        os.killpg(up.pid, signal.SIGINT)
    else:
        up.send_signal(getattr(signal, how))


def _wait_for_line(log: Path, line: str, up: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while line not in log.read_text():
        assert up.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


@pytest.mark.redis
@pytest.mark.sandbox
@pytest.mark.onnx
@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "Ctrl-C", "SIGHUP"])
def test_up_stops_cleanly_and_flushes_redis(tmp_path, how):
    """Start ``up`` UP_CYCLES times on one data dir and stop it with ``how`` each time.

    The first cycle serves a job (``submit --wait``); every cycle finds the key the previous one
    wrote to Redis just before its signal (the stop flushed the AOF, the next start replayed it),
    writes its own, and is signalled as soon as it is up; the last one is signalled during start-up.
    """
    import redis

    from textlayer.service.redis import EmbeddedRedis, RedisConfig

    data_dir = tmp_path / "data"
    env = _env(data_dir)
    socket_path = data_dir / "redis" / "redis.sock"
    failures: list[str] = []
    durations: list[float] = []
    for cycle in range(UP_CYCLES):
        log = tmp_path / f"up{cycle}.log"
        started = time.monotonic()
        with log.open("w") as sink:
            up = subprocess.Popen(
                [sys.executable, "-m", "textlayer", "up"], env=env, stdout=sink, stderr=sink, start_new_session=True
            )
        tree = ProcessTree(up.pid, data_dir)
        problems: list[str] = []
        try:
            if cycle == UP_CYCLES - 1:
                _wait_for_line(log, "worker started", up)  # the OCR server is still warming its workers
            else:
                _wait_for_line(log, "textlayer is up;", up)
                with redis.Redis(unix_socket_path=str(socket_path)) as client:
                    if cycle:
                        found = client.get("clean-exit-test")
                        if found != str(cycle - 1).encode():
                            problems.append(f"Redis lost the last write of the previous cycle: found {found!r}")
                    else:
                        submitted = subprocess.run(
                            [sys.executable, "-m", "textlayer", "submit", str(SCAN), "--wait"],
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=300,
                        )
                        if submitted.returncode != 0 or "SUCCEEDED" not in submitted.stdout:
                            problems.append(f"submit --wait: {submitted.returncode} {submitted.stdout[-500:]}")
                        problems += [f"submit --wait: {line}" for line in _noise(submitted.stdout + submitted.stderr)]
                    client.set("clean-exit-test", str(cycle))
        finally:
            _stop(up, how)
            status = up.wait(timeout=180)
        durations.append(time.monotonic() - started)
        if status != 0:
            problems.append(f"exit status {status}")
        problems += _noise(log.read_text()) + _log_noise(data_dir)
        problems += [f"left running: {process}" for process in tree.survivors()]
        if problems:
            failures.append(f"cycle {cycle + 1}: " + "; ".join(problems) + f"\n{log.read_text()[-2000:]}")
    summary = _summary(f"textlayer up stopped by {how}", durations, failures)
    print(summary)
    assert not failures, summary

    redis_log = (data_dir / "redis" / "redis.log").read_text()
    assert redis_log.count("Calling fsync() on the AOF file") == UP_CYCLES, redis_log[-3000:]
    assert (data_dir / "redis" / "appendonly.aof").stat().st_size > 0
    # A fresh server on the data dir (it refuses to start while another one runs there) replays the AOF.
    with (
        EmbeddedRedis(RedisConfig(data_dir=data_dir / "redis")) as server,
        redis.Redis(unix_socket_path=str(server.socket_path)) as client,
    ):
        assert client.get("clean-exit-test") == str(UP_CYCLES - 2).encode()
        assert client.exists("_kombu.binding.textlayer")  # the broker's own data too
