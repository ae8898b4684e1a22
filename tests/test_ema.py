"""The moving average of weights: the update formula, frozen copies, copied buffers."""

import pytest
import torch
from torch import nn

from course_lib.ema import ema_copy, ema_update_


def test_update_is_the_exponential_moving_average():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = ema_copy(model)
    assert not any(p.requires_grad for p in ema.parameters()) and not ema.training
    before = [p.clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(8, 3))  # changes the batch-norm running statistics
    ema_update_(ema, model, decay=0.9)
    for e, b, p in zip(ema.parameters(), before, model.parameters()):
        torch.testing.assert_close(e, 0.9 * b + 0.1 * p)
    for e, b in zip(ema.buffers(), model.buffers()):
        assert torch.equal(e, b)


def test_decay_zero_copies_and_bad_decay_is_refused():
    model = nn.Linear(2, 2)
    ema = ema_copy(model)
    with torch.no_grad():
        model.weight.mul_(3)
    ema_update_(ema, model, decay=0.0)
    assert torch.equal(ema.weight, model.weight)
    with pytest.raises(ValueError, match="decay"):
        ema_update_(ema, model, decay=1.0)
    with pytest.raises(ValueError, match="architecture"):
        ema_update_(ema, nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), decay=0.5)


def test_warm_up_follows_the_step_count():
    model = nn.Linear(1, 1, bias=False)
    ema = ema_copy(model)
    with torch.no_grad():
        ema.weight.fill_(0.0)
        model.weight.fill_(1.0)
    ema_update_(ema, model, decay=0.999, step=0)  # d = min(0.999, 1 / 10) = 0.1
    torch.testing.assert_close(ema.weight, torch.full((1, 1), 0.9))
    ema_update_(ema, model, decay=0.5, step=10_000)  # d = decay once warm
    torch.testing.assert_close(ema.weight, torch.full((1, 1), 0.95))
