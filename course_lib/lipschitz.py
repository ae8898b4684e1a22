"""Lipschitz constraints on a discriminator: weight clipping and the spectral norm (lesson 05).

The Wasserstein critic must be 1-Lipschitz (Arjovsky et al. 2017, "Wasserstein GAN"). Three ways
to approximate that constraint appear in lesson 05:

- weight clipping (``clip_weights_``): after every critic update, clamp every parameter into
  [-c, c] (c = 0.01 in the paper). Crude: it bounds the Lipschitz constant, but pushes the
  weights to +-c and the critic towards very simple functions.
- the gradient penalty (``course_lib.losses.gradient_penalty``, Gulrajani et al. 2017).
- spectral normalisation (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial
  Networks"): divide each weight by its largest singular value sigma(W), so every linear layer is
  1-Lipschitz. sigma is estimated cheaply by ``power_iteration``, one step per training step,
  reusing u from the previous step; ``spectral_norm_exact`` computes it with an SVD, for checks.

A conv weight (out, in, kh, kw) is treated as the matrix W = weight.reshape(out, -1), one row
per output channel, as in the paper and in ``torch.nn.utils.parametrizations.spectral_norm``
(which uses dim=1 for transposed convolutions: pass ``weight.transpose(0, 1)`` for those).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def clip_weights_(module: nn.Module, c: float) -> nn.Module:
    """Clamp every parameter of ``module`` into [-c, c], in place (WGAN weight clipping).

    All parameters are clipped, biases and batch-norm scales included, as in Algorithm 1 of
    Arjovsky et al. 2017; buffers (batch-norm running statistics) and gradients are untouched.

    Args:
        module: the critic (any module).
        c: clipping bound, > 0 (0.01 in the paper).

    Returns:
        ``module`` itself, for chaining.
    """
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
        raise ValueError(f"c must be a number > 0, got {c!r}")
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)
    return module


def _as_matrix(weight: torch.Tensor) -> torch.Tensor:
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2 or not weight.is_floating_point():
        got = f"shape {tuple(weight.shape)}, dtype {weight.dtype}" if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a float tensor of shape (out, in) or (out, in, kh, kw), got {got}")
    return weight.reshape(weight.shape[0], -1)  # (out, in * kh * kw)


def power_iteration(
    weight: torch.Tensor,
    u: torch.Tensor | None = None,
    n_iters: int = 1,
    generator: torch.Generator | None = None,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Estimate the largest singular value sigma of W = weight.reshape(out, -1) by power iteration.

    Algorithm 1 of Miyato et al. 2018, repeated ``n_iters`` times from u:

        v <- normalize(W^T u)      # (in,)   right singular vector estimate
        u <- normalize(W v)        # (out,)  left singular vector estimate

    then ``sigma = u^T W v``. u and v are computed without gradients (the paper treats them as
    constants); sigma keeps the gradient with respect to ``weight``, ``u v^T``. Pass the returned
    u back in at the next training step: one iteration per step then tracks sigma as W drifts.

    Args:
        weight: (out, in) or (out, in, kh, kw) float tensor.
        u: (out,) starting vector (need not be normalised); None draws one from N(0, I).
        n_iters: number of iterations, >= 1.
        generator: optional ``torch.Generator`` for the random u.
        eps: added to norms before dividing, as in ``F.normalize``.

    Returns:
        ``(sigma, u, v)``: a 0-d tensor sigma >= 0 (a lower bound on the exact value that
        converges to it), the unit vectors u (out,) and v (in * kh * kw,).
    """
    W = _as_matrix(weight)  # (out, in * kh * kw)
    if isinstance(n_iters, bool) or not isinstance(n_iters, int) or n_iters < 1:
        raise ValueError(f"n_iters must be an int >= 1, got {n_iters!r}")
    if u is None:
        source = generator.device if generator is not None else W.device
        u = torch.randn(W.shape[0], generator=generator, device=source, dtype=W.dtype).to(W.device)
    elif not isinstance(u, torch.Tensor) or tuple(u.shape) != (W.shape[0],):
        got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"u must be a tensor of shape ({W.shape[0]},), one entry per output channel, got {got}")
    with torch.no_grad():
        W_const = W.detach()
        u = u.detach().to(W.dtype)
        for _ in range(n_iters):
            v = F.normalize(W_const.T @ u, dim=0, eps=eps)  # (in,)
            u = F.normalize(W_const @ v, dim=0, eps=eps)    # (out,)
    sigma = torch.dot(u, W @ v)  # u^T W v, differentiable in weight
    return sigma, u, v


def spectral_norm_exact(weight: torch.Tensor) -> torch.Tensor:
    """The largest singular value of weight.reshape(out, -1), from an SVD (for comparisons).

    Args:
        weight: (out, in) or (out, in, kh, kw) float tensor.

    Returns:
        0-d tensor >= 0.
    """
    return torch.linalg.matrix_norm(_as_matrix(weight), ord=2)
