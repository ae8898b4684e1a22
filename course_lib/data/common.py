"""What every dataset loader shares: the `TensorData` container, argument checks and MNIST framing.

All image sets in `course_lib.data` follow one convention:

* images are float32 tensors of shape (N, C, H, W) with values in [-1, 1] (background is -1),
* labels are int64 tensors of shape (N,),
* digit images are framed like MNIST: a 28x28 image zero-padded with 2 background pixels on every
  side to 32x32, the size the course's convolutional models expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

SPLITS = ("train", "test")
PHOTO_SPLITS = ("train", "val", "test")  # photo_patches also has validation blocks (course_lib.data.photos)


@dataclass(frozen=True)
class TensorData:
    """An in-memory dataset: a tensor of samples plus optional labels and metadata.

    Args:
        x: the samples, (N, C, H, W) float32 in [-1, 1] for images, (N, 2) float32 for 2-D toys.
        labels: (N,) int64 class or mode index per sample, or None.
        name: the dataset's name, e.g. ``"mnist5k"``.
        classes: human-readable name of every label value (``classes[labels[i]]``), or None.
        info: anything else worth keeping: the split, the seed, mode centres, photo names, crop boxes.
    """

    x: torch.Tensor
    labels: torch.Tensor | None
    name: str
    classes: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or self.x.ndim < 2:
            raise ValueError(f"x must be a tensor with a batch dimension, got {type(self.x).__name__}"
                             f" of shape {tuple(getattr(self.x, 'shape', ()))}")
        if self.labels is not None and tuple(self.labels.shape) != (len(self.x),):
            raise ValueError(f"labels must have shape ({len(self.x)},) to match x, "
                             f"got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]


def check_split(split: str, allowed: tuple[str, ...] = SPLITS) -> int:
    """Validate a split name against ``allowed`` and return its index (0 for "train", 1 for "test", 2 for "val")."""
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")
    return (*SPLITS, "val").index(split)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Validate that `value` is an int in [low, high] (no upper bound if high is None)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return int(value)


def check_float(name: str, value: Any, low: float = 0.0, strict: bool = False) -> float:
    """Validate that `value` is a real number >= low (> low when strict)."""
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    return float(value)


def split_seed(seed: int, split: str, salt: int = 0) -> int:
    """Derive an independent 63-bit seed for one (seed, split) pair.

    `np.random.SeedSequence` mixes the numbers, so seed 0 "test" and seed 1 "train" share nothing.

    Args:
        seed: the user's seed, a non-negative int.
        split: "train", "test" or (photo patches) "val".
        salt: a constant per dataset, so two datasets with the same seed draw different numbers.

    Returns:
        A non-negative int < 2**63, usable by `torch.Generator.manual_seed` and `np.random.default_rng`.
    """
    seed = check_int("seed", seed, 0)
    words = np.random.SeedSequence([seed, check_split(split, PHOTO_SPLITS), salt]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def bytes_to_unit(x: torch.Tensor | np.ndarray, max_value: float = 255.0) -> torch.Tensor:
    """Scale intensities in [0, max_value] to float32 in [-1, 1] (0 -> -1, max_value -> 1)."""
    x = torch.as_tensor(x).to(torch.float32)
    return (x * (2.0 / max_value) - 1.0).clamp_(-1.0, 1.0)


def pad_28_to_32(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad MNIST-framed images with 2 background pixels per side.

    Args:
        x: (N, C, 28, 28) float in [-1, 1], background -1.

    Returns:
        (N, C, 32, 32) float in [-1, 1]; the 2-pixel border is exactly -1. Never resized.
    """
    if x.ndim != 4 or tuple(x.shape[-2:]) != (28, 28):
        raise ValueError(f"x must have shape (N, C, 28, 28), got {tuple(x.shape)}")
    return torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)  # (N, C, 32, 32)
