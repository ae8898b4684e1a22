"""Train a detector of generated images and score images with it, from the command line.

Usage::

    python -m course_lib.detect train --real REAL.npz --fake FAKE.npz --out DETECTOR.safetensors
        [--kind spectrum|cnn] [--augment] [--steps N] [--seed S] [--force]
    python -m course_lib.detect score DETECTOR.safetensors IN.npz [--json]
    python -m course_lib.detect score DETECTOR.safetensors --real REAL.npz --fake FAKE.npz [--attack NAME] [--json]

Images travel as the ``sample`` command writes them: ``arr_0``, uint8 (N, H, W, C), square, grey or
colour, 28x28 and larger; ``--real mnist5k`` stands for the real digits of ``mnist5k`` (its train
split for ``train``, its test split for ``score``). ``train`` fits a logistic regression on the log
spectrum (``spectrum``, the default) or a small CNN (``cnn``, ``--steps`` Adam steps), with Wang et
al.'s blur and JPEG augmentation under ``--augment``, and writes the detector (safetensors, never
over a file without ``--force``). ``score`` prints the probability that each image of IN is generated,
or, given real and generated images, the average precision and the accuracy at 0.5 (after the
standard ``--attack``, e.g. ``jpeg75``: see ``course_lib.responsible.attacks.STANDARD``). Errors are
one line on stderr (status 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from course_lib.checkpoint import CheckpointError, describe_os_error, load_weights, save_weights
from course_lib.data import mnist5k
from course_lib.responsible import attacks, detectors
from course_lib.responsible.images import InputError, read_images

FORMAT = "course-detector-1"


def read_set(source: str, flag: str, split: str) -> torch.Tensor:
    """Images (N, C, S, S) in [-1, 1] of an ``.npz``, or mnist5k's ``split`` for the word ``mnist5k``."""
    if source == "mnist5k":
        return mnist5k(split).x
    x, _ = read_images(source, flag)
    if x.shape[2] != x.shape[3]:
        raise InputError(f"{flag}: the detectors take square images, got {tuple(x.shape[2:])}")
    return x


def save_detector(path: Path, detector: torch.nn.Module, force: bool) -> None:
    if path.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name such as detector.safetensors")
    if path.exists() and not force:
        raise InputError(f"--out {path} exists; pass --force to replace it")
    save_weights(path, detector, {"format": FORMAT, **dataclasses.asdict(detector.cfg)})


def load_detector(path: Path) -> torch.nn.Module:
    """The detector of a file written by ``train``."""
    try:
        _, config = load_weights(path)
        if config.pop("format", None) != FORMAT:
            raise InputError(f"DETECTOR: {path} is not a detector written by python -m course_lib.detect train")
        detector = detectors.build_detector(detectors.DetectorConfig(**config))
        load_weights(path, detector)
    except (CheckpointError, TypeError) as err:
        raise InputError(f"DETECTOR: {err}") from None
    return detector.eval()


def train_command(args: argparse.Namespace) -> None:
    if args.out.exists() and not args.force:  # before any work
        raise InputError(f"--out {args.out} exists; pass --force to replace it")
    if args.steps < 1:
        raise InputError(f"--steps must be >= 1, got {args.steps}")
    real, fake = read_set(args.real, "--real", "train"), read_set(args.fake, "--fake", "train")
    detector = detectors.train_detector(real, fake, args.kind, augmented=args.augment, steps=args.steps, seed=args.seed)
    save_detector(args.out, detector, args.force)
    print(f"wrote {args.out}: a {args.kind} detector ({len(real)} real, {len(fake)} generated images"
          f"{', augmented' if args.augment else ''})", file=sys.stderr)


def score_command(args: argparse.Namespace) -> None:
    detector = load_detector(args.detector)
    if (args.images is None) == (args.real is None and args.fake is None):
        raise InputError("score takes IN.npz, or --real and --fake (not both)")
    if args.images is not None:
        if args.attack != "none":
            raise InputError("--attack applies to --real and --fake")
        p = detectors.score(detector, read_set(str(args.images), "IN", "test"))
        for i, value in enumerate(p.tolist()):
            print(json.dumps({"index": i, "generated": value}) if args.json else f"{i}: {value:.4f}")
        return
    if args.real is None or args.fake is None:
        raise InputError("give both --real and --fake")
    real, fake = read_set(args.real, "--real", "test"), read_set(args.fake, "--fake", "test")
    result = detectors.evaluate(detector, attacks.attack(real, args.attack), attacks.attack(fake, args.attack))
    result = {"attack": args.attack, "real": len(real), "fake": len(fake), **result}
    print(json.dumps(result) if args.json else "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                          for k, v in result.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.detect", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    tr = commands.add_parser("train", help="train a detector on real against generated images")
    tr.add_argument("--real", required=True, help="real images (.npz) or mnist5k")
    tr.add_argument("--fake", required=True, help="one generator's samples (.npz)")
    tr.add_argument("--out", type=Path, required=True, help="the detector file to write (.safetensors)")
    tr.add_argument("--kind", choices=detectors.DETECTORS, default="spectrum", help="the detector (default spectrum)")
    tr.add_argument("--augment", action="store_true", help="blur and JPEG augmentation (Wang et al. 2020)")
    tr.add_argument("--steps", type=int, default=300, help="cnn: Adam steps of batch 64 (default 300)")
    tr.add_argument("--seed", type=int, default=0, help="seeds the initialisation, batches and augmentation")
    tr.add_argument("--force", action="store_true", help="replace --out if it exists")
    sc = commands.add_parser("score", help="score images, or measure AP and accuracy on real and generated images")
    sc.add_argument("detector", type=Path, metavar="DETECTOR", help="a file written by train")
    sc.add_argument("images", type=Path, nargs="?", metavar="IN.npz", help="images to score")
    sc.add_argument("--real", help="real images (.npz) or mnist5k (its test split)")
    sc.add_argument("--fake", help="generated images (.npz)")
    sc.add_argument("--attack", choices=tuple(attacks.STANDARD), default="none", help="applied to both sets first")
    sc.add_argument("--json", action="store_true", help="JSON output")
    args = parser.parse_args(argv)
    try:
        (train_command if args.command == "train" else score_command)(args)
    except (InputError, ValueError) as err:
        print(f"detect: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"detect: {describe_os_error(err)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
