"""Jailed OCR workers for real: namespaces, seccomp, the escape suite and every failure row of SANDBOX.md §5."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.pages import make_page, page_to_jpeg, page_to_png, rotate_page
from textlayer.config import Settings
from textlayer.errors import InputDocumentError, SandboxCrashed, SandboxError, SandboxTimeout
from textlayer.sandbox import DeathCause, SandboxPolicy, SandboxPool, probes
from textlayer.sandbox.launcher import JailedWorker, default_read_only_paths
from textlayer.sandbox.protocol import EXIT_PROTOCOL, PREFIX
from textlayer.sandbox.verify import verify_worker
from textlayer.worker.jailed import JailedReader, ocr_policy, parse_page_reply

pytestmark = [pytest.mark.sandbox, pytest.mark.onnx]


def _namespaces_available() -> bool:
    script = "import ctypes,sys; sys.exit(ctypes.CDLL(None).unshare(0x10000000) != 0)"
    return subprocess.run([sys.executable, "-c", script], timeout=30).returncode == 0


NAMESPACES = _namespaces_available()
LAYERS = "require" if NAMESPACES else "prefer"
if not NAMESPACES:
    print("user namespaces are unavailable here: jails run with layers=prefer (seccomp, Landlock, rlimits)")


def _policy(**overrides) -> SandboxPolicy:
    """The OCR role's jail with test hooks."""
    base = ocr_policy(Settings(sandbox_layers=LAYERS), test_hooks=True)
    return dataclasses.replace(base, **{"restart_backoff_s": 0.1, **overrides})


@pytest.fixture(scope="module")
def ocr_pool():
    with SandboxPool(_policy()) as pool:
        yield pool


@pytest.fixture(scope="module")
def fault_pool():
    """Jailed workers of the null role (no models): the faults need no OCR, and a replacement starts at once."""
    policy = SandboxPolicy(
        layers=LAYERS, test_hooks=True, restart_backoff_s=0.1, deadline_s=3, max_request_mib=4, address_space_mib=4096
    )
    with SandboxPool(policy) as pool:
        yield pool


def _statuses(pid: int) -> list[dict[str, str]]:
    result = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
        result.append({k: v.strip() for k, v in fields.items()})
    return result


def _ping(pool: SandboxPool) -> None:
    # The wait for a replacement worker (models, warm-up) may outlast a fault pool's 3 s page deadline
    # on a loaded machine; each request keeps the policy's deadline.
    header, _ = pool.call({"op": "ping"}, deadline_s=60)
    assert header["ok"] is True


# -- the jail as the kernel sees it ---------------------------------------------------------


def test_every_thread_of_the_worker_is_filtered_and_unprivileged(ocr_pool):
    (worker,) = ocr_pool.live_workers
    statuses = _statuses(worker.pid)
    assert statuses
    for status in statuses:
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
        assert int(status["CapEff"], 16) == 0 and int(status["Seccomp_filters"]) >= 1
        assert "0" not in status["Uid"].split()  # never root on the host
    assert (
        verify_worker(
            worker.pid,
            worker.process.pid,
            worker.layers,
            require_namespaces=NAMESPACES,
            outside_uid=(ocr_pool.policy.service_uid if os.geteuid() == 0 else os.geteuid()),
        )
        == []
    )
    assert ocr_pool.layers["seccomp"] and ocr_pool.layers["rlimits"]["fsize"] == 0


@pytest.mark.skipif(not NAMESPACES, reason="this host does not allow user namespaces")
def test_worker_lives_in_its_own_namespaces_and_is_not_pid_1(ocr_pool):
    (worker,) = ocr_pool.live_workers
    for name in ("user", "pid", "net", "mnt", "ipc", "uts"):
        assert Path(f"/proc/{worker.pid}/ns/{name}").readlink() != Path(f"/proc/self/ns/{name}").readlink(), name
    nspid = _statuses(worker.pid)[0]["NSpid"].split()
    assert nspid[-1] == "2"  # the reaper is PID 1, so the worker's own signals work (SANDBOX.md pitfall 6)
    assert ocr_pool.layers["root"]["pivot_root"] is True


def test_jailed_ocr_equals_in_process_ocr(ocr_pool):
    from textlayer.media.images import decode_image
    from textlayer.worker.predictor import OcrPredictor

    page = make_page("two_column", dpi=150)
    png = page_to_png(page)
    jailed = JailedReader(ocr_pool).recognize(png)
    local = OcrPredictor.load(threads=1).recognize(decode_image(png)[0].image, dpi=page.dpi)
    assert jailed.text == local.text and len(jailed.text) > 200
    assert [w.quad for line in jailed.lines for w in line.words] == [w.quad for line in local.lines for w in line.words]


def test_bad_images_are_refused_inside_the_jail_without_a_death(ocr_pool):
    deaths = sum(ocr_pool.deaths.values())
    png = page_to_png(make_page("receipt", dpi=100))
    for data, reason in [
        (png[: len(png) // 2], "corrupt_image"),
        (b"\x89PNG\r\n\x1a\n" + os.urandom(500), "corrupt_image"),
        (b"GIF89a" + bytes(20), "unsupported_type"),
        (b"", "empty_file"),
    ]:
        with pytest.raises(InputDocumentError) as caught:
            JailedReader(ocr_pool).recognize(data)
        assert caught.value.reason == reason
    assert sum(ocr_pool.deaths.values()) == deaths


# -- the escape suite -------------------------------------------------------------------------


def _open_scratch() -> Path:
    # Outside pytest's 0700 tree and writable by anyone: only the jail may stop a write.
    directory = Path(tempfile.mkdtemp(prefix="textlayer-scratch-"))
    directory.chmod(0o777)
    return directory


@pytest.fixture(scope="module")
def scratch():
    directory = _open_scratch()
    yield directory
    shutil.rmtree(directory)


@pytest.mark.parametrize("name", sorted(probes.PROBES))
def test_escape_probe_is_blocked_and_ocr_keeps_working(ocr_pool, scratch, name):
    events = len(ocr_pool.security_events)
    request = {"op": "probe", "name": name, "scratch": str(scratch), "pid": probes.unused_pid()}
    try:
        header, _ = ocr_pool.call(request, retry=False)
    except SandboxCrashed as exc:
        assert exc.reason == DeathCause.POLICY_VIOLATION.value
        assert exc.returncode == -signal.SIGSYS
        assert len(ocr_pool.security_events) == events + 1
    else:
        assert header["outcome"].startswith("refused"), header
    _ping(ocr_pool)
    assert list(scratch.iterdir()) == []


def test_ocr_still_reads_after_the_escape_suite(ocr_pool):
    page = rotate_page(make_page("receipt", dpi=150), 180)
    result = JailedReader(ocr_pool).recognize(page_to_jpeg(page))
    assert result.rotation == 180 and "TOTAL" in result.text.upper()


def test_positive_control_probes_escape_without_the_jail():
    # Same probes, no jail, as an unprivileged user: proves the escape tests can fail (SANDBOX.md R12).
    tmp_path = _open_scratch()
    command = [sys.executable, "-m", "textlayer.sandbox.probes", "--control", str(tmp_path), "65534", "65534"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    outcomes = json.loads(result.stdout)
    kernel_gated = {"bpf", "mount", "io_uring"}  # the kernel itself may refuse these to unprivileged users
    escaped = {name for name, outcome in outcomes.items() if outcome.startswith("escaped")}
    assert set(probes.PROBES) - kernel_gated <= escaped, outcomes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe-dir", "probe-written"]
    shutil.rmtree(tmp_path)


# -- every failure row, and recovery ----------------------------------------------------------


@pytest.mark.parametrize("spin", [False, True], ids=["sleep", "busy-loop"])
def test_hang_is_killed_at_the_deadline_and_the_pool_recovers(fault_pool, spin):
    started = time.monotonic()
    with pytest.raises(SandboxTimeout):
        fault_pool.call({"op": "hang", "seconds": 60, "spin": spin}, retry=False)
    assert 3.0 <= time.monotonic() - started < 10.0
    _ping(fault_pool)


@pytest.mark.parametrize(
    ("crash", "returncode"),
    [
        ({"how": "abort"}, -signal.SIGABRT),
        ({"how": "segv"}, -signal.SIGSEGV),
        ({"how": "exit", "code": 3}, 3),
    ],
)
def test_crash_is_classified_and_the_pool_recovers(fault_pool, crash, returncode):
    with pytest.raises(SandboxCrashed) as caught:
        fault_pool.call({"op": "crash", **crash}, retry=False)
    assert caught.value.reason == "crash" and caught.value.returncode == returncode
    _ping(fault_pool)


def test_memory_over_the_limit_is_an_error_reply_not_a_death(fault_pool):
    deaths = {k: v for k, v in fault_pool.deaths.items() if k != "retired"}
    header, _ = fault_pool.call({"op": "allocate", "mib": 8000})
    assert header["ok"] is False and header["error"] == "memory"
    header, _ = fault_pool.call({"op": "allocate", "mib": 64}, deadline_s=60)  # waits for the recycled worker
    assert header["ok"] is True
    assert {k: v for k, v in fault_pool.deaths.items() if k != "retired"} == deaths


@pytest.mark.parametrize("kind", ["oversized", "garbage"])
def test_a_bad_reply_from_the_worker_kills_it(fault_pool, kind):
    with pytest.raises(SandboxCrashed) as caught:
        fault_pool.call({"op": "reply", "kind": kind}, retry=False)
    assert caught.value.reason == "protocol"
    _ping(fault_pool)


def test_a_well_framed_but_malformed_result_kills_the_worker(fault_pool):
    _ping(fault_pool)
    before, workers = fault_pool.deaths["protocol"], set(fault_pool.live_workers)
    with pytest.raises(SandboxCrashed) as caught:
        fault_pool.call_parsed({"op": "reply", "kind": "bad_page"}, b"", parse_page_reply, retry=False)
    assert caught.value.reason == "protocol"
    assert fault_pool.deaths["protocol"] == before + 1  # never handed to the next request
    _ping(fault_pool)
    assert len(workers - set(fault_pool.live_workers)) == 1


def test_an_oversized_page_is_refused_before_sending(fault_pool):
    with pytest.raises(InputDocumentError) as caught:
        fault_pool.call({"op": "ping"}, b"\0" * (5 * 1024 * 1024))
    assert caught.value.reason == "page_too_large"


def test_an_oversized_frame_makes_the_worker_exit_65():
    worker = JailedWorker(1, _policy(), default_read_only_paths(_policy()))
    worker.launch()
    worker.wait_ready()
    worker._sock.sendall(PREFIX.pack(2**31, 2) + b"{}")
    assert worker.process.wait(timeout=30) == EXIT_PROTOCOL
    worker.retire()


def test_poison_page_is_refused_after_two_deaths(fault_pool):
    crashes = fault_pool.deaths["crash"]
    with pytest.raises(InputDocumentError) as caught:
        fault_pool.call({"op": "crash", "how": "abort", "page": "poison"})
    assert caught.value.reason == "poison_page"
    assert fault_pool.deaths["crash"] == crashes + 2
    _ping(fault_pool)


def test_cpu_lifetime_limit_ends_in_sigxcpu():
    with SandboxPool(_policy(cpu_lifetime_s=6, deadline_s=60)) as pool, pytest.raises(SandboxCrashed) as caught:
        pool.call({"op": "hang", "seconds": 60, "spin": True}, retry=False)
    assert caught.value.reason == "cpu_limit"


def test_start_up_failure_is_a_configuration_error_without_a_restart_loop():
    pool = SandboxPool(_policy(address_space_mib=300))
    with pytest.raises(SandboxError) as caught:
        pool.start()
    assert caught.value.reason == "sandbox_unavailable" and "start-up failed" in caught.value.message
    assert pool.deaths == {"config": 1}


def test_verification_refuses_a_worker_without_its_filter():
    pool = SandboxPool(_policy(), inject_faults=("no_seccomp",))
    with pytest.raises(SandboxError) as caught:
        pool.start()
    assert "refused by verification" in caught.value.message and "Seccomp" in caught.value.message


def test_workers_are_recycled_after_n_pages():
    with SandboxPool(_policy(recycle_after_pages=2)) as pool:
        first = pool.live_workers[0].worker_id
        _ping(pool)
        _ping(pool)
        _ping(pool)  # served by the replacement
        assert pool.deaths["retired"] == 1
        assert pool.live_workers[0].worker_id != first


def test_workers_die_with_the_supervisor(tmp_path):
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from textlayer.sandbox import SandboxPolicy, SandboxPool
        pool = SandboxPool(SandboxPolicy(layers={LAYERS!r})).start()
        worker = pool.live_workers[0]
        print(json.dumps([worker.process.pid, worker.pid]), flush=True)
        time.sleep(600)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as supervisor:
        try:
            pids = json.loads(supervisor.stdout.readline())
            assert all(Path(f"/proc/{pid}").exists() for pid in pids)
        finally:
            supervisor.send_signal(signal.SIGKILL)
            supervisor.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.02)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- soak ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_soak_mixed_real_and_corrupt_pages_under_the_kill_filter(ocr_pool):
    """TEXTLAYER_SOAK_S=300 for the full five minutes; CI runs a short one."""
    duration_s = float(os.environ.get("TEXTLAYER_SOAK_S", "20"))
    pages = [make_page(kind, dpi=120) for kind in ("receipt", "fonts", "table")]
    good = [page_to_png(pages[0]), page_to_jpeg(rotate_page(pages[1], 90)), page_to_png(rotate_page(pages[2], 180))]
    rng = np.random.default_rng(7)
    bad = [
        good[0][:5000],
        b"\xff\xd8\xff\xe0" + rng.bytes(3000),
        b"II*\0" + rng.bytes(400),
        good[1][: len(good[1]) // 3],
    ]
    deaths = sum(v for k, v in ocr_pool.deaths.items() if k != "retired")
    served = refused = 0
    ends = time.monotonic() + duration_s
    while time.monotonic() < ends:
        for data in (good[served % 3], bad[refused % 4]):
            try:
                result = JailedReader(ocr_pool).recognize(data)
                assert len(result.text) > 20
                served += 1
            except InputDocumentError:
                refused += 1
    print(f"soak: {served} pages read, {refused} corrupt images refused in {duration_s:.0f} s")
    assert served >= 3 and refused >= 3
    assert sum(v for k, v in ocr_pool.deaths.items() if k != "retired") == deaths


# -- hosts without namespaces (containers) ----------------------------------------------------


def test_prefer_policy_runs_without_namespaces_and_still_blocks_escapes():
    with SandboxPool(_policy(layers="prefer"), inject_faults=("no_namespaces",)) as pool:
        assert str(pool.layers["namespaces"]).startswith("unavailable")
        (worker,) = pool.live_workers
        assert all(
            s["Seccomp"] == "2" and s["NoNewPrivs"] == "1" and int(s["CapEff"], 16) == 0 for s in _statuses(worker.pid)
        )
        for name in ("open_passwd", "socket_inet", "execve_shell"):
            request = {"op": "probe", "name": name, "scratch": "/nonexistent", "pid": probes.unused_pid()}
            try:
                header, _ = pool.call(request, retry=False)
                assert header["outcome"].startswith("refused"), header
            except SandboxCrashed as exc:
                assert exc.reason == "policy_violation"
            _ping(pool)


def test_require_policy_refuses_to_run_without_namespaces():
    pool = SandboxPool(_policy(layers="require"), inject_faults=("no_namespaces",))
    with pytest.raises(SandboxError) as caught:
        pool.start()
    assert "namespaces are required" in caught.value.message


def test_an_input_that_broke_the_filter_is_quarantined_for_our_user_alone(tmp_path, scratch):
    """Release gate item 11: the input behind a seccomp kill is kept (0700 folder), named by its sha256."""
    quarantine = tmp_path / "quarantine"
    policy = SandboxPolicy(layers=LAYERS, test_hooks=True, restart_backoff_s=0.1)
    with SandboxPool(policy, quarantine_dir=quarantine) as pool:
        request = {"op": "probe", "name": "memfd", "scratch": str(scratch), "pid": probes.unused_pid()}
        with pytest.raises(SandboxCrashed) as caught:
            pool.call(request, b"the hostile bytes", retry=False)
    assert caught.value.reason == DeathCause.POLICY_VIOLATION.value
    (kept,) = quarantine.iterdir()
    assert kept.read_bytes() == b"the hostile bytes" and kept.name == f"{pool.security_events[0]['sha256']}.bin"
    assert quarantine.stat().st_mode & 0o777 == 0o700 and kept.stat().st_mode & 0o777 == 0o600


def test_a_worker_that_floods_stderr_does_not_flood_the_logs(caplog):
    """Release gate item 11: what a worker writes to stderr reaches the logs for its first lines only."""
    from textlayer.sandbox.launcher import STDERR_LOG_LINES

    policy = SandboxPolicy(layers=LAYERS, test_hooks=True)
    with caplog.at_level("INFO", logger="textlayer.sandbox.launcher"), SandboxPool(policy) as pool:
        pool.call({"op": "say", "text": "flood", "lines": 20_000})
        _ping(pool)
        time.sleep(1.0)  # the stderr reader is a thread of its own
        (worker,) = pool.live_workers
    flood = [r for r in caplog.records if r.getMessage().endswith(": flood")]
    assert len(flood) <= STDERR_LOG_LINES
    assert any("not logged" in r.getMessage() for r in caplog.records)
    assert "flood" in worker.last_words()


def test_the_service_and_the_cli_keep_quarantined_inputs_in_the_data_directory(tmp_path):
    from textlayer.config import Settings
    from textlayer.queue.runtime import build_pipeline

    settings = Settings(data_dir=tmp_path / "data")
    converter = build_pipeline(settings, reader=object()).converter  # type: ignore[arg-type]
    assert converter.quarantine_dir == settings.quarantine_dir == tmp_path / "data" / "quarantine"
