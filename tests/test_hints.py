"""Progressive hints (course_lib.checks.hints): one to three per exercise, shown in order, never the solution."""

import importlib
import pkgutil
import re
from pathlib import Path

import nbformat
import pytest

import course_lib.checks
from course_lib.checks import hints

ROOT = Path(__file__).resolve().parents[1]
LESSONS = [importlib.import_module(f"course_lib.checks.{m.name}") for m in pkgutil.iter_modules(course_lib.checks.__path__)
           if m.name.startswith("lesson")]


def solution_lines(lesson: str) -> list[str]:
    """The non-trivial lines of the solution regions of a lesson's solution notebook."""
    path = next((ROOT / "solutions").glob(f"{lesson}_*.ipynb"), None)
    if path is None:
        return []
    lines, inside = [], False
    for cell in nbformat.read(path, as_version=4).cells:
        for line in cell.source.splitlines() if cell.cell_type == "code" else []:
            if "# BEGIN SOLUTION" in line:
                inside = True
            elif "# END SOLUTION" in line:
                inside = False
            elif inside:
                code = line.split("#")[0].strip()
                if len(code) >= 16:
                    lines.append(code)
    return lines


@pytest.mark.parametrize("module", LESSONS, ids=[m.__name__.rsplit(".", 1)[-1] for m in LESSONS])
def test_hints_are_one_to_three_per_exercise_and_never_a_line_of_the_solution(module):
    ids = {check.exercise_id for check in module.EXERCISES}
    given = getattr(module, "HINTS", {})
    assert set(given) <= ids, f"hints for unknown exercises: {set(given) - ids}"
    answers = solution_lines(module.__name__[-2:])
    for exercise_id, texts in given.items():
        assert 1 <= len(texts) <= 3 and all(isinstance(t, str) and t.strip() for t in texts), exercise_id
        for text in texts:
            squeezed = re.sub(r"\s+", "", text)
            for line in answers:
                assert re.sub(r"\s+", "", line) not in squeezed, f"a hint of {exercise_id} gives away: {line}"


@pytest.mark.parametrize("module", LESSONS, ids=[m.__name__.rsplit(".", 1)[-1] for m in LESSONS])
def test_every_exercise_has_hints(module):
    ids = {check.exercise_id for check in module.EXERCISES}
    missing = sorted(ids - set(getattr(module, "HINTS", {})))
    assert not missing, f"exercises without hints: {missing}"


@pytest.mark.parametrize("path", sorted((ROOT / "exercises").glob("*.ipynb")), ids=lambda p: p.name[:2])
def test_each_exercise_notebook_says_how_to_reveal_a_hint(path):
    cells = nbformat.read(path, as_version=4).cells
    text = "\n".join(cell.source for cell in cells)
    assert f'hint("{path.name[:2]}.1")' in text, f"{path.name} never mentions hint(\"{path.name[:2]}.1\")"
    assert "from course_lib.checks.hints import hint" in text, f"{path.name} never says where hint comes from"


def test_hints_come_in_order_and_point_to_the_next(capsys):
    module = next(m for m in LESSONS if getattr(m, "HINTS", None))
    exercise_id, texts = next(iter(module.HINTS.items()))
    first = hints.hint_text(exercise_id)
    assert texts[0] in first and (len(texts) == 1 or texts[1] not in first)
    if len(texts) > 1:
        assert f'hint("{exercise_id}", 2)' in first
        assert texts[1] in hints.hint_text(exercise_id, 2)
    assert "last hint" in hints.hint_text(exercise_id, len(texts))
    hints.hint(exercise_id)
    assert texts[0] in capsys.readouterr().out


@pytest.mark.parametrize("bad, words", [("2.1", "look like"), ("99.1", "no lesson 99"), ("00.9", "no hints")])
def test_a_bad_id_is_one_clear_error(bad, words):
    with pytest.raises(ValueError, match=words):
        hints.hints_of(bad)
