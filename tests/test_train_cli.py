"""The train and sample CLIs end to end on tiny models: files, resumption, refusals, evaluation."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from course_lib import evaluate, sample, train
from course_lib.vae import VAE

TINY = ["--base-channels", "8", "--batch-size", "16", "--eval-samples", "20"]
TINY_LIKELIHOOD = ["--iwae-k", "2", "--eval-test-digits", "20"]  # a VAE's test likelihood on 20 digits, k = 2


def run_train(model, out, *extra):
    vae_only = TINY_LIKELIHOOD if model in train.VAES else []
    return train.main([model, "--out", str(out), *TINY, *vae_only, *extra])


@pytest.mark.parametrize("model", ["dcgan", "cgan", "wgan_gp", "vae", "cvae"])
def test_train_then_sample_then_evaluate(model, tmp_path, capsys):
    out = tmp_path / model
    assert run_train(model, out, "--steps", "3", "--n-critic", "2") == 0
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
        assert config["architecture"]["latent_dim"] == 16 and config["train"]["ema_decay"] == 0.0
        model_loaded, _ = sample.load_generator(out)
        assert isinstance(model_loaded, VAE) and not model_loaded.training
    else:
        assert "test_neg_elbo" not in metrics
    capsys.readouterr()

    npz = tmp_path / "samples.npz"
    assert sample.main([str(out), "--n", "30", "--out", str(npz), "--seed", "1"]) == 0
    with np.load(npz) as data:
        assert data["arr_0"].shape == (30, 32, 32, 1) and data["arr_0"].dtype == np.uint8
        if model in ("cgan", "cvae"):
            assert np.bincount(data["labels"]).tolist() == [3] * 10
        else:
            assert "labels" not in data
    assert evaluate.main([str(npz), "--json"]) == 0
    assert "fd" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("model", ["dcgan", "vae"])
def test_resumed_run_equals_a_straight_run(model, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_train(model, straight, "--steps", "6", "--checkpoint-every", "2") == 0
    assert run_train(model, resumed, "--steps", "3", "--checkpoint-every", "2") == 0  # "interrupted" at step 3
    assert run_train(model, resumed, "--steps", "6", "--checkpoint-every", "2", "--resume") == 0
    a, b = load_file(str(straight / "generator.safetensors")), load_file(str(resumed / "generator.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (straight, resumed))
    assert second["steps"] == 6
    if model == "vae":  # the same weights and a fixed evaluation seed give the same numbers
        assert first["test_neg_elbo"] == second["test_neg_elbo"] and first["test_iwae"] == second["test_iwae"]


def test_vae_settings_are_checked_on_resume_and_ema_is_refused(tmp_path, capsys):
    out = tmp_path / "vae"
    assert run_train("vae", out, "--steps", "2", "--eval-samples", "0", "--eval-test-digits", "0") == 0
    assert run_train("vae", out, "--steps", "3", "--beta", "4", "--resume") == 2
    assert "beta=1.0" in capsys.readouterr().err
    assert run_train("vae", tmp_path / "ema", "--steps", "2", "--ema-decay", "0.9") == 2
    assert "ema_decay must be 0" in capsys.readouterr().err


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
    a = evaluate.evaluate_likelihood(vae, n_images=10, k=2)
    b = evaluate.evaluate_likelihood(vae, n_images=10, k=2)
    assert a == b and a["test_images"] == 10


def test_a_run_is_never_overwritten_and_resume_checks_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train("dcgan", out, "--steps", "2") == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert run_train("dcgan", out, "--steps", "2") == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before
    assert train.main(["dcgan", "--out", str(out), "--base-channels", "16", "--batch-size", "16",
                       "--eval-samples", "20", "--steps", "4", "--resume"]) == 2
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
