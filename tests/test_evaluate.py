"""The evaluate CLI and function: real digits score well, degraded sets score worse, bad files are explained."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.data import mnist5k
from course_lib.evaluate import evaluate, load_samples, main
from course_lib.viz import to_uint8


@pytest.fixture(scope="module")
def real():
    train = mnist5k("train")
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(train), generator=g)[:1000]
    return train.x[idx], train.labels[idx]


def test_real_vs_real_is_near_the_floor_and_degradations_are_worse(real):
    x, _ = real
    clean = evaluate(x)
    assert clean["precision"] > 0.8 and clean["recall"] > 0.8 and clean["modes"] == 10
    blurred = evaluate(F.avg_pool2d(x, 3, stride=1, padding=1))
    noisy = evaluate((x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1))
    ones = mnist5k("train")
    collapsed = evaluate(ones.x[ones.labels == 1][:300])
    for degraded in (blurred, noisy, collapsed):
        assert degraded["fd"] > 2 * clean["fd"]
    assert collapsed["modes"] == 1 and collapsed["recall"] < 0.3
    assert clean["is"] > 5 * collapsed["is"] / 2


def test_cli_json_with_labels(tmp_path, real, capsys):
    x, labels = real
    path = tmp_path / "samples.npz"
    np.savez(path, to_uint8(x).permute(0, 2, 3, 1).numpy(), labels=labels.numpy())
    assert main([str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"fd", "kid_mean", "kid_std", "precision", "recall", "is", "class_accuracy", "modes"}
    assert result["class_accuracy"] > 0.98


def test_loading_checks_the_file_format(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, np.zeros((5, 32, 32, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_samples(bad)
    np.savez(bad, images=np.zeros((5, 32, 32, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="arr_0"):
        load_samples(bad)
    good = tmp_path / "good.npz"
    np.savez(good, np.full((3, 28, 28, 1), 255, dtype=np.uint8))
    images, labels = load_samples(good)
    assert images.shape == (3, 1, 28, 28) and labels is None and images.max() == 1
    assert main([str(tmp_path / "missing.npz")]) == 2


def test_shipped_reference_statistics_match_a_fresh_computation():
    from course_lib.classifier import classify, load_classifier
    from course_lib.evaluate import read_reference
    from course_lib.metrics import gaussian_stats

    shipped, metadata = read_reference()
    logits, features = classify(load_classifier(), mnist5k("test").x)
    torch.testing.assert_close(shipped["features"], features, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(shipped["logits"], logits, rtol=1e-4, atol=1e-4)
    stats = gaussian_stats(features)  # unbiased covariance, as FD uses
    np.testing.assert_allclose(shipped["mu"].numpy(), stats.mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shipped["sigma"].numpy(), stats.sigma, rtol=1e-4, atol=1e-4)
    assert metadata["split"] == "test"


def test_floors_shrink_with_sample_size_and_read_as_real_data():
    from course_lib.evaluate import reference_floors

    floors = reference_floors()
    assert sorted(floors) == [200, 500, 1000, 4000]
    fds = [floors[n]["fd"][0] for n in sorted(floors)]
    assert fds == sorted(fds, reverse=True), "FD's bias falls as the sample grows"
    for n, row in floors.items():
        assert row["precision"][0] > 0.8 and row["recall"][0] > 0.8 and row["modes"][0] == 10
        assert abs(row["kid_mean"][0]) < 3 * row["kid_std"][0], "KID is unbiased: ~0 for real data"


def test_reference_file_errors_name_the_remedy(tmp_path):
    from safetensors.torch import save_file

    from course_lib.checkpoint import CheckpointError
    from course_lib.evaluate import read_reference

    with pytest.raises(CheckpointError, match="make_reference_stats"):
        read_reference(tmp_path / "missing.safetensors")
    stale = tmp_path / "stale.safetensors"
    save_file({"features": torch.zeros(2, 2)}, str(stale), metadata={"classifier_sha256": "0" * 64})
    with pytest.raises(CheckpointError, match="another classifier"):
        read_reference(stale)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(stale.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="corrupt"):
        read_reference(corrupt)


def test_cli_text_output_shows_the_floor(tmp_path, real, capsys):
    x, _ = real
    path = tmp_path / "samples.npz"
    np.savez(path, to_uint8(x[:500]).permute(0, 2, 3, 1).numpy())
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "floor at n=500" in out and "class_accuracy" not in out
