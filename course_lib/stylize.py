"""Paint a photo in the style of another image, or synthesise a texture, from the command line (lesson 11).

Usage::

    python -m course_lib.stylize --content A --style B --out C [--size 256] [--method gatys|adain]
        [--features random|multiscale|classifier|vgg19 [--weights PATH]] [--steps N] [--scales K]
        [--optimizer lbfgs|adam] [--style-weight W] [--tv-weight T] [--preserve-colour]
        [--alpha A] [--decoder DIR] [--seed S] [--device D] [--force]
    python -m course_lib.stylize --style B --out C [--size 256]        # texture synthesis (gatys)

Images are PNG or JPEG of any size, grey or colour; each is resized so that its longer side is
``--size`` pixels. The output is grey when every input is grey (or the features are the grey digit
classifier's), else RGB; with ``--preserve-colour`` it keeps the content's colours (luminance-only
transfer). ``--method gatys`` (the default) optimises the pixels (``course_lib.style_transfer.gatys``)
on the features of ``--features``: a random VGG-shaped net (default), one layer of random multi-scale
filters, the course's digit classifier, or VGG-19 with the ImageNet weights of a local file
``--weights`` (never downloaded). ``--method adain`` runs a trained AdaIN decoder in one pass:
``--decoder DIR`` is a run of ``python -m course_lib.train adain``, by default the shipped
``checkpoints/adain``. Without ``--content`` the command synthesises the style's texture (gatys only).

A progress bar and the final message go to stderr; an error is one line naming the argument (exit
status 2); ``--out`` is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from course_lib.checkpoint import CheckpointError
from course_lib.device import get_device
from course_lib.run.files import shipped_checkpoint
from course_lib.sample import load_generator
from course_lib.style_transfer.features import FEATURES, FeatureNet, build_features
from course_lib.style_transfer.gatys import OPTIMIZERS, GatysConfig, stylize
from course_lib.style_transfer.images import (FORMATS, ImageError, load_image, rgb_to_yiq, save_image, to_channels,
                                              yiq_to_rgb)

METHODS = ("gatys", "adain")
GATYS_ONLY = ("features", "weights", "steps", "scales", "optimizer", "style_weight", "tv_weight")  # flags of gatys
ADAIN_ONLY = ("alpha", "decoder")
DEFAULTS = {"features": "random", "steps": 100, "scales": 1, "optimizer": "lbfgs", "style_weight": 10.0,
            "tv_weight": 0.0, "alpha": 1.0}
EXIT_USAGE = 2


class StylizeError(ValueError):
    """A bad argument or input; the message names the argument."""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.stylize", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--content", type=Path, help="the content image (PNG/JPEG); leave out to synthesise a texture")
    parser.add_argument("--style", type=Path, required=True, help="the style image (PNG/JPEG)")
    parser.add_argument("--out", type=Path, required=True, help="the output image (.png, .jpg or .jpeg)")
    parser.add_argument("--size", type=int, default=256, help="longer side of every image in pixels (default 256)")
    parser.add_argument("--method", choices=METHODS, default="gatys", help="optimise pixels (gatys, default) or "
                        "one pass of a trained AdaIN decoder (adain)")
    parser.add_argument("--features", choices=FEATURES, help="gatys: the feature network (default random)")
    parser.add_argument("--weights", type=Path, help="gatys with --features vgg19: a local VGG-19 state_dict file")
    parser.add_argument("--steps", type=int, help="gatys: forward-backward passes at each scale (default 100)")
    parser.add_argument("--scales", type=int, help="gatys: pyramid levels, coarse to fine (default 1)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="gatys: lbfgs (default) or adam")
    parser.add_argument("--style-weight", type=float, help="gatys: weight of the relative style error (default 10; "
                        "the content's is 1)")
    parser.add_argument("--tv-weight", type=float, help="gatys: weight of the total variation (default 0)")
    parser.add_argument("--alpha", type=float, help="adain: content/style trade-off in [0, 1] (default 1: all style)")
    parser.add_argument("--decoder", type=Path, help="adain: a run folder of `python -m course_lib.train adain` "
                        "(default the shipped checkpoints/adain)")
    parser.add_argument("--preserve-colour", action="store_true", help="keep the content's colours (luminance-only "
                        "transfer)")
    parser.add_argument("--seed", type=int, default=0, help="seeds random features and the starting noise (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps (default auto)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Refuse flags of the other method, bad numbers and an --out that exists (without --force)."""
    foreign = ADAIN_ONLY if args.method == "gatys" else GATYS_ONLY
    given = [name for name in foreign if getattr(args, name) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise StylizeError(f"{flag}: applies to --method {'adain' if args.method == 'gatys' else 'gatys'} only, "
                           f"not to --method {args.method}")
    for name, value in DEFAULTS.items():
        if name not in foreign and getattr(args, name) is None:
            setattr(args, name, value)
    if args.size < 1:
        raise StylizeError(f"--size must be >= 1, got {args.size}")
    if args.seed < 0:
        raise StylizeError(f"--seed must be >= 0, got {args.seed}")
    if args.method == "gatys":
        if args.features == "vgg19" and args.weights is None:
            raise StylizeError("--weights: --features vgg19 needs a local VGG-19 weights file (nothing is downloaded)")
        if args.weights is not None and args.features != "vgg19":
            raise StylizeError("--weights: applies to --features vgg19 only")
        for name in ("steps", "scales"):
            if getattr(args, name) < 1:
                raise StylizeError(f"--{name} must be >= 1, got {getattr(args, name)}")
        for name in ("style_weight", "tv_weight"):
            if not getattr(args, name) >= 0:
                raise StylizeError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    else:
        if not 0 <= args.alpha <= 1:
            raise StylizeError(f"--alpha must be in [0, 1], got {args.alpha}")
        if args.content is None:
            raise StylizeError("--content: --method adain needs a content image (texture synthesis without --content "
                               "is --method gatys)")
    if args.preserve_colour and args.content is None:
        raise StylizeError("--preserve-colour keeps the content's colours: it needs --content")
    if args.out.suffix.lower() not in FORMATS:
        raise StylizeError(f"--out {args.out}: the suffix must be one of {', '.join(FORMATS)}")
    if args.out.exists() and not args.force:
        raise StylizeError(f"--out {args.out} exists; pass --force to replace it")
    if args.out.parent != Path("") and not args.out.parent.is_dir():
        raise StylizeError(f"--out {args.out}: the folder {args.out.parent} does not exist")


def read(flag: str, path: Path, size: int) -> torch.Tensor:
    try:
        return load_image(path, size=size)
    except ImageError as err:
        raise StylizeError(f"{flag}: {err}") from None


def feature_net(args: argparse.Namespace, channels: int) -> FeatureNet:
    try:
        return build_features(args.features, img_channels=channels, weights=args.weights, seed=args.seed)
    except FileNotFoundError as err:
        raise StylizeError(f"--{err}") from None
    except ValueError as err:
        message = str(err)
        raise StylizeError(f"--{message}" if message.startswith("weights:") else f"--features {args.features}: "
                           f"{message}") from None
    except CheckpointError as err:
        raise StylizeError(f"--features {args.features}: {err}") from None


def run_gatys(args: argparse.Namespace, content: torch.Tensor | None, style: torch.Tensor,
              device: torch.device) -> torch.Tensor:
    channels = 1 if all(x.shape[1] == 1 for x in (content, style) if x is not None) else 3
    net = feature_net(args, channels if args.features != "vgg19" else 3).to(device)
    cfg = GatysConfig(steps=args.steps, optimizer=args.optimizer, style_weight=args.style_weight,
                      tv_weight=args.tv_weight, scales=args.scales, preserve_colour=args.preserve_colour)
    needed = net.min_size * 2 ** (cfg.scales - 1)
    shortest = min(min(x.shape[-2:]) for x in (content, style) if x is not None)
    if shortest < needed:
        raise StylizeError(f"--size {args.size} is too small for --features {args.features} with --scales {cfg.scales}: "
                           f"the shorter side of every image must be at least {needed} pixels, got {shortest}")
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps * cfg.scales, desc=f"gatys ({args.features}, {cfg.optimizer})", file=sys.stderr,
               leave=True)

    def progress(parts: dict[str, float]) -> None:  # L-BFGS's last line search may pass its budget by a few
        if bar.n < bar.total:
            bar.update(1)
        bar.set_postfix(loss=f"{parts['loss']:.3g}")

    generator = torch.Generator().manual_seed(args.seed)
    try:
        result = stylize(net, style.to(device), None if content is None else content.to(device), cfg,
                         generator=generator, callback=progress)
    finally:
        bar.close()
    return result.image


def load_decoder(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    train_hint = ("train one with `python -m course_lib.train adain --out DIR` (or `python "
                  "scripts/train_checkpoints.py adain` for the shipped one) and pass --decoder DIR")
    if args.decoder is None:
        try:
            args.decoder = shipped_checkpoint("adain")
        except CheckpointError:
            raise StylizeError(f"--decoder: no trained AdaIN decoder given and no shipped checkpoints/adain; "
                               f"{train_hint}") from None
    try:
        net, meta = load_generator(args.decoder, device)
    except (CheckpointError, OSError) as err:
        raise StylizeError(f"--decoder {args.decoder}: {err}; {train_hint}") from None
    if meta.get("model") != "adain":
        raise StylizeError(f"--decoder {args.decoder} holds a {meta.get('model')!r} run, not an AdaIN decoder; "
                           f"{train_hint}")
    return net


def run_adain(args: argparse.Namespace, content: torch.Tensor, style: torch.Tensor, device: torch.device) -> torch.Tensor:
    net = load_decoder(args, device)
    least = net.encoder.min_size
    shortest = min(min(x.shape[-2:]) for x in (content, style))
    if shortest < least:
        raise StylizeError(f"--size {args.size} is too small for the AdaIN encoder: the shorter side of every image "
                           f"must be at least {least} pixels, got {shortest}")
    channels = net.cfg.img_channels
    with torch.no_grad():
        out = net(to_channels(content, channels).to(device), to_channels(style, channels).to(device), alpha=args.alpha)
    if args.preserve_colour and content.shape[1] == 3:  # the result's luminance with the content's chroma
        out = yiq_to_rgb(torch.cat([rgb_to_yiq(out)[:, :1], rgb_to_yiq(content.to(device))[:, 1:]], 1)).clamp(-1, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        check_args(args)
        style = read("--style", args.style, args.size)
        content = None if args.content is None else read("--content", args.content, args.size)
        device = get_device(args.device)
        if args.method == "gatys":
            image = run_gatys(args, content, style, device)
        else:
            image = run_adain(args, content, style, device)
        if all(x.shape[1] == 1 for x in (content, style) if x is not None):
            image = to_channels(image, 1)  # grey in, grey out
        save_image(image.cpu(), args.out)
    except StylizeError as err:
        print(f"stylize: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # e.g. a read-only or full disk while writing --out
        print(f"stylize: --out {args.out}: {err.strerror or err}", file=sys.stderr)
        return 1
    height, width = image.shape[-2:]
    what = "texture" if content is None else "stylised image"
    print(f"wrote {args.out}: {what}, {width}x{height}, {args.method}, {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
