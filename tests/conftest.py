"""A real JupyterLab server for the tests that need one (test_lab_server.py, test_browser.py).

``start_lab(env=..., args=...)`` runs ``python -m jupyterlab --no-browser`` from the interpreter that
runs pytest, on a free loopback port with a random token, serving the repository, with its own
temporary Jupyter and IPython directories (the user's settings and workspaces are neither read nor
written; autosave is off, so a test that runs cells never rewrites a notebook). It returns once
``GET /api/status`` answers, and the fixture always stops the server (and the kernels it started) at
the end of the test, within a bounded time.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60     # until /api/status answers
STOP_TIMEOUT_S = 15      # per stage: polite shutdown request, then SIGTERM, then SIGKILL
LAB_SETTINGS = {         # user settings of the test servers: never save a document by itself, never go online
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"checkForUpdates": False, "fetchNews": "false"},
}


@dataclass
class LabServer:
    """A running JupyterLab: ``url`` ends with ``/``; every request needs ``token``."""

    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        """GET ``url + path`` with the token; returns (HTTP status, body)."""
        request = urllib.request.Request(self.url + path.lstrip("/"), headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get_json(self, path: str, timeout: float = 10):
        status, body = self.get(path, timeout)
        assert status == 200, f"GET {path} answered {status}: {body[:500]!r}\n{self.log_tail()}"
        return json.loads(body)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "server log (last lines):\n" + "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(server: LabServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {server.process.returncode} before answering\n"
                               f"{server.log_tail()}")
        try:
            if server.get("api/status", timeout=2)[0] == 200:
                return
        except (OSError, urllib.error.URLError):
            pass  # not listening yet
        time.sleep(0.25)
    raise TimeoutError(f"jupyter lab did not answer GET /api/status within {START_TIMEOUT_S} s\n{server.log_tail()}")


def _descendants(pid: int) -> list:
    try:
        import psutil  # ipykernel depends on it; without it, the server's own shutdown must do
    except ImportError:
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _stop(server: LabServer) -> None:
    """Ask the server to shut down (it stops its kernels), then SIGTERM, then SIGKILL; bounded."""
    kernels = _descendants(server.process.pid)   # kernels run in their own sessions: remember them now
    if server.process.poll() is None:
        try:
            request = urllib.request.Request(server.url + "api/shutdown", method="POST", data=b"",
                                             headers={"Authorization": f"token {server.token}"})
            urllib.request.urlopen(request, timeout=5).close()
        except (OSError, urllib.error.URLError):
            pass
    for stage in (None, signal.SIGTERM, signal.SIGKILL):
        if stage is not None and server.process.poll() is None:
            server.process.send_signal(stage)
        try:
            server.process.wait(timeout=STOP_TIMEOUT_S)
            break
        except subprocess.TimeoutExpired:
            continue
    for child in kernels:  # whatever the server started and did not stop
        try:
            child.kill()
        except Exception:  # noqa: BLE001 - already gone, or not ours to kill any more
            pass


@pytest.fixture
def start_lab(tmp_path_factory):
    """Start JupyterLab servers for this test: ``start_lab(env={...}, args=[...]) -> LabServer``.

    Args (of the returned function):
        env: variables to set for the server and its kernels; a value of None removes the variable.
        args: extra command-line options, e.g. ``["--LabApp.expose_app_in_browser=True"]``.
        root: the folder the server serves (its root_dir); default: the repository.
    """
    servers: list[LabServer] = []

    def start(env: dict[str, str | None] | None = None, args: list[str] = (), root: Path = ROOT) -> LabServer:
        home = tmp_path_factory.mktemp("jupyter")
        token = secrets.token_hex(24)
        port = free_port()
        environment = dict(os.environ)
        for name, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                             ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
                             ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"), ("IPYTHONDIR", "ipython")):
            (home / folder).mkdir()
            environment[name] = str(home / folder)
        for name, settings in LAB_SETTINGS.items():
            path = home / "lab-settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings))
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                   f"--ServerApp.root_dir={root}", *args]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # as `make lab` adds it: jupyter refuses root without it
        log = home / "server.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, cwd=home, env=environment, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT)
        server = LabServer(f"http://127.0.0.1:{port}/", token, process, log)
        servers.append(server)
        print(f"jupyter lab at {server.url} (log: {log})")
        _wait_until_up(server)
        return server

    yield start
    for server in servers:
        _stop(server)
