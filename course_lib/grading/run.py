"""Grade one submission: run its notebook in a sandbox, then run the lesson's checks here against it.

``grade_submission`` is what one grader worker does for one notebook:

1. read the notebook (never trusting its outputs) and find the lesson's checks;
2. read its code (``static.NotebookCode``): which graded answers call what they may not;
3. run every code cell in a fresh kernel inside a ``Sandbox`` (cells that crash the kernel or
   ignore an interrupt are skipped, and the kernel restarted with the cells before them);
4. start the agent in the kernel and, for each exercise, run the check in this process with
   stand-ins for the learner's functions (``remote.Session``), on seeds drawn for this run;
5. stop every process of the submission and delete its folder.

``python -m course_lib.grading.run`` reads one job as JSON on stdin and prints its record as JSON:
the grader's CLI starts one such worker per notebook, so that a submission that makes the checks
slow or the worker crash affects only its own record.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import pickle
import re
import secrets
import sys
import time
from pathlib import Path

import nbformat

import course_lib
from course_lib.checks import CheckResult, hidden_seeds
from course_lib.grading import agent as agent_module
from course_lib.grading.remote import KernelDied, NoReply, RemoteTimeout, Session
from course_lib.grading.processes import become_subreaper
from course_lib.grading.sandbox import Limits, Sandbox
from course_lib.grading.static import NotebookCode

GRADER_VERSION = f"course_lib {course_lib.__version__} grader 2"
LESSON_IMPORT = re.compile(r"course_lib\.checks\.(lesson\d\d)\b|from course_lib\.checks import (lesson\d\d)\b")
MAX_NOTEBOOK_BYTES = 64 << 20


def checks_module(nb: nbformat.NotebookNode, lesson: str | None = None):
    """The ``course_lib.checks.lessonNN`` module a notebook is graded with (``lesson`` overrides the notebook)."""
    name = f"course_lib.checks.lesson{lesson}" if lesson else nb.metadata.get("course", {}).get("checks")
    if not name:
        for cell in nb.cells:
            m = LESSON_IMPORT.search(cell.source) if cell.cell_type == "code" else None
            if m:
                name = f"course_lib.checks.{m[1] or m[2]}"
                break
    if not name or not re.fullmatch(r"course_lib\.checks\.lesson\d\d", str(name)):
        raise ValueError("this notebook names no lesson's checks (no course_lib.checks.lessonNN); pass --lesson NN")
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ValueError(f"there are no checks called {name}") from None


def learner_names(check) -> list[str]:
    """The names of the learner's objects a check takes (its parameters, as in the notebook's check cell)."""
    return list(inspect.signature(check).parameters)


class Grader:
    """The agent's client for one sandbox: requests go in as base64 pickles, replies come back as data."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box

    def install(self) -> bool:
        source = Path(agent_module.__file__).read_text(encoding="utf-8")
        boot = (
            "def __course_grader_boot__(source):\n"
            "    namespace = {'__name__': 'course_grader_agent'}\n"
            "    exec(compile(source, '<course grader agent>', 'exec'), namespace)\n"
            "    return namespace['Agent'](get_ipython().user_ns)\n"
            f"__course_grader__ = __course_grader_boot__({source!r})\n"
            "del __course_grader_boot__\n"
        )
        return self.box.execute(boot, seconds=60).status == "ok"

    def rpc(self, request: dict) -> tuple[dict, dict]:
        payload = base64.b64encode(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")
        run = self.box.call_agent(payload, self.box.limits.cell_seconds)
        if run.status == "timeout":
            raise RemoteTimeout()
        if run.status == "died" or not self.box.alive():
            raise KernelDied(run.error)
        if run.status in ("output_limit", "disk_limit"):
            raise RemoteTimeout(run.status)
        try:
            return self.box.read_reply(run)
        except (ValueError, SyntaxError, OSError) as err:
            raise NoReply(run.error or str(err)) from None


def _record(path: Path) -> dict:
    return {"notebook": str(path), "lesson": None, "score": 0, "max_score": 0, "exercises": [],
            "grader_version": GRADER_VERSION, "seed": None, "seconds": 0.0, "notes": []}


def _entry(result: CheckResult, seconds: float) -> dict:
    return {"id": result.id, "title": result.title, "status": result.status, "message": result.message,
            "points": result.score, "max_points": result.points, "seconds": round(seconds, 3)}


def run_cells(box: Sandbox, sources: list[str], record: dict) -> None:
    """Run every cell once; a cell that kills the kernel or ignores an interrupt is skipped on a restart."""
    done: list[int] = []
    skipped: set[int] = set()
    restarts = 0
    i = 0
    while i < len(sources):
        if box.remaining() <= 0:
            record["notes"].append(f"the notebook's time limit ({box.limits.notebook_seconds:g} s) ran out at cell {i + 1}")
            return
        run = box.execute(sources[i])
        if run.status in ("timeout", "output_limit", "disk_limit"):
            reason = {"timeout": f"ran longer than {box.limits.cell_seconds:g} s",
                      "output_limit": f"printed more than {box.limits.output_bytes >> 20} MB",
                      "disk_limit": f"wrote more than {box.limits.disk_bytes >> 20} MB to disk (its files were deleted)"}[run.status]
            record["notes"].append(f"cell {i + 1} {reason} and was stopped")
        if box.alive():
            box.reap_strays()
            done.append(i)
            i += 1
            continue
        record["notes"].append(f"cell {i + 1} ended the kernel ({run.error or 'it crashed or exited'}); it was skipped")
        skipped.add(i)
        restarts += 1
        if restarts > 3:
            record["notes"].append("the kernel was restarted 3 times; the rest of the notebook did not run")
            return
        box.start()
        for j in done:
            if box.execute(sources[j]).status == "died":
                break
        i += 1


def grade_submission(path: str | Path, limits: Limits | None = None, profile: str = "smoke", lesson: str | None = None,
                     uid: int | None = None, seed: int | None = None) -> dict:
    """Grade one notebook and return its record (a dict ready for JSON).

    Args:
        path: the submitted notebook.
        limits: time, memory, output and disk limits of the submission.
        profile: the course profile the notebook runs with.
        lesson: "NN" to grade with lesson NN's checks whatever the notebook says.
        uid: the user id the kernel runs as (the grader must be root), or None.
        seed: the offset of the hidden cases; drawn at random when None.
    """
    start = time.monotonic()
    path = Path(path)
    limits = limits or Limits()
    record = _record(path)
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            raise ValueError(f"the file is larger than {MAX_NOTEBOOK_BYTES >> 20} MB")
        nb = nbformat.read(path, as_version=4)
        module = checks_module(nb, lesson)
    except Exception as err:  # noqa: BLE001 - unreadable file, not a notebook, no checks
        record["exercises"].append({"id": "-", "title": "notebook", "status": "error", "message": f"could not grade {path}: {err}",
                                    "points": 0, "max_points": 0, "seconds": 0.0})
        return record
    record["lesson"] = module.__name__.rsplit("lesson", 1)[-1]
    record["seed"] = offset = secrets.randbelow(1 << 20) + 1 if seed is None else int(seed)
    record["max_score"] = sum(check.points for check in module.EXERCISES)
    sources = [cell.source for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    code = NotebookCode.read(sources)

    with Sandbox(path, limits, uid=uid, env={"COURSE_PROFILE": profile, "COURSE_HEADLESS": "1"}) as box:
        try:
            box.start()
        except RuntimeError as err:
            record["notes"].append(str(err))
        else:
            run_cells(box, sources, record)
        grader = Grader(box)
        ready = box.alive() and grader.install()
        for check in module.EXERCISES:
            t0 = time.monotonic()
            result = grade_exercise(check, grader, code, offset) if ready else CheckResult(
                check.exercise_id, check.title, "error", "the notebook's kernel was not running, so nothing could be checked.",
                check.points)
            record["exercises"].append(_entry(result, time.monotonic() - t0))
            if not box.alive():
                ready = _restart(box, sources, grader, record)
    record["score"] = sum(e["points"] for e in record["exercises"])
    record["seconds"] = round(time.monotonic() - start, 2)
    return record


def _restart(box: Sandbox, sources: list[str], grader: Grader, record: dict) -> bool:
    """After an answer crashed the kernel: a fresh kernel with the notebook run again, for the next exercises."""
    if box.remaining() <= 0:
        return False
    try:
        box.start()
    except RuntimeError:
        return False
    run_cells(box, sources, record)
    return box.alive() and grader.install()


def grade_exercise(check, grader: Grader, code: NotebookCode, offset: int) -> CheckResult:
    """Run one check here, against the learner's functions in the kernel, on the hidden cases."""
    names = learner_names(check)
    fail = lambda status, message: CheckResult(check.exercise_id, check.title, status, message, check.points)  # noqa: E731
    if code.tampering:
        return fail("failed", f"the notebook uses {', '.join(code.tampering)}, which graded notebooks may not touch "
                              "(the grader watches which functions your answers call).")
    reason = code.forbidden_use(names, check.forbid)
    if reason:
        return fail("failed", reason)
    session = Session(grader.rpc, check.forbid)
    try:
        learner = []
        for name in names:
            try:
                learner.append(session.lookup(name))
            except KeyError:
                return fail("error", f"{name} is not defined in the notebook: run the cell that defines it, and do not "
                                     "rename or delete it.")
        with hidden_seeds(offset):
            return check(*learner)
    except RemoteTimeout as err:
        what = {"output_limit": "printed too much output", "disk_limit": "wrote too much to disk"}.get(
            str(err), f"ran longer than {grader.box.limits.cell_seconds:g} s (an infinite loop, or far too much work?)")
        return fail("failed", f"your code {what} and was stopped.")
    except KernelDied:
        return fail("failed", "your code ended the kernel (a crash, os._exit, or too much memory) while it was checked.")
    except NoReply as err:
        return fail("error", f"the notebook's kernel could not run the check ({err}); did a cell change Python itself?")
    finally:
        if grader.box.alive():
            try:
                session.release()
            except BaseException:  # noqa: BLE001 - the kernel may be busy or gone; the next exercise will tell
                pass


def main() -> int:
    """One worker: a job as JSON on stdin, its record as JSON on stdout."""
    job = json.loads(sys.stdin.read())
    become_subreaper()
    import torch

    torch.set_num_threads(max(1, int(job.get("threads", 1))))
    limits = Limits(**job.get("limits", {}))
    record = grade_submission(job["notebook"], limits, job.get("profile", "smoke"), job.get("lesson"),
                              job.get("uid"), job.get("seed"))
    sys.stdout.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
