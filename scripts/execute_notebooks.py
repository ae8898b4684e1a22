"""Execute notebooks in place with a course profile, for the outputs that get committed.

    python scripts/execute_notebooks.py --profile laptop notebooks/*.ipynb solutions/*.ipynb

The source cells are not touched (``PROFILE = "auto"`` stays; the profile comes from the
``COURSE_PROFILE`` environment variable), progress is printed as text (``COURSE_HEADLESS=1``),
timing metadata is dropped so re-runs give small diffs, and each notebook is written atomically.
Prints the wall time of each notebook.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_lib.checkpoint import atomic_write


def cell_seconds(cell: nbformat.NotebookNode) -> float:
    """How long a cell ran, from the timestamps nbclient records (0 for a cell that did not run)."""
    times = cell.metadata.get("execution", {})
    start, end = times.get("iopub.execute_input"), times.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda stamp: datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (parse(end) - parse(start)).total_seconds()


def execute(path: Path, profile: str, timeout: int, slowest: int = 0) -> float:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, COURSE_PROFILE=profile, COURSE_HEADLESS="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent.resolve())}}).execute(env=env)
    seconds = time.perf_counter() - start
    ranked = sorted(((cell_seconds(cell), index) for index, cell in enumerate(nb.cells)), reverse=True)
    for cell_time, index in ranked[:slowest]:
        print(f"  cell {index}: {cell_time:.1f} s", flush=True)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    atomic_write(path, lambda tmp: tmp.write_text(nbformat.writes(nb) + "\n", encoding="utf-8"))
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--profile", default="laptop", choices=["smoke", "laptop", "gpu"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--slowest", type=int, default=0, metavar="N", help="also print the N slowest cells")
    args = parser.parse_args()
    for path in args.notebooks:
        seconds = execute(path, args.profile, args.timeout, args.slowest)
        print(f"{path}: {seconds:.1f} s ({args.profile} profile)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
