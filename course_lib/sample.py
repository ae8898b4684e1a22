"""Draw samples from a trained model directory into an ``.npz`` that ``course_lib.evaluate`` reads.

Usage::

    python -m course_lib.sample DIR --n N --out FILE.npz [--seed S] [--device auto] [--direction AB|BA]
        [--truncation PSI]

DIR is what ``python -m course_lib.train`` writes (or a shipped ``checkpoints/<model>/``): its
``generator.safetensors`` holds G's weights (for a VAE, the whole VAE's) and, in the metadata, how
to rebuild it; the model name in it picks the family (``course_lib.train.FAMILIES``), whose
``build_sampler`` rebuilds the network and whose ``sample_arrays`` draws what the file holds. The file written holds ``arr_0``, uint8 images of shape (N, 32, 32, C), and for a
class-conditional model (cgan, cvae) ``labels`` (N,) int64, balanced across the classes (0, 1, ...,
9, 0, 1, ...). A VAE's samples are its decoder's mean images for prior draws z ~ N(0, I). A StyleGAN
samples with fresh noise inputs and, with ``--truncation PSI`` (< 1), the truncation trick
``w <- w_avg + PSI (w - w_avg)`` (``course_lib.stylegan``).

An image-to-image model translates held-out images instead of drawing noise: pix2pix the first N
test inputs of its task (``inputs`` and ``targets`` are saved beside ``arr_0``, the outputs; see
``course_lib.data.paired``), CycleGAN the first N test digits of the source domain of
``--direction`` (AB: handwritten to printed, the default; BA: printed to handwritten), with their
``labels``, so ``python -m course_lib.evaluate`` can read how many kept their identity.

``--truncation`` applies to a stylegan checkpoint and ``--direction`` to a cyclegan one; either
given for another model is an error. Samples are generated and written ``CHUNK`` at a time, so
memory stays flat for any N; the file is written atomically (a temporary file renamed at the end)
and the command checks the free disk space first. The weights' checksums are verified on load
(``course_lib.checkpoint``). Files written before the run configs were split by family load too:
their metadata is read as the family's settings (``upgrade_metadata``).
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from course_lib.checkpoint import CheckpointError, DiskFullError, atomic_write, describe_os_error, load_weights
from course_lib.device import get_device
from course_lib.run.files import CHECKPOINTS_ENV, GENERATOR, SHIPPED, settings_of, shipped_checkpoint  # noqa: F401 (re-exported)
from course_lib.run.sampling import generated_arrays
from course_lib.train import FAMILIES, family_of
from course_lib.viz import to_uint8

CHUNK = 500  # images generated and written at a time
OPTIONS = {"truncation_psi": "--truncation", "direction": "--direction"}  # sample_arrays options -> their flags


def upgrade_metadata(config: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a ``generator.safetensors`` in today's form: ``train`` holds its family's settings only.

    A file written before the run configs were split by family stores every family's settings in
    ``train``; the others are dropped (they never applied to the model). The architecture is read by
    the family's ``build_sampler``, which accepts the fields of such files too.
    """
    family = family_of(config["model"])
    train = settings_of(type(family.default_config(config["model"])), config.get("train", {}))
    return {**config, "train": train}


def load_generator(directory: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild a run's sampler (G, a VAE, pix2pix's U-Net, CycleGAN's pair) from its folder, in eval mode on ``device``.

    Returns:
        ``(model, config)``: a ``gan.Generator``, a ``vae.VAE`` (sample it with ``vae.sample``, or
        ``course_lib.run.generate`` for either), a ``pix2pix.UNet``, a ``cyclegan.CycleGAN``
        (``course_lib.run.translate`` runs either) or a ``stylegan.Generator``, and the metadata
        dict: ``model``, ``architecture``, ``train``.

    Raises:
        CheckpointError: no ``generator.safetensors`` in the directory, or a file that does not
            describe a model this function can build.
    """
    path = Path(directory) / GENERATOR
    if not path.is_file():
        raise CheckpointError(f"no {GENERATOR} in {directory}: pass a directory written by `python -m course_lib.train`")
    _, config = load_weights(path)
    if config.get("model") not in FAMILIES:
        raise CheckpointError(f"{path} describes model {config.get('model')!r}, which this version cannot sample")
    config = upgrade_metadata(config)
    model = family_of(config["model"]).build_sampler(config.get("architecture", {}), where=str(path))
    load_weights(path, model)
    return model.to(device).eval(), config


def write_arrays(chunks: Iterable[dict[str, torch.Tensor]], n: int, out: str | Path) -> Path:
    """Write the arrays of a sampler's ``sample_arrays`` into an ``.npz``, atomically, ``arr_0`` chunk by chunk.

    Float tensors are images (B, C, H, W) in [-1, 1], written as uint8 (B, H, W, C); integer tensors
    (labels) as they are. ``arr_0`` is streamed into the archive (what ``np.savez`` writes: a zip of
    ``.npy`` files), so memory does not grow with n; the other arrays follow it.
    """
    def to_numpy(t: torch.Tensor) -> np.ndarray:
        return to_uint8(t).permute(0, 2, 3, 1).contiguous().numpy() if t.is_floating_point() else t.numpy()

    def write(tmp: Path) -> None:
        rest: dict[str, list[np.ndarray]] = {}
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            with archive.open("arr_0.npy", "w", force_zip64=True) as member:
                for i, chunk in enumerate(chunks):
                    pixels = to_numpy(chunk["arr_0"])  # (b, H, W, C)
                    if i == 0:  # the header needs the whole array's shape
                        np.lib.format.write_array_header_1_0(member, {
                            "descr": np.lib.format.dtype_to_descr(pixels.dtype), "fortran_order": False,
                            "shape": (n, *pixels.shape[1:])})
                    member.write(pixels.tobytes())
                    for key, value in chunk.items():
                        if key != "arr_0":
                            rest.setdefault(key, []).append(to_numpy(value))
            for key, parts in rest.items():
                with archive.open(f"{key}.npy", "w") as member:
                    np.lib.format.write_array(member, np.concatenate(parts))

    return atomic_write(out, write)


def write_samples(model: torch.nn.Module, n: int, out: str | Path, seed: int = 0,
                  truncation_psi: float = 1.0, chunk: int = CHUNK) -> Path:
    """Sample n images of a sampler that draws from noise (balanced labels for a conditional model) into an
    ``.npz``: ``arr_0`` uint8 NHWC (and ``labels``), ``chunk`` at a time. ``truncation_psi`` != 1 needs a
    StyleGAN (``ValueError`` otherwise)."""
    return write_arrays(generated_arrays(model, n, seed, chunk, truncation_psi), n, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.sample", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="a run directory (python -m course_lib.train --out DIR)")
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    parser.add_argument("--seed", type=int, default=0, help="seed for the noise (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps")
    parser.add_argument("--direction", choices=["AB", "BA"],
                        help="cyclegan: AB handwritten -> printed (default), BA printed -> handwritten")
    parser.add_argument("--truncation", type=float, metavar="PSI",
                        help="stylegan: truncation psi in [0, 1] (default 1: none)")
    args = parser.parse_args(argv)

    def error(message: str, status: int = 2) -> int:
        print(f"error: {message}", file=sys.stderr)
        return status

    if args.truncation is not None and not 0.0 <= args.truncation <= 1.0:
        return error(f"--truncation must be in [0, 1], got {args.truncation}")
    if args.n < 1:
        return error(f"--n must be >= 1, got {args.n}")
    if args.out.is_dir():
        return error(f"--out {args.out} is a folder: give the file to write, e.g. {args.out / 'samples.npz'}")
    try:
        model, config = load_generator(args.directory, get_device(args.device))
        sample_arrays = family_of(config["model"]).sample_arrays
        given = {"truncation_psi": args.truncation, "direction": args.direction}
        options = {k: v for k, v in given.items() if v is not None}
        for name in options.keys() - inspect.signature(sample_arrays).parameters.keys():
            raise ValueError(f"{OPTIONS[name]} does not apply to {args.directory}, which holds a {config['model']}")
        folder = next(p for p in [args.out.absolute(), *args.out.absolute().parents] if p.exists())
        needed = args.n * 32 * 32 * getattr(model.cfg, "img_channels", getattr(model.cfg, "out_channels", 3))
        if needed > shutil.disk_usage(folder).free:
            raise DiskFullError(f"--n {args.n} needs about {needed / 1e6:,.0f} MB in {folder}, which has "
                                f"{shutil.disk_usage(folder).free / 1e6:,.0f} MB free (no space left on device)")
        chunks = sample_arrays(model, config["train"], args.n, seed=args.seed, chunk=CHUNK, **options)
        path = write_arrays(chunks, args.n, args.out)
    except (ValueError, CheckpointError) as err:
        return error(str(err))
    except OSError as err:  # a folder we may not write to, a full disk
        return error(describe_os_error(err), 1)
    print(f"wrote {args.n} samples of {config['model']} to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
