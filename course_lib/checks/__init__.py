"""The machinery behind graded checks: results a learner can read, and that the grader can collect.

A lesson's checks live in ``course_lib/checks/lessonNN.py``. Each is a function decorated with
``@exercise(id, title)`` that receives the learner's function, calls it on seeded and edge cases
through ``call``, compares with the reference implementation, and raises ``Mistake`` with a
message in a learner's words when something is off. The decorator turns the outcome into a
``CheckResult``:

- ``passed``: every case agreed with the reference;
- ``failed``: a ``Mistake`` was found, or the learner's code raised an error;
- ``not_attempted``: the learner's code still raises the exercise's ``NotImplementedError`` stub;
- ``error``: the check itself could not run (the grader also uses it for a check cell that
  crashed, timed out or was never reached).

In a notebook the result displays as a coloured box and carries a machine-readable copy under the
MIME type ``MIME``, which the grader reads from the executed notebook.
"""

from __future__ import annotations

import functools
import html
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

MIME = "application/vnd.course-lib.check+json"
STATUSES = ("passed", "failed", "not_attempted", "error")


@dataclass
class CheckResult:
    """The outcome of one graded check."""

    id: str          # exercise id, e.g. "01.1"
    title: str       # what the exercise asks for
    status: str      # one of STATUSES
    message: str     # feedback in a learner's words
    points: int = 1  # points awarded when passed

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def score(self) -> int:
        return self.points if self.passed else 0

    def __str__(self) -> str:
        mark = {"passed": "PASSED", "failed": "FAILED", "not_attempted": "NOT ATTEMPTED", "error": "ERROR"}[self.status]
        return f"[{mark}] Exercise {self.id} ({self.title}): {self.message}"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        colour = {"passed": "#1a7f37", "failed": "#cf222e", "not_attempted": "#9a6700", "error": "#8250df"}[self.status]
        box = (
            f'<div style="border-left: 6px solid {colour}; padding: 6px 10px; margin: 4px 0;">'
            f'<b style="color: {colour}">{html.escape(str(self).split("]")[0][1:])}</b> '
            f"Exercise {html.escape(self.id)}: {html.escape(self.title)}<br>{html.escape(self.message)}</div>"
        )
        return {MIME: asdict(self), "text/plain": str(self), "text/html": box}


class Mistake(Exception):
    """Raised by a check when the learner's answer is wrong; the message is shown to the learner."""


class NotAttempted(Exception):
    """The learner's function still raises the exercise stub's ``NotImplementedError``."""


class _InternalError(Exception):
    pass


def call(fn: Callable, *args, what: str | None = None, **kwargs):
    """Call the learner's ``fn``, turning its exceptions into feedback.

    A ``NotImplementedError`` means "not attempted"; any other exception becomes a ``Mistake`` that
    names the error and the call.
    """
    name = what or getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise Mistake(f"expected a function for {name}, got {type(fn).__name__}; did a cell overwrite the name?")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        raise NotAttempted(str(err)) from None
    except (Mistake, NotAttempted):
        raise
    except Exception as err:  # the learner's code crashed: say how, without a traceback
        raise Mistake(f"{name} raised {type(err).__name__}: {err}") from None


def exercise(id: str, title: str, points: int = 1):
    """Decorate a check function ``check(learner_fn, ...) -> None`` so that it returns a ``CheckResult``."""

    def decorate(check: Callable[..., None]) -> Callable[..., CheckResult]:
        @functools.wraps(check)
        def run(*args, **kwargs) -> CheckResult:
            try:
                check(*args, **kwargs)
            except NotAttempted:
                return CheckResult(id, title, "not_attempted", "not attempted yet: replace the `raise NotImplementedError` line with your code and run the cell again.", points)
            except Mistake as err:
                return CheckResult(id, title, "failed", str(err), points)
            except Exception as err:  # a bug in the check itself, not the learner's fault
                return CheckResult(id, title, "error", f"the check itself failed ({type(err).__name__}: {err}); please report this.", points)
            return CheckResult(id, title, "passed", "all cases match the reference. Well done!", points)

        run.exercise_id = id
        run.title = title
        run.points = points
        return run

    return decorate


def own_rng(check: Callable[..., None]) -> Callable[..., None]:
    """Run a check (and the learner's code in it) on a copy of the global RNG state, restored afterwards."""

    @functools.wraps(check)
    def run(*args, **kwargs) -> None:
        with torch.random.fork_rng(devices=[]):
            return check(*args, **kwargs)

    return run


# Helpers that turn common comparisons into learner-readable mistakes ---------------------------


def expect_tensor(value: Any, name: str) -> torch.Tensor:
    """The value must be a tensor."""
    if not isinstance(value, torch.Tensor):
        raise Mistake(f"{name} should return a torch.Tensor, but returned {type(value).__name__}.")
    return value


def expect_shape(value: torch.Tensor, shape: tuple[int, ...], name: str, hint: str = "") -> None:
    """The tensor must have exactly ``shape``."""
    if tuple(value.shape) != tuple(shape):
        got = "a scalar" if value.dim() == 0 else f"shape {tuple(value.shape)}"
        want = "a scalar (0-dimensional tensor)" if len(shape) == 0 else f"shape {tuple(shape)}"
        raise Mistake(f"wrong shape: {name} should return {want}, but returned {got}. {hint}".strip())


def expect_finite(value: torch.Tensor, name: str, hint: str) -> None:
    """The tensor must hold no NaN or Inf."""
    if not torch.isfinite(value).all():
        raise Mistake(f"{name} returned {value.flatten()[:4].tolist()} (NaN or Inf). {hint}")


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Whether two tensors agree in value (after casting to float64)."""
    a = torch.as_tensor(a).detach().double()
    b = torch.as_tensor(b).detach().double()
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)
