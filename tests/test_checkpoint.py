"""Checkpoints: round trips, atomic writes, clear errors for damaged files, exact resumption."""

import pytest
import torch
from torch import nn

from course_lib.checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    save_weights,
)


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))


def test_round_trip_restores_models_optimizers_rng_and_history(tmp_path):
    model = make_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(16, 4)).mean().backward()
    opt.step()
    gen = torch.Generator().manual_seed(7)
    torch.randn(3, generator=gen)
    path = save_checkpoint(tmp_path / "run.pt", models={"net": model}, optimizers={"net": opt}, step=5,
                           config={"lr": 1e-2, "name": "toy"}, history={"loss": [1.0, 0.5]}, generator=gen,
                           extra={"note": "hi"})
    expected_next = torch.randn(2, generator=gen), torch.randn(2)

    other = make_model(1)
    other_opt = torch.optim.Adam(other.parameters(), lr=1e-2)
    gen2 = torch.Generator().manual_seed(999)
    payload = load_checkpoint(path, models={"net": other}, optimizers={"net": other_opt}, generator=gen2)
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert other_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert payload["step"] == 5 and payload["config"]["name"] == "toy" and payload["history"]["loss"] == [1.0, 0.5]
    assert payload["extra"]["note"] == "hi"
    assert torch.equal(torch.randn(2, generator=gen2), expected_next[0])
    assert torch.equal(torch.randn(2), expected_next[1])


def test_truncated_and_garbage_files_give_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "run.pt", models={"net": make_model()}, step=1)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")


def test_mismatched_model_and_missing_name_are_explained(tmp_path):
    path = save_checkpoint(tmp_path / "run.pt", models={"net": make_model()})
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path, models={"net": nn.Linear(3, 3)})
    with pytest.raises(CheckpointError, match="no model 'G'"):
        load_checkpoint(path, models={"G": make_model()})


def test_refuses_to_overwrite_a_good_checkpoint_with_nan_weights(tmp_path):
    model = make_model()
    path = save_checkpoint(tmp_path / "run.pt", models={"net": model}, step=1)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        save_checkpoint(path, models={"net": model}, step=2)
    assert read_checkpoint(path)["step"] == 1


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]  # no temporary left behind


def test_weights_round_trip_with_config_and_corruption(tmp_path):
    model = make_model(0)
    path = save_weights(tmp_path / "w.safetensors", model, config={"width": 8})
    fresh = make_model(1)
    state, config = load_weights(path, fresh)
    assert config == {"width": 8}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_weights(path)
