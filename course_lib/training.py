"""A small training loop: run a step function, log, draw samples, checkpoint, stop on NaN or Ctrl-C, resume.

The loop knows nothing about GANs or VAEs. A lesson writes a step function (a plain function that
takes models, optimisers and a batch and returns a dict of floats) and hands ``fit`` a closure
that draws the next batch and calls it. ``TrainState`` holds everything a run needs to stop and
resume exactly: models, optimisers, the run's own random-number generator, the batch sampler's
position, the step count and the logged history. ``StopSignals`` lets a command-line program end a
run cleanly on Ctrl-C: the step under way finishes and the checkpoint is written.
"""

from __future__ import annotations

import math
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.viz import LivePlot, progress, save_images


class TrainingDiverged(RuntimeError):
    """A logged value became NaN or Inf; the run stopped without saving that step.

    ``checkpoint_step`` is the step of the checkpoint left on disk (the last good one), or None
    when no checkpoint was written.
    """

    def __init__(self, message: str, checkpoint_step: int | None = None) -> None:
        super().__init__(message)
        self.checkpoint_step = checkpoint_step


class TrainingInterrupted(RuntimeError):
    """A signal (Ctrl-C) stopped the run after step ``step``, whose checkpoint was written."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM handlers that let a training loop stop cleanly; for a CLI's ``main`` only.

    Inside ``with stop.deferred():`` (around ``fit``) the first signal only sets ``stop.requested``,
    so the step under way finishes and ``fit`` ends with its final checkpoint; a second signal, or
    any signal outside that block, raises ``KeyboardInterrupt`` at once (an atomic write in progress
    then leaves the previous file intact). ``with StopSignals() as stop:`` installs the handlers and
    restores the previous ones afterwards; nothing is installed at import time. A signal the
    process ignores (SIGINT of a background job) stays ignored, and outside the main thread (where
    Python cannot install handlers) it does nothing.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.requested: str | None = None  # the name of the signal that asked the run to stop
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        for name in self.SIGNALS:
            number = getattr(signal, name, None)
            if number is None:
                continue
            if signal.getsignal(number) is signal.SIG_IGN:  # e.g. SIGINT of a background job: stays ignored
                continue
            try:
                self._previous[number] = signal.signal(number, self._handle)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    @contextmanager
    def deferred(self) -> Iterator["StopSignals"]:
        """Within this block a first signal asks the loop to stop after the current step."""
        self._deferring = True
        try:
            yield self
        finally:
            self._deferring = False

    def __call__(self) -> bool:
        """True once a signal has asked the run to stop (a ``should_stop`` for ``fit``)."""
        return self.requested is not None

    def _handle(self, number: int, frame: Any) -> None:
        if self._deferring and self.requested is None:
            self.requested = signal.Signals(number).name
            # os.write, not print: a signal may arrive while the progress bar is writing to stderr
            os.write(2, b"\nstopping after this step and saving the checkpoint (press Ctrl-C again to stop at once)\n")
            return
        raise KeyboardInterrupt


@dataclass
class TrainState:
    """Everything a training run needs to stop and resume exactly."""

    models: dict[str, nn.Module]                       # e.g. {"G": G, "D": D}
    optimizers: dict[str, torch.optim.Optimizer]       # e.g. {"G": opt_G, "D": opt_D}
    generator: torch.Generator                         # the run's RNG: noise and batches draw from it
    batches: Any = None                                # a sampler with state_dict()/load_state_dict()
    config: dict[str, Any] = field(default_factory=dict)  # plain data describing the run
    step: int = 0                                      # completed steps
    history: dict[str, list[float]] = field(default_factory=dict)  # logged values, one per step
    grids: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, samples) snapshots

    def save(self, path: str | os.PathLike) -> Path:
        """Write a resumable checkpoint (atomically)."""
        extra = {"batches": self.batches.state_dict()} if self.batches is not None else {}
        return save_checkpoint(
            path,
            models=self.models,
            optimizers=self.optimizers,
            step=self.step,
            config=self.config,
            history=self.history,
            generator=self.generator,
            extra=extra,
        )

    def load(self, path: str | os.PathLike) -> None:
        """Restore models, optimisers, RNG states, sampler position, step and history from ``path``."""
        payload = load_checkpoint(path, models=self.models, optimizers=self.optimizers, generator=self.generator)
        if self.batches is not None and "batches" in payload["extra"]:
            self.batches.load_state_dict(payload["extra"]["batches"])
        self.step = payload["step"]
        self.history = {k: list(v) for k, v in payload["history"].items()}


def time_budget(minutes: float | None) -> Callable[[], bool] | None:
    """A ``should_stop`` for ``fit`` that turns True once ``minutes`` of wall time have passed (None: no budget).

    The clock starts when this function is called.
    """
    if minutes is None:
        return None
    if not minutes > 0:
        raise ValueError(f"minutes must be > 0 or None, got {minutes!r}")
    deadline = time.perf_counter() + 60 * minutes
    return lambda: time.perf_counter() >= deadline


def fit(
    state: TrainState,
    step_fn: Callable[[], dict[str, float]],
    steps: int | None,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    sample_fn: Callable[[], torch.Tensor] | None = None,
    sample_every: int = 0,
    samples_dir: str | os.PathLike | None = None,
    plot: LivePlot | None = None,
    show_progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, list[float]]:
    """Train until ``state.step == steps``.

    Args:
        state: the run; ``state.step`` may be > 0 after ``state.load`` (resumption).
        step_fn: does one training step and returns ``{name: float}`` to log.
        steps: the total number of steps the run should reach; None: until ``should_stop`` says so.
        checkpoint_path: where to save the run; saved every ``checkpoint_every`` steps and at the end.
        checkpoint_every: 0 saves only at the end (when ``checkpoint_path`` is given).
        sample_fn: returns samples from fixed noise: (N, C, H, W) images in [-1, 1], or any
            tensor such as 2-D points; called with every model in eval mode, without gradients, every
            ``sample_every`` steps and at the end, the result appended to ``state.grids``. Images
            are also written as ``step_NNNNNN.png`` into ``samples_dir`` when it is given.
        plot: a ``LivePlot`` updated every step and closed at the end.
        show_progress: show a progress bar.
        should_stop: called after every step; when it returns True the run ends early, with the
            final samples and checkpoint as at a normal end (e.g. a wall-clock budget).

    Returns:
        ``state.history``.

    Raises:
        TrainingDiverged: a logged value was NaN or Inf. Nothing is saved at that step, so the
            checkpoint on disk (if one was written) is the last good one.
    """
    if steps is None and should_stop is None:
        raise ValueError("steps=None (no step limit) needs a should_stop function")
    if steps is not None and (not isinstance(steps, int) or steps < 0):
        raise ValueError(f"steps must be a non-negative int or None, got {steps!r}")
    if steps is not None and state.step > steps:
        raise ValueError(f"the run is already at step {state.step}, past steps={steps}")

    # trained models run in train mode; frozen ones (e.g. G_ema, updated by the step function) keep their mode
    trained = [m for m in state.models.values() if any(p.requires_grad for p in m.parameters())]

    def take_samples() -> None:
        modes = [m.training for m in state.models.values()]
        for module in state.models.values():
            module.eval()
        with torch.no_grad():
            images = sample_fn().detach().cpu()
        for module, mode in zip(state.models.values(), modes):
            module.train(mode)
        state.grids.append((state.step, images))
        if samples_dir is not None:
            save_images(images, Path(samples_dir) / f"step_{state.step:06d}.png")

    # the step of the checkpoint on disk: a resumed run's, until this session writes one
    saved = [state.step] if checkpoint_path and Path(checkpoint_path).is_file() else []
    bar = progress(total=steps, initial=state.step, desc="training") if show_progress else None
    for module in trained:
        module.train()
    try:
        while steps is None or state.step < steps:
            logs = step_fn()
            bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
            if bad:
                where = (f"the last good checkpoint, {checkpoint_path} (step {saved[-1]}), is kept" if saved
                         else "no checkpoint was written yet")
                raise TrainingDiverged(
                    f"training diverged at step {state.step + 1}: {', '.join(f'{k} = {v}' for k, v in bad.items())}; "
                    f"stopped, and {where}. Lower the learning rate, or check the loss for log(0) or a division by zero.",
                    checkpoint_step=saved[-1] if saved else None,
                )
            state.step += 1
            for k, v in logs.items():
                state.history.setdefault(k, []).append(float(v))
            if bar is not None:
                bar.update(1)
                if state.step % 50 == 0 or state.step == steps:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()}, refresh=False)
            if plot is not None:
                plot.update(state.history)
            more = steps is None or state.step < steps  # the final samples and checkpoint come after the loop
            if sample_fn is not None and sample_every and state.step % sample_every == 0 and more:
                take_samples()
            if checkpoint_path and checkpoint_every and state.step % checkpoint_every == 0 and more:
                state.save(checkpoint_path)
                saved.append(state.step)
            if should_stop is not None and should_stop():
                break
    finally:
        if bar is not None:
            bar.close()
    if sample_fn is not None and (not state.grids or state.grids[-1][0] != state.step):
        take_samples()
    if checkpoint_path:
        state.save(checkpoint_path)
    if plot is not None:
        plot.close(state.history)
    return state.history
