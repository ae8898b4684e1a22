"""The grader: full marks for solutions, zero for untouched exercises, and learners' accidents
(infinite loops, exceptions, deleted names, broken files) recorded as failures, never a crash."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.grade import grade_notebook, main

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def statuses(grade):
    return {e["id"]: e["status"] for e in grade.exercises}


def fill(exercise_path: Path, out_path: Path, answers: dict[str, str], extra_cells: list[str] = ()) -> Path:
    """Write a copy of an exercise notebook with some stubs replaced by the given code."""
    nb = nbformat.read(exercise_path, as_version=4)
    for cell in nb.cells:
        for name, body in answers.items():
            stub = f'raise NotImplementedError("Exercise {name}: replace this line with your code")'
            if stub in cell.source:
                indent = cell.source.split(stub)[0].split("\n")[-1]
                cell.source = cell.source.replace(stub, body.replace("\n", "\n" + indent))
    for src in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(src))
    nbformat.write(nb, out_path)
    return out_path


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_solutions_score_full_marks(solution):
    grade = grade_notebook(solution, timeout=300)
    assert grade.max_score >= 3
    assert grade.score == grade.max_score, grade.exercises


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_unfilled_exercises_score_zero_and_are_not_attempted(solution):
    grade = grade_notebook(ROOT / "exercises" / solution.name, timeout=300)
    assert grade.score == 0 and grade.max_score > 0
    assert set(statuses(grade).values()) == {"not_attempted"}, grade.exercises


def test_infinite_loop_exception_and_deleted_name_become_recorded_failures(tmp_path):
    nb = fill(
        ROOT / "exercises" / "00_setup_and_tour.ipynb",
        tmp_path / "accidents.ipynb",
        {
            "to_model_range": "while True:\n    pass",
            "to_pixels": "raise ValueError('I give up')",
            "training_step": "return 0.0",
        },
    )
    # delete training_step right before its check cell runs
    book = nbformat.read(nb, as_version=4)
    index = next(i for i, c in enumerate(book.cells) if "check_training_step(" in c.source)
    book.cells.insert(index, nbformat.v4.new_code_cell("del training_step"))
    nbformat.write(book, nb)

    grade = grade_notebook(nb, timeout=8)
    by_id = {e["id"]: e for e in grade.exercises}
    assert grade.score == 0
    assert by_id["00.1"]["status"] == "error" and "time limit" in by_id["00.1"]["message"]
    assert by_id["00.2"]["status"] == "failed" and "ValueError: I give up" in by_id["00.2"]["message"]
    assert by_id["00.3"]["status"] == "error" and "NameError" in by_id["00.3"]["message"]


def test_json_records_and_exit_status(tmp_path, capsys):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ this is not json")
    code = main([str(broken), "--json"])
    record = json.loads(capsys.readouterr().out.strip())
    assert code == 1
    assert set(record) == {"notebook", "score", "max_score", "exercises"}
    assert record["exercises"][0]["status"] == "error" and "could not grade" in record["exercises"][0]["message"]


def test_cli_runs_as_a_module_and_prints_one_json_record_per_notebook():
    nb = ROOT / "solutions" / "00_setup_and_tour.ipynb"
    out = subprocess.run([sys.executable, "-m", "course_lib.grade", str(nb), str(nb), "--json", "--timeout", "120"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 2 and all(r["score"] == r["max_score"] == 3 for r in records)
    for e in records[0]["exercises"]:
        assert set(e) == {"id", "title", "status", "message"}


def test_a_classic_mistake_reaches_the_json_record_with_its_message(tmp_path, capsys):
    nb = fill(
        ROOT / "exercises" / "01_gan_math.ipynb",
        tmp_path / "mistake.ipynb",
        {"g_loss": "return torch.log(1 - torch.sigmoid(fake_logits)).mean()"},
    )
    assert main([str(nb), "--json", "--timeout", "120"]) == 1
    record = json.loads(capsys.readouterr().out)
    by_id = {e["id"]: e for e in record["exercises"]}
    assert record["score"] == 0 and record["max_score"] == 6
    assert by_id["01.2"]["status"] == "failed" and "saturating loss" in by_id["01.2"]["message"]
    assert by_id["01.1"]["status"] == "not_attempted"
