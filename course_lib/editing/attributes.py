"""Attributes of digit images measured without labels: stroke thickness, slant, the class.

Edit directions need attribute scores, and edits need a measure of what they changed. For digits two
geometric attributes are measured directly from the pixels (no learned model, so an edit cannot game
them) and the class by the course classifier:

- **thickness**: ink mass divided by the skeleton's length would need a thinning step; the course uses
  the mean ink per inked pixel-row instead: ink mass (sum of intensities in [0, 1]) divided by the
  number of rows with any ink. A thicker stroke of the same digit puts more ink on every row.
- **slant**: from the image's second moments (Hu 1962): with (x, y) centred on the ink's centroid,
  slant = mu_xy / mu_yy, the horizontal shift per row going down; 0 is upright, positive leans right
  (top to the right). Standard in MNIST deskewing (LeCun et al. 1998 used the same moments).
"""

from __future__ import annotations

import torch
from torch import nn

INK_THRESHOLD = 0.2   # a row "has ink" when some pixel exceeds this intensity in [0, 1]


def _ink(images: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (B, 1, H, W) grey digits in [-1, 1], got {tuple(images.shape)}")
    return ((images + 1) / 2).clamp(0, 1)[:, 0]                       # (B, H, W) in [0, 1]


def thickness(images: torch.Tensor) -> torch.Tensor:
    """Ink mass per inked row (B,): grows with the stroke's width. Images (B, 1, H, W) in [-1, 1]."""
    ink = _ink(images)
    rows = (ink > INK_THRESHOLD).any(dim=2).sum(dim=1).clamp_min(1)     # (B,)
    return ink.sum(dim=(1, 2)) / rows


def slant(images: torch.Tensor) -> torch.Tensor:
    """mu_xy / mu_yy of the ink (B,): > 0 leans right (the top is further right). Images (B, 1, H, W) in [-1, 1]."""
    ink = _ink(images)
    B, H, W = ink.shape
    y = torch.arange(H, dtype=ink.dtype, device=ink.device)[None, :, None]   # (1, H, 1), downwards
    x = torch.arange(W, dtype=ink.dtype, device=ink.device)[None, None, :]   # (1, 1, W)
    mass = ink.sum(dim=(1, 2)).clamp_min(1e-6)                               # (B,)
    cy = (ink * y).sum(dim=(1, 2)) / mass
    cx = (ink * x).sum(dim=(1, 2)) / mass
    dy = y - cy[:, None, None]
    dx = x - cx[:, None, None]
    mu_xy = (ink * dx * dy).sum(dim=(1, 2)) / mass
    mu_yy = (ink * dy * dy).sum(dim=(1, 2)) / mass
    return -mu_xy / mu_yy.clamp_min(1e-6)      # y grows downwards: a right lean has x falling as y grows


@torch.no_grad()
def predicted_class(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The course classifier's class (B,) of images (B, 1, 32, 32) in [-1, 1]."""
    return classifier(images).argmax(dim=1)


ATTRIBUTES = {"thickness": thickness, "slant": slant}
