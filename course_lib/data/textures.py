"""Texture patches: random crops of the texture photographs that scikit-image ships offline.

Textures (label = index in ``TEXTURE_NAMES``): scikit-image's brick, grass and gravel (grey, 512 x 512)
and immunohistochemistry (colour, 512 x 512), the styles that AdaIN's decoder (lesson 11) learns to
paint with. Grey textures are tinted with a random colour per patch (each channel of the texture scaled
by a factor drawn uniformly from [``MIN_TINT``, 1]), so the styles differ in colour as well as in structure.

Two splits without overlap: "train" crops lie in the left three quarters of each texture, "test"
crops in its right quarter. With ``scale`` < 1 each texture is first shrunk (bilinear, antialiased),
so a patch covers more of it: at the default 0.5 a 32 x 32 patch shows a few bricks.
"""

from __future__ import annotations

import functools

import torch

from course_lib.data.common import TensorData, bytes_to_unit, check_int, check_split, split_seed

TEXTURE_NAMES = ("brick", "grass", "gravel", "immunohistochemistry")
TEST_FRACTION = 0.25  # the right-hand share of every texture's columns kept for "test"
MIN_TINT = 0.4        # the smallest per-channel factor of a grey texture's random tint


@functools.lru_cache(maxsize=4)
def _textures(scale: float) -> tuple[torch.Tensor, ...]:
    """Every texture once per process as a (3, H, W) float tensor in [0, 255] (grey ones repeated), shrunk by ``scale``."""
    import skimage.data

    out = []
    for name in TEXTURE_NAMES:
        image = torch.tensor(getattr(skimage.data, name)()).float()          # (H, W) or (H, W, 3)
        image = image[None].expand(3, -1, -1) if image.dim() == 2 else image.permute(2, 0, 1)  # (3, H, W)
        if scale != 1.0:
            image = torch.nn.functional.interpolate(image[None], scale_factor=scale, mode="bilinear",
                                                    antialias=True)[0].clamp(0, 255)
        out.append(image.contiguous())
    return tuple(out)


def is_grey(texture: int) -> bool:
    """Whether texture number ``texture`` is a grey photograph (tinted in the patches)."""
    return TEXTURE_NAMES[texture] in ("brick", "grass", "gravel")


def texture_patches(split: str = "train", size: int = 32, n: int = 1000, seed: int = 0,
                    scale: float = 0.5) -> TensorData:
    """Random RGB crops of the offline textures, grey ones tinted; patch i comes from texture i % 4.

    Args:
        split: "train" (the left three quarters of each texture) or "test" (its right quarter).
        size: patch side in pixels, in [2, the test strip's width] (64 at scale 0.5).
        n: number of patches, >= 1.
        seed: non-negative int; with the split it fixes every crop and tint.
        scale: shrink every texture by this factor in (0, 1] first.

    Returns:
        TensorData with x (n, 3, size, size) float32 in [-1, 1], labels (n,) int64 texture index,
        classes = list(TEXTURE_NAMES), info {"split", "seed", "scale"}.
    """
    check_split(split)
    n = check_int("n", n, 1)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= 1:
        raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
    textures = _textures(float(scale))
    limit = min(min(t.shape[1], int(t.shape[2] * TEST_FRACTION)) for t in textures)
    size = check_int("size", size, 2, limit)
    generator = torch.Generator().manual_seed(split_seed(seed, split, salt=3))
    labels = torch.arange(n) % len(textures)                                   # (n,)
    unit = torch.rand(n, 2, generator=generator, dtype=torch.float64)         # crop position in [0, 1)^2
    tints = MIN_TINT + (1 - MIN_TINT) * torch.rand(n, 3, 1, 1, generator=generator)  # (n, 3, 1, 1)
    patches = torch.empty(n, 3, size, size)
    for i, t in enumerate(labels.tolist()):
        texture = textures[t]
        height, width = texture.shape[1:]
        split_column = width - int(width * TEST_FRACTION)
        left, right = (0, split_column) if split == "train" else (split_column, width)
        top = int(unit[i, 0] * (height - size + 1))
        col = left + int(unit[i, 1] * (right - left - size + 1))
        patch = texture[:, top:top + size, col:col + size]                    # (3, size, size)
        patches[i] = patch * tints[i] if is_grey(t) else patch
    return TensorData(x=bytes_to_unit(patches), labels=labels, name="texture_patches", classes=list(TEXTURE_NAMES),
                      info={"split": split, "seed": seed, "scale": scale})
