"""Image conversions, grids and the headless fallbacks of the live plot and progress bar."""

import pytest
import torch
from PIL import Image

from course_lib.viz import LivePlot, image_grid, is_headless, progress, save_images, show_images, to_uint8, to_unit


def test_conversions_map_the_range_ends_and_clamp():
    x = torch.tensor([-1.0, 0.0, 1.0, 1.5, -3.0])
    assert to_unit(x).tolist() == [0.0, 0.5, 1.0, 1.0, 0.0]
    assert to_uint8(x).tolist() == [0, 128, 255, 255, 0]


def test_image_grid_tiles_and_validates():
    grid = image_grid(torch.zeros(10, 1, 8, 8), nrow=5, padding=2)
    assert grid.shape == (3, 2 * 8 + 3 * 2, 5 * 8 + 6 * 2)  # make_grid returns 3 channels for gray input
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        image_grid(torch.zeros(8, 8))


def test_save_images_writes_a_png(tmp_path):
    save_images(torch.rand(4, 3, 8, 8) * 2 - 1, tmp_path / "sub" / "grid.png", nrow=2)
    with Image.open(tmp_path / "sub" / "grid.png") as img:
        assert img.size == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2)


def test_show_images_returns_an_axis():
    ax = show_images(torch.zeros(6, 1, 32, 32), nrow=3, title="zeros")
    assert ax.get_title() == "zeros"


def test_headless_fallbacks_print_text(capsys):
    assert is_headless()  # plain Python, not a notebook
    plot = LivePlot(every=2)
    history = {"loss": []}
    for v in [3.0, 2.0, 1.0, 0.5]:
        history["loss"].append(v)
        plot.update(history)
    plot.close(history)
    err = capsys.readouterr().err  # progress goes to stderr, so a script's results on stdout stay clean
    assert "step 2: loss=2" in err and "step 4: loss=0.5" in err
    assert list(progress(range(3), desc="x", mininterval=0)) == [0, 1, 2]
    captured = capsys.readouterr()
    assert "x: 100%" in captured.err and captured.out == ""
    with pytest.raises(ValueError):
        LivePlot(every=0)


def test_live_plot_redraws_every_n_updates_but_no_sooner_than_its_time_interval(monkeypatch):
    """In a live notebook a redraw costs a few hundred ms: fast steps must not pay it every 100 steps."""
    import IPython.display

    from course_lib import viz

    class Handle:
        def __init__(self):
            self.updates = 0

        def update(self, fig):
            self.updates += 1

    handles = []
    monkeypatch.setattr(viz, "is_headless", lambda: False)
    monkeypatch.setattr(IPython.display, "display", lambda fig, display_id=False: handles.append(Handle()) or handles[-1])
    monkeypatch.setattr(LivePlot, "_figure", lambda self, history: object())
    history = {"loss": [1.0]}
    for seconds, redraws in ((0.0, 5), (3600.0, 1)):
        handles.clear()
        plot = LivePlot(every=2, seconds=seconds)
        for _ in range(10):
            plot.update(history)
        assert len(handles) == 1 and 1 + handles[0].updates == redraws
    with pytest.raises(ValueError, match="seconds"):
        LivePlot(seconds=-1)
