"""Processes of a submission: find every one of them (by user id, or as descendants), freeze, kill, reap.

A fork bomb replaces the processes it loses as fast as they are killed, so ``stop_processes``
freezes them first (SIGSTOP) until a scan finds none still running, then kills them all. The
grader's worker is a subreaper (``become_subreaper``): orphans of the kernel come back to it instead
of to init, so none escapes the clean-up.
"""

from __future__ import annotations

import os
import pwd
import signal

PR_SET_CHILD_SUBREAPER = 36
SUBREAPER = [False]   # whether this process collects orphans (set once, by the grader's worker)


def free_uid(start: int) -> int:
    """The first user id from ``start`` on that no account and no running process uses."""
    busy = {_status_fields(p).get("Uid", "").split()[:1][0] for p in _all_pids() if _status_fields(p).get("Uid")}
    uid = start
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if str(uid) not in busy:
                return uid
        uid += 1


def become_subreaper() -> None:
    """Orphaned processes of this process's children come back to it (Linux), so none escapes the clean-up."""
    try:
        import ctypes

        SUBREAPER[0] = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        pass


def _status_fields(pid: int) -> dict[str, str]:
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
    except OSError:
        pass
    return fields


def _all_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def processes_of(root_pid: int, uid: int | None) -> list[int]:
    """The kernel's processes: every process of its user id (as root), else its descendants and its
    process group, plus orphans that came back to this process (a subreaper)."""
    pids = _all_pids()
    if uid is not None:
        return [p for p in pids if _status_fields(p).get("Uid", "").split()[:1] == [str(uid)]]
    parent = {p: int(_status_fields(p).get("PPid", "0") or 0) for p in pids}
    group = {p for p in pids if _process_group(p) == root_pid}
    me, found = os.getpid(), {root_pid} | group
    changed = True
    while changed:
        changed = False
        for p, pp in parent.items():
            # a child of this process other than the kernel is an orphan the kernel left (this is a subreaper)
            if p not in found and (pp in found or (pp == me and SUBREAPER[0])):
                found.add(p)
                changed = True
    return [p for p in found if p in parent]


def _process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def stop_processes(list_pids) -> None:
    """Freeze every listed process (a fork bomb stops growing), then kill them all."""
    frozen: set[int] = set()
    for _ in range(200):
        pids = [p for p in list_pids() if p not in frozen]
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGSTOP)
                frozen.add(p)
            except OSError:
                pass
    for p in frozen | set(list_pids()):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    _reap_children()


def kill_tree(pid: int, uid: int | None) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    stop_processes(lambda: processes_of(pid, uid))


def _reap_children() -> None:
    """Collect exited children (orphans handed to this subreaper would stay zombies otherwise)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
