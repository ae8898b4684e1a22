"""Progressive hints for the graded exercises: up to three per exercise, never the solution.

Each lesson's checks module may define ``HINTS``, a dict from exercise id to a tuple of one to three
hints, each more specific than the one before, none of them the answer:

    HINTS = {"02.4": ("Normalise first: ...", "The angle is ...", "Where sin(omega) is 0 ...")}

In a notebook, ``hint("02.4")`` shows the first hint, ``hint("02.4", 2)`` the first two, and so on;
the hints shown say how to see the next one. Nothing is remembered between calls.
"""

from __future__ import annotations

import importlib
import re


def hints_of(exercise_id: str) -> tuple[str, ...]:
    """The hints of an exercise ("NN.K"), from ``course_lib.checks.lessonNN.HINTS``.

    Raises:
        ValueError: the id is not of the form "NN.K", or the lesson has no hints for it.
    """
    if not isinstance(exercise_id, str) or not re.fullmatch(r"\d\d\.\d+", exercise_id):
        raise ValueError(f"exercise_id must look like '02.4', got {exercise_id!r}")
    try:
        module = importlib.import_module(f"course_lib.checks.lesson{exercise_id[:2]}")
    except ImportError:
        raise ValueError(f"there is no lesson {exercise_id[:2]}") from None
    hints = getattr(module, "HINTS", {}).get(exercise_id)
    if not hints:
        raise ValueError(f"exercise {exercise_id} has no hints")
    return tuple(hints)


def hint_text(exercise_id: str, level: int = 1) -> str:
    """Markdown of the first ``level`` hints of an exercise, with a pointer to the next one."""
    hints = hints_of(exercise_id)
    if not isinstance(level, int) or isinstance(level, bool) or level < 1:
        raise ValueError(f"level must be an int >= 1, got {level!r}")
    shown = hints[:level]
    lines = [f"**Hint {i + 1} of {len(hints)} for exercise {exercise_id}.** {text}" for i, text in enumerate(shown)]
    if level < len(hints):
        lines.append(f"*Still stuck? `hint(\"{exercise_id}\", {level + 1})` shows the next hint.*")
    else:
        lines.append("*That was the last hint: the check's message after your next try says what is still wrong.*")
    return "\n\n".join(lines)


def hint(exercise_id: str, level: int = 1) -> None:
    """Show the first ``level`` hints of an exercise (Markdown in a notebook, text elsewhere)."""
    text = hint_text(exercise_id, level)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(text))
            return
    except ImportError:
        pass
    print(text)
