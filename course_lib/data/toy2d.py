"""2-D toy distributions for the maths lessons: a ring of Gaussians, a grid of Gaussians, two moons.

Small enough to plot every sample and to see mode collapse at a glance. Each family has a sampler
that takes an optional `torch.Generator` (for drawing fresh points every training step) and
`toy2d` wraps them as a fixed, seeded `TensorData` with a train/test split.

* ring: `modes` Gaussians with standard deviation `std`, centres evenly spaced on a circle of
  radius `radius`, the first at angle 0 (point (radius, 0)).
* grid: 25 Gaussians centred on {-4, -2, 0, 2, 4}^2, row-major (mode 0 at (-4, -4), mode 1 at
  (-4, -2), ...).
* moons: scikit-learn's two interleaving half circles (same formulas as `make_moons`), with angles
  drawn uniformly instead of evenly spaced, plus isotropic Gaussian noise of std `noise`.

Modes are balanced: each of K modes gets n // K points, the first n % K modes one more.
"""

from __future__ import annotations

import math

import torch

from course_lib.data.common import TensorData, check_float, check_int, check_split, split_seed

KINDS = ("ring", "grid", "moons")
GRID_COORDS = (-4.0, -2.0, 0.0, 2.0, 4.0)


def _balanced_labels(n: int, modes: int, generator: torch.Generator | None) -> torch.Tensor:
    """(n,) int64 mode index, each mode n // modes or n // modes + 1 times, in random order."""
    labels = torch.arange(n) % modes
    return labels[torch.randperm(n, generator=generator)]


def ring_centres(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The (modes, 2) float32 centres of the ring, evenly spaced, the first at (radius, 0)."""
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_centres() -> torch.Tensor:
    """The (25, 2) float32 centres of the grid, row-major over GRID_COORDS."""
    coords = torch.tensor(GRID_COORDS)
    return torch.cartesian_prod(coords, coords)  # (25, 2)


def sample_ring(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.02,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample a mixture of `modes` equal-weight Gaussians on a circle.

    Args:
        n: number of points, >= 1.
        modes: number of Gaussians, >= 1.
        radius: circle radius, > 0.
        std: standard deviation of every Gaussian, >= 0.
        generator: optional torch.Generator for the draw.

    Returns:
        points (n, 2) float32 and labels (n,) int64 in [0, modes): the mode of each point.
    """
    n, modes = check_int("n", n, 1), check_int("modes", modes, 1)
    radius, std = check_float("radius", radius, strict=True), check_float("std", std)
    labels = _balanced_labels(n, modes, generator)
    noise = torch.randn(n, 2, generator=generator)  # (n, 2)
    return ring_centres(modes, radius)[labels] + std * noise, labels


def sample_grid(n: int, std: float = 0.05,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample a mixture of 25 equal-weight Gaussians on the 5x5 grid {-4, -2, 0, 2, 4}^2.

    Args:
        n: number of points, >= 1.
        std: standard deviation of every Gaussian, >= 0.
        generator: optional torch.Generator for the draw.

    Returns:
        points (n, 2) float32 and labels (n,) int64 in [0, 25) indexing `grid_centres()`.
    """
    n, std = check_int("n", n, 1), check_float("std", std)
    labels = _balanced_labels(n, 25, generator)
    noise = torch.randn(n, 2, generator=generator)  # (n, 2)
    return grid_centres()[labels] + std * noise, labels


def sample_moons(n: int, noise: float = 0.05,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample two interleaving half circles (scikit-learn's `make_moons` shapes).

    Args:
        n: number of points, >= 1.
        noise: standard deviation of the Gaussian noise added to every point, >= 0.
        generator: optional torch.Generator for the draw.

    Returns:
        points (n, 2) float32 in about [-1, 2] x [-0.5, 1] and labels (n,) int64: 0 for the upper
        moon (cos t, sin t), 1 for the lower moon (1 - cos t, 0.5 - sin t), t uniform in [0, pi].
    """
    n, noise = check_int("n", n, 1), check_float("noise", noise)
    labels = _balanced_labels(n, 2, generator)
    t = math.pi * torch.rand(n, generator=generator)  # (n,)
    upper = torch.stack([t.cos(), t.sin()], dim=1)  # (n, 2)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], dim=1)
    points = torch.where(labels[:, None] == 0, upper, lower)
    return points + noise * torch.randn(n, 2, generator=generator), labels


def toy2d(split: str = "train", kind: str = "ring", n: int = 10_000, seed: int = 0,
          modes: int = 8, radius: float = 2.0, std: float | None = None,
          noise: float = 0.05) -> TensorData:
    """A fixed, seeded set of 2-D toy points (not images).

    Args:
        split: "train" or "test"; they use different seeds, so the points differ.
        kind: "ring", "grid" or "moons".
        n: number of points, >= 1.
        seed: non-negative int.
        modes: ring only, number of Gaussians (default 8).
        radius: ring only, circle radius (default 2).
        std: ring and grid, Gaussian standard deviation; None means 0.02 for ring, 0.05 for grid.
        noise: moons only, noise standard deviation (default 0.05).

    Returns:
        TensorData with x (n, 2) float32, labels (n,) int64 mode index, classes ["mode 0", ...]
        (moons: ["upper moon", "lower moon"]),
        info {"split", "seed", "kind", "centres": (K, 2) float32 for ring and grid, None for moons,
        and the distribution's parameters}.
    """
    check_split(split)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    generator = torch.Generator().manual_seed(split_seed(seed, split, salt=3 + KINDS.index(kind)))
    if kind == "ring":
        std = 0.02 if std is None else std
        x, labels = sample_ring(n, modes, radius, std, generator)
        centres, params = ring_centres(modes, radius), {"modes": modes, "radius": radius, "std": std}
    elif kind == "grid":
        std = 0.05 if std is None else std
        x, labels = sample_grid(n, std, generator)
        centres, params = grid_centres(), {"std": std}
    else:
        x, labels = sample_moons(n, noise, generator)
        centres, params = None, {"noise": noise}
    classes = ["upper moon", "lower moon"] if centres is None else \
        [f"mode {k}" for k in range(len(centres))]
    return TensorData(
        x=x,
        labels=labels,
        name="toy2d",
        classes=classes,
        info={"split": split, "seed": seed, "kind": kind, "centres": centres, **params},
    )
