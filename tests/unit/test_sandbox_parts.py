"""The jail's pure parts and its kernel interfaces, each tried in a throwaway subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from textlayer.errors import InputDocumentError, SandboxCrashed, SandboxError
from textlayer.sandbox import seccomp, syscalls
from textlayer.sandbox.deaths import DeathCause, classify, describe
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.protocol import (
    MAX_HEADER_BYTES,
    PREFIX,
    ProtocolViolation,
    encode,
    parse_header,
    parse_prefix,
)
from textlayer.worker.jailed import parse_page_reply


def test_policy_defaults_are_safe_and_round_trip():
    policy = SandboxPolicy()
    assert policy.layers == "require" and policy.test_hooks is False
    assert policy.cpu_lifetime_s == 0 and policy.open_files <= 64
    assert SandboxPolicy.from_json(policy.to_json()) == policy
    assert policy.role == "textlayer.sandbox.handlers"  # the null role: ping and test hooks only
    roled = SandboxPolicy(role="a.b", role_options={"model": "tiny"}, read_only_paths=("/models",), packages=("numpy",))
    assert SandboxPolicy.from_json(roled.to_json()) == roled


@pytest.mark.parametrize(
    "bad",
    [{"layers": "maybe"}, {"deadline_s": 0}, {"workers": 0}, {"address_space_mib": -1}, {"role": "x; rm -rf"}],
)
def test_policy_refuses_impossible_values(bad):
    with pytest.raises(ValueError):
        SandboxPolicy(**bad)


def test_policy_refuses_unknown_fields():
    with pytest.raises(ValueError, match="unknown"):
        SandboxPolicy.from_json(json.dumps({"layers": "require", "network": True}))


def test_frames_round_trip():
    frame = encode({"op": "ocr", "dpi": 300}, b"\x89PNG payload")
    header_len, payload_len = parse_prefix(frame[: PREFIX.size], 1024)
    body = frame[PREFIX.size :]
    assert parse_header(body[:header_len]) == {"op": "ocr", "dpi": 300}
    assert body[header_len:] == b"\x89PNG payload" and payload_len == 12


@pytest.mark.parametrize(
    ("prefix", "cap"),
    [
        (PREFIX.pack(2**31, 2), 1024),  # payload over the cap
        (PREFIX.pack(10, 20), 1024),  # header longer than the frame
        (PREFIX.pack(MAX_HEADER_BYTES + 10, MAX_HEADER_BYTES + 1), 2**30),  # header over 64 KiB
        (b"\x01\x02", 1024),  # truncated prefix
    ],
)
def test_frame_prefix_violations(prefix, cap):
    with pytest.raises(ProtocolViolation):
        parse_prefix(prefix, cap)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"[1, 2]", b"{unterminated"])
def test_header_must_be_a_json_object(raw):
    with pytest.raises(ProtocolViolation):
        parse_header(raw)


def test_oversized_header_is_refused_when_encoding():
    with pytest.raises(ProtocolViolation):
        encode({"x": "y" * MAX_HEADER_BYTES})


@pytest.mark.parametrize(
    ("returncode", "ready", "killed_for", "cause"),
    [
        (-signal.SIGSYS, True, None, DeathCause.POLICY_VIOLATION),
        (-signal.SIGKILL, True, None, DeathCause.KILLED),
        (-signal.SIGKILL, True, DeathCause.DEADLINE, DeathCause.DEADLINE),
        (-signal.SIGXCPU, True, None, DeathCause.CPU_LIMIT),
        (-signal.SIGABRT, True, None, DeathCause.CRASH),
        (-signal.SIGSEGV, True, None, DeathCause.CRASH),
        (3, True, None, DeathCause.CRASH),
        (65, True, None, DeathCause.PROTOCOL),
        (78, True, None, DeathCause.CONFIG),
        (1, False, None, DeathCause.CONFIG),
        (0, True, None, DeathCause.RETIRED),
    ],
)
def test_every_death_is_classified(returncode, ready, killed_for, cause):
    assert classify(returncode, ready=ready, killed_for=killed_for) is cause


def test_describe_names_signals():
    assert describe(-signal.SIGSYS) == "SIGSYS" and describe(3) == "exit 3" and describe(None) == "still running"


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"width": "wide", "lines": 7}', b'{"width": 10, "height": 10, "rotation": 45, "lines": []}', b"[]"],
)
def test_malformed_page_replies_are_protocol_violations(payload):
    with pytest.raises(SandboxCrashed) as caught:
        parse_page_reply({"ok": True}, payload)
    assert caught.value.reason == "protocol"


def test_error_replies_keep_their_reason():
    with pytest.raises(InputDocumentError) as caught:
        parse_page_reply({"ok": False, "error": "input", "reason": "corrupt_image", "message": "bad"}, b"")
    assert caught.value.reason == "corrupt_image"
    with pytest.raises(SandboxError) as failed:
        parse_page_reply({"ok": False, "error": "internal", "message": "boom"}, b"")
    assert failed.value.reason == "ocr_failed"


def test_filter_is_linear_and_small():
    arch = syscalls.machine()
    program = seccomp.build_filter(arch, 2)
    assert len(program) < 4096
    assert all(i.jt <= 5 and i.jf <= 5 for i in program)  # 8-bit jumps never overflow
    assert program[-1].k == seccomp.RET_KILL_PROCESS


def _run_filtered(body: str) -> subprocess.CompletedProcess[str]:
    """Install the real filter in a fresh interpreter, then run ``body``."""
    script = textwrap.dedent(
        """
        import ctypes, os, sys
        from textlayer.sandbox import privileges, seccomp, syscalls
        arch = syscalls.machine()
        libc = ctypes.CDLL(None, use_errno=True)
        privileges.set_no_new_privs()
        seccomp.install(seccomp.build_filter(arch, os.getpid()), arch)
        """
    ) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_filter_allows_the_steady_state_and_kills_a_socket():
    result = _run_filtered(
        """
        os.write(1, b"alive %d\\n" % os.getpid())
        import socket
        socket.socket()
        os.write(1, b"not reached\\n")
        """
    )
    assert result.stdout.startswith("alive")
    assert "not reached" not in result.stdout
    assert result.returncode == -signal.SIGSYS


@pytest.mark.skipif(syscalls.machine() != "x86_64", reason="x32 exists only on x86_64")
def test_filter_kills_x32_syscalls_while_plain_getpid_passes():
    result = _run_filtered(
        """
        assert libc.syscall(39) == os.getpid()  # getpid
        os.write(1, b"getpid ok\\n")
        libc.syscall(0x40000000 | 39)  # getpid through the x32 ABI
        os.write(1, b"not reached\\n")
        """
    )
    assert result.stdout == "getpid ok\n"
    assert result.returncode == -signal.SIGSYS


def test_filter_answers_benign_probes_with_errnos():
    result = _run_filtered(
        """
        import errno, threading
        for action in (lambda: open("/etc/hostname"), lambda: os.stat("/"), lambda: os.getcwd()):
            try:
                action()
            except OSError as exc:
                assert exc.errno == errno.EACCES, exc
        t = threading.Thread(target=lambda: None)  # threads stay allowed (clone3 -> ENOSYS -> clone)
        t.start(); t.join()
        os.write(1, b"ok\\n")
        """
    )
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_close_other_fds_keeps_exactly_what_it_is_told():
    script = textwrap.dedent(
        """
        import os
        from textlayer.sandbox import privileges
        extra = [os.open("/dev/null", os.O_RDONLY) for _ in range(5)]
        privileges.close_other_fds((0, 1, 2, extra[2]))
        print(sorted(int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) != min(extra)))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    remaining = json.loads(result.stdout)
    # listdir's own descriptor reuses the lowest freed number, which the filter above leaves out.
    assert remaining == [0, 1, 2, 5], result.stderr


def test_the_jail_entry_point_loads_only_the_standard_library_and_starts_no_thread():
    # Namespaces need a single-threaded process (SANDBOX.md R2): import numpy and unshare fails.
    script = textwrap.dedent(
        """
        import json, os, sys
        before = set(sys.modules)  # the interpreter's own start-up (.pth hooks) is not ours
        import textlayer.sandbox.child
        new = set(sys.modules) - before
        foreign = sorted(m for m in new if m.split(".")[0] not in sys.stdlib_module_names)
        print(json.dumps({"foreign": foreign, "threads": len(os.listdir("/proc/self/task"))}))
        """
    )
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout)
    assert report["threads"] == 1
    assert all(name == "textlayer" or name.startswith("textlayer.") for name in report["foreign"]), report
    assert not any(name.startswith("textlayer.worker") for name in report["foreign"]), report


def test_the_jail_root_is_built_where_it_hides_no_path_to_bind():
    from textlayer.sandbox.namespaces import staging_dir

    assert staging_dir(["/usr", "/work/app/.venv"]) == "/tmp"
    # A checkout or venv under /tmp: a tmpfs mounted on /tmp would hide it from the binds.
    chosen = staging_dir(["/usr", "/tmp/clone/.venv", "/tmp/clone/src"])
    assert chosen != "/tmp" and not "/tmp/clone/.venv".startswith(chosen + "/")


@pytest.mark.parametrize("pid", [-1, 0, 1, "this process"])
def test_signal_and_ptrace_probes_refuse_a_broadcast_pid_1_or_a_live_process(pid):
    pid = os.getpid() if pid == "this process" else pid  # a stable test id (parallel runs collect the same tests)
    # R12: run unjailed, a probe must reach nobody. The guard raises before any syscall is made
    # (and these two probes send signal 0 even then); ptrace is checked through the same guard.
    from textlayer.sandbox import probes

    for probe in (probes.kill_other, probes.tgkill_other):
        with pytest.raises(ValueError, match="not an unused pid"):
            probe("/nonexistent", pid)
    with pytest.raises(ValueError, match="not an unused pid"):
        probes._target(pid)
    assert probes._target(probes.unused_pid()) > 1
