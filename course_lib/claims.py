"""Numbers in prose that come from the code: record them where they are computed, mark them where they are stated.

A lesson states what its own run measured ("the toy GAN covers 8/8 modes after 4,000 steps"). So that
the prose never drifts from the outputs, such a number is **recorded** by the code cell that computes
it and **marked** in the markdown that states it:

- a code cell calls ``record(modes=covered, steps=4000)``: the values travel with the executed
  notebook as an output of MIME type ``MIME`` (it shows as nothing);
- the markdown writes the number followed by an HTML comment naming it, invisible when rendered:
  ``covers 8<!--c:modes-->/8 modes after 4,000<!--c:steps--> steps``. A name ending in ``%`` states
  the value times 100 (``97.3<!--c:accuracy%-->%`` for ``accuracy = 0.973``); the README names a
  lesson's value as ``NN:name`` (``84.6<!--c:02:fd-->``).

The written number sets the format: its decimals and its thousands separators. ``check`` compares
every mark with the recorded value formatted that way; ``render`` rewrites the marked numbers from
the recorded values (after a re-run, ``python -m course_lib.claims render notebooks/*.ipynb
README.md`` updates the prose, and the diff shows what changed). The test suite runs ``check`` on
every lesson and the README, so a re-run that changes a stated number fails until the prose follows.

Usage::

    python -m course_lib.claims check notebooks/*.ipynb README.md
    python -m course_lib.claims render notebooks/*.ipynb README.md
    python -m course_lib.claims show notebooks/02_dcgan.ipynb      # the recorded values
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIME = "application/vnd.course-lib.claims+json"
MARK = re.compile(r"(?P<number>-?\d[\d,]*(?:\.\d+)?|-?\.\d+)"
                  r"(?P<mark><!--c:(?P<name>(?:(?:\d\d|ck\.\w+):)?[A-Za-z_]\w*%?)-->)")


class ClaimError(ValueError):
    """A marked number has no recorded value, or states another value than the one recorded."""


def record(**values: Any) -> None:
    """Record values of this run for the prose to state (a notebook output that displays nothing).

    Args:
        **values: numbers (or short strings) by name; names are unique within a notebook.
    """
    clean = {}
    for name, value in values.items():
        if hasattr(value, "item") and callable(value.item):  # a 0-d tensor or a NumPy scalar
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
            raise TypeError(f"record({name}=...) takes a number or a string, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"record({name}=...) got {value}; a claim must be a finite number")
        clean[name] = value
    try:
        from IPython.display import display
    except ImportError:  # not in a notebook: nothing to attach the values to
        return
    display({MIME: clean, "text/plain": ""}, raw=True)


def recorded(nb: dict) -> dict[str, Any]:
    """Every value a notebook's outputs recorded (later records of a name win)."""
    values: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = out.get("data", {}).get(MIME)
            if isinstance(data, dict):
                values.update(data)
    return values


def _style(written: str) -> tuple[int, bool]:
    """Decimals and thousands separators of a written number."""
    decimals = len(written.split(".", 1)[1]) if "." in written else 0
    return decimals, "," in written


def formatted(value: Any, written: str, percent: bool = False) -> str:
    """``value`` written like ``written`` (same decimals, same thousands separators)."""
    if isinstance(value, str):
        return value
    decimals, commas = _style(written)
    value = value * 100 if percent else value
    text = f"{value:{',' if commas else ''}.{decimals}f}"
    return "0" + text[1:] if text.startswith("-0") and float(text) == 0 else text


@dataclass
class Mark:
    """One marked number in a text."""

    name: str
    written: str
    start: int
    end: int


def marks(text: str) -> list[Mark]:
    return [Mark(m["name"], m["number"], m.start("number"), m.end("number")) for m in MARK.finditer(text)]


def _lookup(name: str, values: dict[str, Any], lesson_values: dict[str, dict[str, Any]] | None) -> tuple[Any, bool]:
    percent = name.endswith("%")
    key = name.rstrip("%")
    if ":" in key:
        lesson, key = key.split(":", 1)
        values = (lesson_values or {}).get(lesson, {})
    if key not in values:
        raise KeyError(key)
    return values[key], percent


def check_text(text: str, values: dict[str, Any], where: str,
               lesson_values: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Problems of the marked numbers in ``text``: unknown names and numbers that differ from the record."""
    problems = []
    for mark in marks(text):
        try:
            value, percent = _lookup(mark.name, values, lesson_values)
        except KeyError:
            problems.append(f"{where}: {mark.written} is marked {mark.name!r}, which no cell records")
            continue
        want = formatted(value, mark.written, percent)
        if want != mark.written:
            problems.append(f"{where}: states {mark.written} for {mark.name!r}, the run recorded {want}")
    return problems


def render_text(text: str, values: dict[str, Any], lesson_values: dict[str, dict[str, Any]] | None = None) -> str:
    """``text`` with every marked number rewritten from the recorded values (unknown names left alone)."""
    out, last = [], 0
    for mark in marks(text):
        try:
            value, percent = _lookup(mark.name, values, lesson_values)
        except KeyError:
            continue
        out.append(text[last:mark.start])
        out.append(formatted(value, mark.written, percent))
        last = mark.end
    out.append(text[last:])
    return "".join(out)


def _read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def checkpoint_values(folder: Path) -> dict[str, dict[str, Any]]:
    """Measured metrics of every shipped checkpoint in ``folder``, by ``ck.<name>``.

    Each is the checkpoint's ``metrics.json`` plus ``train_minutes`` and, where it holds an FD measured on
    ``eval_samples`` samples, ``fd_ratio`` (and ``raw_fd_ratio``): the FD over the real-vs-real floor at that
    sample size.
    """
    values: dict[str, dict[str, Any]] = {}
    for metrics_path in sorted(folder.glob("*/metrics.json")):
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        if "train_seconds" in metrics:
            metrics["train_minutes"] = metrics["train_seconds"] / 60
        if "fd" in metrics and "eval_samples" in metrics:
            # here, not at the top: the floors live in the reference statistics, read with torch (seconds)
            from course_lib.evaluate import reference_floors

            floors = reference_floors()
            floor = floors[min(floors, key=lambda size: abs(size - metrics["eval_samples"]))]["fd"][0]
            for key in ("fd", "raw_fd"):  # G_ema's and, for the StyleGANs, the raw G's
                if key in metrics:
                    metrics[f"{key}_ratio"] = metrics[key] / floor
        values[f"ck.{metrics_path.parent.name}"] = metrics
    return values


def _lesson_values(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Recorded values of every lesson notebook next to the given files, by lesson number, and, for a
    markdown file, the metrics of the shipped checkpoints in its folder's ``checkpoints/`` (see ``checkpoint_values``)."""
    lessons: dict[str, dict[str, Any]] = {}
    folders = {p.parent for p in paths if p.suffix == ".ipynb"} | {p.parent / "notebooks" for p in paths if p.suffix == ".md"}
    for folder in folders:
        for nb_path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
            lessons.setdefault(nb_path.name[:2], recorded(_read_notebook(nb_path)))
    for path in paths:  # only where a mark names a checkpoint: the FD floors take seconds to read
        if path.suffix == ".md" and "<!--c:ck." in path.read_text(encoding="utf-8"):
            lessons.update(checkpoint_values(path.parent / "checkpoints"))
    return lessons


def check_file(path: Path, lesson_values: dict[str, dict[str, Any]]) -> list[str]:
    """Problems of the marked numbers of a notebook's markdown cells or of a markdown file."""
    if path.suffix == ".ipynb":
        nb = _read_notebook(path)
        values = recorded(nb)
        problems = []
        for i, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") == "markdown":
                problems += check_text("".join(cell.get("source", "")), values, f"{path} cell {i}", lesson_values)
        return problems
    return check_text(path.read_text(encoding="utf-8"), {}, str(path), lesson_values)


def render_file(path: Path, lesson_values: dict[str, dict[str, Any]]) -> bool:
    """Rewrite the marked numbers of a notebook or markdown file; True when something changed."""
    from course_lib.checkpoint import atomic_write  # here, not at the top: it imports torch (seconds)

    if path.suffix == ".ipynb":
        nb = _read_notebook(path)
        values, changed = recorded(nb), False
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "markdown":
                source = "".join(cell.get("source", ""))
                new = render_text(source, values, lesson_values)
                if new != source:
                    cell["source"], changed = new, True
        if changed:
            import nbformat

            text = nbformat.writes(nbformat.from_dict(nb)) + "\n"
            atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return changed
    text = path.read_text(encoding="utf-8")
    new = render_text(text, {}, lesson_values)
    if new != text:
        atomic_write(path, lambda tmp: tmp.write_text(new, encoding="utf-8"))
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.claims", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["check", "render", "show"])
    parser.add_argument("files", nargs="+", type=Path, help="notebooks (.ipynb) and markdown files")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    lessons = _lesson_values(args.files)
    if args.command == "show":
        for path in args.files:
            if path.suffix == ".ipynb":
                print(json.dumps({str(path): recorded(_read_notebook(path))}, indent=1))
        return 0
    if args.command == "render":
        for path in args.files:
            if render_file(path, lessons):
                print(f"updated {path}", file=sys.stderr)
        lessons = _lesson_values(args.files)
    problems = [p for path in args.files for p in check_file(path, lessons)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
