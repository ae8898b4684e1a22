"""Start a learner's kernel in its place: ``python -m course_lib.grading.launch [options] -- program args``.

The grader starts every kernel through this launcher. It runs as the grader's user, prepares the
process, then replaces itself with the kernel (``os.execv``), so everything below holds from the
kernel's first instruction and for every process the kernel starts:

1. (root, ``--uid``) a private mount namespace (Linux), in which the folders the submissions come from
   (``--hide``) are covered by an empty read-only folder, and folders the kernel's user could not
   enter (``/root``, when Python or the course lives below it) are covered by an empty one that only
   shows the paths the kernel needs (``--expose``: Python, the virtual environment, the course);
2. (root, ``--uid``) the kernel's own user and group ids, with no supplementary groups;
3. resource limits: ``--memory`` (the data segment of each process: heap and private memory; not the
   address space, which torch's CUDA libraries fill with gigabytes of mapped code), ``--processes`` (processes and
   threads of the user: a fork bomb stops there), ``--file-size`` (the largest file it may write),
   no core dumps.

Linux for 1 and 2 (``unshare`` and ``mount`` through the C library); any POSIX system for 3.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import stat
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 4096, 16384, 1 << 18


class LaunchError(RuntimeError):
    """The kernel could not be put in its place."""


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if _libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise LaunchError(f"mount {target}: {os.strerror(err)}")


def blocked_ancestor(path: Path) -> Path | None:
    """The shallowest folder above ``path`` that a user with no rights on it cannot enter, or None."""
    for parent in reversed(path.parents):
        if parent == Path("/"):
            continue
        try:
            mode = os.stat(parent).st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return parent
    return None


def confine(expose: list[Path], hide: list[Path]) -> None:
    """A private mount namespace where ``hide`` folders look empty and ``expose`` paths are reachable."""
    if _libc().unshare(CLONE_NEWNS) != 0:
        raise LaunchError(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    covers: dict[Path, list[Path]] = {}
    for path in expose:
        blocked = blocked_ancestor(path)
        if blocked is not None:
            covers.setdefault(blocked, []).append(path)
    # keep a handle on every exposed folder before its ancestor is covered
    handles = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for paths in covers.values() for path in paths}
    for blocked, paths in covers.items():
        _mount("tmpfs", str(blocked), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0711,size=1m")
        for path in paths:
            path.mkdir(mode=0o711, parents=True, exist_ok=True)
            for made in [path, *path.parents]:
                if made == blocked:
                    break
                os.chmod(made, 0o711)
            _mount(f"/proc/self/fd/{handles[path]}", str(path), None, MS_BIND | MS_REC)
    for fd in handles.values():
        os.close(fd)
    for folder in hide:
        if any(folder == p or folder in p.parents for p in expose):
            continue  # hiding it would hide what the kernel needs (the submission lies inside the course)
        _mount("tmpfs", str(folder), "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "mode=0555,size=4k")


def become(uid: int) -> None:
    """Drop root for good: the kernel's own user and group, no other groups."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def limit(memory: int | None, processes: int | None, file_size: int | None) -> None:
    """Lower this process's limits (a limit can only go down, which is all the grader needs)."""
    import resource

    def lower(kind: int, value: int | None) -> None:
        if value is None:
            return
        _, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))

    lower(resource.RLIMIT_CORE, 0)
    lower(resource.RLIMIT_DATA, memory)
    lower(resource.RLIMIT_NPROC, processes)
    lower(resource.RLIMIT_FSIZE, file_size)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("launch: give the program after --", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading.launch")
    parser.add_argument("--uid", type=int, help="run as this user and group id (the launcher must be root)")
    parser.add_argument("--expose", type=Path, action="append", default=[], help="a folder the kernel needs")
    parser.add_argument("--hide", type=Path, action="append", default=[], help="a folder the kernel must not see")
    parser.add_argument("--memory", type=int)
    parser.add_argument("--processes", type=int)
    parser.add_argument("--file-size", type=int)
    args = parser.parse_args(argv[:split])
    program = argv[split + 1:]
    try:
        if args.uid is not None:
            confine([p.resolve() for p in args.expose], [p.resolve() for p in args.hide])
            become(args.uid)
        limit(args.memory, args.processes, args.file_size)
    except (LaunchError, OSError) as err:
        print(f"launch: could not isolate the kernel: {err}", file=sys.stderr)
        return 3
    os.execv(program[0], program)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
