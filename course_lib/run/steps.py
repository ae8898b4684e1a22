"""What the step functions of every family share: bf16 autocast, frozen networks, and their Adam.

- ``autocast(amp, device)``: with ``amp`` the forward passes run under ``torch.autocast("cuda",
  dtype=torch.bfloat16)`` when the batch is on CUDA. bf16 keeps fp32's exponent range, so no
  ``GradScaler`` is needed. On any other device (CPU, MPS) it is a no-op and the step is exactly the
  fp32 step. Losses are computed from logits cast to float32; gradient penalties run in float32
  outside autocast (``course_lib.losses``).
- ``frozen(module)``: switches off ``requires_grad`` of a network for the other network's update
  (D while G learns through it), so the backward pass gives gradients to the learner only. A
  network in ``DistributedDataParallel`` (several processes, ``course_lib.run.distributed``) also
  stops expecting gradients to average meanwhile (``no_sync``): none reach it.
- ``adam(module, lr, betas)``: the one way a run builds its optimisers; fused on CUDA, and with
  ``reg_every`` the lazy-regularisation correction of StyleGAN2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def autocast(amp: bool, device: torch.device) -> AbstractContextManager:
    """bf16 autocast on CUDA when ``amp``; a no-op context everywhere else."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Switch off ``requires_grad`` of every parameter of ``module``, restoring the flags afterwards.

    A ``DistributedDataParallel`` module (compiled or not) is also put in ``no_sync``: its forward
    passes in the block do not prepare a gradient averaging that would never come.
    """
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        inner = getattr(module, "_orig_mod", module)  # the DDP module inside a torch.compile wrapper
        with inner.no_sync() if isinstance(inner, DistributedDataParallel) else nullcontext():
            yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def adam(module: nn.Module, lr: float, betas: tuple[float, float], reg_every: int = 0,
         fused: bool = False) -> torch.optim.Adam:
    """Adam over ``module``'s parameters.

    A network regularised only every ``reg_every`` steps (lazy R1, StyleGAN2 section 3.1) gets
    ``lr * c`` and ``beta ** c`` with ``c = reg_every / (reg_every + 1)``, which keeps its
    optimiser's effective rates as if the penalty ran every step; ``reg_every = 0`` is plain Adam.

    Args:
        module: the network whose parameters are optimised.
        lr: learning rate (> 0).
        betas: Adam's (beta1, beta2).
        reg_every: steps between the regularisation updates (0: none).
        fused: the fused CUDA implementation (pass ``device.type == "cuda"``).
    """
    c = reg_every / (reg_every + 1) if reg_every else 1.0
    return torch.optim.Adam(module.parameters(), lr=lr * c, betas=(betas[0] ** c, betas[1] ** c),
                            **({"fused": True} if fused else {}))
