"""Draw samples from a trained model directory into an ``.npz`` that ``course_lib.evaluate`` reads.

Usage::

    python -m course_lib.sample DIR --n N --out FILE.npz [--seed S] [--device auto] [--direction AB|BA]
        [--truncation PSI]

DIR is what ``python -m course_lib.train`` writes (or a shipped ``checkpoints/<model>/``): its
``generator.safetensors`` holds G's weights (for a VAE, the whole VAE's) and, in the metadata, how
to rebuild it. The file written holds ``arr_0``, uint8 images of shape (N, 32, 32, C), and for a
class-conditional model (cgan, cvae) ``labels`` (N,) int64, balanced across the classes (0, 1, ...,
9, 0, 1, ...). A VAE's samples are its decoder's mean images for prior draws z ~ N(0, I). A StyleGAN
samples with fresh noise inputs and, with ``--truncation PSI`` (< 1), the truncation trick
``w <- w_avg + PSI (w - w_avg)`` (``course_lib.stylegan``).

An image-to-image model translates held-out images instead of drawing noise: pix2pix the first N
test inputs of its task (``inputs`` and ``targets`` are saved beside ``arr_0``, the outputs; see
``course_lib.data.paired``), CycleGAN the first N test digits of the source domain of
``--direction`` (AB: handwritten to printed, the default; BA: printed to handwritten), with their
``labels``, so ``python -m course_lib.evaluate`` can read how many kept their identity.

Samples are generated and written ``CHUNK`` at a time, so memory stays flat for any N; the file
is written atomically (a temporary file renamed at the end) and the command checks the free disk
space first. The weights' checksums are verified on load (``course_lib.checkpoint``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from course_lib.checkpoint import CheckpointError, DiskFullError, atomic_write, describe_os_error, load_weights
from course_lib.device import get_device
from course_lib.cyclegan import CycleGAN, CycleGANConfig
from course_lib.gan import DCGANConfig, Generator
from course_lib.pix2pix import Pix2PixConfig, UNet
from course_lib.stylegan import Generator as StyleGenerator
from course_lib.stylegan import StyleGANConfig
from course_lib.vae import VAE, VAEConfig
from course_lib.viz import to_uint8

GENERATOR = "generator.safetensors"  # the file train.py writes into a run directory
CHUNK = 500  # images generated and written at a time
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"  # the repository's checkpoints/, next to course_lib/
CHECKPOINTS_ENV = "COURSE_CHECKPOINTS"  # the checkpoints' folder, for a course_lib installed without the repository
ARCHITECTURES = {  # model name in the metadata -> (config class, module class)
    "dcgan": (DCGANConfig, Generator),
    "cgan": (DCGANConfig, Generator),
    "wgan_gp": (DCGANConfig, Generator),
    "vae": (VAEConfig, VAE),
    "cvae": (VAEConfig, VAE),
    "pix2pix": (Pix2PixConfig, UNet),
    "cyclegan": (CycleGANConfig, CycleGAN),
    "stylegan": (StyleGANConfig, StyleGenerator),
}


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
        ``root / name``, a directory with a ``generator.safetensors`` (``load_generator`` reads it).

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


def load_generator(directory: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild G (a VAE, pix2pix's U-Net, CycleGAN's pair) from a run directory, in eval mode on ``device``.

    Returns:
        ``(model, config)``: a ``gan.Generator``, a ``vae.VAE`` (sample it with ``vae.sample``, or
        ``course_lib.train.generate`` for either), a ``pix2pix.UNet`` or a ``cyclegan.CycleGAN``
        (``course_lib.translate.translate`` runs either), and the metadata dict: ``model``,
        ``architecture``, ``train``.

    Raises:
        CheckpointError: no ``generator.safetensors`` in the directory, or a file that does not
            describe a model this function can build.
    """
    path = Path(directory) / GENERATOR
    if not path.is_file():
        raise CheckpointError(f"no {GENERATOR} in {directory}: pass a directory written by `python -m course_lib.train`")
    _, config = load_weights(path)
    if config.get("model") not in ARCHITECTURES:
        raise CheckpointError(f"{path} describes model {config.get('model')!r}, which this version cannot sample")
    config_class, model_class = ARCHITECTURES[config["model"]]
    architecture = config.get("architecture", {})
    unknown = sorted(set(architecture) - {f.name for f in dataclasses.fields(config_class)})
    if unknown:
        raise CheckpointError(f"{path} was written by another version of course_lib (architecture fields "
                              f"{', '.join(unknown)} are unknown here); retrain it with `python -m course_lib.train`")
    model = model_class(config_class(**architecture))
    load_weights(path, model)
    return model.to(device).eval(), config


def write_samples(model: Generator | VAE | StyleGenerator, n: int, out: str | Path, seed: int = 0,
                  truncation_psi: float = 1.0, chunk: int = CHUNK) -> Path:
    """Sample n images (balanced labels for a conditional model) and save them as ``arr_0`` uint8 NHWC.

    The images are generated and written ``chunk`` at a time into the ``.npz`` (what ``np.savez``
    writes: a zip of ``.npy`` files), so memory does not grow with n. ``truncation_psi`` != 1 needs
    a StyleGAN (``ValueError`` otherwise).
    """
    from course_lib.train import generate_batches

    def write(tmp: Path) -> None:
        labels = []
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            with archive.open("arr_0.npy", "w", force_zip64=True) as member:
                for i, (images, y) in enumerate(generate_batches(model, n, seed, chunk, truncation_psi)):
                    pixels = to_uint8(images).permute(0, 2, 3, 1).contiguous().numpy()  # (b, 32, 32, C)
                    if i == 0:  # the header needs the whole array's shape
                        np.lib.format.write_array_header_1_0(member, {
                            "descr": np.lib.format.dtype_to_descr(pixels.dtype), "fortran_order": False,
                            "shape": (n, *pixels.shape[1:])})
                    member.write(pixels.tobytes())
                    if y is not None:
                        labels.append(y)
            if labels:
                with archive.open("labels.npy", "w") as member:
                    np.lib.format.write_array(member, torch.cat(labels).numpy())

    return atomic_write(out, write)


def write_translations(model: torch.nn.Module, config: dict, n: int, out: str | Path,
                       direction: str = "AB") -> Path:
    """Translate n held-out images with a pix2pix or CycleGAN model and save them as uint8 NHWC arrays."""
    from course_lib.data.paired import paired_task, paste, show_input, unpaired_digits
    from course_lib.translate import translate

    if config["model"] == "pix2pix":
        task = config["train"]["task"]
        x, y = paired_task(task, "test", n=n)
        arrays = {"inputs": show_input(task, x), "targets": y}
        outputs = paste(task, x, translate(model, x))
    else:
        if direction not in ("AB", "BA"):
            raise ValueError(f"direction must be 'AB' or 'BA', got {direction!r}")
        a, b = unpaired_digits("test")
        source = a if direction == "AB" else b
        if n > len(source):
            raise ValueError(f"n must be <= {len(source)}, the test digits of the source domain, got {n}")
        arrays = {"inputs": source.x[:n]}
        outputs = translate(model, source.x[:n], direction)
    to_nhwc = lambda t: to_uint8(t).permute(0, 2, 3, 1).numpy()  # noqa: E731
    arrays = {k: to_nhwc(v) for k, v in arrays.items()}
    if config["model"] == "cyclegan":
        arrays["labels"] = source.labels[:n].numpy()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, to_nhwc(outputs), **arrays)

    return atomic_write(out, write)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.sample", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="a run directory (python -m course_lib.train --out DIR)")
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    parser.add_argument("--seed", type=int, default=0, help="seed for the noise (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps")
    parser.add_argument("--direction", choices=["AB", "BA"], default="AB",
                        help="cyclegan: AB handwritten -> printed (default), BA printed -> handwritten")
    parser.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                        help="stylegan: truncation psi in [0, 1] (default 1: none)")
    args = parser.parse_args(argv)

    def error(message: str, status: int = 2) -> int:
        print(f"error: {message}", file=sys.stderr)
        return status

    if not 0.0 <= args.truncation <= 1.0:
        return error(f"--truncation must be in [0, 1], got {args.truncation}")
    if args.n < 1:
        return error(f"--n must be >= 1, got {args.n}")
    if args.out.is_dir():
        return error(f"--out {args.out} is a folder: give the file to write, e.g. {args.out / 'samples.npz'}")
    try:
        model, config = load_generator(args.directory, get_device(args.device))
        if args.truncation != 1.0 and config["model"] != "stylegan":
            raise ValueError(f"--truncation needs a stylegan checkpoint, {args.directory} holds a {config['model']}")
        folder = next(p for p in [args.out.absolute(), *args.out.absolute().parents] if p.exists())
        needed = args.n * 32 * 32 * getattr(model.cfg, "img_channels", getattr(model.cfg, "out_channels", 3))
        if needed > shutil.disk_usage(folder).free:
            raise DiskFullError(f"--n {args.n} needs about {needed / 1e6:,.0f} MB in {folder}, which has "
                                f"{shutil.disk_usage(folder).free / 1e6:,.0f} MB free (no space left on device)")
        if config["model"] in ("pix2pix", "cyclegan"):
            path = write_translations(model, config, args.n, args.out, args.direction)
        else:
            path = write_samples(model, args.n, args.out, args.seed, truncation_psi=args.truncation)
    except (ValueError, CheckpointError) as err:
        return error(str(err))
    except OSError as err:  # a folder we may not write to, a full disk
        return error(describe_os_error(err), 1)
    print(f"wrote {args.n} samples of {config['model']} to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
