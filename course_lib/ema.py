"""An exponential moving average of a model's weights, the generator the course samples from.

GAN generators oscillate around a good solution instead of settling on it; averaging their weights
over the last few thousand steps gives consistently better samples at no training cost (Yazıcı et
al. 2019, "The Unusual Effectiveness of Averaging in GAN Training"; Karras et al. 2018 call the
copy ``G_ema``). After every generator update::

    ema_update_(G_ema, G, decay=0.999)

``G_ema`` starts as a deep copy of G, takes no gradients and is never trained directly. Buffers
(batch-norm running statistics) are copied from G, not averaged. Passing the step count warms the
average up: the decay used is ``min(decay, (1 + step) / (10 + step))``, so a short run is not
dominated by the random initial weights (at decay 0.999 they would still weigh 37% after 1,000
steps); the schedule is TensorFlow's ``ExponentialMovingAverage(num_updates=step)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen deep copy of ``model`` to hold the moving average (eval mode, no gradients)."""
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update_(ema: nn.Module, model: nn.Module, decay: float = 0.999, step: int | None = None) -> None:
    """``ema <- d * ema + (1 - d) * model`` for every parameter; buffers copied.

    Args:
        ema: the averaged copy (same architecture as ``model``).
        model: the model being trained.
        decay: in [0, 1); the average spans roughly ``1 / (1 - decay)`` recent steps.
        step: completed training steps, for the warm-up ``d = min(decay, (1 + step) / (10 + step))``;
            None: ``d = decay`` from the start.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    if step is not None:
        decay = min(decay, (1 + step) / (10 + step))
    ema_params, params = list(ema.parameters()), list(model.parameters())
    if len(ema_params) != len(params):
        raise ValueError("ema and model must have the same architecture")
    torch._foreach_lerp_(ema_params, [p.detach() for p in params], 1.0 - decay)  # e + (1 - decay) (p - e)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
