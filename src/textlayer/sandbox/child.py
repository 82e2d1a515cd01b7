"""``python -m textlayer.sandbox.child CONFIG``: build the jail, start the role, lock down, serve.

Runs in the worker process the supervisor starts. The order is the whole point
(design/SANDBOX.md §1): namespaces while single-threaded (only the standard library is imported
until then), a private read-only root, rlimits, capabilities dropped and no_new_privs, then
the trusted start-up of the role the policy names (imports, models, warm-up of every path), then lockdown (close
descriptors, Landlock, seccomp on all threads) and only then READY and untrusted bytes.

Process tree with namespaces: launcher (host, mirrors the reaper's fate) -> reaper (PID 1 of
the new pid namespace) -> worker (PID 2). A namespace's PID 1 ignores signals it sends itself,
so the worker must not be PID 1 (SIGABRT would turn into SIGSEGV).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import mmap
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn

from textlayer.sandbox import landlock, namespaces, privileges, seccomp, syscalls
from textlayer.sandbox.policy import SandboxPolicy
from textlayer.sandbox.protocol import (
    EXIT_CONFIG,
    EXIT_PROTOCOL,
    MAX_HEADER_BYTES,
    PREFIX,
    ProtocolViolation,
    encode,
    parse_header,
    parse_prefix,
    read_exactly,
    write_all,
)

if TYPE_CHECKING:  # imported by the role, after the namespaces exist
    from textlayer.sandbox.handlers import Handlers

MIB = 1024 * 1024


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"[jail {os.getpid()}] {message}\n".encode())


def _fail_config(message: str) -> NoReturn:
    _say(f"configuration error: {message}")
    os._exit(EXIT_CONFIG)


def _mirror_exit(code: int, *, is_namespace_init: bool) -> NoReturn:
    """End this process the way its child ended, so the supervisor sees the worker's own death."""
    sig = -code if code < 0 else (code - 128 if code > 128 else 0)
    if sig and not is_namespace_init:
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    # A namespace's PID 1 cannot die of a signal it sends itself: encode it as 128+signal.
    os._exit(128 + sig if sig else code)


def _fork_and_mirror(ipc_fd: int) -> None:
    """Fork; the parent closes its copy of the IPC socket, waits for the child and mirrors it."""
    child = os.fork()
    if child == 0:
        return
    os.close(ipc_fd)  # the supervisor must see EOF the moment the worker dies
    is_init = os.getpid() == 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(EXIT_CONFIG)
        if pid == child:
            _mirror_exit(os.waitstatus_to_exitcode(status), is_namespace_init=is_init)


def _enter_namespaces(
    policy: SandboxPolicy, read_only_paths: list[str], ipc_fd: int, layers: dict[str, Any], *, simulate_denied: bool
) -> bool:
    """Build every namespace the host allows; returns True when root was dropped to the service uid."""
    euid, egid = os.geteuid(), os.getegid()
    flags = sum(namespaces.NAMESPACE_FLAGS.values())
    try:
        if simulate_denied:  # what a container's seccomp profile answers (tests of the prefer policy)
            raise OSError(1, "Operation not permitted (simulated)")
        if euid == 0:
            # Real root builds the mounts first (it can read an interpreter under /root), then
            # drops to the service uid and enters the user namespace as that uid.
            namespaces.unshare(flags & ~namespaces.CLONE_NEWUSER)
        else:
            namespaces.unshare(flags)
            namespaces.write_id_maps(euid, egid)
    except OSError as exc:
        layers["namespaces"] = f"unavailable: {exc.strerror or exc}"
        if policy.layers == "require":
            _fail_config(f"namespaces are required by the policy but unavailable ({exc})")
        return False
    layers["namespaces"] = sorted(name for name in namespaces.NAMESPACE_FLAGS if euid != 0 or name != "user")
    _fork_and_mirror(ipc_fd)
    # Reaper, PID 1 of the new pid namespace.
    privileges.die_with_parent()
    try:
        namespaces.set_hostname()
    except OSError as exc:
        layers["hostname"] = f"unavailable: {exc}"
    try:
        layers["root"] = {"pivot_root": True, "read_only_binds": namespaces.build_root(read_only_paths)}
    except OSError as exc:
        layers["root"] = f"unavailable: {exc}"
        if policy.layers == "require":
            _fail_config(f"the private root could not be built ({exc})")
    dropped = False
    if euid == 0:
        try:
            namespaces.drop_to(policy.service_uid, policy.service_gid)
        except OSError as exc:
            _fail_config(f"cannot drop root to uid {policy.service_uid} ({exc})")
        dropped = True
        privileges.die_with_parent()  # a uid change clears the parent-death signal
        privileges.set_dumpable(True)  # else /proc/self/uid_map stays root's
        try:
            namespaces.unshare(namespaces.CLONE_NEWUSER)
            namespaces.write_id_maps(policy.service_uid, policy.service_gid)
            layers["namespaces"] = sorted(namespaces.NAMESPACE_FLAGS)
        except OSError as exc:
            layers["user_namespace"] = f"unavailable: {exc}"
            if policy.layers == "require":
                _fail_config(f"the user namespace could not be built ({exc})")
    _fork_and_mirror(ipc_fd)
    privileges.die_with_parent()
    return dropped


def _serve(fd: int, policy: SandboxPolicy, handlers: Handlers, buffer: mmap.mmap) -> NoReturn:
    prefix = bytearray(PREFIX.size)
    header_buffer = bytearray(MAX_HEADER_BYTES)
    payload_view = memoryview(buffer)
    header_view = memoryview(header_buffer)
    max_request = policy.max_request_mib * MIB
    max_reply = policy.max_reply_mib * MIB
    while True:
        try:
            read_exactly(fd, memoryview(prefix))
            header_len, payload_len = parse_prefix(bytes(prefix), max_request)
            read_exactly(fd, header_view[:header_len])
            header = parse_header(bytes(header_view[:header_len]))
            read_exactly(fd, payload_view[:payload_len])
        except EOFError:
            os._exit(0)  # the supervisor closed the connection: retire quietly
        except ProtocolViolation as exc:
            _say(f"protocol violation: {exc}")
            os._exit(EXIT_PROTOCOL)
        reply_header, reply_payload = handlers.handle(header, bytes(payload_view[:payload_len]))
        if len(reply_payload) > max_reply:
            reply_header = {"ok": False, "error": "internal", "message": "the reply is larger than the reply cap"}
            reply_payload = b""
        reply_header["id"] = header.get("id")
        write_all(fd, encode(reply_header, reply_payload))


def _start_handlers(policy: SandboxPolicy, fd: int, timings: dict[str, float], mark: float) -> Handlers:
    """Trusted start-up: import the role named by the policy and let it load and warm up."""
    write = lambda data: write_all(fd, data)  # noqa: E731 (fault injection writes raw frames)
    role = importlib.import_module(policy.role)
    timings["imports"] = time.monotonic() - mark
    handlers: Handlers = role.start(policy, write, timings)
    return handlers


def main(argv: list[str]) -> NoReturn:
    """Become a jailed worker; never returns."""
    started = time.monotonic()
    config = json.loads(argv[1])
    policy = SandboxPolicy.from_json(json.dumps(config["policy"]))
    fd = int(config["fd"])
    privileges.die_with_parent()
    # Fault injection for tests and the plain-subprocess benchmark; honoured only with test hooks.
    faults = set(config.get("faults", ())) if policy.test_hooks else set()
    plain = "no_jail" in faults
    layers: dict[str, Any] = {}
    timings: dict[str, float] = {}
    if namespaces.thread_count() != 1:
        _fail_config("a thread exists before the jail is built (something imported too early)")
    arch = syscalls.machine()
    dropped = (
        False
        if plain
        else _enter_namespaces(
            policy, list(config["read_only_paths"]), fd, layers, simulate_denied="no_namespaces" in faults
        )
    )
    timings["namespaces"] = time.monotonic() - started

    # Worker (PID 2 when namespaces exist): limits and privileges before any untrusted library loads.
    mark = time.monotonic()
    last_cap = privileges.last_capability()
    layers["rlimits"] = privileges.set_limits(
        address_space_mib=policy.address_space_mib, open_files=policy.open_files, cpu_lifetime_s=policy.cpu_lifetime_s
    )
    if not plain and (dropped or os.geteuid() != 0):
        privileges.drop_capabilities(last_cap)
    if not plain:
        privileges.set_no_new_privs()
    landlock_abi = landlock.abi_version()

    try:
        handlers = _start_handlers(policy, fd, timings, mark)
    except Exception as exc:  # any start-up failure is a configuration problem, not a crash to retry
        _fail_config(f"start-up failed: {type(exc).__name__}: {exc}")
    if os.geteuid() == 0 and not dropped and not plain:
        # No namespaces (prefer mode, run as root): the imports needed root's files; drop now.
        try:
            namespaces.drop_to(policy.service_uid, policy.service_gid)
        except OSError as exc:
            _fail_config(f"cannot drop root to uid {policy.service_uid} ({exc})")
        privileges.drop_capabilities(last_cap)

    mark = time.monotonic()
    buffer = mmap.mmap(-1, max(policy.max_request_mib * MIB, mmap.PAGESIZE))  # reserved now, zero pages on use
    privileges.close_other_fds((0, 1, 2, fd))
    layers["landlock_abi"] = landlock_abi
    if landlock_abi >= 1 and not plain:
        try:
            landlock.restrict_self(landlock_abi)
        except OSError as exc:
            layers["landlock_abi"] = f"unavailable: {exc}"
    if not faults & {"no_jail", "no_seccomp"}:
        try:
            seccomp.install(seccomp.build_filter(arch, os.getpid()), arch)
        except OSError as exc:
            _fail_config(f"the seccomp filter could not be installed ({exc}); seccomp is mandatory")
        layers["seccomp"] = "kill_process allowlist, all threads"
    layers["no_new_privs"] = not plain
    timings["lockdown"] = time.monotonic() - mark
    timings["total"] = time.monotonic() - started
    ready = {"ready": True, "pid": os.getpid(), "layers": layers, "timings_s": timings}
    write_all(fd, encode(ready))
    _serve(fd, policy, handlers, buffer)


if __name__ == "__main__":
    main(sys.argv)
