"""What every model family feeds its networks: noise z, balanced labels, checked image and label batches, data.

``sample_z`` draws the noise of every generator (and a VAE's prior draws) on the generator's own
device, so a CPU ``torch.Generator`` gives the same z on any device. ``check_images`` and
``check_labels`` raise a ``ValueError`` naming the expected and the actual shape; the networks of
the families call them at their boundaries. ``prepare_images`` is the step functions' entry check
of a real batch (and its ``channels_last`` conversion); ``training_images`` loads and checks a noise
family's training data before anything is built.
"""

from __future__ import annotations

from typing import Protocol

import torch

from course_lib.data import TensorData, load_dataset
from course_lib.run.config import RunConfig


class ImageShape(Protocol):
    """What ``check_images`` reads from an architecture config (``DCGANConfig``, ``VAEConfig``, ...)."""

    img_channels: int
    img_size: int


def sample_z(
    n: int,
    z_dim: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Noise z ~ N(0, I) of shape (n, z_dim), float32.

    The numbers are drawn on the generator's device (CPU without a generator) and then moved to
    ``device``, so a CPU generator gives the same z on every device.
    """
    source = generator.device if generator is not None else "cpu"
    z = torch.randn(n, z_dim, generator=generator, device=source)  # (n, z_dim)
    return z.to(device) if device is not None else z


def balanced_labels(n: int, num_classes: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Labels ``0, 1, ..., K-1, 0, 1, ...`` of length n: every class equally often (up to one).

    A grid of the samples with ``nrow=num_classes`` shows one class per column.

    Returns:
        (n,) int64 tensor with values in [0, num_classes).
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    return torch.arange(n, device=device) % num_classes  # (n,)


def check_labels(labels: torch.Tensor | None, batch_size: int, num_classes: int) -> None:
    """Raise a ValueError unless ``labels`` fits a model with ``num_classes`` classes (0: must be None)."""
    if num_classes == 0:
        if labels is not None:
            raise ValueError("labels must be None for an unconditional model (num_classes=0)")
        return
    expected = f"an int64 tensor of shape ({batch_size},) with values in [0, {num_classes})"
    if labels is None:
        raise ValueError(f"labels are required (num_classes={num_classes}): expected {expected}")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        got = f"dtype {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be {expected}, got {got}")
    if tuple(labels.shape) != (batch_size,):
        raise ValueError(f"labels must be {expected}, got shape {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must be {expected}, got values in [{labels.min().item()}, {labels.max().item()}]"
        )


def check_images(x: torch.Tensor, cfg: ImageShape, name: str = "x") -> None:
    """Raise a ValueError unless ``x`` is a float tensor of shape (B, img_channels, img_size, img_size), B >= 1.

    ``cfg`` is any architecture config with ``img_channels`` and ``img_size``.
    """
    expected = f"(B, {cfg.img_channels}, {cfg.img_size}, {cfg.img_size})"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[0] == 0 or tuple(x.shape[1:]) != (cfg.img_channels, cfg.img_size, cfg.img_size):
        raise ValueError(f"{name} must have shape {expected} with B >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1], got dtype {x.dtype}")


def prepare_images(x: torch.Tensor, channels_last: bool = False, name: str = "x_real") -> torch.Tensor:
    """A step function's real batch, checked to be (B, C, H, W) with B >= 1, in channels_last layout if asked.

    Convert the models yourself, once, with ``model.to(memory_format=torch.channels_last)``; the
    results equal the default layout up to floating-point rounding.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a tensor of shape (B, C, H, W) with B >= 1, "
                         f"got {tuple(getattr(x, 'shape', ()))}")
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def training_images(cfg: RunConfig, conditional: bool = False) -> TensorData:
    """The training split of ``cfg.dataset`` for a family that draws from noise: checked to hold 32x32 images
    (labelled ones for a ``conditional`` model) that the metrics can score when ``cfg.eval_samples`` asks for them.

    Raises:
        ValueError: other image sizes, no labels for a conditional model, or colour images with an evaluation.
    """
    data = load_dataset(cfg.dataset, "train")
    if data.x.dim() != 4 or tuple(data.x.shape[2:]) != (32, 32):
        raise ValueError(f"dataset {cfg.dataset!r} must hold 32x32 images, got shape {tuple(data.x.shape)}")
    if conditional and data.labels is None:
        raise ValueError(f"model {cfg.model!r} needs a labelled dataset; {cfg.dataset!r} has no labels")
    check_digit_metrics(cfg, img_channels=data.x.shape[1])
    return data


def check_digit_metrics(cfg: RunConfig, img_channels: int) -> None:
    """Refuse, before the first step, an evaluation that would fail after training: the metrics score digits."""
    if cfg.eval_samples and img_channels != 1:
        raise ValueError(f"eval_samples: the course metrics score one-channel digits (the digit classifier), "
                         f"dataset {cfg.dataset!r} has {img_channels} channels; pass --eval-samples 0 to train "
                         "without metrics")
