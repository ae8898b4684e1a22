"""Devices, seeding and parameter counts: the few facts every lesson starts from."""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch
from torch import nn


def get_device(name: str = "auto") -> torch.device:
    """Pick the device to compute on.

    Args:
        name: ``"auto"`` (CUDA, then Apple MPS, then CPU), or an explicit device string such as
            ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.

    Returns:
        The ``torch.device``. An explicit device that is not available raises ``ValueError``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string such as 'auto' or 'cpu', got {type(name).__name__}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {name!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for, but Apple MPS is not available here")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) for a repeatable run.

    Args:
        seed: a non-negative integer.

    Returns:
        A fresh CPU ``torch.Generator`` seeded with ``seed``, for code that takes a generator.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters in ``module`` (only those with ``requires_grad`` by default)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def environment_report(device: torch.device | None = None) -> dict[str, str]:
    """A short description of this machine for the top of a notebook or a benchmark."""
    device = device or get_device()
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "cpu threads": str(torch.get_num_threads()),
        "cpu cores": str(os.cpu_count()),
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
        report["bf16 supported"] = str(torch.cuda.is_bf16_supported())
    return report
