"""Escape probes: what hostile code inside a worker would try first.

Every probe is harmless when run *without* a jail (design/SANDBOX.md R12): files only in a scratch directory the caller
made, signal 0, nonexistent pids, invalid arguments that make the kernel answer without acting; never a broadcast
signal, PID 1 or ptrace of a live process. A probe either gets its syscall through to the kernel (``escaped``), is
refused with an errno by the jail (``refused``), or its process is killed by the seccomp filter.

``python -m textlayer.sandbox.probes --control SCRATCH`` runs them all unjailed as an unprivileged user (the positive
control that proves the escape tests can fail).
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from textlayer.sandbox import syscalls

REFUSALS = {errno.EACCES, errno.EPERM, errno.ENOSYS}
"""Errnos the jail answers with; any other result means the syscall reached the kernel."""

_NUMBERS = {
    # name: (x86_64, aarch64)
    "connect": (42, 203),
    "execve": (59, 221),
    "kill": (62, 129),
    "ptrace": (101, 117),
    "mount": (165, 40),
    "unshare": (272, 97),
    "memfd_create": (319, 279),
    "bpf": (321, 280),
    "io_uring_setup": (425, 425),
    "tgkill": (234, 131),
}

PTRACE_ATTACH = 16
BPF_PROG_LOAD = 5


def _target(pid: int) -> int:
    """The pid a signal or ptrace probe may aim at: above 1 and owned by no process (R12)."""
    try:
        taken = Path(f"/proc/{pid}").exists()
    except OSError:  # inside the jail stat is refused; its pid namespace hides every host pid anyway
        taken = False
    if pid <= 1 or taken:
        raise ValueError(f"probe target {pid} is not an unused pid")
    return pid


def _raw(name: str, *args: int | bytes | None) -> str:
    arch = syscalls.machine()
    nr = _NUMBERS[name][0 if arch == "x86_64" else 1]
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    if result == -1:
        code = ctypes.get_errno()
        return (
            _refused(code) if code in REFUSALS else f"escaped: reached the kernel ({errno.errorcode.get(code, code)})"
        )
    return f"escaped: returned {result}"


def _refused(code: int) -> str:
    return f"refused: {errno.errorcode.get(code, str(code))}"


def unused_pid() -> int:
    """A pid that no process has (signals and ptrace aimed at it can reach nobody)."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text()) if Path("/proc/sys/kernel/pid_max").exists() else 32768
    for candidate in range(pid_max - 1, 2, -1):
        if not Path(f"/proc/{candidate}").exists():
            return candidate
    raise RuntimeError("no free pid")


def _guarded(action: Callable[[], str]) -> str:
    try:
        return action()
    except OSError as exc:
        if exc.errno in REFUSALS:
            return _refused(exc.errno)
        return f"escaped: reached the kernel ({exc.errno and errno.errorcode.get(exc.errno, exc.errno)})"


def open_passwd(scratch: str, pid: int) -> str:
    """Read a host file."""
    return _guarded(lambda: f"escaped: read {len(Path('/etc/passwd').read_bytes())} bytes")


def write_file(scratch: str, pid: int) -> str:
    """Create a file (only ever in the caller's scratch directory)."""

    def act() -> str:
        Path(scratch, "probe-written").write_bytes(b"x")
        return "escaped: wrote a file"

    return _guarded(act)


def list_root(scratch: str, pid: int) -> str:
    """List the root directory."""
    return _guarded(lambda: f"escaped: listed {len(os.listdir('/'))} entries")


def stat_file(scratch: str, pid: int) -> str:
    """Learn about a host file without opening it."""
    return _guarded(lambda: f"escaped: stat size {os.stat('/etc/passwd').st_size}")


def make_directory(scratch: str, pid: int) -> str:
    """Create a directory in the scratch directory."""

    def act() -> str:
        os.mkdir(os.path.join(scratch, "probe-dir"))
        return "escaped: made a directory"

    return _guarded(act)


def socket_inet(scratch: str, pid: int) -> str:
    """Open a network socket."""

    def act() -> str:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        return "escaped: created an inet socket"

    return _guarded(act)


def socket_unix(scratch: str, pid: int) -> str:
    """Open a unix socket."""

    def act() -> str:
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
        return "escaped: created a unix socket"

    return _guarded(act)


def connect(scratch: str, pid: int) -> str:
    """Connect an invalid descriptor: the kernel answers EBADF if the call gets through."""
    return _raw("connect", -1, None, 0)


def execute_shell(scratch: str, pid: int) -> str:
    """execve('/bin/sh') with an invalid argv pointer: EFAULT from the kernel, never a shell."""
    return _raw("execve", b"/bin/sh", 1, 0)


def fork(scratch: str, pid: int) -> str:
    """Start a process (the child exits at once)."""

    def act() -> str:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return "escaped: forked"

    return _guarded(act)


def ptrace_attach(scratch: str, pid: int) -> str:
    """Attach to a pid nobody has (ESRCH from the kernel)."""
    return _raw("ptrace", PTRACE_ATTACH, _target(pid), 0, 0)


def kill_other(scratch: str, pid: int) -> str:
    """Signal 0 to a pid nobody has."""
    return _raw("kill", _target(pid), 0)


def tgkill_other(scratch: str, pid: int) -> str:
    """Signal 0 to a thread of a pid nobody has."""
    return _raw("tgkill", _target(pid), _target(pid), 0)


def mount(scratch: str, pid: int) -> str:
    """Mount a tmpfs on a path that does not exist (ENOENT from the kernel)."""
    return _raw("mount", b"none", b"/nonexistent-textlayer-probe", b"tmpfs", 0, None)


def unshare(scratch: str, pid: int) -> str:
    """Unshare nothing: a no-op if the call gets through."""
    return _raw("unshare", 0)


def bpf(scratch: str, pid: int) -> str:
    """Load a BPF program from a null pointer."""
    return _raw("bpf", BPF_PROG_LOAD, None, 0)


def io_uring(scratch: str, pid: int) -> str:
    """Set up an io_uring with no entries."""
    return _raw("io_uring_setup", 0, None)


def memfd(scratch: str, pid: int) -> str:
    """Create an anonymous file (a way to stage code)."""

    def act() -> str:
        fd = os.memfd_create("probe")
        os.close(fd)
        return "escaped: created a memfd"

    return _guarded(act)


def exec_mmap(scratch: str, pid: int) -> str:
    """Map executable memory."""

    def act() -> str:
        region = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_EXEC)
        region.close()
        return "escaped: mapped executable memory"

    return _guarded(act)


def exec_mprotect(scratch: str, pid: int) -> str:
    """Make an existing page executable."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    page = libc.mmap(
        None, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0
    )
    ctypes.set_errno(0)
    result = libc.mprotect(ctypes.c_void_p(page), ctypes.c_size_t(mmap.PAGESIZE), mmap.PROT_READ | mmap.PROT_EXEC)
    code = ctypes.get_errno()
    libc.munmap(ctypes.c_void_p(page), ctypes.c_size_t(mmap.PAGESIZE))
    if result != 0:
        return _refused(code) if code in REFUSALS else f"escaped: reached the kernel ({errno.errorcode.get(code)})"
    return "escaped: made a page executable"


PROBES: dict[str, Callable[[str, int], str]] = {
    "open_passwd": open_passwd,
    "write_file": write_file,
    "list_root": list_root,
    "stat": stat_file,
    "mkdir": make_directory,
    "socket_inet": socket_inet,
    "socket_unix": socket_unix,
    "connect": connect,
    "execve_shell": execute_shell,
    "fork": fork,
    "ptrace": ptrace_attach,
    "kill_other": kill_other,
    "tgkill_other": tgkill_other,
    "mount": mount,
    "unshare": unshare,
    "bpf": bpf,
    "io_uring": io_uring,
    "memfd": memfd,
    "exec_mmap": exec_mmap,
    "exec_mprotect": exec_mprotect,
}
"""Every escape probe, by name."""


def run_control(scratch: str, uid: int, gid: int) -> dict[str, str]:
    """Run every probe unjailed after dropping to ``uid`` (refuses to run them as root)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    if os.geteuid() == 0:
        raise PermissionError("the positive control never runs probes as root")
    pid = unused_pid()
    return {name: probe(scratch, pid) for name, probe in PROBES.items()}


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--control":
        raise SystemExit("usage: python -m textlayer.sandbox.probes --control SCRATCH [UID GID]")
    ids = [int(v) for v in sys.argv[3:5]] or [65534, 65534]
    print(json.dumps(run_control(sys.argv[2], ids[0], ids[1])))
