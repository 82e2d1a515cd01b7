"""Landlock deny-all: no file, TCP or cross-sandbox signal access, without privileges.

A second, unprivileged layer under seccomp that also works inside containers whose seccomp
profile permits the Landlock syscalls (Docker's does). Detected by asking the kernel for its
ABI version; securityfs may not be mounted, so ``/sys/kernel/security/lsm`` proves nothing.
"""

from __future__ import annotations

import ctypes
import os

from textlayer.sandbox import syscalls

_CREATE_RULESET_VERSION = 1 << 0

# handled_access_fs bits by the ABI version that introduced them.
_FS_BITS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BITS = (1 << 2) - 1  # ABI 4: TCP bind and connect
_SCOPE_BITS = (1 << 2) - 1  # ABI 6: abstract unix sockets and signals


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """Landlock ABI of the running kernel, 0 when unavailable (disabled, old kernel, filtered)."""
    version = _libc().syscall(
        ctypes.c_long(syscalls.LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_CREATE_RULESET_VERSION),
    )
    return max(int(version), 0)


def restrict_self(abi: int) -> None:
    """Forbid every filesystem access the ABI can express, TCP, and signals/abstract sockets out of the domain.

    Needs no_new_privs. Raises OSError if the kernel refuses.
    """
    fs_bits = max(bits for version, bits in _FS_BITS_BY_ABI.items() if version <= abi)
    attr = _RulesetAttr(fs_bits, _NET_BITS if abi >= 4 else 0, _SCOPE_BITS if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    libc = _libc()
    fd = libc.syscall(ctypes.c_long(syscalls.LANDLOCK_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"landlock_create_ruleset: {os.strerror(code)}")
    try:
        if libc.syscall(ctypes.c_long(syscalls.LANDLOCK_RESTRICT_SELF), ctypes.c_int(fd), 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"landlock_restrict_self: {os.strerror(code)}")
    finally:
        os.close(fd)
