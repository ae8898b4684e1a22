"""Image editing (course_lib.editing, lesson 10): inversion, directions, attributes, restoration, the CLI."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.editing import attributes, directions
from course_lib.editing.inversion import ProjectorConfig, learning_rate, noise_scale, pixel_distance, project
from course_lib.editing.restoration import downsample, mean_fill, restore, square_mask
from course_lib.image_quality import psnr

ROOT = Path(__file__).resolve().parents[1]
STYLEGAN = ROOT / "checkpoints" / "stylegan"


class LinearGenerator(nn.Module):
    """image = A w + b for every layer's w averaged: a generator whose inverse is known (least squares)."""

    def __init__(self, w_dim: int = 6, num_ws: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.cfg = type("Cfg", (), {"img_channels": 1, "w_dim": w_dim})()
        self.z_dim, self.num_ws = w_dim, num_ws
        self.A = nn.Parameter(torch.randn(1 * 8 * 8, w_dim, generator=g) * 0.3)   # full column rank
        self.b = nn.Parameter(torch.zeros(64))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.mapping = nn.Identity()

    def broadcast(self, w):
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def synthesis(self, ws, noise_mode="const"):
        return (ws.mean(dim=1) @ self.A.T + self.b).reshape(-1, 1, 8, 8)


def test_inversion_of_a_linear_generator_finds_the_true_code():
    G = LinearGenerator()
    w_true = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    target = G.synthesis(G.broadcast(w_true)).detach()
    result = project(G, target, "w", ProjectorConfig(steps=400, lr=0.1, noise_factor=0.0),
                     statistics=(torch.zeros(6), 1.0))
    assert torch.allclose(result.codes, w_true, atol=1e-3)
    assert result.losses[-1] < 1e-6 < result.losses[0]


def test_the_schedule_ramps_up_and_down_and_the_noise_decays():
    cfg = ProjectorConfig(steps=100, lr=0.1, lr_rampup=0.05, lr_rampdown=0.25, noise_factor=0.05, noise_ramp=0.75)
    rates = [learning_rate(cfg, s) for s in range(100)]
    assert rates[0] == 0 and math.isclose(rates[5], 0.1) and math.isclose(rates[50], 0.1)
    assert rates[80] < 0.1 and rates[99] < 0.001                         # cosine ramp-down over the last 25%
    assert all(a <= b + 1e-12 for a, b in zip(rates[:5], rates[1:6]))   # rising over the first 5%
    assert math.isclose(noise_scale(cfg, 0, 2.0), 0.1) and noise_scale(cfg, 75, 2.0) == 0.0
    with pytest.raises(ValueError, match="steps"):
        ProjectorConfig(steps=0)


def test_sefa_of_a_known_matrix_is_its_top_right_singular_vectors():
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(9, 9, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    s = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    A = U[:, :5] @ torch.diag(s) @ V.T                                   # A = U S V^T
    found, values = directions.sefa_of_matrix(A, 3)
    assert torch.allclose(values, s[:3] ** 2)
    for k in range(3):
        assert abs(float(found[k] @ V[:, k])) == pytest.approx(1.0, abs=1e-9)


def test_the_svm_boundary_of_separable_codes_is_their_normal():
    g = torch.Generator().manual_seed(0)
    normal = directions._unit(torch.randn(16, generator=g))
    codes = torch.randn(600, 16, generator=g)
    side = codes @ normal
    keep = side.abs() > 0.3                                               # a margin: separable
    found = directions.linear_boundary(codes[keep], (side[keep] > 0).float())
    assert float(found @ normal) > 0.97


def test_conditional_editing_removes_the_other_directions():
    g = torch.Generator().manual_seed(0)
    n, a, b = (directions._unit(torch.randn(8, generator=g)) for _ in range(3))
    c = directions.conditional(n, a, b)
    assert abs(float(c @ a)) < 1e-6 and abs(float(c @ b)) < 1e-6 and math.isclose(float(c.norm()), 1.0, rel_tol=1e-6)
    with pytest.raises(ValueError, match="span"):
        directions.conditional(a, a)


def test_move_changes_only_the_chosen_layers():
    ws = torch.zeros(2, 8, 4)
    d = torch.tensor([1.0, 0, 0, 0])
    moved = directions.move(ws, d, 2.0, slice(3, None))
    assert torch.all(moved[:, :3] == 0) and torch.all(moved[:, 3:, 0] == 2.0)
    assert torch.equal(directions.move(torch.zeros(3, 4), d, torch.tensor([1.0, 2.0, 3.0]))[:, 0], torch.tensor([1.0, 2, 3]))


def _bar(width: int, shear: float = 0.0) -> torch.Tensor:
    """A vertical bar of ``width`` pixels, its top shifted right by ``shear`` pixels per row up."""
    img = -torch.ones(1, 1, 32, 32)
    for row in range(6, 26):
        centre = 16 + shear * (16 - row)
        left = int(round(centre - width / 2))
        img[0, 0, row, left:left + width] = 1.0
    return img


def test_thickness_and_slant_measure_what_they_say():
    thin, thick = attributes.thickness(_bar(2)), attributes.thickness(_bar(5))
    assert float(thick) > 2 * float(thin)
    upright, right, left = (attributes.slant(_bar(3, s)) for s in (0.0, 0.4, -0.4))
    assert abs(float(upright)) < 0.02 and float(right) == pytest.approx(0.4, abs=0.08) and float(left) < -0.3


def test_the_classical_baselines():
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    mask = square_mask(2, hole=8, centre=True)
    filled = mean_fill(x, mask)
    assert torch.equal(filled * mask, x * mask)
    assert torch.allclose(filled[:, :, 12:20, 12:20].std(dim=(2, 3)), torch.zeros(2, 1))
    assert downsample(x, 4).shape == (2, 1, 8, 8)


@pytest.fixture(scope="module")
def stylegan():
    from course_lib.sample import load_generator

    G, _ = load_generator(STYLEGAN)
    return G


@pytest.fixture(scope="module")
def digits():
    from course_lib.data import load_dataset

    return load_dataset("mnist5k", "test").x[::250][:4]                 # (4, 1, 32, 32) held-out digits


def test_w_plus_reconstructs_better_than_w_and_w_better_than_z(stylegan, digits):
    from course_lib.editing.inversion import w_statistics

    stats = w_statistics(stylegan, 1000)
    scores = {}
    for space in ("z", "w", "w+"):
        result = project(stylegan, digits, space, ProjectorConfig(steps=50), statistics=stats,
                         generator=torch.Generator().manual_seed(0))
        scores[space] = float(psnr(result.images, digits).mean())
    assert scores["w+"] > scores["w"] > scores["z"], scores


def test_restoration_keeps_the_known_pixels_and_beats_nothing(stylegan, digits):
    mask = square_mask(len(digits), hole=12, centre=True)
    restored, _ = restore(stylegan, digits, "inpaint", mask=mask, cfg=ProjectorConfig(steps=60))
    assert torch.equal(restored * mask, digits * mask)
    low = downsample(digits)
    restored, _ = restore(stylegan, low, "superres", cfg=ProjectorConfig(steps=60))
    assert float(pixel_distance(downsample(restored), low).mean()) < float(pixel_distance(torch.zeros_like(low) - 1, low).mean())


def _run(*args):
    return subprocess.run([sys.executable, "-m", "course_lib.edit", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_the_command_line_inverts_and_moves_and_refuses_bad_input(tmp_path, digits, capsys):
    from course_lib import edit

    pixels = ((digits + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "in.npz", pixels[:, 2:30, 2:30])                  # 28x28, as MNIST
    np.savez(tmp_path / "empty.npz", pixels[:0])
    done = _run("invert", STYLEGAN, "--images", tmp_path / "in.npz", "--space", "w+", "--steps", "10",
                "--out", tmp_path / "inv.npz")
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "inv.npz") as out:
        assert out["arr_0"].shape == (4, 28, 28, 1) and out["arr_0"].dtype == np.uint8
        assert out["latents"].shape == (4, 8, 64) and str(out["space"]) == "w+"
    assert _run("directions", STYLEGAN, "--method", "sefa", "--out", tmp_path / "d.npz").returncode == 0
    done = _run("move", STYLEGAN, "--latents", tmp_path / "inv.npz", "--direction", tmp_path / "d.npz", "--alpha", "1",
                "--layers", "2:", "--out", tmp_path / "moved.npz")
    assert done.returncode == 0, done.stderr
    for args, words in [
        (("invert", STYLEGAN, "--images", tmp_path / "in.npz", "--out", tmp_path / "inv.npz"), "--force"),
        (("invert", ROOT / "checkpoints" / "dcgan", "--images", tmp_path / "in.npz", "--out", tmp_path / "x.npz"),
         "not a StyleGAN"),
        (("invert", STYLEGAN, "--images", tmp_path / "empty.npz", "--out", tmp_path / "x.npz"), "N = 0"),
        (("invert", STYLEGAN, "--images", tmp_path / "missing.npz", "--out", tmp_path / "x.npz"), "--images"),
        (("restore", STYLEGAN, "--task", "superres", "--images", tmp_path / "in.npz", "--out", tmp_path / "x.npz"),
         "h = 16, 8 or 4"),
        (("move", STYLEGAN, "--latents", tmp_path / "in.npz", "--direction", tmp_path / "d.npz", "--alpha", "1",
          "--out", tmp_path / "x.npz"), "--latents"),
    ]:
        code = edit.main([str(a) for a in args])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "Traceback" not in err, err
    with pytest.raises(SystemExit):
        edit.main(["invert", str(STYLEGAN), "--images", str(tmp_path / "in.npz"), "--steps", "0", "--out", "x.npz"])
    assert "--steps must be at least 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A 3-step encoder run for the shipped StyleGAN (what ``python -m course_lib.train encoder`` writes)."""
    from course_lib import train

    out = tmp_path_factory.mktemp("encoder")
    cfg = train.default_config("encoder", steps=3, eval_samples=20, base_channels=8, batch_size=4, distance="pixel")
    metrics = train.train(cfg, out, device="cpu", show_progress=False)
    assert {"psnr", "ssim", "class_kept", "encoder_seconds_per_image"} <= metrics.keys()
    return out


def test_hybrid_inversion_starts_at_the_encoder_and_improves_on_it(stylegan, digits, tiny_encoder):
    from course_lib.editing.encoder import hybrid_config, hybrid_invert
    from course_lib.sample import load_generator

    inverter, _ = load_generator(tiny_encoder)
    alone = hybrid_invert(inverter.encoder, stylegan, digits, steps=0)
    assert torch.allclose(alone.images, inverter(digits), atol=1e-6) and alone.codes.shape == (4, 8, 64)
    refined = hybrid_invert(inverter.encoder, stylegan, digits, steps=30)
    assert float(psnr(refined.images, digits).mean()) > float(psnr(alone.images, digits).mean())
    assert hybrid_config(30).noise_factor == 0 and hybrid_config(30).steps == 30
    with pytest.raises(ValueError, match="steps"):
        hybrid_invert(inverter.encoder, stylegan, digits, steps=-1)


def test_the_command_line_inverts_with_an_encoder_and_refuses_a_wrong_one(tmp_path, digits, tiny_encoder, capsys):
    from course_lib import edit

    pixels = ((digits + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "in.npz", pixels)                                 # 32x32
    assert edit.main(["invert", str(STYLEGAN), "--images", str(tmp_path / "in.npz"), "--space", "w+",
                      "--encoder", str(tiny_encoder), "--steps", "0", "--out", str(tmp_path / "enc.npz")]) == 0
    with np.load(tmp_path / "enc.npz") as out:
        assert out["arr_0"].shape == (4, 32, 32, 1) and out["latents"].shape == (4, 8, 64)
    capsys.readouterr()
    other = tmp_path / "other_stylegan"
    other.mkdir()
    from course_lib.checkpoint import read_safetensors, write_safetensors

    tensors, metadata = read_safetensors(STYLEGAN / "generator.safetensors")
    tensors = {k: v + 0.01 if v.is_floating_point() else v for k, v in tensors.items()}
    write_safetensors(other / "generator.safetensors", tensors, metadata)
    for args, words in [
        (["--space", "w", "--encoder", str(tiny_encoder)], "--space w+"),
        (["--space", "w+", "--encoder", str(STYLEGAN)], "pass an encoder run"),
        (["--space", "w+", "--encoder", str(tmp_path / "nowhere")], "--encoder"),
    ]:
        code = edit.main(["invert", str(STYLEGAN), "--images", str(tmp_path / "in.npz"), *args,
                          "--out", str(tmp_path / "x.npz")])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "Traceback" not in err, (args, err)
    code = edit.main(["invert", str(other), "--images", str(tmp_path / "in.npz"), "--space", "w+",
                      "--encoder", str(tiny_encoder), "--out", str(tmp_path / "x.npz")])
    assert code == 2 and "another generator" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_an_encoder_run_refuses_a_source_that_is_not_a_stylegan(tmp_path):
    from course_lib import train
    from course_lib.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="not a StyleGAN"):
        train.build_run(train.default_config("encoder", stylegan=str(ROOT / "checkpoints" / "dcgan")))
    with pytest.raises(CheckpointError, match="no shipped checkpoint 'no_such_checkpoint'"):
        train.build_run(train.default_config("encoder", stylegan="no_such_checkpoint"))
    with pytest.raises(CheckpointError, match="neither a run folder"):
        train.build_run(train.default_config("encoder", stylegan=str(tmp_path)))
