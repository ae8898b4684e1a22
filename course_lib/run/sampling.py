"""Drawing from a trained model, whatever its family: samples from noise, translations, and their metrics.

A *sampler* that draws from noise (a GAN's G, a VAE, a StyleGAN's G) has three members:

- ``z_dim``: the size of its noise z ~ N(0, I) (a VAE's latent size);
- ``num_classes``: 0 for an unconditional model, K for one that takes labels in [0, K);
- ``generate(z, labels=None, **options)``: images (B, C, H, W) in [-1, 1] for noise (B, z_dim).

``sample`` draws n of its images with a ``torch.Generator``, in the mode the model is in;
``generate`` draws them from a seed, with balanced labels for a conditional model, in eval mode,
on the CPU; ``evaluate_generator`` scores them with the course metrics. A translating sampler
(pix2pix's U-Net, CycleGAN's pair) maps images to images; ``translate`` runs it over many (eval
mode, on the CPU). ``generate`` and ``translate`` leave the model in the mode it was in.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from course_lib.evaluate import evaluate
from course_lib.run.config import GRID_SIZE, RunConfig
from course_lib.run.inputs import balanced_labels, sample_z

GRID_CLASSES = 10  # a conditional run's samples.png shows labels 0..9, one class per column


@torch.no_grad()
def sample(model: nn.Module, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
           device: torch.device | str | None = None) -> torch.Tensor:
    """Draw n images of a sampler from noise, without gradients, in the mode the model is in.

    Call ``model.eval()`` first for batch-norm running statistics (``course_lib.training.fit`` calls its
    ``sample_fn`` in eval mode); ``generate`` does that itself and draws from a seed.

    Args:
        model: a sampler: G of ``course_lib.gan`` or ``course_lib.stylegan``, or a ``vae.VAE`` (its decoder's
            mean images of prior draws).
        n: number of images, >= 1.
        labels: (n,) int64 labels for a conditional model; None gives ``balanced_labels(n, K)``.
            Must be None for an unconditional model.
        generator: optional ``torch.Generator`` for z (fixed monitoring noise).
        device: where to compute; None: the device of the model's parameters.

    Returns:
        (n, img_channels, 32, 32) float images in [-1, 1] on ``device``.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    device = device if device is not None else next(model.parameters()).device
    if labels is None and model.num_classes:
        labels = balanced_labels(n, model.num_classes, device=device)
    elif labels is not None:
        labels = labels.to(device)
    z = sample_z(n, model.z_dim, generator=generator, device=device)  # (n, z_dim)
    return model.generate(z, labels)                                  # (n, C, 32, 32)


@torch.no_grad()
def generate_batches(model: nn.Module, n: int, seed: int = 0, batch_size: int = 500,
                     truncation_psi: float = 1.0) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """The samples of ``generate``, ``batch_size`` at a time: the same images, in flat memory for any n.

    Yields:
        images (b, C, H, W) in [-1, 1] on the CPU, and their labels (b,) (conditional models) or None.
    """
    options = {"truncation_psi": truncation_psi} if truncation_psi != 1.0 else {}
    if options and "truncation_psi" not in inspect.signature(model.generate).parameters:
        raise ValueError(f"truncation_psi must be 1 for a {type(model).__name__}: it has no truncation trick")
    device = next(model.parameters()).device
    noise = torch.Generator().manual_seed(seed)  # a CPU generator: the same z on every device
    labels = balanced_labels(n, model.num_classes) if model.num_classes else None
    z = sample_z(n, model.z_dim, generator=noise)  # (n, z_dim), drawn at once: the same z for any batch_size
    was_training = model.training
    model.eval()
    try:
        for i in range(0, n, batch_size):
            y = None if labels is None else labels[i:i + batch_size]
            images = model.generate(z[i:i + batch_size].to(device), None if y is None else y.to(device), **options)
            yield images.float().cpu(), y
    finally:
        model.train(was_training)


def generate(model: nn.Module, n: int, seed: int = 0, batch_size: int = 500,
             truncation_psi: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples of a sampler (G, or decoded prior draws of a VAE), in eval mode, on the CPU.

    ``truncation_psi`` != 1 applies a StyleGAN's truncation trick (other models have none).

    Returns:
        images (n, C, H, W) in [-1, 1], and balanced labels (n,) for a conditional model or None.
    """
    batches = list(generate_batches(model, n, seed, batch_size, truncation_psi))
    labels = None if batches[0][1] is None else torch.cat([y for _, y in batches])
    return torch.cat([images for images, _ in batches]), labels


def evaluate_generator(model: nn.Module, n: int, seed: int = 0) -> dict[str, float]:
    """Course metrics of n samples of a sampler against the mnist5k test digits (``course_lib.evaluate``)."""
    images, labels = generate(model, n, seed)
    return evaluate(images, labels)


def sample_metrics(sampler: nn.Module, n: int, seed: int, raw: nn.Module | None = None) -> dict[str, Any]:
    """metrics.json's scores of n samples (nothing for n = 0); with ``raw`` (the G behind a weight average)
    also its ``raw_fd``, ``raw_precision``, ``raw_recall`` and ``raw_modes``: what the average buys."""
    if not n:
        return {}
    result: dict[str, Any] = {"eval_samples": n, **evaluate_generator(sampler, n, seed=seed)}
    if raw is not None:
        scores = evaluate_generator(raw, n, seed=seed)
        result.update({f"raw_{key}": scores[key] for key in ("fd", "precision", "recall", "modes")})
    return result


def generated_arrays(model: nn.Module, n: int, seed: int = 0, chunk: int = 500,
                     truncation_psi: float = 1.0) -> Iterator[dict[str, torch.Tensor]]:
    """What ``python -m course_lib.sample`` writes for a sampler that draws from noise, ``chunk`` images at a time:
    ``arr_0`` (images) and, for a conditional model, ``labels``."""
    for images, labels in generate_batches(model, n, seed, chunk, truncation_psi):
        yield {"arr_0": images} if labels is None else {"arr_0": images, "labels": labels}


def fixed_noise(cfg: RunConfig, z_dim: int, conditional: bool,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise (and labels) of a noise family's samples.png: (GRID_SIZE, z_dim) drawn from ``cfg.seed + 1``,
    independent of training, and (GRID_SIZE,) labels 0..9 repeated for a conditional model."""
    monitor = torch.Generator().manual_seed(cfg.seed + 1)
    fixed_z = sample_z(GRID_SIZE, z_dim, generator=monitor).to(device)
    fixed_labels = balanced_labels(GRID_SIZE, GRID_CLASSES, device=device) if conditional else None
    return fixed_z, fixed_labels


@torch.no_grad()
def translate(model: nn.Module, x: torch.Tensor, direction: str | None = None, batch_size: int = 250) -> torch.Tensor:
    """Run an image-to-image generator over many images in eval mode, in batches on its device; the result on the CPU.

    Args:
        model: a generator called as ``model(x)`` (direction None, e.g. pix2pix's U-Net) or
            ``model(x, direction)`` (e.g. CycleGAN's pair with "AB" or "BA").
        x: (N, C, S, S) inputs in [-1, 1].
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        call = (lambda t: model(t)) if direction is None else (lambda t: model(t, direction))
        out = [call(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)
