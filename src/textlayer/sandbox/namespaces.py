"""Linux namespaces and the worker's private root, through ctypes (Python 3.11 has no ``os.unshare``).

Every step is recorded separately: on some hosts ``unshare`` succeeds and a later step (uid map, mount) fails; the
worker must report exactly what it got, never assume "unshare worked, so the jail is built" (design/SANDBOX.md §6).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "user": CLONE_NEWUSER,
    "mnt": CLONE_NEWNS,
    "net": CLONE_NEWNET,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "pid": CLONE_NEWPID,
}
"""The namespaces a worker gets, by the name of their ``/proc/<pid>/ns`` link."""

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
"""Device nodes bound into the jail (Python and numpy read /dev/urandom while starting)."""

HOSTNAME = b"textlayer-jail"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def thread_count() -> int:
    """Threads of this process; ``unshare(CLONE_NEWUSER)`` needs exactly one."""
    return len(os.listdir("/proc/self/task"))


def unshare(flags: int) -> None:
    """Move this (single-threaded) process into new namespaces."""
    _check(_libc().unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def write_id_maps(outside_uid: int, outside_gid: int) -> None:
    """Map root inside the new user namespace onto one unprivileged id outside, and forbid setgroups."""
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {outside_uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {outside_gid} 1")


def drop_to(uid: int, gid: int) -> None:
    """Leave root for the service uid for good (real, effective and saved ids)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def set_hostname() -> None:
    """Give the private UTS namespace a name that says where a process runs."""
    _check(_libc().sethostname(HOSTNAME, ctypes.c_size_t(len(HOSTNAME))), "sethostname")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc().mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def _bind_read_only(source: str, target: Path, *, device: bool = False) -> None:
    if Path(source).is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    _mount(source, str(target), None, MS_BIND | MS_REC)
    extra = 0 if device else MS_NODEV
    _mount(None, str(target), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | extra)


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths already inside another bound path (a recursive bind covers them)."""
    chosen: list[str] = []
    for path in sorted(set(paths), key=lambda p: (len(Path(p).parts), p)):
        if not any(Path(path).is_relative_to(parent) for parent in chosen):
            chosen.append(path)
    return chosen


STAGING_CANDIDATES = ("/tmp", "/mnt", "/media", "/srv", "/opt", "/var/tmp", "/run")
"""Where the new root's tmpfs may be mounted while it is built: any directory no bound path lies under."""


def staging_dir(read_only_paths: list[str]) -> str:
    """A mount point for the new root that hides none of ``read_only_paths`` (a venv under /tmp must stay visible).

    Raises:
        OSError: every candidate is an ancestor of a path to bind.
    """
    for candidate in STAGING_CANDIDATES:
        if not os.path.isdir(candidate) or os.path.islink(candidate):
            continue
        if not any(path == candidate or path.startswith(candidate + "/") for path in read_only_paths):
            return candidate
    raise OSError(f"no place to build the jail's root: every one of {STAGING_CANDIDATES} holds a path to bind")


def build_root(read_only_paths: list[str], *, staging: str | None = None) -> list[str]:
    """Make a tmpfs the root of this mount namespace, with read-only binds of ``read_only_paths``.

    Runs inside the new pid namespace (the fresh ``/proc`` shows only the jail). Symbolic links on the way (``/lib`` ->
    ``usr/lib``) are recreated as links; each path keeps its own name, so the interpreter finds its modules where it
    left them. Returns the paths that were bound (for the READY report).
    """
    resolved = [os.path.realpath(p) for p in read_only_paths if os.path.lexists(p)]
    staging = staging or staging_dir(list(read_only_paths) + resolved)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    root = Path(staging)
    bound: list[str] = []
    links: dict[str, str] = {}
    targets: list[str] = []
    for path in read_only_paths:
        if not os.path.lexists(path):
            continue
        if Path(path).is_symlink():
            links[path] = os.readlink(path)
            targets.append(os.path.realpath(path))
        else:
            targets.append(path)
    for path in _outermost([p for p in targets if os.path.exists(p)]):
        _bind_read_only(path, root / path.lstrip("/"))
        bound.append(path)
    for link, destination in links.items():
        where = root / link.lstrip("/")
        if not os.path.lexists(where):
            where.parent.mkdir(parents=True, exist_ok=True)
            where.symlink_to(destination)
    for device in DEVICES:
        if os.path.exists(device):
            _bind_read_only(device, root / device.lstrip("/"), device=True)
    (root / "proc").mkdir()
    _mount("proc", str(root / "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    (root / "oldroot").mkdir()
    arch = os.uname().machine
    pivot = {"x86_64": 155, "aarch64": 41}[arch]
    _check(_libc().syscall(ctypes.c_long(pivot), staging.encode(), str(root / "oldroot").encode()), "pivot_root")
    os.chdir("/")
    _check(_libc().umount2(b"/oldroot", ctypes.c_int(MNT_DETACH)), "umount old root")
    os.rmdir("/oldroot")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return bound
