"""Watermark images and detect the mark from the command line: LSB, DCT or a learned (HiDDeN) mark, keyed by an int.

Usage::

    python -m course_lib.watermark embed --key K IN.npz OUT.npz [--method dct|lsb|learned] [--model DIR] [--force]
    python -m course_lib.watermark detect --key K IN.npz [--method dct|lsb|learned] [--model DIR] [--fpr 1e-3] [--json]

Images travel as the ``sample`` command writes them: ``arr_0``, uint8 (N, H, W, C), grey or colour,
28x28 and larger (``learned``: 28x28 or 32x32 with the channels of the run's images). ``embed`` writes
the marked images (the other arrays of IN are copied); OUT is never overwritten without ``--force``.
``detect`` extracts the bits of each image and tests them against the key's: an image is flagged when
the matched bits reach the smallest count that an unmarked image reaches with probability at most
``--fpr`` (``course_lib.responsible.watermarks.threshold``). It prints one line per image, or with
``--json`` one JSON record per image: ``index``, ``matched``, ``n_bits``, ``p_value``, ``marked``;
then (on stderr) how many were flagged. ``--model`` names a run of ``python -m course_lib.train watermark``.
Errors are one line on stderr (status 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib.checkpoint import CheckpointError, describe_os_error
from course_lib.responsible import watermarks
from course_lib.responsible.images import InputError, read_images, write_images
from course_lib.responsible.learned_watermark import HiDDeN
from course_lib.sample import load_generator

METHODS = ("dct", "lsb", "learned")


def parse_key(text: str) -> int:
    try:
        return watermarks.check_key(int(text))
    except ValueError:
        raise InputError(f"--key must be an integer in 0..2**63 - 1, got {text!r}") from None


def load_model(model_dir: Path | None, method: str) -> HiDDeN | None:
    """The learned watermark of ``--model`` for ``--method learned``; None for the other methods."""
    if method != "learned":
        if model_dir is not None:
            raise InputError(f"--model is for --method learned, not --method {method}")
        return None
    if model_dir is None:
        raise InputError("--method learned needs --model DIR, a run of python -m course_lib.train watermark")
    try:
        model, config = load_generator(model_dir)
    except (CheckpointError, OSError) as err:
        raise InputError(f"--model {model_dir}: {err}") from None
    if not isinstance(model, HiDDeN):
        raise InputError(f"--model {model_dir} holds a {config.get('model')!r} run; pass a watermark run "
                         "(python -m course_lib.train watermark)")
    return model


def to_model_size(x: torch.Tensor, model: HiDDeN) -> torch.Tensor:
    """Images for the learned mark: (N, C, 32, 32), 28x28 padded with the background (-1) as mnist5k frames them."""
    if x.shape[1] != model.cfg.img_channels or tuple(x.shape[2:]) not in ((28, 28), (32, 32)):
        raise InputError(f"IN: the learned mark takes ({model.cfg.img_channels}, 28 or 32, 28 or 32) images, "
                         f"got {tuple(x.shape[1:])}")
    return F.pad(x, (2, 2, 2, 2), value=-1.0) if x.shape[-1] == 28 else x


@torch.no_grad()
def embed(x: torch.Tensor, key: int, method: str, model: HiDDeN | None = None) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] marked with ``key`` by ``method`` (``model``: the learned mark's network)."""
    if method == "lsb":
        return watermarks.lsb_embed(x, key)
    if method == "dct":
        return watermarks.dct_embed(x, key)
    y = to_model_size(x, model)
    marked = model.embed(y, watermarks.key_bits(key, model.cfg.n_bits).expand(len(y), -1))
    return marked[..., 2:30, 2:30] if x.shape[-1] == 28 else marked


@torch.no_grad()
def extract(x: torch.Tensor, key: int, method: str, model: HiDDeN | None = None) -> torch.Tensor:
    """The bits (N, n_bits) that ``method`` reads from images (N, C, H, W) in [-1, 1] for ``key``."""
    if method == "lsb":
        return watermarks.lsb_extract(x)
    if method == "dct":
        return watermarks.dct_extract(x, key)
    return (model.decode(to_model_size(x, model)) > 0).long()


def embed_command(args: argparse.Namespace) -> None:
    key = parse_key(args.key)
    model = load_model(args.model, args.method)
    if args.out.exists() and not args.force:  # before any work
        raise InputError(f"OUT: {args.out} exists; pass --force to replace it")
    x, arrays = read_images(args.images)
    write_images(args.out, embed(x, key, args.method, model), force=args.force, **arrays)
    print(f"wrote {args.out}: {len(x)} images marked ({args.method}, key {key})", file=sys.stderr)


def detect_command(args: argparse.Namespace) -> None:
    key = parse_key(args.key)
    if not 0 < args.fpr < 1:
        raise InputError(f"--fpr must be in (0, 1), got {args.fpr}")
    model = load_model(args.model, args.method)
    x, _ = read_images(args.images)
    results = watermarks.decide(extract(x, key, args.method, model), key, args.fpr)
    for i, result in enumerate(results):
        if args.json:
            print(json.dumps({"index": i, **dataclasses.asdict(result)}))
        else:
            print(f"{i}: {result.matched}/{result.n_bits} bits match, p = {result.p_value:.3g}: "
                  f"{'marked' if result.marked else 'not marked'}")
    k = watermarks.threshold(results[0].n_bits, args.fpr)
    print(f"{sum(r.marked for r in results)} of {len(results)} flagged as marked with key {key} ({args.method}: "
          f"{k} or more of {results[0].n_bits} bits, false-positive rate <= {args.fpr:g})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.watermark", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, about in (("embed", "mark images with a key"), ("detect", "test images for a key's mark")):
        command = commands.add_parser(name, help=about, description=about)
        command.add_argument("--key", required=True, help="the secret key: an integer in 0..2**63 - 1")
        command.add_argument("images", type=Path, metavar="IN.npz", help="arr_0: uint8 (N, H, W, 1 or 3), H, W >= 28")
        command.add_argument("--method", choices=METHODS, default="dct", help="the mark (default dct)")
        command.add_argument("--model", type=Path, metavar="DIR",
                             help="--method learned: a run of python -m course_lib.train watermark")
        if name == "embed":
            command.add_argument("out", type=Path, metavar="OUT.npz", help="the marked images")
            command.add_argument("--force", action="store_true", help="replace OUT.npz if it exists")
        else:
            command.add_argument("--fpr", type=float, default=1e-3, help="false-positive rate allowed (default 1e-3)")
            command.add_argument("--json", action="store_true", help="one JSON record per image")
    args = parser.parse_args(argv)
    try:
        (embed_command if args.command == "embed" else detect_command)(args)
    except (InputError, ValueError) as err:
        print(f"watermark: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"watermark: {describe_os_error(err)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
