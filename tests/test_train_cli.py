"""The train and sample CLIs end to end on tiny models: files, resumption, refusals, evaluation."""

import functools
import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

from course_lib import evaluate, sample, train
from course_lib.vae import VAE, evaluate_likelihood

TINY = ["--base-channels", "8", "--batch-size", "16", "--eval-samples", "100"]  # 100: the least the metrics take
TINY_LIKELIHOOD = ["--iwae-k", "2", "--eval-test-digits", "20"]  # a VAE's test likelihood on 20 digits, k = 2


def run_train(model, out, *extra):
    vae_only = TINY_LIKELIHOOD if model in ("vae", "cvae") else []
    return train.main([model, "--out", str(out), *TINY, *vae_only, *extra])


@pytest.mark.parametrize("model", ["dcgan", "cgan", "wgan_gp", "vae", "cvae"])
def test_train_then_sample_then_evaluate(model, tmp_path, capsys):
    out = tmp_path / model
    assert run_train(model, out, "--steps", "3", *(["--n-critic", "2"] if model == "wgan_gp" else [])) == 0
    for name in ("checkpoint.pt", "generator.safetensors", "samples.png", "metrics.json", "config.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["model"] == model
    assert {"fd", "kid_mean", "precision", "recall", "is", "modes"} <= set(metrics)
    assert ("class_accuracy" in metrics) == (model in ("cgan", "cvae"))
    if model in ("vae", "cvae"):
        assert metrics["test_images"] == 20 and metrics["iwae_k"] == 2
        assert metrics["test_likelihood"].startswith("bernoulli")
        for key in ("test_neg_elbo", "test_iwae"):  # untrained: roughly 1,024 pixels x log 2 nats
            assert math.isfinite(metrics[key]) and 100 < metrics[key] < 5000, (key, metrics[key])
        with safe_open(str(out / "generator.safetensors"), framework="pt") as f:
            config = json.loads(f.metadata()["config"])
        assert config["model"] == model and config["architecture"]["num_classes"] == (10 if model == "cvae" else 0)
        assert config["architecture"]["latent_dim"] == 16 and "ema_decay" not in config["train"]  # the VAE's settings only
        model_loaded, _ = sample.load_generator(out)
        assert isinstance(model_loaded, VAE) and not model_loaded.training
    else:
        assert "test_neg_elbo" not in metrics
    capsys.readouterr()

    npz = tmp_path / "samples.npz"
    assert sample.main([str(out), "--n", "100", "--out", str(npz), "--seed", "1"]) == 0
    with np.load(npz) as data:
        assert data["arr_0"].shape == (100, 32, 32, 1) and data["arr_0"].dtype == np.uint8
        if model in ("cgan", "cvae"):
            assert np.bincount(data["labels"]).tolist() == [10] * 10
        else:
            assert "labels" not in data
    assert evaluate.main([str(npz), "--json"]) == 0
    assert "fd" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_vae_settings_are_checked_on_resume_and_ema_is_refused(tmp_path, capsys):
    out = tmp_path / "vae"
    assert run_train("vae", out, "--steps", "2", "--eval-samples", "0", "--eval-test-digits", "0") == 0
    assert run_train("vae", out, "--steps", "3", "--beta", "4", "--resume") == 2
    assert "beta=1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # a VAE keeps no weight average: the flag is not one of its options
        run_train("vae", tmp_path / "ema", "--steps", "2", "--ema-decay", "0.9")
    assert refused.value.code == 2
    assert "--ema-decay is not an option of vae" in capsys.readouterr().err  # the flag is named


def test_gaussian_vae_reports_densities_not_nats(tmp_path):
    out = tmp_path / "gaussian"
    assert run_train("vae", out, "--steps", "2", "--likelihood", "gaussian", "--latent-dim", "4",
                     "--eval-samples", "0") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_likelihood"].startswith("gaussian") and "not comparable" in metrics["test_likelihood"]
    assert math.isfinite(metrics["test_neg_elbo"]) and math.isfinite(metrics["test_iwae"])
    model, config = sample.load_generator(out)
    assert model.cfg.likelihood == "gaussian" and model.cfg.latent_dim == 4 and model.x_logvar.requires_grad


def test_vae_grid_decodes_the_fixed_noise_and_likelihood_is_reproducible():
    cfg = train.default_config("cvae", base_channels=8, batch_size=16, steps=1)
    run = train.build_run(cfg)
    run.step_fn()
    vae = run.sampler
    with torch.no_grad():
        expected = torch.sigmoid(vae.decode(run.fixed_z, run.fixed_labels)) * 2 - 1  # (100, 1, 32, 32)
    assert torch.equal(run.sample_grid(), expected)
    a = evaluate_likelihood(vae, n_images=10, k=2)
    b = evaluate_likelihood(vae, n_images=10, k=2)
    assert a == b and a["test_images"] == 10


def test_a_run_is_never_overwritten_and_resume_checks_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train("dcgan", out, "--steps", "2") == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert run_train("dcgan", out, "--steps", "2") == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before
    assert train.main(["dcgan", "--out", str(out), "--base-channels", "16", "--batch-size", "16",
                       "--eval-samples", "100", "--steps", "4", "--resume"]) == 2
    assert "base_channels=8" in capsys.readouterr().err


def test_bad_arguments_are_explained(tmp_path, capsys):
    assert run_train("dcgan", tmp_path / "x", "--steps", "0") == 2
    assert "steps must be" in capsys.readouterr().err
    assert sample.main([str(tmp_path / "nothing"), "--n", "5", "--out", str(tmp_path / "s.npz")]) == 2
    assert "generator.safetensors" in capsys.readouterr().err


def test_minutes_budget_stops_the_run(tmp_path):
    out = tmp_path / "timed"
    assert run_train("dcgan", out, "--minutes", "0.0005") == 0  # 30 ms: stops after the first step or so
    metrics = json.loads((out / "metrics.json").read_text())
    assert 1 <= metrics["steps"] < 50


def test_minutes_count_across_resumed_sessions(tmp_path):
    out = tmp_path / "timed"
    assert run_train("dcgan", out, "--minutes", "0.0005") == 0
    first = json.loads((out / "metrics.json").read_text())
    assert run_train("dcgan", out, "--minutes", "0.0005", "--resume") == 0  # the budget is already spent
    second = json.loads((out / "metrics.json").read_text())
    assert first["steps"] <= second["steps"] <= first["steps"] + 1
    assert second["train_seconds"] >= first["train_seconds"]
    assert run_train("dcgan", out, "--minutes", "0.01", "--resume") == 0  # a larger budget continues the run
    third = json.loads((out / "metrics.json").read_text())
    assert third["steps"] > second["steps"] and third["train_seconds"] > second["train_seconds"]


# ---- image-to-image models: pix2pix and cyclegan ---------------------------------------------

TINY_TRANSLATION = ["--base-channels", "8", "--batch-size", "4"]


@functools.lru_cache(maxsize=None)
def _unpaired_digits_once(split: str = "train", seed: int = 0):
    from course_lib.data.paired import unpaired_digits

    return unpaired_digits(split, seed)


@pytest.fixture
def digits_once(monkeypatch):
    """CycleGAN runs render the 4,000 printed training digits on every build (seconds each):
    render them once for this module. The data are deterministic and never modified in place."""
    import course_lib.cyclegan.training

    monkeypatch.setattr(course_lib.cyclegan.training, "unpaired_digits", _unpaired_digits_once)


def run_translation(model, out, *extra):
    return train.main([model, "--out", str(out), *TINY_TRANSLATION, *extra])


def _checkpoint_models(directory):
    from course_lib.checkpoint import read_checkpoint

    return read_checkpoint(directory / "checkpoint.pt")["models"]


def _grid_size(rows: int, channels: int) -> tuple[int, int]:
    from course_lib.viz import image_grid

    grid = image_grid(torch.zeros(rows * 8, channels, 32, 32), 8)  # GRID_PAIRS = 8 images per row
    return grid.shape[2], grid.shape[1]  # PIL's (width, height)


def test_pix2pix_train_then_sample(tmp_path, capsys):
    from PIL import Image

    from course_lib.data.paired import paired_task, paste, show_input
    from course_lib.pix2pix import UNet
    from course_lib.run import translate
    from course_lib.viz import to_uint8

    out = tmp_path / "pix2pix"
    assert run_translation("pix2pix", out, "--task", "inpaint", "--steps", "4", "--eval-samples", "20") == 0
    for name in ("checkpoint.pt", "generator.safetensors", "samples.png", "metrics.json", "config.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "pix2pix" and metrics["task"] == "inpaint" and metrics["steps"] == 4
    assert metrics["dataset"] == "photo_patches" and metrics["test_pairs"] == 20
    assert {"psnr", "ssim", "baseline_psnr", "baseline_ssim"} <= set(metrics)
    assert all(math.isfinite(metrics[k]) for k in ("psnr", "ssim", "baseline_psnr", "baseline_ssim"))
    assert 10 < metrics["baseline_psnr"] < 40 and 0 < metrics["baseline_ssim"] <= 1
    assert "fd" not in metrics and "class_accuracy" not in metrics  # only for edges2digits
    with Image.open(out / "samples.png") as grid:
        assert grid.size == _grid_size(3, 3)  # rows: inputs, outputs, targets
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "inpaint" and "ema_decay" not in config  # config.json holds pix2pix's settings only

    G, meta = sample.load_generator(out)
    assert isinstance(G, UNet) and not G.training and meta["model"] == "pix2pix"
    assert (G.cfg.in_channels, G.cfg.out_channels, G.cfg.base_channels) == (4, 3, 8)
    capsys.readouterr()

    npz = tmp_path / "pix2pix.npz"
    assert sample.main([str(out), "--n", "6", "--out", str(npz)]) == 0
    x, y = paired_task("inpaint", "test", n=6)
    with np.load(npz) as data:
        assert set(data.files) == {"arr_0", "inputs", "targets"}
        for key in data.files:
            assert data[key].shape == (6, 32, 32, 3) and data[key].dtype == np.uint8, key
        nhwc = lambda t: to_uint8(t).permute(0, 2, 3, 1).numpy()  # noqa: E731
        np.testing.assert_array_equal(data["targets"], nhwc(y))
        np.testing.assert_array_equal(data["inputs"], nhwc(show_input("inpaint", x)))
        np.testing.assert_array_equal(data["arr_0"], nhwc(paste("inpaint", x, translate(G, x))))  # G's hole in the visible pixels


def test_pix2pix_dataset_must_match_the_task(tmp_path, capsys):
    assert run_translation("pix2pix", tmp_path / "a", "--task", "colorize", "--dataset", "mnist5k", "--steps", "1") == 2
    assert "dataset must be 'photo_patches' for model 'pix2pix' with task 'colorize'" in capsys.readouterr().err
    assert run_translation("pix2pix", tmp_path / "b", "--task", "edges2digits", "--dataset", "photo_patches",
                           "--steps", "1") == 2
    assert "dataset must be 'mnist5k'" in capsys.readouterr().err
    assert run_translation("cyclegan", tmp_path / "c", "--dataset", "mnist5k", "--steps", "1") == 2
    assert "mnist5k+printed_digits" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cyclegan_train_then_sample_both_directions(tmp_path, capsys, digits_once):
    from PIL import Image

    from course_lib.cyclegan import CycleGAN
    from course_lib.data.paired import unpaired_digits

    out = tmp_path / "cyclegan"
    assert run_translation("cyclegan", out, "--steps", "3", "--eval-samples", "20", "--n-blocks", "1") == 0
    for name in ("checkpoint.pt", "generator.safetensors", "samples.png", "metrics.json", "config.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "cyclegan" and metrics["steps"] == 3 and metrics["test_images"] == 20
    keys = ("identity_ab", "identity_ba", "source_acc_a", "source_acc_b", "fd_ab", "fd_ba", "fd_a_to_b",
            "cycle_a", "cycle_b")
    assert set(keys) <= set(metrics) and all(math.isfinite(metrics[k]) for k in keys)
    assert metrics["source_acc_a"] > 0.8 and metrics["source_acc_b"] > 0.8  # the classifier reads both domains
    with Image.open(out / "samples.png") as grid:
        assert grid.size == _grid_size(4, 1)  # rows: a, G_AB(a), b, G_BA(b)
    pair, meta = sample.load_generator(out)
    assert isinstance(pair, CycleGAN) and not pair.training and pair.cfg.n_blocks == 1
    capsys.readouterr()

    a, b = unpaired_digits("test")
    outputs = {}
    for direction, source in (("AB", a), ("BA", b)):
        npz = tmp_path / f"cyclegan_{direction}.npz"
        assert sample.main([str(out), "--n", "100", "--out", str(npz), "--direction", direction]) == 0
        with np.load(npz) as data:
            assert {"arr_0", "labels"} <= set(data.files)
            assert data["arr_0"].shape == (100, 32, 32, 1) and data["arr_0"].dtype == np.uint8
            np.testing.assert_array_equal(data["labels"], source.labels[:100].numpy())
            outputs[direction] = data["arr_0"]
    assert not np.array_equal(outputs["AB"], outputs["BA"])
    assert evaluate.main([str(tmp_path / "cyclegan_AB.npz"), "--json"]) == 0  # the labels give class accuracy
    assert "class_accuracy" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sample.main([str(out), "--n", "1001", "--out", str(tmp_path / "x.npz")]) == 2
    assert "n must be <= 1000" in capsys.readouterr().err


def test_a_cyclegan_run_checkpoints_its_pools_and_a_different_pool_is_a_different_run(tmp_path, capsys, digits_once):
    """(That a resumed run, pools included, equals a straight one is the family contract's test.)"""
    out = tmp_path / "run"
    common = ("--n-blocks", "1", "--eval-samples", "0", "--checkpoint-every", "2")
    assert run_translation("cyclegan", out, "--steps", "2", "--pool-size", "4", *common) == 0
    models = _checkpoint_models(out)
    assert set(models) == {"G", "D", "pool_a", "pool_b"}
    assert int(models["pool_a"]["count"]) == 4 and models["pool_a"]["images"].abs().sum() > 0
    assert run_translation("cyclegan", out, "--steps", "3", "--resume", "--pool-size", "8", *common) == 2
    assert "pool_size=4" in capsys.readouterr().err


def test_first_n_test_pairs_do_not_depend_on_n():
    """``sample`` writes "the first N test inputs" and metrics.json scores the first eval_samples:
    the same pairs whatever N is (patch positions, masks and noise are drawn in order). The digits of
    edges2digits are taken class-balanced (0, 1, ..., 9, 0, ...) from the class-sorted mnist5k test split."""
    from course_lib.data.paired import PHOTO_TASKS, interleave_classes, paired_task
    from course_lib.data import mnist5k

    for task in PHOTO_TASKS:
        x_few, y_few = paired_task(task, "test", n=5)
        x_all, y_all = paired_task(task, "test")
        assert torch.equal(x_few, x_all[:5]) and torch.equal(y_few, y_all[:5]), task
    x_few, y_few = paired_task("edges2digits", "test", n=20)
    x_more, y_more = paired_task("edges2digits", "test", n=50)
    x_all, y_all = paired_task("edges2digits", "test")  # all 1,000, in the stored order
    first = interleave_classes(mnist5k("test").labels)[:20]
    assert torch.equal(x_few, x_more[:20]) and torch.equal(y_few, y_all[first]) and torch.equal(x_few, x_all[first])


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_translation_runs_use_the_d_learning_rate(model, digits_once):
    """--lr-d reaches D's optimiser for pix2pix and cyclegan (it once used lr_g for both)."""
    cfg = train.default_config(model, base_channels=8, batch_size=4, steps=1, lr_g=3e-4, lr_d=1e-5,
                               **({"n_blocks": 1} if model == "cyclegan" else {}))
    run = train.build_run(cfg)
    assert run.state.optimizers["G"].param_groups[0]["lr"] == 3e-4
    assert run.state.optimizers["D"].param_groups[0]["lr"] == 1e-5, "--lr-d is ignored: D trains at lr_g"


def test_pix2pix_photo_runs_calibrate_on_val_pairs(tmp_path, capsys):
    """A photo task fits G's correction scale on the val pairs and reports the test scores before and after;
    --no-calibrate keeps G as trained; only pix2pix photo tasks can calibrate."""
    calibrated, plain = tmp_path / "calibrated", tmp_path / "plain"
    common = ("--task", "colorize", "--steps", "3", "--eval-samples", "20")
    assert run_translation("pix2pix", calibrated, *common) == 0
    metrics = json.loads((calibrated / "metrics.json").read_text())
    assert {"raw_psnr", "raw_ssim", "correction_scale"} <= set(metrics) and metrics["correction_scale"] >= 0
    G, meta = sample.load_generator(calibrated)
    assert G.correction_scale.item() == metrics["correction_scale"] and meta["train"]["calibrate"] is True
    assert run_translation("pix2pix", plain, *common, "--no-calibrate") == 0
    metrics_plain = json.loads((plain / "metrics.json").read_text())
    assert "correction_scale" not in metrics_plain and sample.load_generator(plain)[0].correction_scale.item() == 1.0
    assert metrics_plain["psnr"] == pytest.approx(metrics["raw_psnr"], abs=1e-4)  # the same G before calibrating
    from PIL import Image

    with Image.open(calibrated / "samples.png") as a, Image.open(plain / "samples.png") as b:
        assert abs(metrics["correction_scale"] - 1) > 0.01  # (3 steps: far from calibrated)
        assert not np.array_equal(np.asarray(a), np.asarray(b))  # samples.png shows the calibrated outputs
    assert run_translation("pix2pix", tmp_path / "digits", "--task", "edges2digits", "--steps", "1",
                           "--calibrate") == 2
    assert "calibrate needs model 'pix2pix' with a photo task" in capsys.readouterr().err
