"""Generate exercise notebooks from solution notebooks, and check that they are in sync.

``solutions/NN_*.ipynb`` is the single source. In a code cell, the lines between ``# BEGIN SOLUTION``
and ``# END SOLUTION`` become one line, indented like the marker, that raises
``NotImplementedError`` naming the exercise (the enclosing ``def``/``class``, or a name written
after the marker: ``# BEGIN SOLUTION my_name``). In a markdown cell, text between
``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` becomes "*Your answer here.*". Outputs,
execution counts and execution metadata are stripped.

Usage::

    python -m course_lib.exercises build   # solutions/ -> exercises/
    python -m course_lib.exercises check   # exit 1 if exercises/ differs from what build would write
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

CODE_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:[ \t]+(?P<name>[\w.]+))?[ \t]*$")
CODE_END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
MD_BEGIN = "<!-- BEGIN SOLUTION -->"
MD_END = "<!-- END SOLUTION -->"
DEF_LINE = re.compile(r"^(?P<indent>[ \t]*)(?:async[ \t]+)?(?:def|class)[ \t]+(?P<name>\w+)")
MD_STUB = "*Your answer here.*"


class ExerciseFormatError(ValueError):
    """A solution notebook's markers are malformed."""


def _enclosing_name(lines: list[str], index: int, indent: str) -> str | None:
    """Name of the innermost def/class above ``lines[index]`` that encloses an ``indent``-deep line."""
    depth = len(indent.expandtabs(4))
    for line in reversed(lines[:index]):
        m = DEF_LINE.match(line)
        if m and len(m["indent"].expandtabs(4)) < depth:
            return m["name"]
    return None


def strip_code(source: str, where: str) -> str:
    """Replace every solution region of a code cell's source with a ``NotImplementedError`` stub."""
    lines = source.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        begin = CODE_BEGIN.match(lines[i])
        if CODE_END.match(lines[i]):
            raise ExerciseFormatError(f"{where}: '# END SOLUTION' on line {i + 1} has no matching BEGIN")
        if not begin:
            out.append(lines[i])
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if CODE_END.match(lines[j]) or CODE_BEGIN.match(lines[j])), None)
        if end is None or CODE_BEGIN.match(lines[end]):
            raise ExerciseFormatError(f"{where}: '# BEGIN SOLUTION' on line {i + 1} has no matching '# END SOLUTION'")
        name = begin["name"] or _enclosing_name(lines, i, begin["indent"]) or "this exercise"
        out.append(f'{begin["indent"]}raise NotImplementedError("Exercise {name}: replace this line with your code")')
        i = end + 1
    return "\n".join(out)


def strip_markdown(source: str, where: str) -> str:
    """Replace every answer region of a markdown cell with an invitation to answer."""
    if source.count(MD_BEGIN) != source.count(MD_END):
        raise ExerciseFormatError(f"{where}: unbalanced {MD_BEGIN} / {MD_END}")
    pattern = re.compile(re.escape(MD_BEGIN) + r".*?" + re.escape(MD_END), re.DOTALL)
    return pattern.sub(MD_STUB, source)


def make_exercise(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Return the exercise version of a solution notebook (the input is not modified)."""
    nb = nbformat.from_dict(solution)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        for key in ("execution", "papermill", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.source = strip_code(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = strip_markdown(cell.source, where)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    """The exact text a notebook is written as (one format everywhere, so drift checks are exact)."""
    return nbformat.writes(nb) + "\n"


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a solution notebook; a file that is not a valid notebook raises ``ExerciseFormatError``."""
    try:
        return nbformat.read(path, as_version=4)
    except (ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError) as err:  # NotJSONError is a ValueError
        reason = " ".join(str(err).split())
        reason = reason if len(reason) <= 120 else reason[:120] + " ..."
        raise ExerciseFormatError(f"{path} is not a valid notebook ({type(err).__name__}: {reason}); "
                                  "restore it from git, or save it again from Jupyter") from err


def build(solutions_dir: Path, exercises_dir: Path, write: bool) -> list[str]:
    """Generate every exercise notebook; return a list of problems (drift when ``write`` is False)."""
    problems = []
    solutions = sorted(solutions_dir.glob("*.ipynb"))
    if not solutions:
        return [f"no solution notebooks in {solutions_dir}"]
    expected = set()
    for path in solutions:
        target = exercises_dir / path.name
        expected.add(target.name)
        text = render(make_exercise(read_notebook(path), name=str(path)))
        if write:
            exercises_dir.mkdir(parents=True, exist_ok=True)
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
                print(f"wrote {target}", file=sys.stderr)
        elif not target.exists():
            problems.append(f"{target} is missing (run: python -m course_lib.exercises build)")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{target} differs from what {path} generates (run: python -m course_lib.exercises build)")
    for stray in sorted(exercises_dir.glob("*.ipynb")):
        if stray.name not in expected:
            problems.append(f"{stray} has no solution notebook in {solutions_dir}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.exercises", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "check"], help="build: write exercises/; check: fail on drift")
    parser.add_argument("--solutions", type=Path, default=Path("solutions"), help="solution notebooks (default: solutions)")
    parser.add_argument("--exercises", type=Path, default=Path("exercises"), help="exercise notebooks (default: exercises)")
    args = parser.parse_args(argv)
    try:
        problems = build(args.solutions, args.exercises, write=args.command == "build")
    except ExerciseFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. a read-only exercises folder
        from course_lib.checkpoint import describe_os_error  # here, not at the top: it imports torch (seconds)

        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and args.command == "check":
        print(f"exercises are in sync with {args.solutions}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
