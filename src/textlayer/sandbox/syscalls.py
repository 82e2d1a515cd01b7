"""Syscall numbers for x86_64 and aarch64 (committed data: the jail imports nothing to learn them).

Only the syscalls the worker filter names are listed; everything else is killed by default.
aarch64 has no legacy ``open``/``stat``/``poll``... (``None``).
"""

from __future__ import annotations

import platform

SYSCALLS: dict[str, tuple[int | None, int | None]] = {
    # name: (x86_64, aarch64)
    "read": (0, 63),
    "write": (1, 64),
    "open": (2, None),
    "close": (3, 57),
    "stat": (4, None),
    "fstat": (5, 80),
    "lstat": (6, None),
    "poll": (7, None),
    "lseek": (8, 62),
    "mmap": (9, 222),
    "mprotect": (10, 226),
    "munmap": (11, 215),
    "brk": (12, 214),
    "rt_sigaction": (13, 134),
    "rt_sigprocmask": (14, 135),
    "rt_sigreturn": (15, 139),
    "ioctl": (16, 29),
    "readv": (19, 65),
    "writev": (20, 66),
    "access": (21, None),
    "sched_yield": (24, 124),
    "mremap": (25, 216),
    "madvise": (28, 233),
    "nanosleep": (35, 101),
    "getpid": (39, 172),
    "clone": (56, 220),
    "exit": (60, 93),
    "getcwd": (79, 17),
    "readlink": (89, None),
    "sysinfo": (99, 179),
    "getuid": (102, 174),
    "getgid": (104, 176),
    "geteuid": (107, 175),
    "getegid": (108, 177),
    "sigaltstack": (131, 132),
    "prctl": (157, 167),
    "gettid": (186, 178),
    "futex": (202, 98),
    "sched_getaffinity": (204, 123),
    "restart_syscall": (219, 128),
    "clock_gettime": (228, 113),
    "clock_nanosleep": (230, 115),
    "exit_group": (231, 94),
    "tgkill": (234, 131),
    "openat": (257, 56),
    "newfstatat": (262, 79),
    "readlinkat": (267, 78),
    "faccessat": (269, 48),
    "ppoll": (271, 73),
    "set_robust_list": (273, 99),
    "getrandom": (318, 278),
    "membarrier": (324, 283),
    "statx": (332, 291),
    "rseq": (334, 293),
    "clone3": (435, 435),
    "openat2": (437, 437),
    "faccessat2": (439, 439),
}

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
"""``AUDIT_ARCH_*`` values the kernel puts in ``seccomp_data.arch``."""

X32_SYSCALL_BIT = 0x40000000
"""x86_64's x32 ABI marks its syscall numbers with this bit; the filter kills them all."""

LANDLOCK_CREATE_RULESET = 444
LANDLOCK_RESTRICT_SELF = 446
SECCOMP = {"x86_64": 317, "aarch64": 277}
UNSHARE = {"x86_64": 272, "aarch64": 97}
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
CAPSET = {"x86_64": 126, "aarch64": 91}


def machine() -> str:
    """This machine's architecture name, or an error for one the jail has no table for."""
    arch = platform.machine()
    if arch not in AUDIT_ARCH:
        raise OSError(f"the sandbox has no syscall table for {arch}")
    return arch


def number(name: str, arch: str) -> int | None:
    """Syscall number of ``name`` on ``arch`` (``None`` where the syscall does not exist)."""
    x86, arm = SYSCALLS[name]
    return x86 if arch == "x86_64" else arm
