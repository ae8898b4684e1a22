"""Create or repair the course's virtual environment, then install what requirements.txt lists.

    python3 scripts/ensure_venv.py [--venv .venv]

`make lab` and `make test` run this first, so that both work on a fresh clone. It uses only the
standard library (it runs before anything is installed) and copes with the states a learner's
machine can be in:

- no environment: create it and install;
- an environment without a working interpreter (a dangling link, a copy moved from another
  machine, a `python -m venv` that was interrupted): say so in one line, remove it, rebuild it;
- an install that was interrupted: the stamp file is written only after pip succeeds, so the next
  run installs again and pip completes what is missing;
- requirements.txt or pyproject.toml changed since the last install: install again.

The stamp (``<venv>/.installed``) holds a hash of requirements.txt and pyproject.toml.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ("requirements.txt", "pyproject.toml")


def interpreter(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def works(venv: Path) -> bool:
    """Whether the environment's interpreter starts and has pip."""
    python = interpreter(venv)
    if not python.exists():
        return False
    try:
        done = subprocess.run([str(python), "-c", "import pip"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def requirements_hash() -> str:
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    return digest.hexdigest()


def remove(venv: Path) -> None:
    if venv.is_symlink() or venv.is_file():
        venv.unlink()
    else:
        shutil.rmtree(venv)


def ensure(venv: Path) -> int:
    if (venv.exists() or venv.is_symlink()) and not works(venv):
        what = f"a link to {os.readlink(venv)} that is broken" if venv.is_symlink() else "no working Python"
        print(f"ensure_venv: {venv} has {what} (an interrupted set-up, or copied from another machine); rebuilding it.",
              flush=True)
        remove(venv)
    if not venv.exists():
        print(f"ensure_venv: creating {venv} with {sys.executable} (Python {sys.version.split()[0]})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    stamp = venv / ".installed"
    wanted = requirements_hash()
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return 0
    print("ensure_venv: installing requirements.txt (a few minutes the first time)", flush=True)
    done = subprocess.run([str(interpreter(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "-r", str(ROOT / "requirements.txt")], cwd=ROOT)
    if done.returncode != 0:
        print(f"ensure_venv: pip failed (exit {done.returncode}); fix the error above and run the same command again: "
              "the next run completes the install.", file=sys.stderr, flush=True)
        return done.returncode
    stamp.write_text(wanted + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="where the environment lives (default .venv)")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 10):
        print(f"ensure_venv: the course needs Python 3.10 or newer; {sys.executable} is {sys.version.split()[0]}. "
              "Run make with PYTHON=/path/to/python3.11.", file=sys.stderr)
        return 2
    return ensure(args.venv)


if __name__ == "__main__":
    sys.exit(main())
