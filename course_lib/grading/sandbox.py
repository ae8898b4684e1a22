"""Run one submission's notebook in a kernel that cannot harm anything else, within limits.

Each submission gets a fresh temporary folder that holds a copy of it and nothing else; the kernel
starts there with ``HOME``, the temp dir and every cache pointing inside, a clean environment (no
variables of the instructor's but the few the course needs), resource limits (memory, processes,
file size; ``limits.py``) and its own session. When the grader runs as root the kernel runs as an
unprivileged user id of its own, which cannot read or write the submissions folder or the
instructor's files; the folder is given to that id. While cells run, the sandbox watches the
clock (per cell and per notebook), the bytes of output and the size of the folder. At the end,
every process the submission started is stopped and the folder is removed.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from course_lib.grading.processes import kill_tree, processes_of, stop_processes



@dataclass
class Limits:
    """What one submission may use."""

    cell_seconds: float = 120.0            # one cell, or one call of the learner's code
    notebook_seconds: float = 900.0        # the whole notebook, cells and checks
    memory_bytes: int = 4 << 30            # data segment (heap, private memory) of each kernel process
    output_bytes: int = 10 << 20           # output of one cell (beyond it the cell is stopped)
    disk_bytes: int = 1 << 30              # size of the submission's folder
    processes: int = 256                   # processes and threads of the kernel's user (as root)
    reply_bytes: int = 256 << 20           # one reply of the grader's agent
    threads: int = 1                       # torch threads in the kernel


@dataclass
class CellRun:
    """What happened when one cell ran."""

    status: str = "ok"                      # ok, error, timeout, died, output_limit, disk_limit, skipped
    error: str = ""                         # "Name: message" of an exception
    output_bytes: int = 0
    user_expressions: dict = field(default_factory=dict)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def needed_paths() -> list[Path]:
    """The folders a kernel must reach: Python, the virtual environment, its packages and the course library."""
    import course_lib

    import site

    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(course_lib.__file__).parent, Path(sys.executable).parent}
    paths.update(Path(p) for p in site.getsitepackages() if Path(p).is_dir())
    return sorted({p.resolve() for p in paths})


def _free_ports(n: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def _folder_size(path: Path, budget: int = 20000) -> int:
    """Bytes under ``path`` (stops counting after ``budget`` entries: a flood of files is itself too much)."""
    total, seen, stack = 0, 0, [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if seen > budget:
                        return 1 << 62
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


class Sandbox:
    """A folder, a kernel and a clock for one submission.

    Args:
        notebook: the submission; it is copied, never opened for writing.
        limits: what the submission may use.
        uid: the user id the kernel runs as, when the grader is root; None to run as the caller.
        env: the environment variables the notebook should see (the profile and the like).
    """

    def __init__(self, notebook: Path, limits: Limits, uid: int | None = None, env: dict | None = None) -> None:
        self.notebook, self.limits, self.uid = Path(notebook), limits, uid
        self.extra_env = dict(env or {})
        self.base = Path(tempfile.mkdtemp(prefix="course-grade-"))
        self.work = self.base / "work"
        self.deadline = time.monotonic() + limits.notebook_seconds
        self.process: subprocess.Popen | None = None
        self._cell_started = time.time()
        self.client = None
        self.notes: list[str] = []
        self._log = None

    # --- the folder and the kernel ------------------------------------------------------------------

    def __enter__(self) -> "Sandbox":
        os.chmod(self.base, 0o711)
        for sub in ("", "tmp", "home", ".kernel"):
            (self.work / sub).mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(self.notebook, self.work / self.notebook.name)
        if self.uid is not None:
            for root, dirs, files in os.walk(self.work):
                for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.chown(name, self.uid, self.uid)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        if self.uid is not None:
            self._remove_files_of_uid()

    def environment(self) -> dict:
        home = self.work / "home"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": str(home), "USER": "learner", "LOGNAME": "learner",
            "TMPDIR": str(self.work / "tmp"), "TEMP": str(self.work / "tmp"), "TMP": str(self.work / "tmp"),
            "MPLCONFIGDIR": str(home / ".matplotlib"), "IPYTHONDIR": str(home / ".ipython"),
            "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime"), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
            "XDG_CACHE_HOME": str(home / ".cache"), "TORCH_HOME": str(home / ".torch"),
            "MPLBACKEND": "agg", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
            "OMP_NUM_THREADS": str(self.limits.threads), "MKL_NUM_THREADS": str(self.limits.threads),
            "MALLOC_ARENA_MAX": "2",
        }
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Start a fresh kernel in the folder (stopping the previous one, if any)."""
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file
        import zmq

        self.stop()
        connection = self.work / ".kernel" / f"kernel-{secrets.token_hex(4)}.json"
        shell, iopub, stdin, control, hb = _free_ports(5)
        write_connection_file(str(connection), ip="127.0.0.1", key=secrets.token_hex(16).encode(), shell_port=shell,
                              iopub_port=iopub, stdin_port=stdin, control_port=control, hb_port=hb)
        if self.uid is not None:
            os.chown(connection, self.uid, self.uid)
        launcher = [sys.executable, "-m", "course_lib.grading.launch", "--memory", str(self.limits.memory_bytes),
                    "--file-size", str(self.limits.disk_bytes)]
        if self.uid is not None:
            launcher += ["--uid", str(self.uid), "--processes", str(self.limits.processes),
                         "--hide", str(self.notebook.resolve().parent)]
            for path in needed_paths() + [self.work]:
                launcher += ["--expose", str(path)]
        command = launcher + ["--", sys.executable, "-m", "ipykernel_launcher", "-f", str(connection),
                              "--HistoryManager.enabled=False", "--IPKernelApp.quiet=True"]
        self._log = open(self.base / "kernel.log", "ab")
        self.process = subprocess.Popen(command, cwd=self.work, env=self.environment(), stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        context = zmq.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.limits.reply_bytes + (1 << 20))  # a bigger message drops the peer
        client = BlockingKernelClient(context=context)
        client.load_connection_file(str(connection))
        client.start_channels()
        self.client = client
        give_up = time.monotonic() + min(120.0, max(5.0, self.remaining()))
        while True:
            try:
                client.wait_for_ready(timeout=1.0)
                return
            except RuntimeError:
                if not self.alive() or time.monotonic() > give_up:
                    raise RuntimeError(f"the kernel did not start; its log: {self.kernel_log()}") from None

    def kernel_log(self, limit: int = 2000) -> str:
        try:
            return (self.base / "kernel.log").read_bytes()[-limit:].decode(errors="replace").strip() or "(empty)"
        except OSError:
            return "(none)"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def stop(self) -> None:
        """Stop the kernel and every process the submission started."""
        if self.client is not None:
            try:
                self.client.stop_channels()
                self.client.context.term()
            except Exception:  # noqa: BLE001 - closing sockets of a dead kernel
                pass
            self.client = None
        if self.process is not None:
            kill_tree(self.process.pid, self.uid)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def reap_strays(self) -> None:
        """Stop every process of the submission except the kernel itself (forked children, daemons)."""
        if self.process is not None:
            stop_processes(lambda: [p for p in processes_of(self.process.pid, self.uid) if p != self.process.pid])

    def _remove_files_of_uid(self) -> None:
        """Files the kernel's user left in the shared temporary folders."""
        for shared in ("/tmp", "/var/tmp", "/dev/shm"):
            try:
                entries = list(os.scandir(shared))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_uid == self.uid:
                        if entry.is_dir(follow_symlinks=False):
                            shutil.rmtree(entry.path, ignore_errors=True)
                        else:
                            os.unlink(entry.path)
                except OSError:
                    continue

    # --- running code ----------------------------------------------------------------------------

    def execute(self, code: str, seconds: float | None = None, user_expressions: dict | None = None) -> CellRun:
        """Run ``code`` in the kernel, within the time, output and disk limits."""
        run = CellRun()
        if not self.alive() or self.client is None:
            run.status = "died"
            return run
        limit = min(self.limits.cell_seconds if seconds is None else seconds, max(0.0, self.remaining()))
        self._cell_started = time.time()
        msg_id = self.client.execute(code, store_history=False, allow_stdin=False, stop_on_error=False,
                                     user_expressions=user_expressions or {})
        start = time.monotonic()
        reply, idle, interrupted, next_disk_check = None, False, None, start + 1.0
        while reply is None or not idle:
            now = time.monotonic()
            if not self.alive():
                run.status = "died"
                return run
            if interrupted is None:
                stop = None
                if now - start > limit:
                    stop = "timeout"
                elif run.output_bytes > self.limits.output_bytes:
                    stop = "output_limit"
                elif now > next_disk_check:
                    next_disk_check = now + 1.0
                    if _folder_size(self.work) > self.limits.disk_bytes:
                        stop = "disk_limit"
                if stop:
                    run.status, interrupted = stop, now
                    self._interrupt()
            elif now - interrupted > 5.0:  # the interrupt was ignored or swallowed: stop the kernel
                self.stop()
                run.error = run.error or "the kernel ignored the interrupt and was stopped"
                return run
            got = self._next_message(msg_id)
            if got is None:
                continue
            channel, msg = got
            if channel == "shell":
                reply = msg["content"]
                if reply.get("status") == "error" and run.status == "ok":
                    run.status = "error"
                    run.error = f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}"
                run.user_expressions = reply.get("user_expressions", {}) or {}
            else:
                kind = msg["header"]["msg_type"]
                if kind == "status" and msg["content"].get("execution_state") == "idle":
                    idle = True
                elif kind in ("stream", "display_data", "execute_result", "error", "update_display_data"):
                    run.output_bytes += len(json.dumps(msg["content"], default=str))
        if interrupted is not None and run.status == "ok":
            run.status = "timeout"
        if self._free_disk() and run.status in ("ok", "error"):
            run.status = "disk_limit"
        return run

    def _free_disk(self) -> bool:
        """Over the disk limit after a cell: delete what that cell wrote (files changed since it started)."""
        if _folder_size(self.work) <= self.limits.disk_bytes:
            return False
        keep = {self.work / self.notebook.name}
        for root, _, files in os.walk(self.work):
            for name in files:
                path = Path(root) / name
                try:
                    if path not in keep and ".kernel" not in path.parts and \
                            path.stat(follow_symlinks=False).st_mtime >= self._cell_started - 1:
                        path.unlink()
                except OSError:
                    continue
        return True

    def _next_message(self, msg_id: str):
        """The next message about ``msg_id`` from the shell or iopub channel, or None after a short wait."""
        for channel, get, wait in (("shell", self.client.get_shell_msg, 0.0), ("iopub", self.client.get_iopub_msg, 0.05)):
            try:
                msg = get(timeout=wait)
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return channel, msg
        return None

    def _interrupt(self) -> None:
        if self.alive():
            try:
                os.kill(self.process.pid, signal.SIGINT)
            except OSError:
                pass

    def call_agent(self, request_b64: str, seconds: float) -> CellRun:
        return self.execute(f"__course_grader__.serve({request_b64!r})", seconds,
                            user_expressions={"reply": "__course_grader__.reply"})

    def read_reply(self, run: CellRun) -> tuple[dict, dict]:
        """The agent's reply: its JSON document and its tensors (never unpickled)."""
        raw = run.user_expressions.get("reply", {})
        if raw.get("status") != "ok":
            raise ValueError(f"no reply from the agent ({raw.get('ename', '')}: {raw.get('evalue', '')})")
        text = raw.get("data", {}).get("text/plain", "")
        if not isinstance(text, str) or len(text) > 2 * self.limits.reply_bytes:
            raise ValueError("the agent's reply is too large")
        return decode_reply(ast.literal_eval(text))


def decode_reply(reply: str) -> tuple[dict, dict]:
    """A reply of the agent (base64 of header length, JSON, safetensors) as its document and its tensors."""
    from safetensors.torch import load

    if not isinstance(reply, str):
        raise ValueError("the agent's reply is not a string")
    data = base64.b64decode(reply, validate=True)
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError("the agent's reply is malformed")
    doc = json.loads(data[8:8 + size])
    blob = data[8 + size:]
    tensors: dict[str, torch.Tensor] = load(blob) if blob else {}
    if not isinstance(doc, dict):
        raise ValueError("the agent's reply is malformed")
    return doc, tensors
