"""Differentiable augmentation of D's inputs, for GANs trained on little data.

With a few thousand images a discriminator starts to memorise the training set, and its feedback to
G degrades. DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training") applies the same random, differentiable transformations to every image D sees, real
and fake, in the D step and in the G step; gradients flow through the transformation to G, so
G is never taught to produce augmented images.

``translate`` shifts each image by a random whole number of pixels and fills the uncovered border
with the background value; it is the transformation that helps most on digits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def translate(x: torch.Tensor, max_shift: int = 2, fill: float = -1.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], differentiably.

    Args:
        x: images (B, C, H, W).
        max_shift: largest shift in pixels, >= 0.
        fill: value of the uncovered border (-1 is the background of the course's images).
        generator: optional ``torch.Generator`` for the shifts (on x's device or the CPU).

    Returns:
        (B, C, H, W) shifted images; gradients flow back to x.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) tensor, got {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    device = generator.device if generator is not None else torch.device("cpu")
    shifts = torch.randint(-max_shift, max_shift + 1, (2, b), generator=generator, device=device).to(x.device)
    padded = F.pad(x, (max_shift,) * 4, value=fill)  # (B, C, H + 2s, W + 2s)
    rows = torch.arange(h, device=x.device)[None, :] + max_shift - shifts[0][:, None]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] + max_shift - shifts[1][:, None]  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W)
