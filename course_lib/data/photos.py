"""Photo patches: random RGB crops of the natural photographs that pip packages ship offline.

Photos (label = index in `PHOTO_NAMES`): scikit-image's astronaut, chelsea (the cat), coffee,
rocket and the left view of stereo_motorcycle; scikit-learn's china and flower
(`load_sample_images`); matplotlib's grace_hopper.jpg. Other offline images were left out on
purpose: greyscale ones (camera, coins, moon, ...), the synthetic colorwheel, the duplicate `cat`
(= chelsea), and hubble_deep_field, retina and immunohistochemistry (mostly black sky or mask, or
microscopy rather than camera photos).

Split without overlap: the right-most 20% of every photo's width (`TEST_FRACTION`) is reserved
for "test"; "train" patches come from the remaining left 80%. A train patch therefore ends at or
before the column where every test patch starts, so no pixel appears in both splits. Crops are at
the photo's native resolution (no resizing), so the largest patch side is the narrowest test
strip (chelsea: 451 px wide -> 90 px). With ``scale`` < 1 every photo is first shrunk (bilinear
resampling with antialiasing), so a patch of the same side covers more of the scene: at ``scale=0.5`` a 32x32 patch
shows an eye or a letter rather than a patch of skin; the largest side is then 45.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from course_lib.data.common import TensorData, bytes_to_unit, check_int, check_split, split_seed

PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower",
               "grace_hopper")
TEST_FRACTION = 0.2  # the right-most 20% of each photo's width is the test strip


@functools.lru_cache(maxsize=4)
def _photos(scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    """Load every photo once per process as a (3, H, W) uint8 tensor, in `PHOTO_NAMES` order, resized by `scale`."""
    if scale != 1.0:
        resized = []
        for photo in _photos(1.0):
            small = torch.nn.functional.interpolate(photo[None].float(), scale_factor=scale, mode="bilinear",
                                                    antialias=True)  # (1, 3, H * scale, W * scale)
            resized.append(small[0].round().clamp(0, 255).to(torch.uint8))
        return tuple(resized)
    import matplotlib.cbook
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    sample_images = dict(zip(("china", "flower"), load_sample_images().images))
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        grace_hopper = np.asarray(Image.open(f).convert("RGB"))
    loaders = {
        "astronaut": skimage.data.astronaut,
        "chelsea": skimage.data.chelsea,
        "coffee": skimage.data.coffee,
        "rocket": skimage.data.rocket,
        "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],  # (left, right, disparity)
        "china": lambda: sample_images["china"],
        "flower": lambda: sample_images["flower"],
        "grace_hopper": lambda: grace_hopper,
    }
    photos = []
    for name in PHOTO_NAMES:
        image = np.ascontiguousarray(loaders[name]())  # (H, W, 3) uint8
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise RuntimeError(f"photo {name!r} should be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        photos.append(torch.tensor(image).permute(2, 0, 1).contiguous())  # copy; (3, H, W)
    return tuple(photos)


def _regions(photos: tuple[torch.Tensor, ...], split: str) -> list[tuple[int, int, int]]:
    """(height, first column, last column + 1) of each photo's region for `split`."""
    regions = []
    for photo in photos:
        height, width = photo.shape[1:]
        test_left = width - int(width * TEST_FRACTION)  # the test strip is [test_left, width)
        regions.append((height, 0, test_left) if split == "train" else (height, test_left, width))
    return regions


def max_patch_size(scale: float = 1.0) -> int:
    """The largest `size` `photo_patches` accepts at `scale`: the smallest region side over photos and splits."""
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= 1:
        raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
    photos = _photos(float(scale))
    return min(min(h, right - left) for s in ("train", "test")
               for h, left, right in _regions(photos, s))


def photo_patches(split: str = "train", size: int = 32, n: int = 1000, seed: int = 0,
                  scale: float = 1.0) -> TensorData:
    """Random RGB crops of the offline photos, with a spatial train/test split that never overlaps.

    Patches cycle through the photos (patch i comes from photo i % 8), so every photo is equally
    represented; each patch's position is uniform over its photo's region for `split`.

    Args:
        split: "train" (crops from the left 80% of each photo's width) or "test" (crops from the
            right-most 20%).
        size: patch side in pixels, in [2, max_patch_size(scale)] (90 with the current photos at
            scale 1, 45 at scale 0.5).
        n: number of patches, >= 1.
        seed: non-negative int; with the split it fixes every crop position.
        scale: shrink every photo by this factor in (0, 1] first (0.5: half the width and height).

    Returns:
        TensorData with x (n, 3, size, size) float32 in [-1, 1], labels (n,) int64 index of the
        source photo, classes = list(PHOTO_NAMES), info {"split", "seed", "photo_names",
        "boxes": (n, 4) int64 (top, left, bottom, right) of each crop in its photo, pixels
        [top, bottom) x [left, right), "test_left": list of the first test column of every photo}.
    """
    check_split(split)
    n = check_int("n", n, 1)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= 1:
        raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
    scale = float(scale)
    photos = _photos(scale)
    size, limit = check_int("size", size, 2), max_patch_size(scale)
    if size > limit:
        raise ValueError(f"size must be <= {limit} at scale {scale}, the side of the smallest photo region (the "
                         f"test strips are the right-most 20% of each photo), got {size}")
    regions = _regions(photos, split)
    generator = torch.Generator().manual_seed(split_seed(seed, split, salt=2))
    labels = torch.arange(n) % len(photos)  # (n,)
    unit = torch.rand(n, 2, generator=generator, dtype=torch.float64)  # (n, 2) in [0, 1)
    patches = torch.empty(n, 3, size, size, dtype=torch.uint8)
    boxes = torch.empty(n, 4, dtype=torch.int64)
    for i, p in enumerate(labels.tolist()):
        height, left, right = regions[p]
        top = int(unit[i, 0] * (height - size + 1))  # uniform over the valid top rows
        col = left + int(unit[i, 1] * (right - left - size + 1))
        patches[i] = photos[p][:, top:top + size, col:col + size]
        boxes[i] = torch.tensor([top, col, top + size, col + size])
    return TensorData(
        x=bytes_to_unit(patches),  # (n, 3, size, size)
        labels=labels,
        name="photo_patches",
        classes=list(PHOTO_NAMES),
        info={"split": split, "seed": seed, "scale": scale, "photo_names": list(PHOTO_NAMES), "boxes": boxes,
              "test_left": [left for _, left, _ in _regions(photos, "test")]},
    )
