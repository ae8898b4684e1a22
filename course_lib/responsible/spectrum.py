"""The log power spectrum of images: the trace that up-sampling leaves (lesson 12).

A transposed convolution with stride 2 (or nearest-neighbour up-sampling followed by a convolution)
repeats a pattern every 2 pixels; in the Fourier domain that is energy at the highest frequencies,
often a grid of peaks, where real photographs and digits have almost none (Durall et al. 2020,
Frank et al. 2020). A linear classifier on the log spectrum already separates many generators'
samples from real images (``course_lib.responsible.detectors``).

    x (N, C, H, W) -> channel mean, minus each image's mean -> |FFT2|^2 -> log -> centred (N, H, W)
"""

from __future__ import annotations

import torch

EPS = 1e-8  # added to the power before the log: log(0) is -inf


def check_images(x: torch.Tensor, name: str = "x", min_size: int = 1) -> None:
    """Raise a ValueError naming ``name`` unless x is a float (N, C, H, W) tensor with C in {1, 3}, H, W >= min_size."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point() \
            or min(x.shape[2:]) < min_size:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float (N, 1 or 3, H, W) tensor with H, W >= {min_size}, got {shape}")


def log_spectrum(x: torch.Tensor) -> torch.Tensor:
    """The centred log power spectrum of each image (its channels averaged).

    Args:
        x: (N, C, H, W) images in [-1, 1].

    Returns:
        (N, H, W) float32: log(|FFT2(x - mean)|^2 + 1e-8), the zero frequency at (H // 2, W // 2).
    """
    check_images(x)
    grey = x.float().mean(1)                                        # (N, H, W)
    grey = grey - grey.mean((1, 2), keepdim=True)                   # no DC term: brightness plays no part
    power = torch.fft.fft2(grey).abs().pow(2)                       # (N, H, W)
    return torch.fft.fftshift(torch.log(power + EPS), dim=(-2, -1))


def radial_profile(spectrum: torch.Tensor) -> torch.Tensor:
    """The azimuthal average of centred spectra: the mean over each ring of integer radius (Durall et al. 2020).

    Args:
        spectrum: (N, H, W), the zero frequency at (H // 2, W // 2), as ``log_spectrum`` returns it.

    Returns:
        (N, R) with R = min(H, W) // 2 + 1: entry r averages the frequencies at distance in [r - 0.5, r + 0.5).
    """
    if spectrum.dim() != 3:
        raise ValueError(f"spectrum must be (N, H, W), got {tuple(spectrum.shape)}")
    h, w = spectrum.shape[1:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = torch.sqrt(yy.float() ** 2 + xx.float() ** 2).round().long()  # (H, W)
    rings = min(h, w) // 2 + 1
    inside = radius < rings
    index = radius[inside]                                                   # (P,)
    sums = torch.zeros(len(spectrum), rings).index_add_(1, index, spectrum[:, inside].float())
    counts = torch.bincount(index, minlength=rings).float()
    return sums / counts                                                     # (N, R)


def spectrum_features(x: torch.Tensor) -> torch.Tensor:
    """The features of the spectrum detector: the log spectrum of each image, flattened, (N, H * W)."""
    return log_spectrum(x).flatten(1)


def fingerprint(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The mean log spectrum of ``fake`` minus that of ``real``: (H, W), positive where the generator adds energy.

    Args:
        fake, real: (N, C, H, W) and (M, C, H, W) images in [-1, 1] of the same size.
    """
    if fake.shape[1:] != real.shape[1:]:
        raise ValueError(f"fake and real must have the same image shape, got {tuple(fake.shape[1:])} and "
                         f"{tuple(real.shape[1:])}")
    return log_spectrum(fake).mean(0) - log_spectrum(real).mean(0)
