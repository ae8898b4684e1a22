"""What the step functions of every family share: bf16 autocast, frozen networks, and their Adam.

- ``autocast(amp, device)``: with ``amp`` the forward passes run under ``torch.autocast`` in bf16, on
  CUDA and on the CPU alike. bf16 keeps fp32's exponent range, so no ``GradScaler`` is needed. The
  weights and optimiser states stay float32; losses are computed from outputs cast to float32, and
  gradient penalties, KL terms and likelihoods run in float32 outside autocast (``course_lib.losses``,
  ``course_lib.vae``). Without ``amp`` the step is the fp32 step.
- ``use_bf16(precision, device, auto)``: what a run's ``--precision`` means on a device: ``fp32``,
  ``bf16`` (refused where the device does not compute bf16 natively: ``native_bf16``), or ``auto``
  (bf16 only on the device types in ``auto``, where the model's bf16 runs were measured faster at
  the same quality; fp32 elsewhere).
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


PRECISIONS = ("auto", "fp32", "bf16")  # the values of a run's ``precision`` (``--precision``)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that supports it, or a CPU with AVX-512 BF16 or AMX.

    Elsewhere bf16 arithmetic is emulated (converted to float32 and back), which is slower than float32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def use_bf16(precision: str, device: torch.device | str, auto: tuple[str, ...] = ()) -> bool:
    """Whether a run of ``precision`` computes its forward passes under bf16 autocast on ``device``.

    Args:
        precision: ``"fp32"`` (never), ``"bf16"`` (always; a ValueError where ``native_bf16`` is False),
            or ``"auto"``: bf16 where the device computes it natively and its type is in ``auto``.
        device: where the run computes.
        auto: the device types (``"cpu"``, ``"cuda"``) on which ``auto`` picks bf16: those where the
            model's bf16 runs (its config's ``AUTO_BF16``) were measured faster than float32 at the same quality.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and not native_bf16(device):
        what = ("this CPU has neither AVX-512 BF16 nor AMX" if device.type == "cpu"
                else f"{device.type} has no native bf16 here")
        raise ValueError(f"precision 'bf16' needs native bf16 arithmetic, but {what} (emulated bf16 is slower "
                         f"than float32); use precision 'fp32' or 'auto'")
    if precision == "auto":
        return device.type in auto and native_bf16(device)
    return precision == "bf16"


def autocast(amp: bool, device: torch.device) -> AbstractContextManager:
    """bf16 autocast of the forward passes when ``amp`` (CUDA or CPU); a no-op context when not.

    Raises:
        ValueError: ``amp`` on a device other than CUDA or the CPU.
    """
    if not amp:
        return nullcontext()
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"amp (bf16 autocast) runs on CUDA or the CPU, not on {device.type}; use amp=False")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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
