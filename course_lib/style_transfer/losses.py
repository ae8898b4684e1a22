"""The losses of neural style transfer: Gram matrices, content, style and total variation.

Gatys et al. (2015, 2016) describe a texture by second-order statistics of feature maps. For one
layer with C maps of H x W positions, flatten the maps into F (C, M), M = H W. The Gram matrix here is

    G = F F^T / M,   G_ij = (1 / M) sum_p F_ip F_jp,

the mean over positions of the outer product of the feature vectors: a second moment that does not
depend on where anything is (a permutation of the positions leaves it unchanged) nor on the image
size (a texture tiled twice has the same G). Gatys et al. use F F^T without the 1 / M and a layer
loss E = ||F F^T - A||^2 / (4 C^2 M^2); with this G, ``style_loss``'s per-layer term
mean((G - A)^2) = ||G - A||^2 / C^2 is 4 times theirs. Li et al. (2017, "Demystifying neural style
transfer") show that this loss is a maximum mean discrepancy between the two sets of feature vectors
with the kernel k(x, y) = (x^T y)^2.

Every function takes feature maps or images (B, C, H, W) and returns a scalar tensor, averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _check_maps(f: torch.Tensor, name: str) -> None:
    if f.dim() != 4:
        raise ValueError(f"{name} must be feature maps (B, C, H, W), got {tuple(f.shape)}")


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """The Gram matrix G = F F^T / (H W) of each sample's feature maps.

    Args:
        f: (B, C, H, W) feature maps.

    Returns:
        (B, C, C), symmetric and positive semi-definite; its trace is the mean squared norm of the
        feature vectors.
    """
    _check_maps(f, "f")
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)                          # (B, C, M)
    return flat @ flat.transpose(1, 2) / (h * w)           # (B, C, C)


def content_loss(f: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two feature maps of the same shape (B, C, H, W): 0 when they are equal."""
    _check_maps(f, "f")
    if target.shape[1:] != f.shape[1:]:
        raise ValueError(f"target must have the shape of f {tuple(f.shape)}, got {tuple(target.shape)}")
    return (f - target).pow(2).mean()


def style_loss(features: Sequence[torch.Tensor], target_grams: Sequence[torch.Tensor],
               weights: Sequence[float] | None = None) -> torch.Tensor:
    """sum_l w_l mean((G(f_l) - A_l)^2): the weighted Gram-matrix error over layers.

    Args:
        features: L feature maps (B, C_l, H_l, W_l), one per style layer.
        target_grams: L Gram matrices A_l, (C_l, C_l) or (B or 1, C_l, C_l) (one style image for a batch).
        weights: L layer weights w_l; default 1 / L each (Gatys et al.'s equal weights).

    Returns:
        A scalar >= 0, zero when every G(f_l) equals A_l.
    """
    if len(features) != len(target_grams) or not features:
        raise ValueError(f"features and target_grams must be two non-empty lists of equal length, got "
                         f"{len(features)} and {len(target_grams)}")
    weights = [1.0 / len(features)] * len(features) if weights is None else list(weights)
    if len(weights) != len(features):
        raise ValueError(f"weights must have one entry per layer ({len(features)}), got {len(weights)}")
    total = features[0].new_zeros(())
    for f, target, w in zip(features, target_grams, weights):
        g = gram_matrix(f)                                 # (B, C, C)
        if target.shape[-2:] != g.shape[-2:]:
            raise ValueError(f"a target Gram matrix must be {tuple(g.shape[-2:])} for maps {tuple(f.shape)}, "
                             f"got {tuple(target.shape)}")
        total = total + w * (g - target).pow(2).mean()
    return total


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels, across and down: 0 for a constant image.

    Args:
        x: (B, C, H, W) images, H and W >= 2.

    Returns:
        mean((x[:, :, i, j+1] - x[:, :, i, j])^2) + mean((x[:, :, i+1, j] - x[:, :, i, j])^2), a scalar.
    """
    _check_maps(x, "x")
    if min(x.shape[-2:]) < 2:
        raise ValueError(f"x must be at least 2 x 2 pixels, got {tuple(x.shape)}")
    across = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    down = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    return across + down
