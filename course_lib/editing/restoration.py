"""Restoration by inversion: inpainting and super-resolution with a generator as the prior.

A degraded image y = H(x) (a masked image, a down-sampled one) has many preimages. Searching only the
generator's range, code* = argmin d(H(G(code)), y), returns the preimage that looks like the training
data (Bora et al. 2017, "Compressed Sensing using Generative Models", did this on MNIST; Menon et al.
2020, PULSE, for faces). The same projector as inversion, with the degradation applied inside the
distance.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from course_lib.editing.inversion import Distance, Projection, ProjectorConfig, pixel_distance, project
from course_lib.stylegan import Generator

TASKS = ("inpaint", "superres")


def square_mask(batch: int, size: int = 32, hole: int = 12, generator: torch.Generator | None = None,
                centre: bool = False) -> torch.Tensor:
    """(B, 1, size, size): 1 where pixels are known, 0 in a hole x hole square (centred, or placed at random)."""
    mask = torch.ones(batch, 1, size, size)
    for b in range(batch):
        if centre:
            top = left = (size - hole) // 2
        else:
            top, left = (int(v) for v in torch.randint(4, size - hole - 3, (2,), generator=generator))
        mask[b, :, top:top + hole, left:left + hole] = 0
    return mask


def downsample(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Box down-sampling by ``factor`` (averages factor x factor blocks): (B, C, H, W) -> (B, C, H/f, W/f)."""
    return F.avg_pool2d(x, factor)


def upsample_bicubic(low: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """The classical baseline for super-resolution: bicubic interpolation, clamped to [-1, 1]."""
    return F.interpolate(low, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)


def mean_fill(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The classical baseline for inpainting: the hole filled with the mean of each image's known pixels."""
    known = (x * mask).sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    return x * mask + known * (1 - mask)


def degradation(task: str, mask: torch.Tensor | None = None, factor: int = 4) -> Callable[[torch.Tensor], torch.Tensor]:
    """H for ``task``: multiply by the mask (inpaint) or box down-sample (superres)."""
    if task == "inpaint":
        if mask is None:
            raise ValueError("task 'inpaint' needs a mask (B, 1, H, W) with 1 for known pixels")
        return lambda x: x * mask
    if task == "superres":
        return lambda x: downsample(x, factor)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def restore(G: Generator, observed: torch.Tensor, task: str, mask: torch.Tensor | None = None, factor: int = 4,
            space: str = "w+", cfg: ProjectorConfig | None = None, distance: Distance = pixel_distance,
            generator: torch.Generator | None = None, statistics=None, callback=None) -> tuple[torch.Tensor, Projection]:
    """Restore degraded images through the generator.

    Args:
        G: the StyleGAN generator.
        observed: what is known: for inpaint the images (B, C, 32, 32) (the hole's pixels are ignored),
            for superres the low-resolution images (B, C, 32 / factor, 32 / factor).
        task: "inpaint" or "superres".
        mask: (B, 1, 32, 32), 1 where known (inpaint).
        factor: the down-sampling factor (superres).
        space, cfg, distance, generator, statistics, callback: as in ``inversion.project``.

    Returns:
        ``(restored, projection)``: the restored images (B, C, 32, 32) (for inpainting the known
        pixels are kept and the hole comes from G) and the projection behind them.
    """
    H = degradation(task, mask, factor)
    target = H(observed) if task == "inpaint" else observed
    projection = project(G, target, space, cfg, distance=distance, degrade=H, generator=generator,
                         statistics=statistics, callback=callback)
    restored = projection.images
    if task == "inpaint":
        restored = observed * mask + restored * (1 - mask)
    return restored, projection
