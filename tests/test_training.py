"""The training loop: logging, sample grids, NaN detection that keeps the last good checkpoint,
and resumption that reproduces a straight run exactly."""

import pytest
import torch
from torch import nn

from course_lib.checkpoint import read_checkpoint
from course_lib.data import ShuffledBatches
from course_lib.training import TrainingDiverged, TrainState, fit
from course_lib.viz import LivePlot


def make_run(seed=0, lr=0.05):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.1), nn.ReLU(), nn.Linear(16, 1))  # dropout uses the global RNG
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))  # the dataset is fixed
    gen = torch.Generator().manual_seed(seed)
    y = x[:, :1] * 2 - x[:, 1:]
    batches = ShuffledBatches(x, y.squeeze(1), batch_size=16, generator=gen)
    state = TrainState(models={"net": model}, optimizers={"net": opt}, generator=gen, batches=batches, config={"lr": lr})

    def step():
        xb, yb = next(batches)
        noise = 0.01 * torch.randn(len(xb), generator=gen)  # the run's own RNG, checkpointed
        opt.zero_grad()
        loss = ((model(xb).squeeze(1) - yb - noise) ** 2).mean()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    return state, step


def test_fit_logs_every_step_and_learns(tmp_path):
    state, step = make_run()
    history = fit(state, step, steps=60, sample_fn=lambda: torch.zeros(4, 1, 8, 8), sample_every=20,
                  samples_dir=tmp_path, plot=LivePlot(every=25), show_progress=False)
    assert len(history["loss"]) == 60 and state.step == 60
    assert sum(history["loss"][-10:]) < sum(history["loss"][:10])
    assert [s for s, _ in state.grids] == [20, 40, 60]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["step_000020.png", "step_000040.png", "step_000060.png"]


def test_resumed_run_equals_straight_run(tmp_path):
    straight, step = make_run()
    fit(straight, step, steps=40, show_progress=False)

    first, step = make_run()
    fit(first, step, steps=15, checkpoint_path=tmp_path / "run.pt", show_progress=False)
    # a new process would rebuild everything from scratch, with different random initial weights
    resumed, step = make_run(seed=123)
    resumed.load(tmp_path / "run.pt")
    assert resumed.step == 15
    fit(resumed, step, steps=40, checkpoint_path=tmp_path / "run.pt", checkpoint_every=10, show_progress=False)

    assert resumed.history["loss"] == straight.history["loss"]
    for a, b in zip(straight.models["net"].state_dict().values(), resumed.models["net"].state_dict().values()):
        assert torch.equal(a, b)
    assert read_checkpoint(tmp_path / "run.pt")["step"] == 40


def test_nan_stops_with_a_clear_message_and_keeps_last_good_checkpoint(tmp_path):
    state, good_step = make_run()
    calls = {"n": 0}

    def step():
        calls["n"] += 1
        logs = good_step()
        return {"loss": float("nan")} if calls["n"] == 25 else logs

    with pytest.raises(TrainingDiverged, match=r"step 25: loss = nan.*last good checkpoint"):
        fit(state, step, steps=50, checkpoint_path=tmp_path / "run.pt", checkpoint_every=10, show_progress=False)
    assert read_checkpoint(tmp_path / "run.pt")["step"] == 20


def test_fit_validates_steps():
    state, step = make_run()
    with pytest.raises(ValueError, match="steps"):
        fit(state, step, steps=-1)


def test_fit_without_a_step_limit_stops_when_told(tmp_path):
    from course_lib.training import time_budget

    state, step = make_run()
    calls = []
    fit(state, step, steps=None, should_stop=lambda: calls.append(1) or len(calls) >= 7,
        checkpoint_path=tmp_path / "run.pt", show_progress=False)
    assert state.step == 7 and read_checkpoint(tmp_path / "run.pt")["step"] == 7
    with pytest.raises(ValueError, match="should_stop"):
        fit(state, step, steps=None)
    budget = time_budget(1e-9)
    assert budget() is True and time_budget(None) is None
    with pytest.raises(ValueError, match="minutes"):
        time_budget(0)
