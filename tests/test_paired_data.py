"""course_lib.data.paired (the paired tasks, their degradations and baselines, the unpaired digit
domains, image folders) and the ``scale`` argument of ``photo_patches``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.data import mnist5k, photo_patches
from course_lib.data.paired import (
    HOLE_FRACTION,
    LUMA,
    NOISE_SIGMA,
    PHOTO_TASKS,
    SCALE,
    TASKS,
    TaskSpec,
    baseline,
    degrade,
    downsample_upsample,
    hole_masks,
    image_files,
    paired_folders,
    paired_task,
    show_input,
    sobel_edges,
    task_spec,
    task_targets,
    to_grey,
    unpaired_digits,
)
from course_lib.data.photos import _photos, max_patch_size, split_mask


def _targets(task: str, n: int = 6, size: int = 32, seed: int = 0) -> torch.Tensor:
    spec = task_spec(task)
    return torch.rand(n, spec.out_channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _in_range(t: torch.Tensor) -> bool:
    return t.dtype == torch.float32 and bool(t.min() >= -1) and bool(t.max() <= 1)


# ---- task specs, shapes and ranges -----------------------------------------------------------

def test_task_specs():
    assert TASKS == ("colorize", "superres", "inpaint", "denoise", "edges2digits") and PHOTO_TASKS == TASKS[:4]
    channels = {t: (task_spec(t).in_channels, task_spec(t).out_channels) for t in TASKS}
    assert channels == {"colorize": (1, 3), "superres": (3, 3), "inpaint": (4, 3), "denoise": (3, 3),
                        "edges2digits": (1, 1)}
    assert isinstance(task_spec("inpaint"), TaskSpec) and task_spec("edges2digits").dataset == "mnist5k"
    with pytest.raises(ValueError, match="task must be one of.*colorize.*got 'deblur'"):
        task_spec("deblur")


@pytest.mark.parametrize("task", TASKS)
def test_degrade_baseline_and_show_input_shapes_and_ranges(task):
    spec = task_spec(task)
    y = _targets(task, n=5, size=16)
    x = degrade(task, y, torch.Generator().manual_seed(1))
    assert x.shape == (5, spec.in_channels, 16, 16) and _in_range(x)
    base = baseline(task, x)
    assert base.shape == (5, spec.out_channels, 16, 16) and _in_range(base)
    assert show_input(task, x).shape == (5, spec.out_channels, 16, 16)


@pytest.mark.parametrize("task", TASKS)
def test_paired_task_shapes_ranges_and_determinism(task):
    spec = task_spec(task)
    x, y = paired_task(task, "test", n=12)
    assert x.shape == (12, spec.in_channels, 32, 32) and y.shape == (12, spec.out_channels, 32, 32)
    assert _in_range(x) and _in_range(y)
    x2, y2 = paired_task(task, "test", n=12)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # the same test pairs in every run
    x_train, y_train = paired_task(task, "train", n=12)
    assert not torch.equal(y, y_train)  # held-out targets
    assert baseline(task, x).shape == y.shape


def test_paired_task_seed_moves_masks_and_noise():
    x0, y0 = paired_task("inpaint", "test", n=8, seed=0)
    x1, y1 = paired_task("inpaint", "test", n=8, seed=1)
    assert not torch.equal(y0, y1) and not torch.equal(x0[:, 3], x1[:, 3])
    x_small, y_small = paired_task("denoise", "test", n=4, size=16)
    assert x_small.shape == (4, 3, 16, 16) and y_small.shape == (4, 3, 16, 16)
    digits, _ = paired_task("edges2digits", "test", n=4, size=16)  # digits are always 32x32
    assert digits.shape == (4, 1, 32, 32)


def test_task_targets_defaults_and_photos_at_half_size():
    assert task_targets("edges2digits", "test").shape == (1000, 1, 32, 32)
    assert task_targets("superres", "test").shape == (500, 3, 32, 32)
    expected = photo_patches("test", size=32, n=20, seed=3, scale=0.5).x
    assert torch.equal(task_targets("colorize", "test", n=20, seed=3), expected)
    with pytest.raises(ValueError, match="split"):
        task_targets("colorize", "validation")


def test_degrade_input_checks():
    with pytest.raises(ValueError, match=r"y must have shape \(B, 3, S, S\) for task 'colorize'.*\(2, 1, 8, 8\)"):
        degrade("colorize", torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"y must have shape \(B, 1, S, S\)"):
        degrade("edges2digits", torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="divisible by 4"):
        degrade("superres", torch.zeros(2, 3, 10, 10))
    with pytest.raises(ValueError, match="task must be one of"):
        degrade("sharpen", torch.zeros(2, 3, 8, 8))


def test_degrade_refuses_non_square_images_with_a_value_error():
    """degrade refuses non-square images with a ValueError naming the shape (not a RuntimeError deep in hole_masks)."""
    with pytest.raises(ValueError, match=r"\(B, 3, S, S\).*\(2, 3, 16, 24\)"):
        degrade("inpaint", torch.zeros(2, 3, 16, 24))


# ---- colorize --------------------------------------------------------------------------------

def test_colorize_input_is_the_luma():
    grey = torch.linspace(-1, 1, 6 * 16 * 16).view(6, 1, 16, 16)
    x = degrade("colorize", grey.expand(-1, 3, -1, -1))
    torch.testing.assert_close(x, grey, rtol=0, atol=1e-6)  # a grey image comes back as the same grey
    y = _targets("colorize", n=3, size=8)
    expected = 0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]  # ITU-R BT.601
    torch.testing.assert_close(to_grey(y)[:, 0], expected, rtol=0, atol=1e-6)
    assert sum(LUMA) == pytest.approx(1.0)
    assert torch.equal(baseline("colorize", x), x.expand(-1, 3, -1, -1))  # the grey copy as RGB
    assert torch.equal(show_input("colorize", x), x.expand(-1, 3, -1, -1))


# ---- superres --------------------------------------------------------------------------------

def test_superres_of_a_constant_image_is_the_image():
    y = torch.full((2, 3, 16, 16), 0.3)
    torch.testing.assert_close(degrade("superres", y), y, rtol=0, atol=1e-6)


def test_superres_input_is_the_bicubic_upsampling_of_4x4_block_means():
    y = _targets("superres", n=3, size=32)
    block_means = y.view(3, 3, 8, SCALE, 8, SCALE).mean((3, 5))  # (3, 3, 8, 8): a camera's coarser pixels
    expected = F.interpolate(block_means, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(-1, 1)
    torch.testing.assert_close(degrade("superres", y), expected, rtol=0, atol=1e-6)
    assert torch.equal(downsample_upsample(y), degrade("superres", y))
    x = degrade("superres", y)
    assert torch.equal(baseline("superres", x), x)  # the input already is the bicubic answer


def test_superres_of_a_block_constant_image_is_the_image_up_to_bicubic_overshoot():
    """A 4x4-block-constant image loses nothing to the box filter: the input is the smooth bicubic
    interpolation of its blocks. Each block's centre keeps its sign and most of its value; the
    cubic kernel's negative lobes overshoot at the edges, by at most half the step here."""
    r = torch.arange(8)
    blocks = (((r[:, None] + r[None, :]) % 2) - 0.5).float().expand(1, 3, 8, 8)  # a checkerboard of +-0.5
    y = blocks.repeat_interleave(4, -1).repeat_interleave(4, -2)  # (1, 3, 32, 32)
    x = degrade("superres", y)
    centres = x.view(1, 3, 8, 4, 8, 4)[:, :, :, 1:3, :, 1:3].mean((3, 5))  # the 2x2 centre of every block
    assert torch.all(torch.sign(centres) == torch.sign(blocks)) and centres.abs().min() > 0.4
    assert 0.5 < x.abs().max() <= 0.75  # overshoot: bicubic, not bilinear (which never leaves [-0.5, 0.5])
    smooth = torch.linspace(-0.5, 0.5, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    y = smooth.repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert (degrade("superres", y) - y).abs().max() < 0.1  # gentle steps: close everywhere


# ---- inpaint ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [8, 16, 32])
def test_hole_masks_have_exactly_one_square_per_image(size):
    side = round(HOLE_FRACTION * size)  # 3, 6, 12
    masks = hole_masks(300, size, torch.Generator().manual_seed(0))
    assert masks.shape == (300, 1, size, size) and masks.dtype == torch.float32
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    m = masks[:, 0].bool()
    rows, cols = m.any(2), m.any(1)  # (300, size): rows and columns that touch the hole
    assert torch.all(rows.sum(1) == side) and torch.all(cols.sum(1) == side)
    assert torch.equal(m, rows[:, :, None] & cols[:, None, :])  # a full rectangle, hence a side x side square
    firsts = rows.float().argmax(1)
    assert torch.all(rows.sum(1) == rows.float().cumsum(1).amax(1))  # contiguous (one run)
    assert torch.all(rows[torch.arange(300), firsts + side - 1])
    assert set(firsts.tolist()) == set(range(size - side + 1))  # every position is drawn
    assert torch.equal(masks, hole_masks(300, size, torch.Generator().manual_seed(0)))


def test_inpaint_input_fills_the_hole_with_the_visible_mean_and_carries_the_mask():
    y = _targets("inpaint", n=8)
    x = degrade("inpaint", y, torch.Generator().manual_seed(2))
    mask = (x[:, 3:] + 1) / 2  # (8, 1, 32, 32) in {0, 1}
    assert set(x[:, 3].unique().tolist()) == {-1.0, 1.0}
    assert torch.all(mask.sum((1, 2, 3)) == 12 * 12)
    hole = mask.bool().expand(-1, 3, -1, -1)
    assert torch.equal(x[:, :3][~hole], y[~hole])
    for i in range(8):  # the hidden pixels hold the mean colour of the visible ones
        for c in range(3):
            visible_mean = y[i, c][~hole[i, c]].double().mean().item()
            torch.testing.assert_close(x[i, c][hole[i, c]], torch.full((144,), visible_mean), rtol=0, atol=1e-5)
    assert torch.equal(show_input("inpaint", x), x[:, :3])
    assert not torch.equal(x, degrade("inpaint", y, torch.Generator().manual_seed(3)))  # fresh masks


def test_inpaint_baseline_keeps_visible_pixels_and_fills_the_hole_with_their_mean():
    y = _targets("inpaint", n=4)
    x = degrade("inpaint", y, torch.Generator().manual_seed(0))
    base = baseline("inpaint", x)
    hole = x[:, 3] > 0  # (4, 32, 32)
    for i in range(4):
        for c in range(3):
            assert torch.equal(base[i, c][~hole[i]], y[i, c][~hole[i]])
            visible_mean = y[i, c][~hole[i]].double().mean().item()
            torch.testing.assert_close(base[i, c][hole[i]], torch.full((144,), visible_mean), rtol=0, atol=1e-5)


# ---- denoise ---------------------------------------------------------------------------------

def test_denoise_noise_has_std_0_4_on_the_course_scale():
    """On mid-grey targets (0) the input is the noise itself, clamped to [-1, 1] (2.5 sigma).
    The interquartile range (1.349 sigma for a Gaussian) is untouched by the clamp."""
    x = degrade("denoise", torch.zeros(64, 3, 32, 32), torch.Generator().manual_seed(0))  # 196,608 values
    q1, q3 = torch.quantile(x.flatten(), torch.tensor([0.25, 0.75]))
    assert 2 * NOISE_SIGMA == pytest.approx(0.4)
    assert (q3 - q1).item() / 1.349 == pytest.approx(0.4, rel=0.02)
    assert abs(x.mean().item()) < 0.01
    assert (x.abs() == 1).float().mean().item() == pytest.approx(0.0124, abs=0.002)  # P(|z| > 2.5)
    y = torch.full((2, 3, 16, 16), 0.9)
    assert degrade("denoise", y, torch.Generator().manual_seed(1)).max() == 1.0  # clamped to the range
    same = [degrade("denoise", y, torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(*same)


def test_denoise_baseline_blurs():
    flat = torch.full((1, 3, 16, 16), -0.2)
    torch.testing.assert_close(baseline("denoise", flat), flat)
    x = degrade("denoise", torch.zeros(4, 3, 32, 32), torch.Generator().manual_seed(0))
    assert baseline("denoise", x).std() < 0.5 * x.std()  # sigma-1 Gaussian blur averages the noise away


# ---- edges2digits ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [-1.0, 0.0, 0.7])
def test_sobel_edges_of_a_blank_image_are_all_minus_one(value):
    edges = sobel_edges(torch.full((2, 1, 16, 16), value))
    assert edges.shape == (2, 1, 16, 16) and torch.all(edges == -1)


def test_sobel_edges_mark_a_step_on_both_sides():
    y = torch.full((1, 1, 16, 16), -1.0)
    y[..., 8:] = 1.0  # black | white
    edges = sobel_edges(y)
    assert torch.all(edges[..., 7:9] == 1) and torch.all(edges[..., :7] == -1) and torch.all(edges[..., 9:] == -1)
    assert torch.equal(sobel_edges(y.transpose(-1, -2)), edges.transpose(-1, -2))  # rows as well as columns
    faint = torch.full((1, 1, 16, 16), 0.0)
    faint[..., 8:] = 0.2  # a step of 0.1 on [0, 1]: gradient 0.4, under the threshold 0.5
    assert torch.all(sobel_edges(faint) == -1)
    rgb = y.expand(-1, 3, -1, -1)  # colour images: edges of the channel mean
    assert torch.equal(sobel_edges(rgb), edges)


def test_edges2digits_pairs():
    x, y = paired_task("edges2digits", "test", n=20)
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(x, sobel_edges(y))
    assert torch.equal(baseline("edges2digits", x), x)
    assert torch.all(x[..., :2, :] == -1)  # the blank MNIST frame has no edges


# ---- unpaired digits -------------------------------------------------------------------------

def test_unpaired_digits_sizes():
    for split, per_class in (("test", 100), ("train", 400)):
        a, b = unpaired_digits(split)
        assert a.x.shape == b.x.shape == (10 * per_class, 1, 32, 32)
        assert torch.bincount(a.labels).tolist() == torch.bincount(b.labels).tolist() == [per_class] * 10
        assert a.name == "mnist5k" and b.name == "printed_digits"
        assert _in_range(a.x) and _in_range(b.x)
    with pytest.raises(ValueError, match="split"):
        unpaired_digits("val")


# ---- image folders ---------------------------------------------------------------------------

def _write(path, size, colour, mode="RGB"):
    from PIL import Image

    Image.new(mode, size, colour).save(path)


def test_image_files_resize_crop_order_and_channels(tmp_path):
    _write(tmp_path / "b.png", (40, 20), (255, 0, 0))  # wide red
    _write(tmp_path / "a.png", (12, 30), (0, 0, 255))  # tall blue
    _write(tmp_path / "c.jpg", (16, 16), (255, 255, 255))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "d.png", (8, 8), (0, 0, 0))  # sub-folders are not read
    x = image_files(tmp_path, size=8)
    assert x.shape == (3, 3, 8, 8) and x.dtype == torch.float32
    torch.testing.assert_close(x[0], torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1).expand(3, 8, 8))  # a: blue
    torch.testing.assert_close(x[1], torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, 8, 8))  # b: red
    assert (x[2] - 1).abs().max() < 0.02  # c: white (JPEG)
    grey = image_files(tmp_path, size=5, channels=1)
    assert grey.shape == (3, 1, 5, 5)
    red_luma = round(0.299 * 255) / 255 * 2 - 1  # PIL's "L" conversion of pure red
    assert grey[1].sub(red_luma).abs().max() < 0.01


def test_image_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_files(tmp_path / "missing")
    (tmp_path / "readme.md").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no image files"):
        image_files(tmp_path)
    with pytest.raises(ValueError, match="channels"):
        image_files(tmp_path, channels=2)
    with pytest.raises(ValueError, match="size"):
        image_files(tmp_path, size=0)


def test_paired_folders_match_by_name(tmp_path):
    fx, fy = tmp_path / "x", tmp_path / "y"
    fx.mkdir()
    fy.mkdir()
    for name, value in (("02", 200), ("01", 100), ("03", 0)):
        _write(fx / f"{name}.png", (10, 10), value, mode="L")
        _write(fy / f"{name}.{'jpg' if name == '01' else 'png'}", (20, 20), (value, 0, 0))  # same stem, any suffix
    x, y = paired_folders(fx, fy, size=4, channels_x=1, channels_y=3)
    assert x.shape == (3, 1, 4, 4) and y.shape == (3, 3, 4, 4)
    levels = torch.tensor([100, 200, 0]) / 255 * 2 - 1  # name order: 01, 02, 03
    torch.testing.assert_close(x[:, 0, 0, 0], levels)
    assert (y[:, 0, 0, 0] - levels).abs().max() < 0.03  # the partners, in the same order
    torch.testing.assert_close(y[:, 1], torch.full((3, 4, 4), -1.0), rtol=0, atol=0.03)

    _write(fx / "04.png", (10, 10), 50, mode="L")  # no partner
    with pytest.raises(FileNotFoundError, match=r"1 files have no partner.*'04'"):
        paired_folders(fx, fy)
    empty_x, empty_y = tmp_path / "ex", tmp_path / "ey"
    empty_x.mkdir()
    empty_y.mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        paired_folders(empty_x, empty_y)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        paired_folders(fx, tmp_path / "missing")


# ---- photo_patches(scale=...) ----------------------------------------------------------------

def test_photo_patches_at_half_scale():
    data = photo_patches("train", size=32, n=40, seed=2, scale=0.5)
    assert data.x.shape == (40, 3, 32, 32) and _in_range(data.x)
    assert data.info["scale"] == 0.5 and torch.bincount(data.labels).tolist() == [5] * 8
    half, full = _photos(0.5), _photos(1.0)
    for h, f in zip(half, full):
        assert h.shape == (3, f.shape[1] // 2, f.shape[2] // 2) and h.dtype == torch.uint8
        area = F.avg_pool2d(f[None].float(), 2)[0, :, :h.shape[1], :h.shape[2]]
        assert (area - h.float()).abs().mean() < 5  # a low-passed half-size copy (antialiased, not aliased)
    for i in (0, 9, 39):  # the boxes are positions in the half-size photo
        top, left, bottom, right = data.info["boxes"][i].tolist()
        crop = half[data.labels[i]][:, top:bottom, left:right].float() / 255 * 2 - 1
        torch.testing.assert_close(data.x[i], crop, rtol=0, atol=1e-6)
    test = photo_patches("test", size=32, n=40, seed=2, scale=0.5)
    for d in (data, test):  # the splits' blocks are cut from the half-size photo
        for i in range(40):
            top, left, bottom, right = d.info["boxes"][i].tolist()
            assert split_mask(int(d.labels[i]), d.info["split"], 0.5)[top:bottom, left:right].all()
    assert torch.equal(photo_patches("train", size=16, n=8, seed=1, scale=1).x,
                       photo_patches("train", size=16, n=8, seed=1).x)  # scale 1 is the native resolution


def test_max_patch_size_at_half_scale_and_bad_scales():
    assert max_patch_size(0.5) == 37 and max_patch_size() == 75  # chelsea's blocks: 300 / 4 rows, 150 / 4 at half size
    assert photo_patches("test", size=37, n=8, scale=0.5).x.shape == (8, 3, 37, 37)
    with pytest.raises(ValueError, match="size must be <= 37 at scale 0.5"):
        photo_patches("test", size=38, n=8, scale=0.5)
    for bad in (0, -0.5, 1.5, True, "0.5", None):
        with pytest.raises(ValueError, match="scale must be a number in"):
            photo_patches(size=8, n=2, scale=bad)


def test_digit_subsets_are_balanced_over_the_classes():
    """mnist5k's splits are sorted by class: a prefix of n digits must still hold every class (n // 10 of each)."""
    from course_lib.data.paired import digit_subset, interleave_classes

    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    assert interleave_classes(labels).tolist() == [0, 3, 5, 1, 4, 2]  # 0, 1, 2, 0, 1, 0
    x, y = digit_subset("test", 30)
    assert x.shape == (30, 1, 32, 32) and torch.bincount(y, minlength=10).tolist() == [3] * 10
    full_x, full_y = digit_subset("test")
    assert len(full_x) == 1000 and torch.equal(full_y, mnist5k("test").labels)  # None: all, as stored
    assert torch.equal(task_targets("edges2digits", "test", n=30), x)  # the targets edges2digits scores


def test_photo_tasks_have_val_pairs_and_digit_tasks_do_not():
    x_val, y_val = paired_task("denoise", "val", n=6)
    x_test, y_test = paired_task("denoise", "test", n=6)
    assert x_val.shape == x_test.shape == (6, 3, 32, 32) and not torch.equal(y_val, y_test)
    assert torch.equal(paired_task("denoise", "val", n=6)[0], x_val)  # fixed noise: the same pairs every time
    assert task_targets("colorize", "val").shape == (500, 3, 32, 32)
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\)"):
        paired_task("edges2digits", "val", n=4)
