"""Process-wide restrictions through prctl/capset/setrlimit (ctypes and the standard library only)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal

from textlayer.sandbox import syscalls

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(
        ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)
    ):
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({option}): {os.strerror(code)}")


def die_with_parent() -> None:
    """SIGKILL this process when the thread that started it exits (reset by fork and by uid changes)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def set_dumpable(on: bool) -> None:
    """Dumpable processes own their /proc files (needed to write uid_map after a uid change)."""
    _prctl(PR_SET_DUMPABLE, int(on))


def set_no_new_privs() -> None:
    """No setuid binary or file capability can ever raise our privileges again (and seccomp needs it)."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def last_capability() -> int:
    """Highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except OSError:
        return 40


def drop_capabilities(last_cap: int) -> None:
    """Empty the bounding and ambient sets, then effective/permitted/inheritable (``CapEff: 0``)."""
    for cap in range(last_cap + 1):
        # Without CAP_SETPCAP the bounding set cannot shrink; capset below still empties ours.
        with contextlib.suppress(OSError):
            _prctl(PR_CAPBSET_DROP, cap)
    with contextlib.suppress(OSError):
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header = Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (Data * 2)()
    libc = ctypes.CDLL(None, use_errno=True)
    arch = syscalls.machine()
    if libc.syscall(ctypes.c_long(syscalls.CAPSET[arch]), ctypes.byref(header), ctypes.byref(data)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"capset: {os.strerror(code)}")


def set_limits(*, address_space_mib: int, open_files: int, cpu_lifetime_s: int) -> dict[str, int]:
    """No core files, no file writes, few descriptors, bounded memory and (optionally) CPU time."""
    limits = {
        "core": (resource.RLIMIT_CORE, 0),
        "fsize": (resource.RLIMIT_FSIZE, 0),
        "nofile": (resource.RLIMIT_NOFILE, open_files),
        "as_mib": (resource.RLIMIT_AS, address_space_mib * 1024 * 1024),
    }
    applied = {}
    for name, (which, value) in limits.items():
        resource.setrlimit(which, (value, value))
        applied[name] = value // (1024 * 1024) if name == "as_mib" else value
    if cpu_lifetime_s:
        # Soft below hard, so the worker gets a SIGXCPU we can tell apart from our own SIGKILL.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_lifetime_s, cpu_lifetime_s + 5))
        applied["cpu_s"] = cpu_lifetime_s
    return applied


def close_other_fds(keep: tuple[int, ...]) -> None:
    """Close every descriptor but ``keep`` (the IPC socket and stderr)."""
    highest = max(resource.getrlimit(resource.RLIMIT_NOFILE)[1], max(keep) + 1)
    low = 0
    for fd in [*sorted(keep), highest]:
        # os.closerange(n, n) becomes close_range(n, n - 1): with n = 0 that closes everything.
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
