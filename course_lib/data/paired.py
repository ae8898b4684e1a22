"""Data for image-to-image translation: paired tasks built from the offline data, and image folders.

**Paired tasks** (pix2pix). Each task makes its input x from a clean target y by a known
degradation, so any photo gives a training pair and the held-out photos give test pairs:

================  ==========================  ======================  ===================================
task              target y                    input x                 classical baseline
================  ==========================  ======================  ===================================
``colorize``      photo patch* (3, S, S)       its luma (1, S, S)      the grey image as RGB
``superres``      photo patch (3, S, S)       4x box-downsampled,     bicubic upsampling (the input
                                              bicubic-upsampled back  itself)
``inpaint``       photo patch (3, S, S)       photo with a square     fill the hole with the visible
                                              filled with the mean    pixels' mean colour (the input
                                              colour + the mask (4)   itself)
``denoise``       photo patch (3, S, S)       + Gaussian noise,       Gaussian blur (sigma 1)
                                              sigma 0.2 on [0, 1]
``edges2digits``  mnist5k digit (1, 32, 32)   its Sobel edge map      the edge map itself
================  ==========================  ======================  ===================================

(* crops of the offline photos shrunk to half size, ``photo_patches(..., scale=0.5)``.)

For superres and inpaint the input already *is* the classical answer (with the mask beside it),
and the U-Net learns a correction of it (``Pix2PixConfig.residual``).

``degrade(task, y, generator)`` draws fresh masks and noise for every training batch;
``paired_task(task, split)`` fixes them for a split, so val and test pairs are the same in every
run. The photo tasks have a ``"val"`` split (held-out blocks of the photos, see
``course_lib.data.photos``) for choosing settings and calibrating a model, and report on
``"test"`` (other held-out blocks).

**Unpaired domains** (CycleGAN): ``unpaired_digits`` gives handwritten (``mnist5k``) and printed
(``printed_digits``) digits; ``image_files`` loads any folder of images, ``paired_folders`` two
folders of pairs matched by file name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib.data.common import PHOTO_SPLITS, SPLITS, TensorData, bytes_to_unit, check_int, check_split, split_seed
from course_lib.data.handwritten import mnist5k
from course_lib.data.photos import photo_patches
from course_lib.data.printed import printed_digits

TASKS = ("colorize", "superres", "inpaint", "denoise", "edges2digits")
PHOTO_TASKS = TASKS[:4]
SCALE = 4             # superres: downsampling factor
NOISE_SIGMA = 0.2     # denoise: noise std on [0, 1] (0.4 on the course's [-1, 1] scale)
HOLE_FRACTION = 3 / 8  # inpaint: side of the hidden square as a fraction of the image side (12 px of 32)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B
TEST_PATCHES = 500    # held-out photo patches per task and split (val, test)
PHOTO_SCALE = 0.5     # photos are shrunk to half size before cropping: a 32x32 patch shows more of the scene


@dataclass(frozen=True)
class TaskSpec:
    """What a paired task's inputs and targets look like."""

    name: str
    dataset: str        # where the targets come from
    in_channels: int    # channels of x
    out_channels: int   # channels of y
    baseline: str       # the classical method G must beat


SPECS = {
    "colorize": TaskSpec("colorize", "photo_patches", 1, 3, "grey copy"),
    "superres": TaskSpec("superres", "photo_patches", 3, 3, "bicubic"),
    "inpaint": TaskSpec("inpaint", "photo_patches", 4, 3, "mean fill"),
    "denoise": TaskSpec("denoise", "photo_patches", 3, 3, "Gaussian blur"),
    "edges2digits": TaskSpec("edges2digits", "mnist5k", 1, 1, "edge map"),
}


def task_spec(task: str) -> TaskSpec:
    """The `TaskSpec` of a task name; unknown names raise a ValueError listing the tasks."""
    if task not in SPECS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return SPECS[task]


# ----------------------------------------------------------------------------------------------
# Degradations: input x from target y
# ----------------------------------------------------------------------------------------------

def to_grey(y: torch.Tensor) -> torch.Tensor:
    """Luma of RGB images: (B, 3, S, S) -> (B, 1, S, S), same range (the weights sum to 1)."""
    weights = torch.tensor(LUMA, dtype=y.dtype, device=y.device).view(1, 3, 1, 1)
    return (y * weights).sum(1, keepdim=True)


def downsample_upsample(y: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """Average ``scale`` x ``scale`` blocks (a camera's coarser pixels), then bicubic back to full size."""
    small = F.avg_pool2d(y, scale)  # (B, C, S / scale, S / scale)
    return F.interpolate(small, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


def hole_masks(n: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 1, size, size) float masks, 1 inside one random square of side ``HOLE_FRACTION * size`` per image."""
    hole = max(1, round(HOLE_FRACTION * size))
    corners = torch.randint(0, size - hole + 1, (n, 2), generator=generator)  # (n, 2) top, left
    rows = torch.arange(size)
    inside_r = (rows[None, :] >= corners[:, :1]) & (rows[None, :] < corners[:, :1] + hole)  # (n, size)
    inside_c = (rows[None, :] >= corners[:, 1:]) & (rows[None, :] < corners[:, 1:] + hole)  # (n, size)
    return (inside_r[:, :, None] & inside_c[:, None, :]).float().unsqueeze(1)  # (n, 1, size, size)


def sobel_edges(y: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary edge maps in {-1, 1}: Sobel gradient magnitude of each image on [0, 1] above ``threshold``."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=y.dtype, device=y.device)
    kernels = torch.stack([kx, kx.T]).unsqueeze(1)             # (2, 1, 3, 3): d/dx, d/dy
    unit = (y.mean(1, keepdim=True) + 1) / 2                   # (B, 1, S, S) in [0, 1]
    grad = F.conv2d(F.pad(unit, (1, 1, 1, 1), mode="replicate"), kernels)  # (B, 2, S, S)
    return torch.where(grad.norm(dim=1, keepdim=True) > threshold, 1.0, -1.0).to(y.dtype)


def degrade(task: str, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The input x of ``task`` for targets y, drawing masks and noise from ``generator``.

    Args:
        task: one of ``TASKS``.
        y: targets (B, out_channels, S, S) in [-1, 1] (see ``task_spec``).
        generator: a CPU ``torch.Generator`` for inpaint and denoise (None: torch's default).

    Returns:
        x (B, in_channels, S, S) in [-1, 1], on y's device.
    """
    spec = task_spec(task)
    if (not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[1] != spec.out_channels
            or y.shape[2] != y.shape[3]):
        raise ValueError(f"y must have shape (B, {spec.out_channels}, S, S) for task {task!r}, "
                         f"got {tuple(getattr(y, 'shape', ()))}")
    if task == "colorize":
        return to_grey(y)
    if task == "superres":
        if y.shape[-1] % SCALE or y.shape[-2] % SCALE:
            raise ValueError(f"superres needs sides divisible by {SCALE}, got {tuple(y.shape[2:])}")
        return downsample_upsample(y)
    if task == "inpaint":
        mask = hole_masks(y.shape[0], y.shape[-1], generator).to(y.device, y.dtype)  # (B, 1, S, S)
        visible = 1 - mask
        mean = (y * visible).sum((2, 3), keepdim=True) / visible.sum((2, 3), keepdim=True)  # (B, 3, 1, 1)
        return torch.cat([y * visible + mean * mask, 2 * mask - 1], dim=1)  # hole filled with the visible mean colour
    if task == "denoise":
        noise = torch.randn(y.shape, generator=generator).to(y.device, y.dtype)
        return (y + 2 * NOISE_SIGMA * noise).clamp(-1, 1)  # sigma on [0, 1] is 2 sigma on [-1, 1]
    return sobel_edges(y)


def baseline(task: str, x: torch.Tensor) -> torch.Tensor:
    """The classical answer to ``task`` from its input x: what a learned model has to beat.

    Returns:
        (B, out_channels, S, S) in [-1, 1].
    """
    from torchvision.transforms.functional import gaussian_blur

    spec = task_spec(task)
    if task == "colorize":
        return x.expand(-1, 3, -1, -1).clone()
    if task == "superres":
        return x.clone()  # the input is already the bicubic upsampling
    if task == "inpaint":
        return x[:, :3].clone()  # the input's hole already holds the visible pixels' mean colour
    if task == "denoise":
        return gaussian_blur(x, kernel_size=5, sigma=1.0)
    return x.clone() if spec.out_channels == x.shape[1] else x[:, :1].clone()


def paste(task: str, x: torch.Tensor, y_out: torch.Tensor) -> torch.Tensor:
    """A model's answer with what the input already knows put back: for inpaint the visible pixels
    of x around G's hole (as inpainting methods do; the mean-fill baseline keeps them too), for the
    other tasks y_out unchanged."""
    if task != "inpaint":
        return y_out
    mask = (x[:, 3:] + 1) / 2                       # (B, 1, S, S): 1 in the hole
    return x[:, :3] * (1 - mask) + y_out * mask


def show_input(task: str, x: torch.Tensor) -> torch.Tensor:
    """An input batch as images a person can look at: (B, C_out, S, S) (the mask hidden, grey kept grey)."""
    spec = task_spec(task)
    if task == "inpaint":
        return x[:, :3]
    if spec.out_channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    return x


# ----------------------------------------------------------------------------------------------
# Built-in pairs and domains
# ----------------------------------------------------------------------------------------------

def task_targets(task: str, split: str = "train", n: int | None = None, seed: int = 0, size: int = 32) -> torch.Tensor:
    """Clean targets y of a task: photo patches (n of them, default 10,000 train / 500 val or test) or mnist5k
    digits (all of the split, or n balanced over the classes, see ``digit_subset``; no "val" split)."""
    spec = task_spec(task)
    check_split(split, PHOTO_SPLITS if spec.dataset == "photo_patches" else SPLITS)
    if spec.dataset == "mnist5k":
        x, _ = digit_subset(split, n)
        return x
    if n is None:
        n = 10_000 if split == "train" else TEST_PATCHES
    return photo_patches(split, size=size, n=n, seed=seed, scale=PHOTO_SCALE).x  # (n, 3, size, size)


def interleave_classes(labels: torch.Tensor) -> torch.Tensor:
    """Indices that order a labelled set as class 0, 1, ..., K-1, 0, 1, ... (mnist5k's splits are sorted by class),
    so that any prefix is balanced over the classes."""
    one_hot = F.one_hot(labels)                                   # (N, K)
    rank = (one_hot.cumsum(0) * one_hot).sum(1) - 1               # (N,) position of each image within its class
    return torch.argsort(rank * one_hot.shape[1] + labels, stable=True)


def digit_subset(split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """mnist5k digits of a split and their labels; the first n in the order 0, 1, ..., 9, 0, ... (None: all, as stored)."""
    data = mnist5k(split)
    if n is None:
        return data.x, data.labels
    index = interleave_classes(data.labels)[:check_int("n", n, 1, len(data.x))]
    return data.x[index], data.labels[index]


def paired_task(task: str, split: str = "test", n: int | None = None, seed: int = 0,
                size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed pairs (x, y) of a task for a split: the same masks and noise in every run.

    Args:
        task: one of ``TASKS``.
        split: "train", "test" or, for the photo tasks, "val" (val and test patches come from
            different held-out blocks of the photos).
        n: number of pairs (default: 500 val or test / 10,000 train photo patches; all digits of the split).
        seed: fixes the patch positions, masks and noise.
        size: photo patch side (edges2digits: always 32).

    Returns:
        x (n, in_channels, S, S) and y (n, out_channels, S, S), both in [-1, 1].
    """
    y = task_targets(task, split, n, seed, size)
    generator = torch.Generator().manual_seed(split_seed(seed, split, salt=3))
    return degrade(task, y, generator), y


@functools.lru_cache(maxsize=4)
def unpaired_digits(split: str = "train", seed: int = 0) -> tuple[TensorData, TensorData]:
    """CycleGAN's two domains: handwritten digits (A, ``mnist5k``) and printed digits (B, ``printed_digits``).

    The printed split has as many images per class as mnist5k (400 train, 100 test); the two
    sets are not paired: nothing says which handwritten 3 goes with which printed 3.
    """
    check_split(split)
    a = mnist5k(split)
    b = printed_digits(split, n_per_class=len(a) // 10, seed=seed)
    return a, b


def _image_paths(folder: Path) -> list[Path]:
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)


def _load_images(paths: list[Path], size: int, channels: int) -> torch.Tensor:
    from PIL import Image
    from torchvision.transforms import functional as TF

    images = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
            image = TF.center_crop(TF.resize(image, size), size)  # shorter side to size, then the centre square
            images.append(TF.pil_to_tensor(image))  # (C, size, size) uint8
    return bytes_to_unit(torch.stack(images))


def image_files(folder: str | Path, size: int = 32, channels: int = 3) -> torch.Tensor:
    """Every image file in ``folder`` (not its sub-folders), resized and centre-cropped to size x size.

    Returns:
        (N, channels, size, size) float32 in [-1, 1], in file-name order.
    """
    folder = Path(folder).expanduser()
    size, channels = check_int("size", size, 1), check_int("channels", channels, 1, 3)
    if channels == 2:
        raise ValueError("channels must be 1 (grey) or 3 (RGB), got 2")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} does not exist")
    paths = _image_paths(folder)
    if not paths:
        raise FileNotFoundError(f"no image files (.png, .jpg, ...) in {folder}")
    return _load_images(paths, size, channels)


def paired_folders(folder_x: str | Path, folder_y: str | Path, size: int = 32, channels_x: int = 3,
                   channels_y: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs from two folders: ``folder_x/name.png`` goes with the file of the same stem in ``folder_y``.

    Returns:
        x (N, channels_x, size, size) and y (N, channels_y, size, size) in [-1, 1], in name order.

    Raises:
        FileNotFoundError: a folder is missing, or a file has no partner (the message lists some).
    """
    folder_x, folder_y = Path(folder_x).expanduser(), Path(folder_y).expanduser()
    for folder in (folder_x, folder_y):
        if not folder.is_dir():
            raise FileNotFoundError(f"folder {folder} does not exist")
    xs = {p.stem: p for p in _image_paths(folder_x)}
    ys = {p.stem: p for p in _image_paths(folder_y)}
    unmatched = sorted(set(xs) ^ set(ys))
    if unmatched:
        raise FileNotFoundError(f"{len(unmatched)} files have no partner of the same name in the other folder, "
                                f"e.g. {unmatched[:3]}")
    if not xs:
        raise FileNotFoundError(f"no image files in {folder_x}")
    names = sorted(xs)
    return (_load_images([xs[k] for k in names], size, channels_x),
            _load_images([ys[k] for k in names], size, channels_y))
