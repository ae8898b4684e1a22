"""Notebook structure and papermill runs of every lesson in the smoke profile.

(nbval runs the lesson and solution notebooks too: `make test` passes `--nbval-lax notebooks solutions`.)
"""

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
ALL = LESSONS + SOLUTIONS


def test_every_lesson_has_a_solution_and_an_exercise_notebook():
    assert LESSONS, "no lesson notebooks found"
    for lesson in LESSONS:
        assert (ROOT / "solutions" / lesson.name).exists(), f"no solutions/{lesson.name}"
        assert (ROOT / "exercises" / lesson.name).exists(), f"no exercises/{lesson.name}"


@pytest.mark.parametrize("path", ALL, ids=[f"{p.parent.name}/{p.name}" for p in ALL])
def test_notebook_layout_follows_the_style_guide(path):
    nb = nbformat.read(path, as_version=4)
    first, second, third = nb.cells[:3]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "Learning objectives" in first.source and "Time budget" in first.source
    assert second.cell_type == "code" and "import" in second.source
    assert third.cell_type == "code" and "parameters" in third.metadata.get("tags", [])
    assert 'PROFILE = "auto"' in third.source
    assert "Summary" in nb.cells[-1].source or "Summary" in nb.cells[-2].source


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_solution_notebooks_name_their_checks(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["course"]["checks"].startswith("course_lib.checks.lesson")
    sources = "\n".join(c.source for c in nb.cells)
    assert "# BEGIN SOLUTION" in sources


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_committed_solution_and_lesson_notebooks_have_outputs(path):
    for nb_path in (path, ROOT / "notebooks" / path.name):
        nb = nbformat.read(nb_path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert sum(bool(c.outputs) for c in code) >= len(code) // 2, f"{nb_path} looks unexecuted"


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_runs_under_papermill_with_the_smoke_profile(path, tmp_path):
    import papermill as pm

    out = tmp_path / path.name
    pm.execute_notebook(str(path), str(out), parameters={"PROFILE": "smoke"}, cwd=str(path.parent),
                        kernel_name="python3", progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'PROFILE = "smoke"' in injected[0].source
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
