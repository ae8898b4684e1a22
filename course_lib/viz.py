"""Pictures and progress: image grids, a live loss plot and progress bars that degrade gracefully.

Images in the course live in [-1, 1] with shape (N, C, H, W); everything here converts them for
display. In an interactive notebook the loss plot redraws in place and progress bars are widgets;
when a notebook runs headless (papermill, nbval, the grader: they set ``COURSE_HEADLESS=1``) or in a
plain script, progress is printed as text and the plot is drawn once, at the end.
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from typing import Iterable

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid
from tqdm.std import tqdm as tqdm_std

from course_lib.checkpoint import atomic_write

HEADLESS_ENV = "COURSE_HEADLESS"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (interactive or executed by papermill/nbclient)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython()
    return ip is not None and ip.__class__.__name__ == "ZMQInteractiveShell"


def is_headless() -> bool:
    """True when nobody watches live: a script, or a notebook run with ``COURSE_HEADLESS=1``."""
    return os.environ.get(HEADLESS_ENV, "") not in ("", "0") or not in_notebook()


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None, **kwargs):
    """A ``tqdm`` progress bar: a widget in a live notebook, sparse text when headless.

    Outside a notebook the text goes to stderr every 15 s, so a command's results on stdout stay clean
    (``python -m course_lib.train ... > metrics.json``); a notebook executed headless keeps one line per
    bar in its output, the final one (steps, time, rate and the last logged values).
    """
    if is_headless() and in_notebook():
        return _FinalLine(iterable, total=total, desc=desc, file=io.StringIO(), ascii=True, **kwargs)
    if is_headless():
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", 15.0)
        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("ascii", True)
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, **kwargs)


class _FinalLine(tqdm_std):
    """A text bar that draws into a buffer and prints only its final state, once, when it closes."""

    def close(self) -> None:
        if self.disable:
            return
        final = str(self)
        super().close()
        print(final, flush=True)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to [0, 1] (clamped), on the CPU, as float32."""
    return ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to uint8 in [0, 255], rounding to the nearest level."""
    return (to_unit(images) * 255).round().to(torch.uint8)


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile (N, C, H, W) images in [-1, 1] into one (C, H', W') image in [0, 1].

    Args:
        images: (N, C, H, W) with C in {1, 3}, values in [-1, 1].
        nrow: images per row; default: a near-square grid.
        padding: pixels between images.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor with C = 1 or 3, got {shape}")
    nrow = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
    return make_grid(to_unit(images), nrow=nrow, padding=padding, pad_value=1.0)


def show_images(images: torch.Tensor, nrow: int | None = None, title: str | None = None, ax=None, scale: float = 0.5):
    """Show (N, C, H, W) images in [-1, 1] as a grid on a matplotlib axis and return the axis."""
    grid = image_grid(images, nrow)
    if ax is None:
        n_cols = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
        n_rows = math.ceil(images.shape[0] / n_cols)
        w = max(2.0, n_cols * images.shape[-1] / 28 * scale)
        h = max(2.0, n_rows * images.shape[-2] / 28 * scale)
        _, ax = plt.subplots(figsize=(w, h + (0.3 if title else 0)))
    img = grid.permute(1, 2, 0).numpy()  # (H', W', C)
    ax.imshow(img[..., 0] if grid.shape[0] == 1 else img, cmap="gray" if grid.shape[0] == 1 else None, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def save_images(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> None:
    """Write (N, C, H, W) images in [-1, 1] as one PNG grid, atomically."""
    from PIL import Image

    grid = (image_grid(images, nrow) * 255).round().to(torch.uint8)  # (C, H', W')
    array = grid.permute(1, 2, 0).squeeze(-1).numpy()
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def plot_history(history: dict[str, list[float]], ax=None, smooth: int = 1, title: str | None = None):
    """Plot logged curves (name -> values per step), optionally smoothed by a moving average."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for name, values in history.items():
        y = torch.tensor(values, dtype=torch.float64)
        if smooth > 1 and len(y) >= smooth:
            y = torch.nn.functional.avg_pool1d(y[None, None], smooth, stride=1)[0, 0]
            x = torch.arange(len(y)) + smooth // 2
        else:
            x = torch.arange(len(y))
        ax.plot(x.numpy(), y.numpy(), label=name, lw=1)
    ax.set_xlabel("step")
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    return ax


class LivePlot:
    """A loss plot that redraws in place in a live notebook, and prints text lines in a script.

    Use ``update(history)`` every step and ``close(history)`` once at the end. The plot redraws every
    ``every`` updates, but no sooner than ``seconds`` after its last redraw: drawing the figure costs a
    few hundred milliseconds, which every 100 steps of a fast model (a VAE step takes ~15 ms on a
    2-core CPU) would be a fifth of the training time (``benchmarks/step_overhead.py``). A notebook
    executed headless draws only the final plot (so it keeps a picture without a hundred intermediate
    ones), and a plain script prints the latest values every ``every`` updates instead.
    """

    def __init__(self, every: int = 100, smooth: int = 10, title: str | None = None, seconds: float = 5.0):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self.every, self.smooth, self.title, self.seconds = every, smooth, title, seconds
        self._handle = None
        self._calls = 0
        self._drawn = -math.inf  # time.perf_counter() of the last redraw

    def _figure(self, history):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        plot_history(history, ax=ax, smooth=self.smooth, title=self.title)
        fig.tight_layout()
        plt.close(fig)
        return fig

    def update(self, history: dict[str, list[float]]) -> None:
        """Redraw (live notebook) or print the latest values (headless), every ``every`` calls."""
        self._calls += 1
        if self._calls % self.every:
            return
        if is_headless():
            if in_notebook():  # an executed notebook keeps the final figure (close) and the progress bar
                return
            step = max((len(v) for v in history.values()), default=0)
            latest = ", ".join(f"{k}={v[-1]:.4g}" for k, v in history.items() if v)
            print(f"step {step}: {latest}", file=sys.stderr, flush=True)  # progress, not a result
            return
        if time.perf_counter() - self._drawn < self.seconds:
            return
        from IPython.display import display

        fig = self._figure(history)
        self._drawn = time.perf_counter()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)

    def close(self, history: dict[str, list[float]]) -> None:
        """Draw the final plot (in any notebook)."""
        if not in_notebook() or not any(history.values()):
            return
        from IPython.display import display

        fig = self._figure(history)
        if self._handle is None:
            display(fig)
        else:
            self._handle.update(fig)
