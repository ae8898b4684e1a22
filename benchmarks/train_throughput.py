"""Training throughput of the course's GANs on this device: images/s, FLOPs per image, share of the ceiling.

    python benchmarks/train_throughput.py [--device auto] [--steps 20] [--models dcgan cgan wgan_gp stylegan]
                                          [--widths 64 32] [--precision fp32] [--channels-last] [--compile]

For each model it times ``--steps`` training steps (after 3 warm-up steps) of the configuration
``python -m course_lib.train`` uses by default (DCGANs at width 64 and 32, the StyleGAN at its
default width 16; ``--widths`` sets them for every model), counts the floating-point
operations of one step with ``torch.utils.flop_counter.FlopCounterMode`` (forward and backward of
G and D, as the step runs them), and reports images per second. On a CPU it also measures the
machine's convolution ceiling: the FLOP rate of a large, well-shaped convolution's forward and
backward pass, the best a convolutional network can hope for here, and prints the share of it each
model reaches. A WGAN-GP step processes ``n_critic`` real batches, so its images/s counts real
images through the critic. A StyleGAN step runs the lazy R1 penalty every ``r1_every`` steps, so
its timing averages over both kinds of step (the FLOP counter follows neither: n/a); ``--compile``
compiles its synthesis network and D as ``python -m course_lib.train stylegan --compile`` does.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from course_lib.device import get_device
from course_lib.run import PRECISIONS
from course_lib.train import build_run, default_config

DEFAULT_WIDTHS = {"stylegan": [16]}  # base_channels measured per model when --widths is not given (others: 64, 32)


def conv_ceiling(device: torch.device, seconds: float = 3.0) -> float:
    """FLOP/s of forward + backward of a 3x3 convolution, 128 -> 128 channels, batch 64 at 16x16."""
    x = torch.randn(64, 128, 16, 16, device=device, requires_grad=True)
    w = torch.randn(128, 128, 3, 3, device=device, requires_grad=True)

    def once():
        F.conv2d(x, w, padding=1).sum().backward()

    with FlopCounterMode(display=False) as counter:
        once()
    flops = counter.get_total_flops()
    for _ in range(3):
        once()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        once()
        n += 1
    _sync(device)
    return flops * n / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model: str, device: torch.device, steps: int, precision: str, channels_last: bool, compile: bool,
            base_channels: int) -> dict:
    style = model == "stylegan"
    cfg = default_config(model, precision=precision, channels_last=channels_last, eval_samples=0, base_channels=base_channels,
                         compile=compile if style else None)  # the StyleGAN run compiles its own networks
    run = build_run(cfg, device)

    def step() -> None:  # one training step, counted as fit() counts it (the StyleGAN's lazy R1 reads the count)
        run.step_fn()
        run.state.step += 1

    if compile and not style:  # compile the networks, never the step: the gradient penalty needs double backward
        for name in ("G", "D"):
            run.state.models[name].compile()
    images_per_step = run.images_per_step  # a WGAN-GP step reads n_critic batches
    try:
        with FlopCounterMode(display=False) as counter:
            step()
        flops_per_image = counter.get_total_flops() / images_per_step
    except (RuntimeError, AssertionError):  # FlopCounterMode cannot follow a double backward (the gradient
        flops_per_image = None               # penalty) nor the StyleGAN step's hooks on grad-free tensors
    for _ in range(3):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    return {"model": model, "images_per_second": images_per_step * steps / seconds,
            "gflops_per_image": flops_per_image / 1e9 if flops_per_image else None, "ms_per_step": 1000 * seconds / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["dcgan", "cgan", "wgan_gp", "stylegan"])
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32, bf16 (autocast; CUDA or a CPU with native bf16) or auto (the training default)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile G and D")
    parser.add_argument("--widths", type=int, nargs="+",
                        help="base_channels to measure (default: 64, the usual DCGAN shape, and 32, the course's "
                             "training default; 16 for the StyleGAN, its width at 32x32)")
    args = parser.parse_args()
    device = get_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"precision={args.precision}, channels_last={args.channels_last}, compile={args.compile}")
    ceiling = conv_ceiling(device) if device.type == "cpu" else None
    if ceiling:
        print(f"convolution ceiling (3x3 conv, 128 ch, fwd + bwd): {ceiling / 1e9:.1f} GFLOP/s")
    print(f"{'model':<9} {'width':>5} {'images/s':>9} {'ms/step':>8} {'GFLOP/image':>12} {'GFLOP/s':>8}" + ("  share of ceiling" if ceiling else ""))
    for model in args.models:
        for width in args.widths or DEFAULT_WIDTHS.get(model, [64, 32]):
            r = measure(model, device, args.steps, args.precision, args.channels_last, args.compile, width)
            if r["gflops_per_image"] is None:
                print(f"{model:<9} {width:>5} {r['images_per_second']:9.0f} {r['ms_per_step']:8.1f} {'n/a':>12} {'n/a':>8}"
                      "  (FlopCounterMode cannot count this step)")
                continue
            rate = r["images_per_second"] * r["gflops_per_image"]
            share = f"  {rate * 1e9 / ceiling:16.0%}" if ceiling else ""
            print(f"{model:<9} {width:>5} {r['images_per_second']:9.0f} {r['ms_per_step']:8.1f} {r['gflops_per_image']:12.3f} {rate:8.1f}{share}")


if __name__ == "__main__":
    main()
