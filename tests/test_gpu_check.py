"""``scripts/gpu_check.sh`` on a machine without CUDA: it stops at once, says why, and runs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def check(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "OUT"}
    environment.update({"PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "", **env})
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120)


def test_without_cuda_the_gpu_check_fails_fast_and_clearly(tmp_path):
    done = check(str(tmp_path / "check"))
    assert done.returncode == 3, done.stderr
    assert "CUDA is not available" in done.stderr and "nothing was run" in done.stderr
    assert not (tmp_path / "check").exists()  # no summary, no part started


def test_the_gpu_check_needs_a_folder_or_out(tmp_path):
    done = check()
    assert done.returncode == 2 and "usage: scripts/gpu_check.sh FOLDER" in done.stderr
    done = check(OUT=str(tmp_path))  # $OUT/gpu_check: past the folder check, then stopped by the missing GPU
    assert done.returncode == 3 and not (tmp_path / "gpu_check").exists()


def test_the_gpu_check_is_an_executable_bash_script():
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
