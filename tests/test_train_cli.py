"""The train and sample CLIs end to end on tiny models: files, resumption, refusals, evaluation."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from course_lib import evaluate, sample, train

TINY = ["--base-channels", "8", "--batch-size", "16", "--eval-samples", "20"]


def run_train(model, out, *extra):
    return train.main([model, "--out", str(out), *TINY, *extra])


@pytest.mark.parametrize("model", ["dcgan", "cgan", "wgan_gp"])
def test_train_then_sample_then_evaluate(model, tmp_path, capsys):
    out = tmp_path / model
    assert run_train(model, out, "--steps", "3", "--n-critic", "2") == 0
    for name in ("checkpoint.pt", "generator.safetensors", "samples.png", "metrics.json", "config.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["model"] == model
    assert {"fd", "precision", "recall", "modes"} <= set(metrics)
    assert ("class_accuracy" in metrics) == (model == "cgan")
    capsys.readouterr()

    npz = tmp_path / "samples.npz"
    assert sample.main([str(out), "--n", "30", "--out", str(npz), "--seed", "1"]) == 0
    with np.load(npz) as data:
        assert data["arr_0"].shape == (30, 32, 32, 1) and data["arr_0"].dtype == np.uint8
        if model == "cgan":
            assert np.bincount(data["labels"]).tolist() == [3] * 10
        else:
            assert "labels" not in data
    assert evaluate.main([str(npz), "--json"]) == 0
    assert "fd" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_resumed_run_equals_a_straight_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_train("dcgan", straight, "--steps", "6", "--checkpoint-every", "2") == 0
    assert run_train("dcgan", resumed, "--steps", "3", "--checkpoint-every", "2") == 0  # "interrupted" at step 3
    assert run_train("dcgan", resumed, "--steps", "6", "--checkpoint-every", "2", "--resume") == 0
    a, b = load_file(str(straight / "generator.safetensors")), load_file(str(resumed / "generator.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert json.loads((resumed / "metrics.json").read_text())["steps"] == 6


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
