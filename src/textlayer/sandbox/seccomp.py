"""The worker's seccomp allowlist, assembled as classic BPF and installed with ctypes on all threads.

Measured in design/SANDBOX.md §4.1: after warm-up the worker only needs read/write, futex, sched_yield and memory calls;
the rest of the allowlist covers error, exit, abort and thread paths. Probes that glibc or Python make on their own
(open, stat, ioctl...) get an errno; any other syscall kills the whole process with SIGSYS.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

from textlayer.sandbox import syscalls

ALLOWED = (
    "futex", "sched_yield", "read", "readv", "write", "writev", "munmap", "madvise", "brk", "mremap",
    "rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "sigaltstack", "getpid", "gettid",
    "clock_gettime", "clock_nanosleep", "nanosleep", "getrandom", "sched_getaffinity", "exit",
    "exit_group", "restart_syscall", "close", "fstat", "lseek", "set_robust_list", "rseq",
    "getuid", "geteuid", "getgid", "getegid", "poll", "ppoll", "membarrier",
)  # fmt: skip
"""Syscalls allowed with any arguments."""

ANSWERED = {
    **dict.fromkeys(
        (
            "open",
            "openat",
            "openat2",
            "stat",
            "lstat",
            "newfstatat",
            "statx",
            "access",
            "faccessat",
            "faccessat2",
            "readlink",
            "readlinkat",
            "getcwd",
        ),
        errno.EACCES,
    ),  # fmt: skip
    "ioctl": errno.ENOTTY,
    # glibc's pthread_create tries clone3 first; BPF cannot read its flags, so glibc must fall back to clone.
    "clone3": errno.ENOSYS,
    "sysinfo": errno.EPERM,
    "prctl": errno.EPERM,
}
"""Benign probes (tracebacks reading source lines, isatty, clone3) answered with an errno."""

PROT_EXEC = 0x4
CLONE_VM = 0x100
CLONE_THREAD = 0x10000

RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_AND_K = 0x54
_RET_K = 0x06

_OFFSET_NR = 0
_OFFSET_ARCH = 4


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of syscall argument ``index`` in ``seccomp_data`` (little-endian)."""
    return 16 + 8 * index


@dataclass(frozen=True)
class Instruction:
    """One classic BPF instruction (``struct sock_filter``)."""

    code: int
    jt: int
    jf: int
    k: int


def _stmt(code: int, k: int) -> Instruction:
    return Instruction(code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> Instruction:
    return Instruction(code, jt, jf, k)


def build_filter(arch: str, own_pid: int, *, default_action: int = RET_KILL_PROCESS) -> list[Instruction]:
    """Assemble the worker filter for ``arch``.

    A linear ``ld nr; jeq; ret`` layout keeps every jump offset tiny (BPF jumps are 8-bit). ``arch`` is ``x86_64`` or
    ``aarch64``; ``own_pid`` is the worker's pid as it sees itself (``tgkill`` is only allowed towards it);
    ``default_action`` is ``RET_KILL_PROCESS`` in production, ``RET_LOG`` to discover a workload's needs.
    """
    program = [
        _stmt(_LD_W_ABS, _OFFSET_ARCH),
        _jump(_JEQ_K, syscalls.AUDIT_ARCH[arch], 1, 0),
        _stmt(_RET_K, RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _OFFSET_NR),
    ]
    if arch == "x86_64":
        program += [_jump(_JGE_K, syscalls.X32_SYSCALL_BIT, 0, 1), _stmt(_RET_K, RET_KILL_PROCESS)]

    def numbered(name: str) -> int | None:
        return syscalls.number(name, arch)

    for name in ALLOWED:
        nr = numbered(name)
        if nr is not None:
            program += [_jump(_JEQ_K, nr, 0, 1), _stmt(_RET_K, RET_ALLOW)]
    for name, answer in ANSWERED.items():
        nr = numbered(name)
        if nr is not None:
            program += [_jump(_JEQ_K, nr, 0, 1), _stmt(_RET_K, RET_ERRNO | answer)]
    for name in ("mmap", "mprotect"):
        # Executable memory is how injected code would run: never allowed after start-up.
        program += [
            _jump(_JEQ_K, _number(arch, name), 0, 4),
            _stmt(_LD_W_ABS, _arg_low(2)),
            _jump(_JSET_K, PROT_EXEC, 0, 1),
            _stmt(_RET_K, default_action),
            _stmt(_RET_K, RET_ALLOW),
        ]
    threads_only = CLONE_VM | CLONE_THREAD
    program += [
        # clone may make threads, never new processes.
        _jump(_JEQ_K, _number(arch, "clone"), 0, 5),
        _stmt(_LD_W_ABS, _arg_low(0)),
        _stmt(_AND_K, threads_only),
        _jump(_JEQ_K, threads_only, 0, 1),
        _stmt(_RET_K, RET_ALLOW),
        _stmt(_RET_K, default_action),
        # tgkill only towards our own threads (abort() keeps its SIGABRT).
        _jump(_JEQ_K, _number(arch, "tgkill"), 0, 4),
        _stmt(_LD_W_ABS, _arg_low(0)),
        _jump(_JEQ_K, own_pid, 0, 1),
        _stmt(_RET_K, RET_ALLOW),
        _stmt(_RET_K, default_action),
    ]
    program.append(_stmt(_RET_K, default_action))
    return program


def _number(arch: str, name: str) -> int:
    nr = syscalls.number(name, arch)
    if nr is None:
        raise OSError(f"{name} has no number on {arch}")
    return nr


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1


def install(program: list[Instruction], arch: str) -> None:
    """Install ``program`` on every thread of this process (TSYNC); no_new_privs must already be set.

    Raises:
        OSError: the kernel refused the filter, or a thread could not be synchronised.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    array = (_SockFilter * len(program))(*(_SockFilter(i.code, i.jt, i.jf, i.k) for i in program))
    fprog = _SockFprog(len(program), array)
    result = libc.syscall(
        ctypes.c_long(syscalls.SECCOMP[arch]),
        ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
        ctypes.c_ulong(SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(fprog),
    )
    if result != 0:
        code = ctypes.get_errno()
        if result > 0:  # TSYNC names the thread that could not take the filter
            raise OSError(f"seccomp TSYNC failed on thread {result}")
        raise OSError(code, f"seccomp(SET_MODE_FILTER): {os.strerror(code)}")
