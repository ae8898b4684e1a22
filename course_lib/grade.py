"""Grade exercise notebooks: verdicts from the grader's own checks, each submission isolated from the others.

Usage::

    python -m course_lib.grade submissions/*.ipynb [--json] [--csv FILE] [--jobs N]
        [--timeout 120] [--notebook-timeout 900] [--memory 4G] [--profile smoke] [--lesson NN]

How a notebook is graded (``course_lib.grading``):

- it runs headless in a fresh kernel, in a temporary folder that holds only a copy of it, with
  ``HOME`` and the temp dir inside that folder, time limits per cell and per notebook, a memory limit,
  a limit on output and on disk use; as root, the kernel runs as an unprivileged user of its own that
  cannot read or change the submissions or the instructor's files; every process it starts ends with it;
- then the grader runs the lesson's checks in its own process, on seeds drawn for this run, calling
  the learner's functions inside the kernel and comparing what they return (tensors, gradients,
  module and optimizer states) with the reference computed here. Nothing the notebook prints counts,
  and no code in it can change a check: its check cells, its outputs and any patched module stay in
  the kernel;
- an answer that calls the implementation it is checked against fails, and says so.

Output: a score table, or with ``--json`` one JSON record per notebook (one per line):
``{"notebook", "lesson", "score", "max_score", "exercises": [{"id", "title", "status", "message",
"points", "max_points", "seconds"}], "grader_version", "seed", "seconds", "notes"}``, status one of
``passed``, ``failed``, ``not_attempted``, ``error``. ``--csv`` writes a gradebook, one row per
notebook and one column per exercise. Progress goes to stderr. The exit status is 0 only when every
exercise of every notebook passed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import secrets
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from course_lib.checkpoint import atomic_write
from course_lib.grading.run import GRADER_VERSION
from course_lib.grading.processes import free_uid
from course_lib.grading.sandbox import Limits, running_as_root

UID_BASE = 61000  # kernels of a root grader run as a user id from 61000 to 81000 that no account or process uses


_TAKEN: set[int] = set()     # user ids handed to workers of this process (parallel jobs never share one)
_TAKEN_LOCK = threading.Lock()


def _take_uid() -> int:
    with _TAKEN_LOCK:
        uid = free_uid(UID_BASE + secrets.randbelow(20000))
        while uid in _TAKEN:
            uid = free_uid(uid + 1)
        _TAKEN.add(uid)
        return uid


def parse_size(text: str) -> int:
    """Bytes from ``4G``, ``512M``, ``100K`` or a plain number."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"expected a size such as 4G, 512M or 100000, got {text!r}")
    return int(float(m[1]) * 1024 ** "_KMGT".index(m[2].upper() or "_"))


def grade_notebook(path: str | os.PathLike, timeout: float = 120, profile: str = "smoke", *,
                   limits: Limits | None = None, lesson: str | None = None, seed: int | None = None,
                   uid: int | None | str = "auto", threads: int | None = None) -> dict:
    """Grade one notebook in a worker process of its own and return its record.

    Args:
        path: the notebook to grade.
        timeout: seconds each cell, and each call of the learner's code, may run.
        profile: the course profile the notebook runs with (``smoke``, ``laptop``, ``gpu``).
        limits: every limit at once (overrides ``timeout``).
        lesson: "NN" to grade with lesson NN's checks whatever the notebook says.
        seed: the offset of the hidden cases (drawn at random when None).
        uid: the user id of the kernel; "auto" picks a free one when running as root, None keeps the caller's.
        threads: torch threads of the worker and the kernel (default: all cores).

    Returns:
        The record (see the module docstring). A worker that crashes or overruns gives an ``error`` record.
    """
    limits = limits or Limits(cell_seconds=float(timeout))
    if uid == "auto":
        uid = _take_uid() if running_as_root() else None
    threads = threads or max(1, os.cpu_count() or 1)
    limits.threads = threads
    job = {"notebook": str(Path(path).resolve()), "profile": profile, "lesson": lesson, "seed": seed, "uid": uid,
           "threads": threads, "limits": asdict(limits)}
    try:
        done = subprocess.run([sys.executable, "-m", "course_lib.grading.run"], input=json.dumps(job), text=True,
                              capture_output=True, timeout=limits.notebook_seconds + 120)
        record = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        record = _error_record(path, "the grader's worker ran past the notebook's time limit and was stopped")
    except (json.JSONDecodeError, IndexError):
        tail = done.stderr.strip().splitlines()[-1:] if done.stderr else []
        record = _error_record(path, f"the grader's worker failed ({tail[0] if tail else f'exit {done.returncode}'})")
    record["notebook"] = str(path)
    return record


def _error_record(path, message: str) -> dict:
    return {"notebook": str(path), "lesson": None, "score": 0, "max_score": 0, "grader_version": GRADER_VERSION,
            "seed": None, "seconds": 0.0, "notes": [],
            "exercises": [{"id": "-", "title": "notebook", "status": "error", "message": message,
                           "points": 0, "max_points": 0, "seconds": 0.0}]}


def all_passed(record: dict) -> bool:
    return bool(record["exercises"]) and all(e["status"] == "passed" for e in record["exercises"])


def format_table(record: dict) -> str:
    """A plain-text score table for one notebook."""
    lines = [f"{record['notebook']}: {record['score']}/{record['max_score']}"]
    for e in record["exercises"]:
        lines.append(f"  {e['id']:<6} {e['status']:<14} {e['title']}")
        if e["status"] != "passed":
            lines.append(f"         {e['message']}")
    for note in record.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def gradebook(records: list[dict]) -> str:
    """CSV text: one row per notebook, one column of points per exercise."""
    ids = []
    for record in records:
        for e in record["exercises"]:
            if e["id"] != "-" and e["id"] not in ids:
                ids.append(e["id"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["notebook", "lesson", "score", "max_score", *ids, "seconds", "seed", "grader_version"])
    for record in records:
        points = {e["id"]: e["points"] for e in record["exercises"]}
        writer.writerow([record["notebook"], record.get("lesson") or "", record["score"], record["max_score"],
                         *(points.get(i, "") for i in ids), record.get("seconds", ""), record.get("seed", ""),
                         record.get("grader_version", "")])
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grade", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks to grade")
    parser.add_argument("--json", action="store_true", help="print one JSON record per notebook instead of a table")
    parser.add_argument("--csv", type=Path, help="also write a gradebook (one row per notebook) to this file")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel (default 1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each cell may run (default 120)")
    parser.add_argument("--notebook-timeout", type=float, default=900.0, help="seconds a whole notebook may take (default 900)")
    parser.add_argument("--memory", default="4G", help="memory limit of each kernel process (default 4G)")
    parser.add_argument("--max-output", default="10M", help="output one cell may print (default 10M)")
    parser.add_argument("--disk", default="1G", help="disk space one submission may fill (default 1G)")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "laptop", "gpu"], help="course profile (default smoke)")
    parser.add_argument("--lesson", help="grade with lesson NN's checks (default: the lesson the notebook names)")
    parser.add_argument("--seed", type=int, help="offset of the hidden cases (default: drawn at random; recorded)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    if args.notebook_timeout <= 0:
        parser.error(f"--notebook-timeout must be positive, got {args.notebook_timeout:g}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.lesson is not None and not re.fullmatch(r"\d\d", args.lesson):
        parser.error(f"--lesson takes two digits such as 02, got {args.lesson!r}")
    try:
        limits = Limits(cell_seconds=args.timeout, notebook_seconds=args.notebook_timeout,
                        memory_bytes=parse_size(args.memory), output_bytes=parse_size(args.max_output),
                        disk_bytes=parse_size(args.disk))
    except ValueError as err:
        parser.error(f"--memory/--max-output/--disk: {err}")
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")

    threads = max(1, (os.cpu_count() or 1) // args.jobs)

    def grade(path: Path) -> dict:
        print(f"grading {path} ...", file=sys.stderr, flush=True)
        return grade_notebook(path, profile=args.profile, limits=Limits(**asdict(limits)), lesson=args.lesson,
                              seed=args.seed, threads=threads)

    records = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for record in pool.map(grade, args.notebooks):
            records.append(record)
            print(json.dumps(record) if args.json else format_table(record), flush=True)
    if args.csv:
        atomic_write(args.csv, lambda tmp: tmp.write_text(gradebook(records), encoding="utf-8"))
    return 0 if all(all_passed(r) for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
