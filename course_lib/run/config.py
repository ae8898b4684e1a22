"""What every training run shares: ``RunConfig``, which each family's config extends, and ``Run``, a built run.

A family (``course_lib.gan``, ``course_lib.vae``, ...) writes one commented dataclass that extends
``RunConfig`` with its own settings (``GANTrainConfig`` adds ``z_dim``, ``lr_g``, ``n_critic``, ...)
and a ``build_run(cfg, device)`` that returns a ``Run``: the ``TrainState`` that ``fit`` trains and
checkpoints, the step closure, and the few hooks the run layer (``course_lib.run.session``) calls
to write samples and metrics. The run layer reads only what is declared here; it knows no family.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from course_lib.evaluate import MIN_SAMPLES
from course_lib.run.steps import PRECISIONS, use_bf16
from course_lib.training import TrainState

GRID_SIZE = 100  # samples in a noise family's samples.png: 10 x 10


@dataclass
class RunConfig:
    """The settings of a run whatever it trains; stored with its family's fields in the checkpoint and ``config.json``."""

    model: str = ""                   # which model of the family: the command-line name (dcgan, vae, ...); each family sets it
    dataset: str = "mnist5k"          # a built-in dataset (course_lib.data.load_dataset)
    steps: int | None = 3000          # training steps to reach (None: no limit, needs minutes)
    minutes: float | None = None      # optional wall-clock budget; the run ends at steps or minutes, whichever comes first
    batch_size: int = 64              # real images per update
    seed: int = 0                     # seeds initialisation, noise and batch order
    eval_samples: int = 1000          # samples (or held-out images) scored for metrics.json (0: skip the evaluation)
    checkpoint_every: int = 250       # steps between checkpoints
    precision: str = "auto"           # fp32; bf16 (autocast: forward passes in bf16, losses and penalties in fp32); auto: bf16 where measured faster at equal quality (AUTO_BF16)
    channels_last: bool | None = None  # channels_last memory format of the images and networks (CPU and CUDA); none: on exactly when the run computes in bf16

    MODELS: ClassVar[dict[str, str]] = {}                    # the models this config trains: name -> one line about it
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}        # settings with a fixed set of values
    ONLY_FOR: ClassVar[dict[str, tuple[str, ...]]] = {}       # settings only some of the family's models use
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ()            # may change on --resume (recorded as lr_changes)
    RESUMABLE: ClassVar[tuple[str, ...]] = ("steps", "minutes", "eval_samples", "checkpoint_every",  # + LEARNING_RATES
                                             "precision", "channels_last")
    MIN_EVAL_SAMPLES: ClassVar[int] = MIN_SAMPLES             # the fewest eval_samples the family's metrics take
    AUTO_BF16: ClassVar[dict[str, tuple[str, ...]]] = {}       # model -> device types where precision auto means bf16 (measured)

    def __post_init__(self) -> None:
        if self.model not in self.MODELS:
            raise ValueError(f"model must be one of {tuple(self.MODELS)}, got {self.model!r}")
        if self.steps is None and self.minutes is None:
            raise ValueError("give steps or minutes (or both): a run needs an end")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes!r}")
        for name, allowed in self.choices().items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, models in self.ONLY_FOR.items():
            if self.model not in models and getattr(self, name) != defaults[name]:
                raise ValueError(f"{name} applies to {' and '.join(models)} only, not to {self.model!r}")
        if self.channels_last not in (True, False, None):
            raise ValueError(f"channels_last must be True, False or None (on with bf16), got {self.channels_last!r}")
        check_ints(self, "batch_size", "checkpoint_every")
        check_ints(self, "seed", at_least=0)
        for name in self.LEARNING_RATES:
            if not (isinstance(getattr(self, name), (int, float)) and 0 < getattr(self, name) < math.inf):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not isinstance(self.eval_samples, int) or self.eval_samples < 0:
            raise ValueError(f"eval_samples must be an int >= 0 (0: no evaluation), got {self.eval_samples!r}")
        least = self.MIN_EVAL_SAMPLES
        if 0 < self.eval_samples < least:
            raise ValueError(f"eval_samples must be 0 (no evaluation) or at least {least}"
                             + (", what the sample metrics need (see course_lib.evaluate.MIN_SAMPLES)"
                                if least == MIN_SAMPLES else "") + f", got {self.eval_samples}")

    @classmethod
    def choices(cls) -> dict[str, tuple[str, ...]]:
        """The settings with a fixed set of values: ``precision`` and the family's ``CHOICES``."""
        return {"precision": PRECISIONS, **cls.CHOICES}

    def bf16(self, device: torch.device | str) -> bool:
        """Whether this run computes its forward passes under bf16 autocast on ``device`` (``use_bf16``)."""
        return use_bf16(self.precision, device, self.AUTO_BF16.get(self.model, ()))

    def use_channels_last(self, device: torch.device | str) -> bool:
        """Whether this run keeps its images and networks channels_last on ``device``: ``channels_last``, or
        when that is None, whether the run computes in bf16 (bf16 convolutions are fastest channels_last;
        float32 ones at the wider widths are not: benchmarks/precision_speed.py)."""
        return self.bf16(device) if self.channels_last is None else self.channels_last

    def uses(self, name: str) -> bool:
        """Whether setting ``name`` applies to this config's model (a family's settings may serve some of its models)."""
        return self.model in self.ONLY_FOR.get(name, (self.model,))

    def settings(self) -> dict[str, Any]:
        """The settings that apply to this config's model, by name: what ``python -m course_lib.train MODEL --help`` lists."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if self.uses(f.name)}

    def identity(self) -> dict[str, Any]:
        """What metrics.json names the run by: its model and dataset (a family may add to it)."""
        return {"model": self.model, "dataset": self.dataset}


def check_ints(cfg: RunConfig, *names: str, at_least: int = 1) -> None:
    """Raise ``ValueError("NAME must be an int >= N, got ...")`` for the first setting that is not such an int."""
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < at_least:
            raise ValueError(f"{name} must be an int >= {at_least}, got {value!r}")


def check_numbers(cfg: RunConfig, *names: str, below_one: bool = False) -> None:
    """Raise a ValueError for a setting that is not a number >= 0 (with ``below_one``: in [0, 1))."""
    for name in names:
        value = getattr(cfg, name)
        if below_one and not (isinstance(value, (int, float)) and 0 <= value < 1):
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not below_one and not (isinstance(value, (int, float)) and 0 <= value < math.inf):
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")


Config = TypeVar("Config", bound=RunConfig)


def make_config(cls: type[Config], preset: dict[str, Any], overrides: dict[str, Any]) -> Config:
    """``cls(**preset)`` with ``overrides`` applied: an override of None keeps the preset's value (None is "not
    given", as for a flag left out), and ``minutes`` given without ``steps`` makes a time budget alone (steps None).

    Raises:
        ValueError: an override that is not a setting of ``cls`` (naming the settings it has), or a bad value.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(k for k, v in overrides.items() if k not in names and v is not None)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a setting of {cls.__name__} (model {preset.get('model')!r}); "
                         f"its settings are {', '.join(names)}")
    settings = dict(preset)
    if overrides.get("minutes") is not None and overrides.get("steps") is None:
        settings["steps"] = None  # a time budget alone
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**settings)


@dataclass
class Run:
    """A built run: what ``fit`` trains and checkpoints, and what the run layer writes when it ends."""

    cfg: RunConfig                                    # the family's config of the run
    state: TrainState                                 # models, optimisers, RNG and batches: what a checkpoint holds
    step_fn: Callable[[], dict[str, float]]           # one training step; returns the floats to log
    sampler: nn.Module                                # what samples.png, metrics.json and generator.safetensors use
    grid: Callable[[], torch.Tensor]                  # the images of samples.png, from fixed noise or fixed test inputs
    evaluate: Callable[[], dict[str, Any]]            # the scores of metrics.json (the family reads cfg.eval_samples)
    images_per_step: int                              # real images one step reads (for images_per_second)
    grid_columns: int = 10                            # images per row of samples.png
    fixed_z: torch.Tensor | None = None               # noise families: the (GRID_SIZE, z_dim) noise of samples.png
    fixed_labels: torch.Tensor | None = None          # conditional families: its (GRID_SIZE,) labels 0..9 repeated
    finish: Callable[[], dict[str, Any]] | None = None  # after the last step, before anything is written (may change
    #                                                     the sampler, e.g. pix2pix's calibration); returns more metrics

    def sample_grid(self) -> torch.Tensor:
        """The images of samples.png: (N, C, H, W) in [-1, 1]."""
        return self.grid()
