"""Full-reference image quality: PSNR and SSIM of a reconstruction against its target.

Used to score image-to-image models (pix2pix) on held-out pairs, next to a classical baseline.
Both functions take images in the course's [-1, 1] convention and measure them on [0, 1]
(data range 1), the convention of most papers and of scikit-image.

- ``psnr``: peak signal-to-noise ratio, ``10 log10(1 / MSE)`` in dB, per image. +6 dB is half the
  RMS error; identical images give +inf (capped at 100 dB here so means stay finite).
- ``ssim``: structural similarity, Wang et al. 2004, "Image Quality Assessment: From Error
  Visibility to Structural Similarity": local means, variances and covariance under an 11x11
  Gaussian window (sigma 1.5), combined as

      SSIM(a, b) = (2 mu_a mu_b + C1) (2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 + sigma_b^2 + C2))

  with C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 1, averaged over every window position that fits in
  the image and over channels. Equal to scikit-image's ``structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`` (the tests check).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_PSNR = 100.0  # dB reported for identical images


def _check(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[0] == 0:
            raise ValueError(f"{name} must be a tensor of images (B, C, H, W) in [-1, 1], got {tuple(getattr(t, 'shape', ()))}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    to_unit = lambda t: ((t.detach().to("cpu", torch.float64) + 1) / 2).clamp(0, 1)  # [-1, 1] -> [0, 1]
    return to_unit(a), to_unit(b)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image of ``a`` against the same image of ``b``.

    Args:
        a, b: (B, C, H, W) in [-1, 1] (clamped), measured on [0, 1].

    Returns:
        (B,) float64 dB, at most ``MAX_PSNR``.
    """
    a, b = _check(a, b)
    mse = (a - b).pow(2).flatten(1).mean(1)  # (B,)
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-MAX_PSNR / 10)))).clamp(max=MAX_PSNR)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(size, size) float64 Gaussian weights summing to 1."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of each image of ``a`` against the same image of ``b`` (Wang et al. 2004).

    Args:
        a, b: (B, C, H, W) in [-1, 1] (clamped), measured on [0, 1]; H, W >= window_size.
        window_size: side of the Gaussian window (11 in the paper).
        sigma: its standard deviation (1.5).

    Returns:
        (B,) float64 in [-1, 1]; 1 for identical images.
    """
    a, b = _check(a, b)
    if min(a.shape[2:]) < window_size:
        raise ValueError(f"images must be at least {window_size}x{window_size} for SSIM, got {tuple(a.shape[2:])}")
    c = a.shape[1]
    g = gaussian_window(window_size, sigma).sum(0)  # (ws,) the 1-D Gaussian: the 2-D window is its outer product
    rows, cols = g.view(1, 1, -1, 1).expand(c, 1, -1, 1), g.view(1, 1, 1, -1).expand(c, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # local weighted mean, only where the window fits (separable)
        return F.conv2d(F.conv2d(t, rows, groups=c), cols, groups=c)  # (B, C, H - ws + 1, W - ws + 1)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)  # (B,)
