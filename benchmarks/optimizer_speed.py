"""Adam's three PyTorch implementations on one model's training step: the for-loop, ``foreach`` and ``fused``.

    python benchmarks/optimizer_speed.py [--model dcgan] [--precision bf16] [--rounds 7] [--steps 10] [--width W]

It builds the run three times as ``python -m course_lib.train MODEL --precision P`` builds it, replaces every
optimiser of each copy by ``torch.optim.Adam`` over the same parameter groups (same learning rate and betas)
with ``foreach=False``, ``foreach=True`` or ``fused=True``, and alternates ``--rounds`` rounds of ``--steps``
steps of the three through ``fit``: images/s are medians over the rounds, the ratios medians of each round's
own ratio to the for-loop. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from precision_speed import timed_steps  # noqa: E402

from course_lib.device import get_device  # noqa: E402
from course_lib.train import MODELS, build_run, default_config  # noqa: E402

VARIANTS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def with_adam(run, options: dict) -> None:
    """Replace each of ``run``'s optimisers by an Adam with ``options`` over the same groups and settings (the
    GAN, VAE, pix2pix, CycleGAN and StyleGAN steps look their optimisers up in ``run.state.optimizers``)."""
    for name, old in list(run.state.optimizers.items()):
        groups = [{k: v for k, v in g.items() if k in ("params", "lr", "betas", "eps", "weight_decay")}
                  for g in old.param_groups]
        run.state.optimizers[name] = torch.optim.Adam(groups, **options)


def compare(model: str, precision: str, device: torch.device, rounds: int, steps: int,
            width: int | None = None) -> dict[str, dict[str, float]]:
    """Median images/s of each Adam variant and its median per-round ratio to the for-loop."""
    runs = {}
    for variant, options in VARIANTS.items():
        run = build_run(default_config(model, eval_samples=0, precision=precision, base_channels=width), device)
        with_adam(run, options)
        timed_steps(run, 2, device)  # warm-up
        runs[variant] = run
    per_round = {variant: [] for variant in runs}
    for _ in range(rounds):
        for variant, run in runs.items():
            per_round[variant].append(steps * run.images_per_step / timed_steps(run, steps, device))
    return {variant: {"images_per_s": statistics.median(ips),
                      "ratio": statistics.median(a / b for a, b in zip(ips, per_round["for-loop"]))}
            for variant, ips in per_round.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="dcgan", choices=MODELS)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--steps", type=int, default=10, help="steps timed per variant per round (default 10)")
    parser.add_argument("--width", type=int, help="base_channels (default: the model's)")
    args = parser.parse_args()
    for name in ("rounds", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    device = get_device(args.device)
    print(f"{args.model}, {args.precision}, {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.rounds} rounds x {args.steps} steps")
    for variant, r in compare(args.model, args.precision, device, args.rounds, args.steps, args.width).items():
        print(f"{variant:>9}: {r['images_per_s']:7,.0f} images/s, {r['ratio']:.3f}x the for-loop")


if __name__ == "__main__":
    main()
