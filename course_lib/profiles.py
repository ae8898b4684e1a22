"""Run profiles: the same notebook at CI speed (smoke), on a 2-core laptop, or on a GPU.

Each notebook's papermill ``parameters`` cell sets ``PROFILE = "auto"``. ``get_profile("auto")``
reads the ``COURSE_PROFILE`` environment variable, else picks ``gpu`` on CUDA and ``laptop``
otherwise. A profile carries the settings lessons share; lesson-specific numbers come from
``profile.pick(smoke=..., laptop=..., gpu=...)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

PROFILE_NAMES = ("smoke", "laptop", "gpu")
ENV_VAR = "COURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Settings shared by every lesson for one kind of machine."""

    name: str              # "smoke", "laptop" or "gpu"
    batch_size: int        # default training batch size for image models
    eval_samples: int      # samples drawn when a lesson computes metrics
    train_scale: float     # multiplier a lesson may apply to its laptop step counts
    plot_every: int        # steps between live-plot refreshes

    def pick(self, *, smoke, laptop, gpu):
        """Return the value given for this profile, e.g. ``steps = profile.pick(smoke=20, laptop=3000, gpu=20000)``."""
        return {"smoke": smoke, "laptop": laptop, "gpu": gpu}[self.name]


PROFILES = {
    "smoke": Profile("smoke", batch_size=32, eval_samples=200, train_scale=0.01, plot_every=10),
    "laptop": Profile("laptop", batch_size=64, eval_samples=1000, train_scale=1.0, plot_every=100),
    "gpu": Profile("gpu", batch_size=128, eval_samples=10000, train_scale=5.0, plot_every=200),
}


def get_profile(name: str = "auto") -> Profile:
    """Resolve a profile name.

    Args:
        name: ``"smoke"``, ``"laptop"``, ``"gpu"`` or ``"auto"``. ``"auto"`` uses the
            ``COURSE_PROFILE`` environment variable when it is set, else ``"gpu"`` when CUDA is
            available and ``"laptop"`` otherwise.

    Returns:
        The matching ``Profile``.
    """
    if not isinstance(name, str):
        raise TypeError(f"profile must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key == "auto":
        key = os.environ.get(ENV_VAR, "").strip().lower() or ("gpu" if torch.cuda.is_available() else "laptop")
        source = f"the {ENV_VAR} environment variable" if os.environ.get(ENV_VAR) else "auto"
    else:
        source = "the argument"
    if key not in PROFILES:
        raise ValueError(f"unknown profile {key!r} (from {source}); expected one of {', '.join(PROFILE_NAMES)} or 'auto'")
    return PROFILES[key]
