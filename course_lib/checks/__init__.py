"""The machinery behind graded checks: results a learner can read, and that the grader can collect.

A lesson's checks live in the module ``course_lib.checks.lessonNN`` (a package when long). Each is decorated with
``@exercise(id, title)`` that receives the learner's function, calls it on seeded and edge cases
through ``call``, compares with the reference implementation, and raises ``Mistake`` with a
message in a learner's words when something is off. The decorator turns the outcome into a
``CheckResult``:

- ``passed``: every case agreed with the reference;
- ``failed``: a ``Mistake`` was found, or the learner's code raised an error;
- ``not_attempted``: the learner's code still raises the exercise's ``NotImplementedError`` stub;
- ``error``: the check itself could not run (the grader also uses it for a check cell that
  crashed, timed out or was never reached).

In a notebook the result displays as a coloured box (and carries a machine-readable copy under the
MIME type ``MIME``, for tools; the grader never reads it). The grader runs the same checks in its own
process on the learner's functions, which stay in the learner's kernel (``course_lib.grading``):

- cases are seeded through ``case_seed(n)``, which is ``n`` in a notebook and ``n`` plus an offset the
  grader draws per run (``hidden_seeds``), so memorised outputs fail;
- ``@exercise(..., forbid=(...))`` names what an answer may not call: the reference it is checked
  against;
- a check that changes a tensor in place to see whether the learner's code kept a reference to it
  does so with ``poke_``, which reaches the learner's copy too.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import html
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

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


_SEED_OFFSET: contextvars.ContextVar[int] = contextvars.ContextVar("course_check_seed_offset", default=0)


def case_seed(n: int) -> int:
    """The seed of a check's case ``n``: ``n`` in a notebook, shifted by the grader's hidden offset when grading."""
    return n + _SEED_OFFSET.get()


@contextlib.contextmanager
def hidden_seeds(offset: int) -> Iterator[None]:
    """Run checks on cases the learner has not seen: every ``case_seed(n)`` becomes ``n + offset``."""
    token = _SEED_OFFSET.set(int(offset))
    try:
        yield
    finally:
        _SEED_OFFSET.reset(token)


def poke_(t: torch.Tensor, value: float) -> None:
    """Add ``value`` to ``t`` in place; when grading, also to the learner's copy of it in the kernel.

    Raises RuntimeError where the tensor cannot be changed in place (an expanded view), as ``add_`` does.
    """
    remote = getattr(t, "_course_poke", None)
    if remote is not None:
        remote(value)
    with torch.no_grad():
        t.add_(value)


class _CountBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, watch: "GradientWatch", x: torch.Tensor) -> torch.Tensor:
        ctx.watch = watch
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        ctx.watch.backward_calls += 1
        return None, grad


class GradientWatch(nn.Module):
    """Wraps a module and counts the backward passes that go through its outputs.

    A check hands the learner ``GradientWatch(G)`` where it would hand ``G``: a discriminator step
    that forgets ``detach`` sends its loss back through G, which shows as a count. (A plain tensor
    hook would do the same in a notebook, but cannot travel to the learner's kernel when grading.)
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.backward_calls = 0
        self.z_dim = getattr(inner, "z_dim", None)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        return _CountBackward.apply(self, out) if isinstance(out, torch.Tensor) and out.requires_grad else out


def exercise(id: str, title: str, points: int = 1, forbid: tuple[str, ...] = ()):
    """Decorate a check function ``check(learner_fn, ...) -> None`` so that it returns a ``CheckResult``.

    Args:
        id: the exercise's id, e.g. "02.4".
        title: what the exercise asks for.
        points: points awarded when the check passes.
        forbid: dotted names of ``course_lib`` functions or classes that an answer may not call: the
            reference the exercise is checked against (the grader refuses answers that use them).
    """

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
        run.forbid = tuple(forbid)
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
