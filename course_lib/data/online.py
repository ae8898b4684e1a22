"""Datasets that need files from the internet (or a folder of your own): MNIST, Fashion-MNIST, CIFAR-10.

These wrap torchvision and load the whole split into one tensor, in the same convention as the
offline sets: float32 (N, C, H, W) in [-1, 1], int64 labels. MNIST and Fashion-MNIST are
zero-padded 28 -> 32 like `mnist5k`. Files live under `root` (default: the COURSE_LIB_DATA
environment variable if set, else ~/.cache/course_lib/data); `download=True` fetches them first.

Nothing here touches the network unless `download=True` is passed. When the files are missing
and cannot be downloaded (no network: torchvision fails within seconds), a
`DatasetUnavailableError` says what was tried, where to put the files, and which offline datasets
work without a network.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from course_lib.data.common import TensorData, bytes_to_unit, check_int, check_split, pad_28_to_32

OFFLINE_DATASETS = ("mnist5k", "digits", "printed_digits", "photo_patches", "toy2d")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck"]


class DatasetUnavailableError(RuntimeError):
    """The dataset's files are missing and could not be downloaded."""


def default_root() -> Path:
    """Where online datasets live: $COURSE_LIB_DATA if set, else ~/.cache/course_lib/data."""
    return Path(os.environ.get("COURSE_LIB_DATA", "~/.cache/course_lib/data")).expanduser()


def _unavailable(name: str, root: Path, download: bool, where: str, err: BaseException):
    tried = (f"downloading it into {root} failed" if download
             else f"its files are not under {root} and download=False")
    detail = " ".join(str(err).split())  # torchvision lists every mirror it tried
    detail = detail if len(detail) <= 400 else detail[:400] + " ..."
    return DatasetUnavailableError(
        f"{name} is not available: {tried} ({type(err).__name__}: {detail}). "
        f"Connect to the internet and pass download=True, or copy the files to {where}. "
        f"These datasets work without a network: {', '.join(OFFLINE_DATASETS)}."
    )


def _torchvision_set(cls_name: str, name: str, folder: str, split: str, root, download: bool):
    """Build a torchvision dataset, turning 'missing and not downloadable' into our error."""
    from torchvision import datasets

    if not isinstance(download, bool):
        raise ValueError(f"download must be True or False, got {download!r}")
    root = default_root() if root is None else Path(root).expanduser()
    try:
        return getattr(datasets, cls_name)(str(root), train=split == "train", download=download)
    except (RuntimeError, OSError) as err:  # OSError covers urllib's URLError
        raise _unavailable(name, root, download, str(root / folder), err) from err


def mnist(split: str = "train", root: str | os.PathLike | None = None,
          download: bool = False) -> TensorData:
    """The full MNIST set (60,000 train / 10,000 test) via torchvision, framed 32x32 like mnist5k.

    Args:
        split: "train" or "test".
        root: folder holding MNIST/raw/ (None: `default_root()`).
        download: fetch the files if they are missing (needs the internet).

    Returns:
        TensorData with x (N, 1, 32, 32) float32 in [-1, 1] (border -1), labels (N,) int64 0..9.
        Raises DatasetUnavailableError if the files are missing and cannot be downloaded.
    """
    check_split(split)
    data = _torchvision_set("MNIST", "mnist", "MNIST/raw", split, root, download)
    x = pad_28_to_32(bytes_to_unit(data.data[:, None]))  # (N, 1, 28, 28) uint8 -> (N, 1, 32, 32)
    return TensorData(x, data.targets.long(), "mnist", [str(d) for d in range(10)],
                      {"split": split, "root": data.root})


def fashion_mnist(split: str = "train", root: str | os.PathLike | None = None,
                  download: bool = False) -> TensorData:
    """Fashion-MNIST (60,000 / 10,000 clothing images) via torchvision, framed 32x32.

    Args:
        split: "train" or "test".
        root: folder holding FashionMNIST/raw/ (None: `default_root()`).
        download: fetch the files if they are missing (needs the internet).

    Returns:
        TensorData with x (N, 1, 32, 32) float32 in [-1, 1] (border -1), labels (N,) int64 0..9,
        classes the torchvision class names. Raises DatasetUnavailableError when unavailable.
    """
    check_split(split)
    data = _torchvision_set("FashionMNIST", "fashion_mnist", "FashionMNIST/raw", split, root,
                            download)
    x = pad_28_to_32(bytes_to_unit(data.data[:, None]))  # (N, 1, 32, 32)
    return TensorData(x, data.targets.long(), "fashion_mnist", list(data.classes),
                      {"split": split, "root": data.root})


def cifar10(split: str = "train", root: str | os.PathLike | None = None,
            download: bool = False) -> TensorData:
    """CIFAR-10 (50,000 / 10,000 colour images, 32x32) via torchvision.

    Args:
        split: "train" or "test".
        root: folder holding cifar-10-batches-py/ (None: `default_root()`).
        download: fetch the files if they are missing (needs the internet, ~170 MB).

    Returns:
        TensorData with x (N, 3, 32, 32) float32 in [-1, 1], labels (N,) int64 0..9, classes
        ["airplane", ..., "truck"]. Raises DatasetUnavailableError when unavailable.
    """
    check_split(split)
    data = _torchvision_set("CIFAR10", "cifar10", "cifar-10-batches-py", split, root, download)
    x = bytes_to_unit(torch.from_numpy(data.data).permute(0, 3, 1, 2))  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    return TensorData(x, torch.as_tensor(data.targets, dtype=torch.int64), "cifar10",
                      list(CIFAR10_CLASSES), {"split": split, "root": data.root})


def image_folder(root: str | os.PathLike, size: int = 64, split: str = "train") -> TensorData:
    """Your own images, one sub-folder per class (torchvision's ImageFolder), as a square tensor.

    Each image is resized so its shorter side is `size`, then centre-cropped to size x size.
    If `root` has `train/` and `test/` sub-folders they are the two splits; otherwise the whole
    folder is the "train" split and asking for "test" raises DatasetUnavailableError.

    Args:
        root: the folder, e.g. root/cats/001.jpg, root/dogs/002.png.
        size: output side in pixels, >= 1.
        split: "train" or "test".

    Returns:
        TensorData with x (N, 3, size, size) float32 in [-1, 1], labels (N,) int64 class index,
        classes the sub-folder names (sorted), info {"split", "root", "paths"}.
    """
    from torchvision import datasets, transforms

    check_split(split)
    size = check_int("size", size, 1)
    root = Path(root).expanduser()
    folder = root / split if (root / "train").is_dir() and (root / "test").is_dir() else root
    if split == "test" and folder == root:
        raise DatasetUnavailableError(f"image_folder: {root} has no train/ and test/ sub-folders, "
                                      "so it only has a 'train' split")
    transform = transforms.Compose([
        transforms.Resize(size),
        transforms.CenterCrop(size),
        transforms.PILToTensor(),  # (3, size, size) uint8
    ])
    try:
        data = datasets.ImageFolder(str(folder), transform=transform)  # loads as RGB
    except (FileNotFoundError, RuntimeError) as err:
        raise DatasetUnavailableError(
            f"image_folder: no images found in {folder} ({type(err).__name__}: {err}). Put one "
            f"sub-folder of images per class there (e.g. {folder / 'cats' / '001.jpg'}). These "
            f"datasets work without a network: {', '.join(OFFLINE_DATASETS)}."
        ) from err
    images = torch.stack([data[i][0] for i in range(len(data))])  # (N, 3, size, size) uint8
    return TensorData(bytes_to_unit(images), torch.as_tensor(data.targets, dtype=torch.int64),
                      "image_folder", list(data.classes),
                      {"split": split, "root": str(folder), "paths": [p for p, _ in data.samples]})
