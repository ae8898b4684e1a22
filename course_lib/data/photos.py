"""Photo patches: random RGB crops of the natural photographs that pip packages ship offline.

Photos (label = index in `PHOTO_NAMES`): scikit-image's astronaut, chelsea (the cat), coffee,
rocket and the left view of stereo_motorcycle; scikit-learn's china and flower
(`load_sample_images`); matplotlib's grace_hopper.jpg. Other offline images were left out on
purpose: greyscale ones (camera, coins, moon, ...), the synthetic colorwheel, the duplicate `cat`
(= chelsea), and hubble_deep_field, retina and immunohistochemistry (mostly black sky or mask, or
microscopy rather than camera photos).

Three splits without overlap. Every photo is cut into a grid of 4 x 5 blocks (`GRID`); four
blocks, one in each row and spread over the columns (`HELD_OUT`), are held out: two for "val"
(to choose settings and calibrate a model) and two for "test" (to report, once the settings are
fixed). "train" crops are the windows that touch no held-out pixel; a val or test crop lies
inside one block of its split (`split_mask` gives each split's pixels). Held-out blocks spread
over the photo, rather than one strip at its edge, sample what the photo shows (a strip at the
edge is mostly background) and make the score vary less with the choice of region: with a
right-hand strip cut into a val and a test half, the grey-copy baseline of colourisation scored
23.6 and 25.8 dB on the two halves. (Blocked hold-outs for spatially correlated data: Roberts et
al. 2017, "Cross-validation strategies for data with temporal, spatial, hierarchical, or
phylogenetic structure".) Crops are at the photo's native resolution (no resizing), so the
largest patch side is the smallest held-out block's side (chelsea: 300 x 451 px -> 75). With
``scale`` < 1 every photo is first shrunk (bilinear resampling with antialiasing), so a patch of
the same side covers more of the scene: at ``scale=0.5`` a 32x32 patch shows an eye or a letter
rather than a patch of skin; the largest side is then 37.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from course_lib.data.common import PHOTO_SPLITS, TensorData, bytes_to_unit, check_int, check_split, split_seed

PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower",
               "grace_hopper")
GRID = (4, 5)  # rows, columns of blocks per photo
HELD_OUT = {(0, 1): "val", (1, 3): "test", (2, 0): "val", (3, 2): "test"}  # (row, column) -> split: 20% held out


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


def load_photo(photo: int, scale: float = 1.0) -> torch.Tensor:
    """Photo number `photo` (`PHOTO_NAMES` order) as a (3, H, W) uint8 tensor, shrunk by `scale`."""
    photos = _photos(_check_scale(scale))
    check_int("photo", photo, 0, len(photos) - 1)
    return photos[photo].clone()


def _edges(length: int, parts: int) -> list[int]:
    """Boundaries of `parts` near-equal intervals of range(length): [0, ..., length]."""
    return [round(i * length / parts) for i in range(parts + 1)]


def split_mask(photo: int, split: str, scale: float = 1.0) -> torch.Tensor:
    """(H, W) bool: the pixels of photo number `photo` (at `scale`) that belong to `split`."""
    check_split(split, PHOTO_SPLITS)
    height, width = load_photo(photo, scale).shape[1:]
    rows, cols = _edges(height, GRID[0]), _edges(width, GRID[1])
    held_out = torch.zeros(height, width, dtype=torch.bool)
    mask = torch.zeros(height, width, dtype=torch.bool)
    for (r, c), block_split in HELD_OUT.items():
        held_out[rows[r]:rows[r + 1], cols[c]:cols[c + 1]] = True
        if block_split == split:
            mask[rows[r]:rows[r + 1], cols[c]:cols[c + 1]] = True
    return ~held_out if split == "train" else mask


@functools.lru_cache(maxsize=64)
def _corners(photo: int, split: str, size: int, scale: float) -> torch.Tensor:
    """(N, 2) int64 (top, left) of every size x size window of the photo that lies wholly in `split`."""
    mask = split_mask(photo, split, scale).double()[None, None]      # (1, 1, H, W)
    inside = torch.nn.functional.avg_pool2d(mask, size, stride=1)[0, 0] > 1 - 1e-9  # (H - size + 1, W - size + 1)
    return inside.nonzero()


def _check_scale(scale: float) -> float:
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= 1:
        raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
    return float(scale)


def max_patch_size(scale: float = 1.0) -> int:
    """The largest `size` `photo_patches` accepts at `scale`: the smallest held-out block's side over the photos."""
    sides = []
    for photo in _photos(_check_scale(scale)):
        rows, cols = _edges(photo.shape[1], GRID[0]), _edges(photo.shape[2], GRID[1])
        sides += [min(rows[r + 1] - rows[r], cols[c + 1] - cols[c]) for r, c in HELD_OUT]
    return min(sides)


def photo_patches(split: str = "train", size: int = 32, n: int = 1000, seed: int = 0,
                  scale: float = 1.0) -> TensorData:
    """Random RGB crops of the offline photos, with spatial train / val / test splits that never overlap.

    Patches cycle through the photos (patch i comes from photo i % 8), so every photo is equally
    represented; each patch's position is uniform over its photo's region for `split`.

    Args:
        split: "train" (crops that touch no held-out block), "val" or "test" (crops inside one of
            the photo's two held-out blocks of that split; see `HELD_OUT`).
        size: patch side in pixels, in [2, max_patch_size(scale)] (75 with the current photos at
            scale 1, 37 at scale 0.5).
        n: number of patches, >= 1.
        seed: non-negative int; with the split it fixes every crop position.
        scale: shrink every photo by this factor in (0, 1] first (0.5: half the width and height).

    Returns:
        TensorData with x (n, 3, size, size) float32 in [-1, 1], labels (n,) int64 index of the
        source photo, classes = list(PHOTO_NAMES), info {"split", "seed", "photo_names",
        "boxes": (n, 4) int64 (top, left, bottom, right) of each crop in its photo, pixels
        [top, bottom) x [left, right)}.
    """
    check_split(split, PHOTO_SPLITS)
    n = check_int("n", n, 1)
    scale = _check_scale(scale)
    size, limit = check_int("size", size, 2), max_patch_size(scale)
    if size > limit:
        raise ValueError(f"size must be <= {limit} at scale {scale}, the side of the smallest held-out block "
                         f"(each photo is cut into {GRID[0]} x {GRID[1]} blocks), got {size}")
    photos = _photos(scale)
    generator = torch.Generator().manual_seed(split_seed(seed, split, salt=2))
    labels = torch.arange(n) % len(photos)  # (n,)
    unit = torch.rand(n, generator=generator, dtype=torch.float64)  # (n,) in [0, 1)
    patches = torch.empty(n, 3, size, size, dtype=torch.uint8)
    boxes = torch.empty(n, 4, dtype=torch.int64)
    for i, p in enumerate(labels.tolist()):
        corners = _corners(p, split, size, scale)          # every valid (top, left) of this photo and split
        top, col = corners[int(unit[i] * len(corners))].tolist()  # uniform over them
        patches[i] = photos[p][:, top:top + size, col:col + size]
        boxes[i] = torch.tensor([top, col, top + size, col + size])
    return TensorData(
        x=bytes_to_unit(patches),  # (n, 3, size, size)
        labels=labels,
        name="photo_patches",
        classes=list(PHOTO_NAMES),
        info={"split": split, "seed": seed, "scale": scale, "photo_names": list(PHOTO_NAMES), "boxes": boxes},
    )
