"""Numbers in prose checked against the values the code recorded (course_lib.claims)."""

import json
from pathlib import Path

import nbformat
import pytest

from course_lib import claims
from course_lib.evaluate import reference_floors

ROOT = Path(__file__).resolve().parents[1]


def notebook(path: Path, values: dict, markdown: str) -> Path:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("claims.record(...)")
    code.outputs = [nbformat.v4.new_output("display_data", data={claims.MIME: values, "text/plain": ""})]
    nb.cells = [code, nbformat.v4.new_markdown_cell(markdown)]
    nbformat.write(nb, path)
    return path


def test_marked_numbers_that_match_their_record_pass(tmp_path):
    nb = notebook(tmp_path / "02_x.ipynb", {"fd": 84.6123, "steps": 3028, "accuracy": 0.9734, "modes": 8},
                  "FD 84.6<!--c:fd--> after 3,028<!--c:steps--> steps, 97.3<!--c:accuracy%-->% as labelled, "
                  "8<!--c:modes-->/8 modes. A paper's 27.9 is not marked.")
    assert claims.check_file(nb, {}) == []


@pytest.mark.parametrize("markdown, problem", [
    ("FD 84.7<!--c:fd-->", "states 84.7 for 'fd', the run recorded 84.6"),
    ("FD 84<!--c:fd-->", "states 84 for 'fd', the run recorded 85"),       # the written decimals set the rounding
    ("3028<!--c:steps--> steps", None),
    ("3,029<!--c:steps--> steps", "recorded 3,028"),
    ("FD 84.6<!--c:fid-->", "'fid', which no cell records"),
])
def test_a_number_that_differs_or_has_no_record_is_reported(markdown, problem, tmp_path):
    nb = notebook(tmp_path / "02_x.ipynb", {"fd": 84.6123, "steps": 3028}, markdown)
    problems = claims.check_file(nb, {})
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_render_rewrites_the_marked_numbers_from_the_record(tmp_path):
    nb = notebook(tmp_path / "02_x.ipynb", {"fd": 71.04, "steps": 12345, "share": 0.5},
                  "FD 84.6<!--c:fd--> after 3,028<!--c:steps--> steps; 12.25<!--c:share%-->%; 7<!--c:other-->")
    assert claims.render_file(nb, {})
    text = nbformat.read(nb, as_version=4).cells[1].source
    assert text == "FD 71.0<!--c:fd--> after 12,345<!--c:steps--> steps; 50.00<!--c:share%-->%; 7<!--c:other-->"
    assert claims.render_file(nb, {}) is False


def test_the_readme_names_a_lessons_value(tmp_path):
    (tmp_path / "notebooks").mkdir()
    notebook(tmp_path / "notebooks" / "02_dcgan.ipynb", {"fd": 84.6}, "FD 84.6<!--c:fd-->")
    readme = tmp_path / "README.md"
    readme.write_text("| 02 | FD 84.6<!--c:02:fd--> | 9.0<!--c:03:fd--> |\n")
    lessons = claims._lesson_values([readme])
    assert claims.check_file(readme, lessons) == [f"{readme}: 9.0 is marked '03:fd', which no cell records"]


def test_record_refuses_what_cannot_be_stated():
    import math
    import torch

    claims.record(x=torch.tensor(1.5), n=3, label="ok")      # tensors and NumPy scalars become numbers
    with pytest.raises(TypeError, match="record\\(m=...\\)"):
        claims.record(m=[1, 2])
    with pytest.raises(ValueError, match="finite"):
        claims.record(f=math.nan)


def test_the_command_line_checks_and_renders(tmp_path, capsys):
    nb = notebook(tmp_path / "02_x.ipynb", {"fd": 84.6}, "FD 80.0<!--c:fd-->")
    assert claims.main(["check", str(nb)]) == 1
    assert "states 80.0" in capsys.readouterr().out
    assert claims.main(["render", str(nb)]) == 0
    assert claims.main(["check", str(nb)]) == 0


def test_every_lesson_and_the_readme_state_only_what_their_runs_recorded():
    files = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + [ROOT / "README.md"]
    lessons = claims._lesson_values(files)
    problems = [p for path in files for p in claims.check_file(path, lessons)]
    assert problems == [], "\n".join(problems)


def test_the_readme_names_a_shipped_checkpoints_metric(tmp_path):
    (tmp_path / "checkpoints" / "dcgan").mkdir(parents=True)
    metrics = {"steps": 8000, "train_seconds": 985.4, "eval_samples": 1000, "fd": 58.208, "precision": 0.7}
    (tmp_path / "checkpoints" / "dcgan" / "metrics.json").write_text(json.dumps(metrics))
    readme = tmp_path / "README.md"
    floor = reference_floors()[1000]["fd"][0]
    readme.write_text(f"| `dcgan` | 8,000<!--c:ck.dcgan:steps--> | 16<!--c:ck.dcgan:train_minutes--> min | "
                      f"58.2<!--c:ck.dcgan:fd--> ({58.208 / floor:.1f}<!--c:ck.dcgan:fd_ratio-->×) | "
                      "0.70<!--c:ck.dcgan:precision--> | 0.9<!--c:ck.dcgan:recall--> |\n")
    lessons = claims._lesson_values([readme])
    assert claims.check_file(readme, lessons) == [f"{readme}: 0.9 is marked 'ck.dcgan:recall', which no cell records"]


def test_every_lesson_states_its_run_through_marks_and_so_does_its_readme_row():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        stated = [m for cell in nb.cells if cell.cell_type == "markdown" for m in claims.marks(cell.source)]
        assert len(stated) >= 2, f"{path.name} marks {len(stated)} numbers of its run"
        row = next(line for line in readme.splitlines() if line.startswith(f"| {path.name[:2]} |") and "<!--c:" in line)
        assert f"<!--c:{path.name[:2]}:" in row
