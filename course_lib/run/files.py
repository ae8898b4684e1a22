"""The files of a run folder, the folder of the shipped checkpoints, and the weights file that samplers load.

A run folder (``python -m course_lib.train MODEL --out DIR``) holds ``checkpoint.pt`` (the whole
run, to resume it), ``generator.safetensors`` (the sampler's weights, with its architecture and the
run's settings as metadata), ``samples.png``, ``metrics.json`` and ``config.json``. The metadata of
``generator.safetensors`` is ``{"model": name, "architecture": {...}, "train": {...}}``: the model
name picks the family, the architecture rebuilds the network, and ``train`` is the run's config.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from course_lib.checkpoint import CheckpointError, save_weights
from course_lib.run.config import RunConfig

CHECKPOINT, GENERATOR, SAMPLES, METRICS, CONFIG = (
    "checkpoint.pt", "generator.safetensors", "samples.png", "metrics.json", "config.json")
RUN_FILES = (CHECKPOINT, GENERATOR, SAMPLES, METRICS, CONFIG)
SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"  # the repository's checkpoints/, next to course_lib/
CHECKPOINTS_ENV = "COURSE_CHECKPOINTS"  # the checkpoints' folder, for a course_lib installed without the repository


def shipped_checkpoint(name: str, root: str | Path | None = None) -> Path:
    """The directory of a checkpoint shipped with the course, e.g. ``shipped_checkpoint("dcgan")``.

    The checkpoints live in the repository's ``checkpoints/`` folder, not in the ``course_lib`` package:
    a clone (installed editable, as ``requirements.txt`` does) finds them by itself. A ``course_lib``
    installed without the repository (``pip install .``) needs to be told where that folder is.

    Args:
        name: the checkpoint's folder name, e.g. ``"dcgan"``, ``"vae"``, ``"pix2pix_inpaint"``.
        root: the folder that holds the checkpoints (a clone's ``checkpoints/``). Default: the folder
            named by the ``COURSE_CHECKPOINTS`` environment variable when it is set, else the
            ``checkpoints/`` folder next to the ``course_lib`` package (a clone of the repository).

    Returns:
        ``root / name``, a directory with a ``generator.safetensors`` (``sample.load_generator`` reads it).

    Raises:
        CheckpointError: no such checkpoint where it looked (the message says where that was, what is
            there, and how to point to the checkpoints).
    """
    if root is not None:
        folder, source = Path(root), "the root argument"
    elif os.environ.get(CHECKPOINTS_ENV):
        folder, source = Path(os.environ[CHECKPOINTS_ENV]), f"${CHECKPOINTS_ENV}"
    else:
        folder, source = SHIPPED, "the default, checkpoints/ next to the course_lib package"
    path = folder / name
    if (path / GENERATOR).is_file():
        return path
    if folder.is_dir():
        available = sorted(d.name for d in folder.iterdir() if (d / GENERATOR).is_file())
        raise CheckpointError(f"no shipped checkpoint {name!r}: looked for {path / GENERATOR} ({folder} from {source}); "
                              f"checkpoints there: {available or 'none'}. Point root= or {CHECKPOINTS_ENV} at the "
                              f"course repository's checkpoints/ folder, or retrain it there with "
                              f"`python scripts/train_checkpoints.py {name}`")
    raise CheckpointError(f"no shipped checkpoint {name!r}: looked for {path / GENERATOR}, but {folder} (from {source}) "
                          f"is not a folder. The checkpoints ship in the course repository's checkpoints/ folder, not "
                          f"in the installed package: clone the repository, then pass root='<clone>/checkpoints' or "
                          f"set the environment variable {CHECKPOINTS_ENV}=<clone>/checkpoints")


def shipped_folders() -> list[Path]:
    """The folders that hold shipped checkpoints: ``checkpoints/`` and the one ``COURSE_CHECKPOINTS`` names."""
    return [SHIPPED] + ([Path(os.environ[CHECKPOINTS_ENV])] if os.environ.get(CHECKPOINTS_ENV) else [])


def save_generator(path: str | Path, model: nn.Module, model_cfg: object, cfg: RunConfig) -> Path:
    """A sampler's weights as safetensors; the metadata says how to rebuild it (``sample.load_generator``).

    Args:
        path: the file (a run folder's ``generator.safetensors``).
        model: the sampler (G_ema, a VAE, a U-Net, a CycleGAN pair, ...).
        model_cfg: its architecture, a dataclass (``model.cfg``).
        cfg: the run's config.
    """
    config = {"model": cfg.model, "architecture": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(cfg)}
    return save_weights(path, model, config=config)


def settings_of(cls: type[RunConfig], train: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``cls`` in a stored run config: what a run written before the configs were split by
    family (one flat config of every family's settings) holds of its own family's."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in train.items() if k in names or k == "lr_changes"}


Architecture = TypeVar("Architecture")


def architecture_of(cls: type[Architecture], architecture: dict[str, Any], where: str) -> Architecture:
    """``cls(**architecture)``, refusing fields ``cls`` does not have (a file of another version).

    Raises:
        CheckpointError: unknown fields (naming them, and ``where`` the architecture came from).
    """
    unknown = sorted(set(architecture) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise CheckpointError(f"{where} was written by another version of course_lib (architecture fields "
                              f"{', '.join(unknown)} are unknown here); retrain it with `python -m course_lib.train`")
    return cls(**architecture)
