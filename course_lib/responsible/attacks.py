"""What happens to an image after it leaves the generator: re-encoding, blur, resizing, noise, cropping.

Each attack maps images (N, C, H, W) in [-1, 1] to images of the same shape in [-1, 1], and is
deterministic (``noise`` draws from a seeded generator). Watermarks are measured against them
(``course_lib.responsible.watermarks``) and detectors are trained with some of them as augmentation
(Wang et al. 2020). ``STANDARD`` names the settings the lesson and the README report.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from course_lib.responsible.spectrum import check_images


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), rounded: what an image file holds."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 127.5 - 1


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved as a JPEG of ``quality`` (1..95) in memory with PIL and read back (grey stays grey)."""
    check_images(x)
    if not isinstance(quality, int) or not 1 <= quality <= 95:
        raise ValueError(f"quality must be an int in 1..95, got {quality!r}")
    out = []
    for image in to_uint8(x):                                               # (H, W, C)
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        out.append(decoded.reshape(image.shape))
    return from_uint8(np.stack(out)).to(x.device)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of standard deviation ``sigma`` > 0, radius ceil(3 sigma): (2r + 1,)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    return kernel / kernel.sum()


def blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """A Gaussian blur of standard deviation ``sigma`` pixels (separable, edges replicated); sigma 0 is no blur."""
    check_images(x)
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    if sigma == 0:
        return x.clone()
    kernel = gaussian_kernel(sigma).to(x)
    r, c = len(kernel) // 2, x.shape[1]
    y = F.pad(x, (r, r, r, r), mode="replicate")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)  # along W
    y = F.conv2d(y, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)  # along H
    return y.clamp(-1, 1)


def resize(x: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """Down to ``scale`` of the size (bilinear, antialiased) and back up (bilinear): detail above the new Nyquist is lost."""
    check_images(x)
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    h, w = x.shape[2:]
    small = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(-1, 1)


def noise(x: torch.Tensor, sigma: float = 0.04, seed: int = 0) -> torch.Tensor:
    """Gaussian noise of standard deviation ``sigma`` (in [-1, 1] units: 0.04 is 5 grey levels), seeded, clamped."""
    check_images(x)
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x)
    return (x + sigma * eps).clamp(-1, 1)


def crop(x: torch.Tensor, pixels: int = 2) -> torch.Tensor:
    """Cut ``pixels`` rows and columns off every border and resize back to (H, W) (bilinear): a crop, as shared."""
    check_images(x, min_size=2 * pixels + 1)
    if not isinstance(pixels, int) or pixels < 0:
        raise ValueError(f"pixels must be an int >= 0, got {pixels!r}")
    h, w = x.shape[2:]
    inner = x[..., pixels:h - pixels, pixels:w - pixels]
    return F.interpolate(inner, size=(h, w), mode="bilinear", align_corners=False).clamp(-1, 1)


Attack = Callable[[torch.Tensor], torch.Tensor]

STANDARD: dict[str, Attack] = {  # the attacks the README's tables report, by name
    "none": torch.clone,
    "jpeg90": partial(jpeg, quality=90),
    "jpeg75": partial(jpeg, quality=75),
    "jpeg50": partial(jpeg, quality=50),
    "blur": partial(blur, sigma=1.0),
    "resize": partial(resize, scale=0.5),
    "noise": partial(noise, sigma=0.04),
    "crop": partial(crop, pixels=2),
}


def attack(x: torch.Tensor, name: str) -> torch.Tensor:
    """The standard attack ``name`` (one of ``STANDARD``) applied to x (N, C, H, W) in [-1, 1]."""
    if name not in STANDARD:
        raise ValueError(f"attack must be one of {tuple(STANDARD)}, got {name!r}")
    return STANDARD[name](x)
