"""Training steps for the DCGAN family: plain functions that update D, then G, and return floats.

``gan_step`` is the standard alternating step with the BCE (non-saturating) or the hinge loss.
``wgan_gp_step`` is one generator iteration of WGAN-GP, Algorithm 1 of Gulrajani et al. 2017,
"Improved Training of Wasserstein GANs": ``n_critic`` critic updates with the gradient penalty,
then one generator update. Models and optimisers are built by the caller; a step function owns
neither.

Two opt-in flags run the same code path faster on a GPU:

- ``amp=True``: the forward passes run under ``torch.autocast(device_type="cuda",
  dtype=torch.bfloat16)`` when the batch is on CUDA. bf16 keeps fp32's exponent range, so no
  ``GradScaler`` is needed. On any other device (CPU, MPS) the flag is a no-op and the step is
  exactly the fp32 step. Losses are computed from logits cast to float32, and the gradient
  penalty always runs in float32 outside autocast.
- ``channels_last=True``: the real batch is converted to ``torch.channels_last`` memory format
  (NHWC), which tensor cores prefer. Convert the models yourself, once, with
  ``G.to(memory_format=torch.channels_last)`` (and D); the results equal the default layout up
  to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn

from course_lib.gan import sample_z
from course_lib.losses import (
    d_loss_bce,
    d_loss_hinge,
    d_loss_wasserstein,
    g_loss_hinge,
    g_loss_nonsaturating,
    g_loss_wasserstein,
    gradient_penalty,
)

LOSSES = ("bce", "hinge")  # the losses gan_step accepts


def _autocast(amp: bool, device: torch.device) -> AbstractContextManager:
    """bf16 autocast on CUDA when ``amp``; a no-op context everywhere else."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Switch off ``requires_grad`` of every parameter of ``module``, restoring the flags afterwards."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def _prepare(x_real: torch.Tensor, channels_last: bool, name: str = "x_real") -> torch.Tensor:
    if not isinstance(x_real, torch.Tensor) or x_real.dim() != 4 or x_real.shape[0] == 0:
        raise ValueError(f"{name} must be a tensor of shape (B, C, H, W) with B >= 1, "
                         f"got {tuple(getattr(x_real, 'shape', ()))}")
    return x_real.contiguous(memory_format=torch.channels_last) if channels_last else x_real


def gan_step(
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    x_real: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    loss: str = "bce",
    generator: torch.Generator | None = None,
    amp: bool = False,
    channels_last: bool = False,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """One discriminator update, then one generator update.

    1. D step: ``x_fake = G(z, labels)`` is *detached* for D's loss, so no gradient reaches G.
       Real and fake batches go through D separately (each with its own batch-norm statistics,
       as in DCGAN).
    2. G step: the same ``x_fake`` (G has not changed) goes through the *updated* D, whose
       parameters are frozen meanwhile, so the G loss gives gradients to G only.

    A conditional pair generates the fakes with the real batch's labels.

    Args:
        G: generator, ``G(z, labels)`` -> (B, C, H, W); needs a ``z_dim`` attribute.
        D: discriminator, ``D(x, labels)`` -> logits (B,).
        opt_G: optimiser over G's parameters.
        opt_D: optimiser over D's parameters.
        x_real: real images, shape (B, C, H, W), in [-1, 1].
        labels: (B,) int64 labels of x_real for a conditional pair, else None.
        loss: ``"bce"`` (``d_loss_bce`` + non-saturating G loss) or ``"hinge"``
            (``d_loss_hinge`` + ``g_loss_hinge``).
        generator: optional ``torch.Generator`` for z.
        amp: bf16 autocast on CUDA; a no-op elsewhere (see the module docstring).
        channels_last: convert x_real to channels_last; convert the models beforehand.
        augment: a differentiable transformation applied to every batch D sees, real and fake, in
            both updates (DiffAugment, Zhao et al. 2020; see ``course_lib.augment``); None: none.

    Returns:
        ``{"d_loss", "g_loss", "d_real", "d_fake"}`` as Python floats. ``d_real`` and ``d_fake``
        are D's mean output on the real and the fake batch in the D step (before D's update):
        the probability ``sigmoid(logit)`` in [0, 1] for ``"bce"``, the raw score for ``"hinge"``.
    """
    if loss == "bce":
        d_loss_fn, g_loss_fn = d_loss_bce, g_loss_nonsaturating
    elif loss == "hinge":
        d_loss_fn, g_loss_fn = d_loss_hinge, g_loss_hinge
    else:
        raise ValueError(f"loss must be 'bce' or 'hinge', got {loss!r}")
    x_real = _prepare(x_real, channels_last)
    z = sample_z(x_real.shape[0], G.z_dim, generator=generator, device=x_real.device)  # (B, z_dim)
    aug = augment if augment is not None else (lambda t: t)

    # --- D step: real -> high, detached fakes -> low ---
    with _autocast(amp, x_real.device):
        x_fake = G(z, labels)                                  # (B, C, H, W), graph kept for the G step
        real_logits = D(aug(x_real), labels).float()           # (B,)
        fake_logits = D(aug(x_fake.detach()), labels).float()  # (B,), no gradient path to G
    loss_D = d_loss_fn(real_logits, fake_logits)
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()

    # --- G step: fool the updated D; D is frozen so only G gets gradients ---
    with _frozen(D):
        with _autocast(amp, x_real.device):
            loss_G = g_loss_fn(D(aug(x_fake), labels).float())
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()

    to_stat = torch.sigmoid if loss == "bce" else (lambda t: t)
    return {
        "d_loss": loss_D.item(),
        "g_loss": loss_G.item(),
        "d_real": to_stat(real_logits.detach()).mean().item(),
        "d_fake": to_stat(fake_logits.detach()).mean().item(),
    }


def wgan_gp_step(
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    x_real: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor] | None = None,
    *,
    lambda_gp: float = 10.0,
    generator: torch.Generator | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """One generator iteration of WGAN-GP: ``n_critic`` critic updates, then one G update.

    ``n_critic = len(x_real)``: the call takes one real batch per critic update (5 in the paper),
    so one call is one pass of the outer loop of Algorithm 1 of Gulrajani et al. 2017, every call
    updates G exactly once, and a run's step count is its number of generator iterations, as in
    the paper. With ``ShuffledBatches``: ``x_real = [next(batches) for _ in range(5)]``.

    Each critic update draws fresh noise, generates fakes without gradients, and minimises
    ``d_loss_wasserstein + lambda_gp * gradient_penalty`` (the penalty in float32, outside
    autocast). The G update draws fresh noise (with the last batch's labels when conditional) and
    minimises ``g_loss_wasserstein`` through the frozen critic.

    Args:
        G: generator, ``G(z, labels)`` -> (B, C, H, W); needs a ``z_dim`` attribute.
        D: the critic, ``D(x, labels)`` -> scores (B,); must not contain batch norm
            (``DCGANConfig(critic=True)``).
        opt_G: optimiser over G's parameters (the paper: Adam, lr 1e-4, betas (0, 0.9)).
        opt_D: optimiser over D's parameters (the same settings).
        x_real: a list of n_critic >= 1 real batches, each (B, C, H, W) in [-1, 1].
        labels: for a conditional pair, a list of the matching (B,) int64 label batches; else None.
        lambda_gp: weight of the gradient penalty, >= 0 (10 in the paper).
        generator: optional ``torch.Generator`` for z and for the penalty's interpolation weights.
        amp: bf16 autocast on CUDA; a no-op elsewhere (see the module docstring).
        channels_last: convert the real batches to channels_last; convert the models beforehand.

    Returns:
        ``{"d_loss", "g_loss", "d_real", "d_fake", "gp"}`` as Python floats. ``d_loss`` (including
        ``lambda_gp * gp``), ``d_real``, ``d_fake`` (mean raw critic scores) and ``gp`` are
        averaged over the n_critic critic updates; ``d_real - d_fake`` is the critic's estimate
        of the Wasserstein-1 distance.
    """
    if isinstance(x_real, torch.Tensor) or not isinstance(x_real, Sequence) or len(x_real) == 0:
        raise TypeError(
            "x_real must be a non-empty list of n_critic real batches, each (B, C, H, W); "
            f"got {type(x_real).__name__}. For a single critic update pass [x_real]."
        )
    label_batches = [None] * len(x_real) if labels is None else list(labels)
    if len(label_batches) != len(x_real):
        raise ValueError(f"labels must be a list of {len(x_real)} label batches like x_real, got {len(label_batches)}")
    if not lambda_gp >= 0:
        raise ValueError(f"lambda_gp must be >= 0, got {lambda_gp!r}")
    if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) for m in D.modules()):
        raise ValueError("D must be a critic without batch norm for the gradient penalty; "
                         "build it with DCGANConfig(critic=True)")

    totals = {"d_loss": 0.0, "d_real": 0.0, "d_fake": 0.0, "gp": 0.0}
    for i, (x, y) in enumerate(zip(x_real, label_batches)):
        x = _prepare(x, channels_last, name=f"x_real[{i}]")
        z = sample_z(x.shape[0], G.z_dim, generator=generator, device=x.device)  # (B, z_dim)
        with _autocast(amp, x.device):
            with torch.no_grad():
                x_fake = G(z, y)                                # (B, C, H, W), no graph: only D learns here
            real_scores = D(x, y).float()                       # (B,)
            fake_scores = D(x_fake, y).float()                  # (B,)
        loss_w = d_loss_wasserstein(real_scores, fake_scores)
        gp = gradient_penalty(D, x, x_fake, y, generator=generator)  # float32, autocast off
        loss_D = loss_w + lambda_gp * gp
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        opt_D.step()
        totals["d_loss"] += loss_D.item()
        totals["d_real"] += real_scores.detach().mean().item()
        totals["d_fake"] += fake_scores.detach().mean().item()
        totals["gp"] += gp.item()

    # --- G step: raise the critic's score of fresh fakes; the critic is frozen ---
    z = sample_z(x.shape[0], G.z_dim, generator=generator, device=x.device)
    with _frozen(D):
        with _autocast(amp, x.device):
            loss_G = g_loss_wasserstein(D(G(z, y), y).float())
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()

    logs = {key: value / len(x_real) for key, value in totals.items()}
    logs["g_loss"] = loss_G.item()
    return {key: logs[key] for key in ("d_loss", "g_loss", "d_real", "d_fake", "gp")}
