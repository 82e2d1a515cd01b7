"""Check from the outside that a worker is really jailed, before any untrusted byte reaches it.

Reads ``/proc/<pid>/task/*/status`` and ``/proc/<pid>/ns/*``: what the kernel says, not what the worker claims. The
supervisor refuses a worker when anything required is missing (fail closed, like Chromium's sandbox probe).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textlayer.sandbox.namespaces import NAMESPACE_FLAGS


def _status_fields(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def parent_of(pid: int) -> int:
    """Parent pid from ``/proc/<pid>/stat`` (the comm field may contain spaces and parentheses)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def resident_mib(pid: int) -> float:
    """Resident memory of a process in MiB (0 when it is gone)."""
    try:
        fields = _status_fields(Path(f"/proc/{pid}/status"))
    except OSError:
        return 0.0
    return int(fields.get("VmRSS", "0 kB").split()[0]) / 1024


def task_problems(pid: int) -> list[str]:
    """Every thread must run under seccomp filter mode with no_new_privs and no capabilities."""
    problems = []
    tasks = sorted(Path(f"/proc/{pid}/task").iterdir())
    if not tasks:
        return [f"pid {pid} has no threads"]
    for task in tasks:
        status = _status_fields(task / "status")
        name = f"thread {task.name}"
        if status.get("Seccomp") != "2":
            problems.append(f"{name}: Seccomp is {status.get('Seccomp')!r}, not 2 (filter)")
        if status.get("NoNewPrivs") != "1":
            problems.append(f"{name}: NoNewPrivs is {status.get('NoNewPrivs')!r}")
        if int(status.get("CapEff", "1"), 16) != 0:
            problems.append(f"{name}: CapEff is {status.get('CapEff')}")
        if "0" in status.get("Uid", "0").split():
            problems.append(f"{name}: runs as root outside its namespace (Uid {status.get('Uid')})")
        if int(status.get("Seccomp_filters", "1")) < 1:
            problems.append(f"{name}: no seccomp filter attached")
    return problems


def namespace_problems(pid: int, claimed: list[str], required: bool) -> list[str]:
    """Namespaces the worker claims must differ from ours; with ``required`` all of them must exist."""
    problems = []
    expected = sorted(NAMESPACE_FLAGS) if required else claimed
    for name in expected:
        try:
            theirs = Path(f"/proc/{pid}/ns/{name}").readlink()
            ours = Path(f"/proc/self/ns/{name}").readlink()
        except OSError as exc:
            problems.append(f"namespace {name}: cannot read ({exc.strerror})")
            continue
        if theirs == ours:
            problems.append(f"namespace {name}: shared with the supervisor ({ours})")
    return problems


def uid_map_problems(pid: int, outside_uid: int) -> list[str]:
    """Root inside the worker's user namespace must be one unprivileged uid outside."""
    mapping = Path(f"/proc/{pid}/uid_map").read_text().split()
    if mapping != ["0", str(outside_uid), "1"]:
        return [f"uid_map is {' '.join(mapping)!r}, expected '0 {outside_uid} 1'"]
    return []


def verify_worker(
    pid: int, launcher_pid: int, layers: dict[str, Any], *, require_namespaces: bool, outside_uid: int
) -> list[str]:
    """All the reasons not to trust worker ``pid`` (empty when it is properly jailed).

    ``pid`` is the worker's host pid (from kernel-attested socket credentials); it must descend from ``launcher_pid``,
    the process the supervisor started. ``layers`` is what the worker reported in READY; ``require_namespaces`` means
    the policy says ``require``; the worker must map root to ``outside_uid``.
    """
    try:
        current = pid
        for _ in range(3):  # worker -> reaper -> launcher
            if current == launcher_pid:
                break
            current = parent_of(current)
        if current != launcher_pid:
            return [f"pid {pid} is not a descendant of the launcher {launcher_pid}"]
        claimed = layers.get("namespaces")
        claimed_list = claimed if isinstance(claimed, list) else []
        problems = task_problems(pid)
        problems += namespace_problems(pid, [str(n) for n in claimed_list], require_namespaces)
        if "user" in claimed_list:
            problems += uid_map_problems(pid, outside_uid)
        return problems
    except (OSError, ValueError) as exc:
        return [f"cannot inspect pid {pid}: {exc}"]
