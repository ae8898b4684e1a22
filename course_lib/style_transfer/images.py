"""Images for style transfer: reading and writing PNG/JPEG, resizing, and the luminance/chroma split.

Every tensor here is an image batch (B, C, H, W) in [-1, 1] with C = 1 (grey) or 3 (RGB), as in the
rest of the course. Colour preservation (Gatys et al. 2017, "Controlling perceptual factors in neural
style transfer") transfers the style to the luminance only: ``rgb_to_yiq`` splits an image into
luminance Y and chroma I, Q (the NTSC YIQ transform, a fixed linear map), ``match_luminance`` gives
the style's luminance the content's mean and spread, and ``yiq_to_rgb`` puts the content's chroma back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.checkpoint import atomic_write

# NTSC YIQ, rows Y, I, Q, applied to RGB in [0, 1]; Y is the luminance (the weights of the ITU-R BT.601 luma).
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                           [0.595716, -0.274453, -0.321263],
                           [0.211456, -0.522591, 0.311135]])
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class ImageError(ValueError):
    """An image file that cannot be read or written; the message names the file."""


def load_image(path: str | Path, size: int | None = None, grey: bool | None = None) -> torch.Tensor:
    """Read a PNG or JPEG (any mode: grey, RGB, RGBA, palette) as a (1, C, H, W) float32 image in [-1, 1].

    Args:
        path: the file.
        size: resize so that the longer side is ``size`` pixels (aspect ratio kept), or None to keep it.
        grey: True: read as grey (C = 1); False: as RGB (C = 3); None: grey if the file is (PIL modes
            1, L, LA, I, I;16, F), else RGB.

    Raises:
        ImageError: no such file, or a file that PIL cannot read as an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with Image.open(path) as image:
            if grey is None:
                grey = image.mode in GREY_MODES
            if image.mode in ("I", "I;16", "F"):  # 16-bit or float grey: scale to 8 bits first
                high = max(float(np.asarray(image).max()), 1.0)
                image = Image.fromarray((np.asarray(image, dtype=np.float64) * (255 / high)).astype(np.uint8))
            array = np.asarray(image.convert("L" if grey else "RGB"))  # (H, W) or (H, W, 3) uint8
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageError(f"{path}: not a readable image ({err})") from None
    x = torch.from_numpy(array.copy()).float().div(127.5).sub(1)
    x = x[None, None] if grey else x.permute(2, 0, 1)[None]  # (1, C, H, W)
    return resize_longer(x, size) if size is not None else x


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write a (1, C, H, W) or (C, H, W) image in [-1, 1] as PNG or JPEG (by the suffix), atomically."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ImageError(f"{path}: the suffix must be one of {', '.join(FORMATS)}")
    image = image[0] if image.dim() == 4 else image
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be (1, C, H, W) or (C, H, W) with C 1 or 3, got {tuple(image.shape)}")
    array = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (C, H, W)
    array = array.permute(1, 2, 0).squeeze(-1).numpy()  # (H, W, 3) or (H, W)
    fmt = FORMATS[path.suffix.lower()]
    return atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format=fmt, **(
        {"quality": 95} if fmt == "JPEG" else {})))


def resize_longer(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (B, C, H, W) so that its longer side is ``size`` (bicubic, antialiased when shrinking)."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    height, width = x.shape[-2:]
    scale = size / max(height, width)
    return resize(x, (max(1, round(height * scale)), max(1, round(width * scale))))


def resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Resize (B, C, H, W) to (B, C, *hw): bicubic, antialiased, clamped to [-1, 1]."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) as ``channels`` channels: grey -> RGB repeats it, RGB -> grey takes the luminance."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and channels == 1:
        return rgb_to_yiq(x)[:, :1]
    raise ValueError(f"cannot turn {x.shape[1]} channels into {channels}")


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [-1, 1] -> (B, 3, H, W): Y in [-1, 1] (the luminance on the course's scale), I and Q.

    I and Q are those of RGB in [0, 1] (about [-0.6, 0.6] and [-0.5, 0.5]); ``yiq_to_rgb`` inverts it exactly.
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (B, 3, H, W) RGB images, got {tuple(x.shape)}")
    yiq = torch.einsum("oc,bchw->bohw", RGB_TO_YIQ.to(x), (x + 1) / 2)  # (B, 3, H, W), RGB in [0, 1]
    return torch.cat([yiq[:, :1] * 2 - 1, yiq[:, 1:]], dim=1)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """The inverse of ``rgb_to_yiq``: (B, 3, H, W) YIQ -> RGB in [-1, 1] (not clamped)."""
    if yiq.dim() != 4 or yiq.shape[1] != 3:
        raise ValueError(f"yiq must be (B, 3, H, W), got {tuple(yiq.shape)}")
    unit = torch.cat([(yiq[:, :1] + 1) / 2, yiq[:, 1:]], dim=1)
    rgb = torch.einsum("oc,bchw->bohw", torch.linalg.inv(RGB_TO_YIQ.double()).to(yiq), unit)  # (B, 3, H, W)
    return rgb * 2 - 1


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """The style's luminance (B, 1, H, W) shifted and scaled to the content's mean and standard deviation.

    Gatys et al. (2017), colour control: without it, a dark style would darken the content even though only
    the luminance is transferred.
    """
    mu_s, sigma_s = style_y.mean(), style_y.std(unbiased=False).clamp_min(1e-6)
    mu_c, sigma_c = content_y.mean(), content_y.std(unbiased=False)
    return ((style_y - mu_s) * sigma_c / sigma_s + mu_c).clamp(-1, 1)
