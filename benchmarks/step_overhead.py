"""What a training step costs beyond the networks: each piece of a run's bookkeeping, as a share of one step.

    python benchmarks/step_overhead.py [--model dcgan] [--width 32] [--precision fp32] [--channels-last]
                                       [--repeats 30] [--device auto]

It builds the run ``python -m course_lib.train MODEL`` builds and times, each alone and as a median of
``--repeats`` calls: a whole training step as ``course_lib.training.fit`` runs it (without the progress
bar), then the pieces a run does besides the networks' passes, each divided by how many steps it serves:

- the G_ema update (``course_lib.ema.ema_update_``, every step; inside the step),
- drawing a batch (``next(batches)`` and the copy to the device, every step; inside the step),
- the progress bar (``tqdm`` as the CLI shows it in a terminal: ``update`` every step, the logged values
  every 50),
- the live loss plot of a notebook (``LivePlot``: a redraw of the figure to PNG every ``every`` = 100 steps,
  and no sooner than ``LivePlot.seconds`` after the previous one),
- a sample grid (``Run.sample_grid``, what a lesson draws every few hundred steps: 500 here),
- a checkpoint write (``TrainState.save``, every ``checkpoint_every`` steps).

A piece that costs more than 5% of a step is worth cutting.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm.std import tqdm  # noqa: E402

from course_lib.device import get_device  # noqa: E402
from course_lib.ema import ema_update_  # noqa: E402
from course_lib.run import PRECISIONS  # noqa: E402
from course_lib.train import MODELS, build_run, default_config  # noqa: E402
from course_lib.training import fit  # noqa: E402
from course_lib.viz import LivePlot, plot_history  # noqa: E402

SAMPLE_EVERY = 500  # steps between a lesson's sample grids
PLOT_EVERY = 100    # LivePlot's default redraw interval


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="dcgan", choices=MODELS)
    parser.add_argument("--width", type=int, default=None, help="base_channels (default: the model's default)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    device = get_device(args.device)
    cfg = default_config(args.model, eval_samples=0, base_channels=args.width, precision=args.precision,
                         channels_last=args.channels_last)
    run = build_run(cfg, device)
    state = run.state

    def one_step() -> None:
        fit(state, run.step_fn, state.step + 1, show_progress=False)

    step = median_seconds(one_step, args.repeats)
    rows: list[tuple[str, float, int]] = []  # (piece, seconds per call, steps it serves)
    if "G_ema" in state.models:
        G = state.models["G"]
        rows.append(("G_ema update", median_seconds(lambda: ema_update_(state.models["G_ema"], G, 0.999, 100),
                                                     args.repeats), 1))
    batches = state.batches

    def draw_batch() -> None:
        batch = next(batches)
        for t in batch if isinstance(batch, (tuple, list)) else [batch]:
            t.to(device)

    rows.append(("batch + copy to the device", median_seconds(draw_batch, args.repeats), 1))
    bar = tqdm(total=10**9, file=io.StringIO(), desc="training")
    logs = {"d_loss": 1.0, "g_loss": 1.0, "d_real": 0.5, "d_fake": 0.5}

    def bar_50_steps() -> None:
        for _ in range(49):
            bar.update(1)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()}, refresh=False)

    rows.append(("progress bar (50 steps)", median_seconds(bar_50_steps, args.repeats), 50))

    history = {k: (v * (3000 // len(v) + 1))[:3000] for k, v in state.history.items()}  # a lesson's 3,000 steps

    def redraw() -> None:  # what LivePlot does in a live notebook: a new figure, drawn to PNG for the front end
        fig, ax = plt.subplots(figsize=(6, 3.2))
        plot_history(history, ax=ax, smooth=10)
        fig.tight_layout()
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)

    redraw_seconds = median_seconds(redraw, max(3, args.repeats // 5))
    rows.append(("live loss plot, every 100 steps (as before; 3,000 steps of history)", redraw_seconds, PLOT_EVERY))
    plot_seconds = LivePlot().seconds  # now: every 100 steps but no sooner than this many seconds after the last redraw
    rows.append((f"live loss plot, every 100 steps and at least {plot_seconds:g} s apart", redraw_seconds,
                 max(PLOT_EVERY, round(plot_seconds / step))))
    rows.append(("sample grid", median_seconds(lambda: torch.no_grad()(run.sample_grid)(), max(3, args.repeats // 5)),
                 SAMPLE_EVERY))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pt"
        rows.append((f"checkpoint ({cfg.checkpoint_every} steps apart)",
                     median_seconds(lambda: state.save(path), max(3, args.repeats // 5)), cfg.checkpoint_every))
        size = path.stat().st_size
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {args.model} width "
          f"{cfg.base_channels}, batch {cfg.batch_size}, precision {args.precision}, channels_last {args.channels_last}")
    print(f"one training step (fit, no bar): {1000 * step:.1f} ms; checkpoint file {size / 1e6:.1f} MB")
    print(f"| piece | ms per call | every | ms per step | share of a step |")
    print("|---|---|---|---|---|")
    for name, seconds, every in rows:
        per_step = seconds / every
        print(f"| {name} | {1000 * seconds:.2f} | {every} | {1000 * per_step:.3f} | {per_step / step:.1%} |")


if __name__ == "__main__":
    main()
