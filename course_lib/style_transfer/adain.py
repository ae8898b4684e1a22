"""Adaptive instance normalisation for arbitrary style transfer in one pass (Huang & Belongie 2017).

Optimising pixels (``gatys``) takes hundreds of forward and backward passes per image. Huang &
Belongie observe that much of a style lies in the mean and standard deviation of each feature map,
and transfer it in feature space in one step:

    AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y),

with mu, sigma the mean and standard deviation of each channel over its H x W positions. A fixed
encoder f turns the content c and the style s into feature maps, t = AdaIN(f(c), f(s)) takes the
content's maps with the style's statistics, and a trained decoder g paints the image g(t). The
trade-off alpha in [0, 1] blends the features before decoding: t = alpha AdaIN(f(c), f(s)) + (1 - alpha) f(c)
(alpha 0: the content, as well as the decoder reconstructs it; alpha 1: the full style).

This is the same operation as lesson 09's StyleGAN layer, ``course_lib.stylegan.adain(x, scale, bias)``
(Karras et al. 2019 borrowed it from Huang & Belongie): there the scale and bias are styles y_s, y_b
computed from w by a learned affine map; here they are the style image's sigma(f(s)) and mu(f(s)).
``adaptive_instance_norm`` calls that function with them.

The decoder is trained (``course_lib.style_transfer.training``) with Huang & Belongie's loss:
the content term ||f(g(t)) - t||^2 (the decoded image's features should be t) plus lambda times the
style term sum_i ||mu(phi_i(g(t))) - mu(phi_i(s))||^2 + ||sigma(phi_i(g(t))) - sigma(phi_i(s))||^2
over the encoder's style layers phi_i: ``adain_loss``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from course_lib.stylegan import adain

EPS = 1e-5  # added to each channel's variance (Huang & Belongie's implementation)


def channel_statistics(f: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean mu (B, C) and standard deviation sigma = sqrt(var + eps) (B, C) of each map of f (B, C, H, W)."""
    if f.dim() != 4:
        raise ValueError(f"f must be feature maps (B, C, H, W), got {tuple(f.shape)}")
    mu = f.mean(dim=(2, 3))                                              # (B, C)
    sigma = (f.var(dim=(2, 3), unbiased=False) + eps).sqrt()             # (B, C)
    return mu, sigma


def adaptive_instance_norm(content: torch.Tensor, style: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """AdaIN(x, y): the content's maps with the style's per-channel mean and standard deviation.

    Args:
        content: (B, C, H, W) content feature maps x.
        style: (B or 1, C, H_s, W_s) style feature maps y (one style for the whole batch when B_s = 1).
        eps: added to both variances.

    Returns:
        (B, C, H, W) whose channel means are mu(y) and whose standard deviations are sigma(y)
        (up to the eps inside the content's normalisation).
    """
    if content.dim() != 4 or style.dim() != 4 or style.shape[1] != content.shape[1] \
            or style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"content must be (B, C, H, W) and style (B or 1, C, H', W'), got {tuple(content.shape)} "
                         f"and {tuple(style.shape)}")
    mu, sigma = channel_statistics(style, eps)                           # (B_s, C) each
    b = content.shape[0]
    return adain(content, sigma.expand(b, -1), mu.expand(b, -1), eps=eps)  # lesson 09's op: scale sigma, bias mu


def blend(content: torch.Tensor, stylised: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha * stylised + (1 - alpha) * content: the content/style trade-off on features (B, C, H, W), alpha in [0, 1]."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return alpha * stylised + (1 - alpha) * content


def statistics_loss(features: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """sum_i mean((mu_i - mu_i')^2) + mean((sigma_i - sigma_i')^2) over layers: 0 when the statistics match.

    Args:
        features: L maps (B, C_i, H_i, W_i) of the decoded images.
        targets: L maps (B or 1, C_i, H_i', W_i') of the style images.
    """
    if len(features) != len(targets) or not features:
        raise ValueError(f"features and targets must be two non-empty lists of equal length, got "
                         f"{len(features)} and {len(targets)}")
    total = features[0].new_zeros(())
    for f, s in zip(features, targets):
        (mu, sigma), (mu_s, sigma_s) = channel_statistics(f), channel_statistics(s)
        total = total + (mu - mu_s).pow(2).mean() + (sigma - sigma_s).pow(2).mean()
    return total


def adain_loss(decoded_features: torch.Tensor, t: torch.Tensor, decoded_style: Sequence[torch.Tensor],
               style: Sequence[torch.Tensor], lambda_style: float) -> dict[str, torch.Tensor]:
    """Huang & Belongie's decoder loss: content ||f(g(t)) - t||^2 (mean) + lambda_style * the statistics loss.

    Args:
        decoded_features: (B, C, H, W) the encoder's maps f(g(t)) at the AdaIN layer.
        t: (B, C, H, W) the AdaIN target the decoder was given.
        decoded_style: the encoder's style-layer maps of g(t).
        style: the encoder's style-layer maps of the style images.
        lambda_style: the weight of the style term.

    Returns:
        {"loss", "content", "style"}: scalar tensors.
    """
    content = (decoded_features - t).pow(2).mean()
    style_term = statistics_loss(decoded_style, style)
    return {"loss": content + lambda_style * style_term, "content": content, "style": style_term}
