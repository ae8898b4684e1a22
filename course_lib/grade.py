"""Grade exercise notebooks: run each one headless, collect its checks, print a score table.

Usage::

    python -m course_lib.grade exercises/01_gan_math.ipynb submissions/*.ipynb \
        [--json] [--timeout 120] [--profile smoke]

Each notebook runs in a fresh kernel (nbclient) with a per-cell timeout; a cell that raises, loops
forever or deletes a name becomes a recorded failure of the exercise it affects, never a crashed
grader. The exit status is 0 only when every exercise of every notebook passed. ``--json`` prints
one record per notebook (one JSON object per line):
``{"notebook", "score", "max_score", "exercises": [{"id", "title", "status", "message"}]}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from course_lib.checks import MIME, STATUSES, CheckResult

CHECKS_IMPORT = re.compile(r"course_lib\.checks\.(?P<module>lesson\d\d)\b|from course_lib\.checks import (?P<module2>lesson\d\d)\b")


@dataclass
class NotebookGrade:
    """One notebook's grade."""

    notebook: str
    score: int = 0
    max_score: int = 0
    exercises: list[dict] = field(default_factory=list)  # {"id", "title", "status", "message"}

    @property
    def all_passed(self) -> bool:
        return bool(self.exercises) and all(e["status"] == "passed" for e in self.exercises)


def _checks_module(nb: nbformat.NotebookNode):
    """The ``course_lib.checks.lessonNN`` module a notebook is graded with."""
    name = nb.metadata.get("course", {}).get("checks")
    if not name:
        for cell in nb.cells:
            m = CHECKS_IMPORT.search(cell.source) if cell.cell_type == "code" else None
            if m:
                name = f"course_lib.checks.{m['module'] or m['module2']}"
                break
    if not name or not re.fullmatch(r"course_lib\.checks\.lesson\d\d", name):
        raise ValueError("this notebook has no graded checks (no course_lib.checks.lessonNN import)")
    return importlib.import_module(name)


def _error_text(cell: nbformat.NotebookNode) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
    return None


def _explain_cell_error(error: str, timeout: float) -> str:
    if error.startswith("CellTimeoutError") or error.startswith("KeyboardInterrupt"):
        return f"the check cell was stopped after the {timeout:g} s time limit (an infinite loop, or far too much work?)."
    if error.startswith("NameError"):
        return f"the check cell could not run: {error}. Run the cell that defines it first, and do not rename or delete it."
    return f"the check cell could not run: {error}."


def _execute(nb: nbformat.NotebookNode, workdir: Path, timeout: float, profile: str) -> str | None:
    """Execute ``nb`` in place; return a note if the kernel died (the notebook keeps what ran)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    env = dict(os.environ, COURSE_PROFILE=profile, COURSE_HEADLESS="1", MPLBACKEND="agg")
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={
            "ename": "CellTimeoutError",
            "evalue": f"the cell ran longer than {timeout:g} s and was interrupted",
            "traceback": [],
        },
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute(env=env, stderr=subprocess.DEVNULL)  # the kernel's own log lines are noise here
    except DeadKernelError:
        return "the kernel died (a crash, or out of memory); cells after that point did not run."
    return None


def grade_notebook(path: str | os.PathLike, timeout: float = 120, profile: str = "smoke") -> NotebookGrade:
    """Run one notebook headless and grade it.

    Args:
        path: the notebook to grade.
        timeout: seconds each cell may run before it is interrupted.
        profile: the course profile the notebook runs with (``smoke``, ``laptop``, ``gpu``).

    Returns:
        A ``NotebookGrade``. Problems with the notebook itself (unreadable, no checks) become
        ``error`` records instead of exceptions.
    """
    path = Path(path)
    grade = NotebookGrade(notebook=str(path))
    try:
        nb = nbformat.read(path, as_version=4)
        module = _checks_module(nb)
    except Exception as err:  # unreadable file, not a notebook, no checks
        grade.exercises.append({"id": "-", "title": "notebook", "status": "error", "message": f"could not grade {path}: {err}"})
        return grade

    exercises = module.EXERCISES
    died = _execute(nb, path.parent.resolve(), timeout, profile)

    results: dict[str, CheckResult] = {}
    check_cells: dict[str, nbformat.NotebookNode] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for check in exercises:
            if re.search(rf"\b{check.__name__}\s*\(", cell.source):
                check_cells[check.exercise_id] = cell
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get(MIME)
            if data and data.get("status") in STATUSES:
                results[data["id"]] = CheckResult(**data)

    for check in exercises:
        result = results.get(check.exercise_id)
        if result is None:
            cell = check_cells.get(check.exercise_id)
            if cell is None:
                message = f"the check cell for this exercise ({check.__name__}(...)) is missing from the notebook."
            elif _error_text(cell):
                message = _explain_cell_error(_error_text(cell), timeout)
            else:
                message = died or "the check cell produced no result (was it changed?)."
            result = CheckResult(check.exercise_id, check.title, "error", message, check.points)
        grade.exercises.append({"id": result.id, "title": result.title, "status": result.status, "message": result.message})
        grade.score += result.score
        grade.max_score += check.points
    return grade


def format_table(grade: NotebookGrade) -> str:
    """A plain-text score table for one notebook."""
    lines = [f"{grade.notebook}: {grade.score}/{grade.max_score}"]
    for e in grade.exercises:
        lines.append(f"  {e['id']:<6} {e['status']:<14} {e['title']}")
        if e["status"] != "passed":
            lines.append(f"         {e['message']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grade", description="Grade exercise notebooks headless.")
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks to grade")
    parser.add_argument("--json", action="store_true", help="print one JSON record per notebook instead of a table")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each cell may run (default 120)")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "laptop", "gpu"], help="course profile (default smoke)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")

    all_passed = True
    for path in args.notebooks:
        grade = grade_notebook(path, timeout=args.timeout, profile=args.profile)
        all_passed &= grade.all_passed
        print(json.dumps(asdict(grade)) if args.json else format_table(grade), flush=True)
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
