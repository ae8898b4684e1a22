"""fp32 against the fast path (bf16 autocast + channels_last) for every model the CLI trains, at its default width.

    python benchmarks/precision_speed.py [--models dcgan vae ...] [--widths 64 32] [--rounds 5] [--steps 8]
                                         [--profile-steps 10] [--device auto]

For each model it builds two runs exactly as ``python -m course_lib.train MODEL`` does (data, networks,
G_ema, optimisers, the step closure): one with ``--precision fp32``, one with the fast path,
``--precision bf16 --channels-last`` (channels_last alone where the device has no native bf16:
``course_lib.run.native_bf16``). After three warm-up steps of each, it alternates ``--rounds`` rounds,
each timing ``--steps`` steps of the fp32 run and then of the fast run, so both see the same machine:
images/s is the median over rounds, and the speed-up is the median of the rounds' own ratios.

It then profiles ``--profile-steps`` steps of each run with ``torch.profiler`` and reports the share of
the step spent outside the networks' forward passes, the backward passes and the optimisers (the
labelled ``forward:NAME`` ranges that this script opens around the forward of every model, of the
run's sampler and of their parts two levels down, since CycleGAN's "G" holds both generators and the
encoder's step calls its frozen StyleGAN's ``synthesis`` alone; the autograd engine's ``evaluate_function`` ranges and ``Optimizer.*`` ranges, merged): noise and batches, losses,
the G_ema update, logging (``.item()``), Python. The steps run through ``course_lib.training.fit``, as
the CLI runs them, without the progress bar and the checkpoints (see ``step_overhead.py`` for those).
The profiler slows small operations down, so the share is an upper bound for the unprofiled step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from course_lib.device import get_device
from course_lib.run import native_bf16
from course_lib.train import MODELS, build_run, default_config
from course_lib.training import fit


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(run, steps: int, device: torch.device) -> float:
    """Seconds of ``steps`` training steps of ``run``, as ``fit`` runs them (no bar, no checkpoint)."""
    _sync(device)
    start = time.perf_counter()
    fit(run.state, run.step_fn, run.state.step + steps, show_progress=False)
    _sync(device)
    return time.perf_counter() - start


def _merged_length(ranges: list[tuple[float, float]]) -> float:
    """Total length of the union of ``(start, end)`` ranges."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(ranges):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def outside_share(run, steps: int, device: torch.device) -> float:
    """Share of ``steps`` profiled steps spent outside forward passes, backward passes and optimiser calls."""
    stack: list = []
    handles = []
    models = dict(run.state.models)
    if isinstance(run.sampler, torch.nn.Module):  # the encoder's run trains E through a frozen StyleGAN, its sampler's part
        models.setdefault("sampler", run.sampler)
    networks = {f"{name}.{part}": m for name, model in models.items()  # a model and its parts two levels down: the
                for part, m in model.named_modules() if part.count(".") <= 1}   # encoder's run calls G.synthesis alone
    for name, module in networks.items():
        def pre(_module, _inputs, name=name):
            ctx = torch.profiler.record_function(f"forward:{name}")
            ctx.__enter__()
            stack.append(ctx)

        def post(_module, _inputs, _output):
            stack.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    activities = [torch.profiler.ProfilerActivity.CPU]
    try:
        with torch.profiler.profile(activities=activities) as prof:
            _sync(device)
            start = time.perf_counter()
            fit(run.state, run.step_fn, run.state.step + steps, show_progress=False)
            _sync(device)
            wall_us = 1e6 * (time.perf_counter() - start)
    finally:
        for handle in handles:
            handle.remove()
    inside = [(e.time_range.start, e.time_range.end) for e in prof.events()
              if e.name.startswith(("forward:", "autograd::engine::evaluate_function", "Optimizer."))]
    return max(0.0, 1.0 - _merged_length(inside) / wall_us)


def compare(model: str, width: int | None, device: torch.device, rounds: int, steps: int, profile_steps: int) -> dict:
    """fp32 and fast-path images/s (medians), their median per-round ratio, and both outside-shares."""
    fast = {"precision": "bf16" if native_bf16(device) else "fp32", "channels_last": True}
    runs = {}
    for path, settings in (("fp32", {"precision": "fp32", "channels_last": False}), ("fast", fast)):
        cfg = default_config(model, eval_samples=0, base_channels=width, **settings)
        runs[path] = build_run(cfg, device)
        timed_steps(runs[path], 3, device)  # warm-up
    per_round = {"fp32": [], "fast": []}
    for _ in range(rounds):
        for path, run in runs.items():
            per_round[path].append(steps * run.images_per_step / timed_steps(run, steps, device))
    ratios = [f / s for f, s in zip(per_round["fast"], per_round["fp32"])]
    return {"model": model, "width": runs["fp32"].cfg.base_channels, "fast": fast,
            "fp32": statistics.median(per_round["fp32"]), "fast_ips": statistics.median(per_round["fast"]),
            "ratio": statistics.median(ratios), "ratio_range": (min(ratios), max(ratios)),
            "outside_fp32": outside_share(runs["fp32"], profile_steps, device),
            "outside_fast": outside_share(runs["fast"], profile_steps, device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL",
                        help=f"models to measure (default: all of {', '.join(MODELS)})")
    parser.add_argument("--widths", type=int, nargs="+", help="base_channels to measure (default: each model's default)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of fp32 and fast steps (default 5)")
    parser.add_argument("--steps", type=int, default=8, help="steps timed per run per round (default 8)")
    parser.add_argument("--profile-steps", type=int, default=10, help="steps profiled per run (default 10)")
    args = parser.parse_args()
    for name in ("rounds", "steps", "profile_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    device = get_device(args.device)
    fast = ("bf16 autocast + channels_last" if native_bf16(device)
            else "channels_last only (no native bf16 on this device)")
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; fast path: {fast}; "
          f"{args.rounds} rounds x {args.steps} steps")
    print("| model | width | fp32 images/s | fast images/s | speed-up (range) | outside fwd/bwd/opt: fp32 | fast |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for width in args.widths or [None]:
            try:
                r = compare(model, width, device, args.rounds, args.steps, args.profile_steps)
            except Exception as error:  # e.g. a model whose data or teacher is missing here: say so, go on
                print(f"| {model} | {width or 'default'} | skipped: {type(error).__name__}: {error} | | | | |")
                continue
            lo, hi = r["ratio_range"]
            print(f"| {model} | {r['width']} | {r['fp32']:,.0f} | {r['fast_ips']:,.0f} | {r['ratio']:.2f}x "
                  f"({lo:.2f}-{hi:.2f}) | {r['outside_fp32']:.0%} | {r['outside_fast']:.0%} |", flush=True)


if __name__ == "__main__":
    main()
