"""The exercise generator: solution regions become stubs, outputs go, drift is detected."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_lib.exercises import ExerciseFormatError, build, main, make_exercise, strip_code, strip_markdown

SOLVED = '''def d_loss(real, fake):
    """Docstring stays."""
    # BEGIN SOLUTION
    total = real + fake
    return total
    # END SOLUTION


class Block:
    def forward(self, x):
        if x:
            # BEGIN SOLUTION
            return x
            # END SOLUTION
        return 0'''


def test_code_regions_become_stubs_named_after_the_enclosing_def():
    out = strip_code(SOLVED, "cell")
    assert 'raise NotImplementedError("Exercise d_loss: replace this line with your code")' in out
    assert '            raise NotImplementedError("Exercise forward:' in out  # indentation of the marker kept
    assert "total = real + fake" not in out and "return x" not in out
    assert '"""Docstring stays."""' in out and "return 0" in out
    compile(out, "stub", "exec")  # still valid Python
    namespace = {}
    exec(out, namespace)
    with pytest.raises(NotImplementedError, match="d_loss"):
        namespace["d_loss"](1, 2)


def test_explicit_name_and_top_level_regions():
    out = strip_code("# BEGIN SOLUTION answer_1\nx = 3\n# END SOLUTION\nprint(x)", "cell")
    assert out.startswith('raise NotImplementedError("Exercise answer_1:')


@pytest.mark.parametrize("source", ["# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION", "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION"])
def test_unbalanced_markers_are_errors(source):
    with pytest.raises(ExerciseFormatError, match="cell 3"):
        strip_code(source, "cell 3")


def test_markdown_answers_are_hidden():
    out = strip_markdown("Why?\n<!-- BEGIN SOLUTION -->\nBecause log 0.\n<!-- END SOLUTION -->\nNext.", "md")
    assert out == "Why?\n*Your answer here.*\nNext."
    with pytest.raises(ExerciseFormatError):
        strip_markdown("<!-- BEGIN SOLUTION --> no end", "md")


def solution_notebook():
    code = new_code_cell(SOLVED, execution_count=3, outputs=[new_output("stream", name="stdout", text="hi\n")])
    code.metadata["execution"] = {"iopub.status.busy": "2026-11-22"}
    return new_notebook(cells=[new_markdown_cell("# Title"), code], metadata={"papermill": {"x": 1}})


def test_make_exercise_strips_outputs_and_execution_metadata():
    nb = solution_notebook()
    ex = make_exercise(nb)
    cell = ex.cells[1]
    assert cell.outputs == [] and cell.execution_count is None and "execution" not in cell.metadata
    assert "papermill" not in ex.metadata
    assert nb.cells[1].outputs, "the solution notebook itself is not modified"


def test_build_then_check_and_drift_detection(tmp_path, capsys):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    nbformat.write(solution_notebook(), sol / "01_demo.ipynb")
    args = ["--solutions", str(sol), "--exercises", str(ex)]
    assert main(["check", *args]) == 1  # missing
    assert main(["build", *args]) == 0
    assert main(["check", *args]) == 0
    assert build(sol, ex, write=True) == []  # idempotent
    (ex / "01_demo.ipynb").write_text((ex / "01_demo.ipynb").read_text().replace("Title", "Edited by hand"))
    assert main(["check", *args]) == 1
    assert "differs" in capsys.readouterr().err
    main(["build", *args])
    (ex / "99_orphan.ipynb").write_text((ex / "01_demo.ipynb").read_text())
    assert main(["check", *args]) == 1
    assert "no solution notebook" in capsys.readouterr().err
