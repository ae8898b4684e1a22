"""Image files of the responsible-generation commands: ``.npz`` files of uint8 (N, H, W, C) images in ``arr_0``.

The layout ``python -m course_lib.sample`` writes, for grey (C = 1) or colour (C = 3) images of any
size from 28x28 up. Errors are ``InputError``s whose message names the argument (``IN``, ``--real``).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from course_lib.checkpoint import atomic_write
from course_lib.responsible.attacks import from_uint8, to_uint8

MIN_SIZE = 28


class InputError(ValueError):
    """A bad argument or input file; the message names the argument and says what was expected."""


def read_images(path: str | Path, flag: str = "IN", min_size: int = MIN_SIZE) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """The images of an ``.npz`` as float32 (N, C, H, W) in [-1, 1], and its other arrays by name.

    Raises:
        InputError: no such file, not an ``.npz``, no ``arr_0``, not uint8 (N, H, W, 1 or 3) with H, W >= min_size,
            or no images (N = 0); the message starts with ``flag``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{flag}: {path} is a folder, not an .npz file" if path.is_dir() else f"{flag}: no file at {path}")
    try:
        with np.load(path) as data:  # allow_pickle=False: a pickle is refused, never executed
            if "arr_0" not in data.files:
                raise InputError(f"{flag}: {path} has no 'arr_0' array (found {sorted(data.files)})")
            arrays = {name: data[name] for name in data.files}
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error, AttributeError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{flag}: {path} is not a readable .npz file (written by np.savez): "
                         f"{' '.join(str(err).split())[:120]}") from None
    pixels = arrays.pop("arr_0")
    if pixels.dtype != np.uint8:
        raise InputError(f"{flag}: arr_0 must be uint8 (0..255), got {pixels.dtype}")
    if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3) or min(pixels.shape[1:3]) < min_size:
        raise InputError(f"{flag}: arr_0 must be (N, H, W, 1 or 3) with H, W >= {min_size}, got {pixels.shape}")
    if len(pixels) == 0:
        raise InputError(f"{flag}: {path} holds no images (N = 0)")
    return from_uint8(pixels), arrays


def write_images(path: str | Path, x: torch.Tensor, force: bool = False, flag: str = "OUT",
                 **arrays: np.ndarray) -> Path:
    """Write images (N, C, H, W) in [-1, 1] as uint8 NHWC ``arr_0`` (and ``arrays``) into an ``.npz``, atomically.

    Raises:
        InputError: ``path`` is a folder, or exists and ``force`` is off.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{flag}: {path} is a folder; give a file name ending in .npz")
    if path.exists() and not force:
        raise InputError(f"{flag}: {path} exists; pass --force to replace it")
    pixels = to_uint8(x)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, pixels, **arrays)

    return atomic_write(path, write)
