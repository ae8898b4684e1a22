"""Edit digits with a trained StyleGAN from the command line: invert, restore, find directions, move.

Usage::

    python -m course_lib.edit invert RUN_DIR --images IN.npz --space {z,w,w+} [--encoder DIR] [--steps N]
        [--distance pixel|features] --out OUT.npz [--seed S] [--force]
    python -m course_lib.edit restore RUN_DIR --task {inpaint,superres} --images IN.npz [--hole 12]
        [--space w+] [--steps N] --out OUT.npz [--seed S] [--force]
    python -m course_lib.edit directions RUN_DIR --method {pca,sefa,thickness,slant} [--index K] --out D.npz
    python -m course_lib.edit move RUN_DIR --latents L.npz --direction D.npz --alpha A [--layers FROM:TO]
        --out OUT.npz [--force]

Images travel as the ``sample`` command writes them: ``arr_0``, uint8 (N, H, W, C), 28x28 or 32x32
grey digits. ``invert`` writes ``arr_0`` (the reconstructions, in the layout and size of the input)
and ``latents`` (the codes, with ``space``); with ``--encoder`` (a run of ``python -m course_lib.train
encoder`` for this generator, e.g. ``checkpoints/encoder``) the codes start at the encoder's W+ codes
and ``--steps`` (default 55; 0: the encoder alone) refine them (hybrid inversion); ``restore`` reads
complete images for ``inpaint`` (the hole's pixels are ignored: a ``mask`` array in the same file,
1 = known, or ``--hole`` for a centred square) and low-resolution images for ``superres`` (the factor
is 32 / their size), and writes the restored images; ``directions`` writes a unit ``direction`` (w_dim,); ``move`` adds ``alpha`` times it
to the latents (all layers, or ``--layers`` of W+ codes) and writes the images and the new latents.
Progress and messages go to stderr; errors are one line; nothing is overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.checkpoint import CheckpointError, atomic_write
from course_lib.classifier import load_classifier
from course_lib.editing import attributes, directions
from course_lib.editing.encoder import HYBRID_STEPS, hybrid_invert
from course_lib.editing.inversion import SPACES, ProjectorConfig, features_distance, pixel_distance, project, \
    synthesize, to_ws, w_statistics
from course_lib.editing.restoration import TASKS, restore, square_mask
from course_lib.editing.training import Inverter, load_stylegan as load_stylegan_run
from course_lib.evaluate import load_samples
from course_lib.sample import load_generator
from course_lib.stylegan import Generator

METHODS = ("pca", "sefa", "thickness", "slant")


class EditError(ValueError):
    """A bad argument or input file; the message names it."""


def load_stylegan(run_dir: Path) -> Generator:
    try:
        return load_stylegan_run(run_dir)
    except (CheckpointError, OSError) as err:
        raise EditError(f"RUN_DIR: {err}") from None


def load_encoder(encoder_dir: Path, G: Generator) -> Inverter:
    """The encoder run in ``encoder_dir``, checked to be trained for ``G``."""
    try:
        inverter, config = load_generator(encoder_dir)
    except (CheckpointError, OSError) as err:
        raise EditError(f"--encoder {encoder_dir}: {err}") from None
    if not isinstance(inverter, Inverter):
        raise EditError(f"--encoder {encoder_dir} holds a {config.get('model')!r} run; pass an encoder run "
                        "(python -m course_lib.train encoder, or checkpoints/encoder)")
    theirs, mine = inverter.generator.state_dict(), G.state_dict()
    if theirs.keys() != mine.keys() or not all(torch.equal(theirs[k], mine[k]) for k in mine):
        raise EditError(f"--encoder {encoder_dir} was trained for another generator than RUN_DIR's; "
                        "train one for it with python -m course_lib.train encoder --stylegan RUN_DIR")
    return inverter


def read_images(path: Path, flag: str = "--images") -> tuple[torch.Tensor, int, np.lib.npyio.NpzFile]:
    """Images (N, 1, 32, 32) in [-1, 1] (28x28 padded) and their original size; N must be > 0."""
    try:
        images, _ = load_samples(path)
    except (FileNotFoundError, ValueError) as err:
        raise EditError(f"{flag}: {err}") from None
    if len(images) == 0:
        raise EditError(f"{flag}: {path} holds no images (N = 0)")
    size = images.shape[-1]
    if size == 28:
        images = F.pad(images, (2, 2, 2, 2), value=-1.0)      # framed like mnist5k: (N, 1, 32, 32)
    return images, size, np.load(path)


def read_low_resolution(path: Path) -> torch.Tensor:
    """Low-resolution digits for super-resolution: uint8 (N, h, h, 1) with h = 16, 8 or 4 -> (N, 1, h, h) in [-1, 1]."""
    try:
        with np.load(path) as data:
            pixels = data["arr_0"]
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise EditError(f"--images: {path} is not a readable .npz with an 'arr_0' array ({err})") from None
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 1 or pixels.shape[1] != pixels.shape[2] \
            or pixels.shape[1] not in (4, 8, 16):
        raise EditError(f"--images: superres takes uint8 (N, h, h, 1) with h = 16, 8 or 4 (32 / the factor), "
                        f"got {pixels.dtype} {pixels.shape}")
    if len(pixels) == 0:
        raise EditError(f"--images: {path} holds no images (N = 0)")
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_pixels(images: torch.Tensor, size: int) -> np.ndarray:
    """(N, 1, 32, 32) in [-1, 1] -> uint8 (N, size, size, 1), cropped back to 28x28 when the input was."""
    if size == 28:
        images = images[..., 2:30, 2:30]
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_npz(path: Path, force: bool, **arrays) -> None:
    if path.is_dir():
        raise EditError(f"--out {path} is a folder; give a file name ending in .npz")
    if path.exists() and not force:
        raise EditError(f"--out {path} exists; pass --force to replace it")
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def progress(total: int, what: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=what, file=sys.stderr, leave=True)
    return bar, (lambda step, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.4f}", refresh=False)))


def invert_command(args) -> None:
    G = load_stylegan(args.run_dir)
    images, size, _ = read_images(args.images)
    distance = pixel_distance
    if args.distance == "features":
        distance = features_distance(load_classifier())
    if args.encoder is not None:
        if args.space != "w+":
            raise EditError(f"--encoder gives W+ codes: use it with --space w+, got --space {args.space}")
        inverter = load_encoder(args.encoder, G)
        steps = HYBRID_STEPS if args.steps is None else args.steps
        bar, tick = progress(steps, f"hybrid inversion of {len(images)} (encoder + {steps} steps)")
        result = hybrid_invert(inverter.encoder, G, images, steps, distance=distance, callback=tick)
    else:
        steps = 300 if args.steps is None else args.steps
        bar, tick = progress(steps, f"inverting {len(images)} in {args.space}")
        result = project(G, images, args.space, ProjectorConfig(steps=steps), distance=distance,
                         generator=torch.Generator().manual_seed(args.seed), callback=tick)
    bar.close()
    write_npz(args.out, args.force, arr_0=to_pixels(result.images, size), latents=result.codes.numpy(),
              space=np.array(args.space))


def restore_command(args) -> None:
    G = load_stylegan(args.run_dir)
    mask = None
    factor = 4
    if args.task == "inpaint":
        observed, size, data = read_images(args.images)
        if "mask" in data.files:
            mask = torch.from_numpy(data["mask"]).float()
            if mask.shape != (len(observed), size, size):
                raise EditError(f"--images: 'mask' must be (N, {size}, {size}) with 1 for known pixels, got {tuple(mask.shape)}")
            mask = mask[:, None]
            if size == 28:
                mask = F.pad(mask, (2, 2, 2, 2), value=1.0)
        else:
            mask = square_mask(len(observed), hole=args.hole, centre=True)
    else:
        observed = read_low_resolution(args.images)
        factor, size = 32 // observed.shape[-1], 32
    bar, tick = progress(args.steps, f"{args.task} of {len(observed)} in {args.space}")
    restored, result = restore(G, observed, args.task, mask=mask, factor=factor, space=args.space,
                               cfg=ProjectorConfig(steps=args.steps),
                               generator=torch.Generator().manual_seed(args.seed), callback=tick)
    bar.close()
    write_npz(args.out, args.force, arr_0=to_pixels(restored, size), latents=result.codes.numpy(),
              space=np.array(args.space))


def directions_command(args) -> None:
    G = load_stylegan(args.run_dir)
    if args.method in ("pca", "sefa"):
        found, _ = (directions.pca_directions(G, args.index + 1) if args.method == "pca"
                    else directions.sefa_directions(G, args.index + 1))
        direction = found[args.index]
    else:
        g = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            w = G.mapping(torch.randn(4000, G.z_dim, generator=g))
            images = torch.cat([synthesize(G, w[i:i + 500], "w").clamp(-1, 1) for i in range(0, 4000, 500)])
        direction = directions.score_boundary(w, attributes.ATTRIBUTES[args.method](images))
    write_npz(args.out, args.force, direction=direction.numpy(), method=np.array(args.method))


def move_command(args) -> None:
    G = load_stylegan(args.run_dir)
    try:
        with np.load(args.latents) as data:
            codes, space = torch.from_numpy(data["latents"]).float(), str(data["space"])
        with np.load(args.direction) as data:
            direction = torch.from_numpy(data["direction"]).float()
    except (OSError, KeyError, ValueError) as err:
        raise EditError(f"--latents/--direction: {err}") from None
    if space not in SPACES:
        raise EditError(f"--latents: 'space' must be one of {SPACES}, got {space!r}")
    if space == "z":
        codes, space = G.mapping(codes).detach(), "w"
    if direction.shape != (G.cfg.w_dim,):
        raise EditError(f"--direction: 'direction' must be ({G.cfg.w_dim},), got {tuple(direction.shape)}")
    ws = to_ws(G, codes, space)
    layers = None
    if args.layers:
        start, _, stop = args.layers.partition(":")
        layers = slice(int(start) if start else None, int(stop) if stop else None)
    moved = directions.move(ws, direction, args.alpha, layers)
    with torch.no_grad():
        images = G.synthesis(moved, noise_mode="const").clamp(-1, 1)
    write_npz(args.out, args.force, arr_0=to_pixels(images, 32), latents=moved.numpy(), space=np.array("w+"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.edit", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p, steps: bool = True) -> None:
        p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a StyleGAN run (e.g. checkpoints/stylegan)")
        p.add_argument("--out", type=Path, required=True, help="the .npz to write")
        p.add_argument("--force", action="store_true", help="replace --out if it exists")
        p.add_argument("--seed", type=int, default=0, help="seed of the optimisation's noise (default 0)")
        if steps:
            p.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")

    inv = commands.add_parser("invert", help="the codes whose images are nearest to the given ones")
    common(inv, steps=False)
    inv.add_argument("--steps", type=int, help="optimisation steps (default 300; with --encoder "
                     f"{HYBRID_STEPS}, and 0 allowed)")
    inv.add_argument("--images", type=Path, required=True, help="an .npz with arr_0: uint8 (N, H, W, 1)")
    inv.add_argument("--space", choices=SPACES, default="w", help="z, w or w+ (default w)")
    inv.add_argument("--distance", choices=["pixel", "features"], default="pixel", help="what to minimise (default pixel)")
    inv.add_argument("--encoder", type=Path, help="an encoder run for RUN_DIR (e.g. checkpoints/encoder): hybrid "
                     f"inversion in w+, --steps defaults to {HYBRID_STEPS} (0: the encoder alone)")
    res = commands.add_parser("restore", help="inpaint or super-resolve digits through the generator")
    common(res)
    res.add_argument("--task", choices=TASKS, required=True)
    res.add_argument("--images", type=Path, required=True, help="inpaint: the images (+ optional mask); superres: low-res images")
    res.add_argument("--hole", type=int, default=12, help="inpaint without a mask: a centred square hole of this size")
    res.add_argument("--space", choices=SPACES, default="w+")
    dirs = commands.add_parser("directions", help="an edit direction in W")
    common(dirs, steps=False)
    dirs.add_argument("--method", choices=METHODS, required=True)
    dirs.add_argument("--index", type=int, default=0, help="pca / sefa: which component, 0 = the strongest")
    mv = commands.add_parser("move", help="move latents along a direction and draw them")
    common(mv, steps=False)
    mv.add_argument("--latents", type=Path, required=True, help="an .npz written by invert or restore")
    mv.add_argument("--direction", type=Path, required=True, help="an .npz written by directions")
    mv.add_argument("--alpha", type=float, required=True, help="how far to move (units of w)")
    mv.add_argument("--layers", help="W+ layers to move, FROM:TO (default all)")
    args = parser.parse_args(argv)
    steps, least = getattr(args, "steps", None), 0 if getattr(args, "encoder", None) else 1
    if steps is not None and steps < least:
        parser.error(f"--steps must be at least {least}{' with --encoder' if least == 0 else ''}, got {steps}")
    if getattr(args, "index", 0) < 0:
        parser.error(f"--index must be >= 0, got {args.index}")
    if getattr(args, "hole", 12) not in range(1, 29):
        parser.error(f"--hole must be between 1 and 28, got {args.hole}")
    run = {"invert": invert_command, "restore": restore_command, "directions": directions_command,
           "move": move_command}[args.command]
    try:
        run(args)
    except EditError as err:
        print(f"edit: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"edit: {err.strerror or err}: {err.filename or ''}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
