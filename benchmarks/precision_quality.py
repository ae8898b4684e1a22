"""Quality at equal steps: fp32 against the fast path (bf16 autocast + channels_last), two seeds per model.

    python benchmarks/precision_quality.py [--models dcgan cgan wgan_gp stylegan vae cvae pix2pix] [--seeds 0 1]
                                           [--jobs 2] [--results FILE] [--table-only]

Each (model, path, seed) is a ``python -m course_lib.train MODEL`` run of ``STEPS[MODEL]`` steps with the
model's recommended settings, ``--precision fp32`` or ``--precision bf16 --channels-last``, evaluated
as the CLI evaluates it (``metrics.json``, plus the CPU's name). Results go into ``--results`` (a JSON
file, written after every run, so an interrupted comparison continues where it stopped; a recorded run
of other steps than ``STEPS`` is run again) and the table is printed from it.

A metric counts as the same when the two paths' means differ by no more than the larger of their
seed-to-seed ranges; a family may switch to the fast path on a CPU (``AUTO_BF16``) only where every
metric is the same and ``precision_speed.py`` measured a speed-up of at least 1.2x. ``--jobs`` runs
that many runs at once, splitting the CPU threads between them (the metrics do not depend on timing,
so the runs need not be alone on the machine; their training seconds are not reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import torch

STEPS = {"dcgan": 1200, "cgan": 1200, "wgan_gp": 300, "stylegan": 3000, "vae": 2000, "cvae": 2000, "pix2pix": 1000}
METRICS = {  # what each model is judged by (metrics.json keys), and which direction is better
    "dcgan": {"fd": "lower", "precision": "higher", "recall": "higher"},
    "cgan": {"fd": "lower", "precision": "higher", "recall": "higher", "class_accuracy": "higher"},
    "wgan_gp": {"fd": "lower", "precision": "higher", "recall": "higher"},
    "stylegan": {"fd": "lower", "precision": "higher", "recall": "higher"},
    "vae": {"test_neg_elbo": "lower", "test_iwae": "lower", "fd": "lower"},
    "cvae": {"test_neg_elbo": "lower", "test_iwae": "lower", "fd": "lower", "class_accuracy": "higher"},
    "pix2pix": {"psnr": "higher", "ssim": "higher"},
}
PATHS = {"fp32": {"precision": "fp32", "channels_last": False}, "fast": {"precision": "bf16", "channels_last": True}}
DEFAULT_RESULTS = Path(__file__).parent / "results" / "precision_quality.json"


def train_one(model: str, path: str, seed: int, threads: int) -> dict:
    """Train one run in a temporary folder; returns its metrics.json."""
    torch.set_num_threads(threads)
    from course_lib.train import default_config, train

    cfg = default_config(model, steps=STEPS[model], seed=seed, **PATHS[path])
    with tempfile.TemporaryDirectory() as folder:
        metrics = train(cfg, Path(folder) / "run", device="cpu", show_progress=False)
    return {**metrics, "cpu": cpu_name()}


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows; recorded with every run."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def key(model: str, path: str, seed: int) -> str:
    return f"{model}/{path}/{seed}"


def save(results: dict, file: Path) -> None:
    from course_lib.checkpoint import atomic_write

    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(file, lambda tmp: tmp.write_text(json.dumps(results, indent=1, sort_keys=True)))


def compare_metric(results: dict, model: str, metric: str, seeds: list[int]) -> dict | None:
    """Both paths' values of ``metric`` per seed, their means, the larger seed-to-seed range and whether the
    means differ by no more than it ("the same"); None while a run of ``STEPS[model]`` steps or the metric is
    missing."""
    runs = [results.get(key(model, p, s), {}) for p in PATHS for s in seeds]
    if any(run.get("steps") != STEPS[model] or run.get(metric) is None for run in runs):
        return None
    values = {p: [results[key(model, p, s)][metric] for s in seeds] for p in PATHS}
    spread = max(max(vs) - min(vs) for vs in values.values())
    mean = {p: sum(vs) / len(vs) for p, vs in values.items()}
    return {"values": values, "mean": mean, "spread": spread, "same": abs(mean["fast"] - mean["fp32"]) <= spread}


def same_quality(results: dict, model: str, seeds: list[int]) -> bool | None:
    """Whether every metric of ``model`` is the same on both paths; None while a run or a metric is missing.
    The quality condition for listing ``model`` in its config's ``AUTO_BF16``."""
    verdicts = [compare_metric(results, model, metric, seeds) for metric in METRICS[model]]
    return None if None in verdicts else all(v["same"] for v in verdicts)


def table(results: dict, models: list[str], seeds: list[int]) -> list[str]:
    """Markdown rows: each metric's values per seed for both paths, and whether they are the same."""
    lines = ["| model (steps) | metric | fp32, seeds " + ", ".join(map(str, seeds)) + " | fast, seeds "
             + ", ".join(map(str, seeds)) + " | same? |", "|---|---|---|---|---|"]
    show = lambda vs: " / ".join(f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}" for v in vs)  # noqa: E731
    for model in models:
        for metric in METRICS[model]:
            c = compare_metric(results, model, metric, seeds)
            if c is None:
                continue
            lines.append(f"| {model} ({STEPS[model]:,}) | {metric} | {show(c['values']['fp32'])} | "
                         f"{show(c['values']['fast'])} | {'yes' if c['same'] else 'no'} (means "
                         f"{c['mean']['fp32']:.3g} vs {c['mean']['fast']:.3g}, seed range {c['spread']:.2g}) |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(STEPS), choices=list(STEPS), metavar="MODEL")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help=f"the JSON file (default {DEFAULT_RESULTS})")
    parser.add_argument("--table-only", action="store_true", help="print the table of the results already recorded")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    todo = [(m, p, s) for m in args.models for s in args.seeds for p in PATHS  # a run of other steps is redone
            if results.get(key(m, p, s), {}).get("steps") != STEPS[m]]
    if todo and not args.table_only:
        from course_lib.run import native_bf16

        if not native_bf16("cpu"):
            parser.error("this CPU has no native bf16 (AVX-512 BF16 or AMX): the fast path cannot be compared here")
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(train_one, *job, threads): job for job in todo}
            for future in as_completed(futures):  # each result is saved as soon as its run ends
                model, path, seed = futures[future]
                results[key(model, path, seed)] = future.result()
                save(results, args.results)
                print(f"{key(model, path, seed)}: " + ", ".join(f"{m} {results[key(model, path, seed)][m]:.4g}"
                                                                for m in METRICS[model]), flush=True)
    print(f"fp32 against bf16 autocast + channels_last at equal steps, {len(args.seeds)} seeds (CPU)")
    print("\n".join(table(results, args.models, args.seeds)))


if __name__ == "__main__":
    main()
