"""Walking through a generator's latent space: linear and spherical interpolation.

Lesson 02 interpolates between two noise vectors to show that a trained DCGAN maps nearby z to
similar images. Two paths between z0 and z1:

- ``lerp``: the straight line ``(1 - t) z0 + t z1``.
- ``slerp``: the great-circle arc (Shoemake 1985, "Animating Rotation with Quaternion Curves"),
  recommended for GAN latents by White 2016, "Sampling Generative Networks". With the angle
  ``omega = arccos(<z0, z1> / (|z0| |z1|))``,

      slerp(z0, z1; t) = sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1.

Why the arc: z ~ N(0, I_D) concentrates on a thin shell of radius ~ sqrt(D), and two independent
draws are nearly orthogonal. The straight line between them cuts through the inside of the shell:
its midpoint has norm ~ sqrt(D / 2), about 0.71 of the norm of every z G saw during training.
The arc keeps the norm when |z0| = |z1| (and stays close to the shell otherwise).

Shapes: the vectors live on the LAST axis. ``z0`` and ``z1`` have the same shape ``(..., D)``,
usually ``(D,)`` or ``(B, D)``, and each pair of rows gets its own angle. ``t`` is either a number
(the result has the shape of ``z0``) or a 1-D tensor of T values (the result gets a leading
axis: ``(T, ..., D)``, e.g. ``(T, B, D)``; flatten it with ``.flatten(0, 1)`` to feed G).
"""

from __future__ import annotations

import math

import torch

MODES = ("lerp", "slerp")  # the paths interpolation_path knows


def _check_endpoints(z0: torch.Tensor, z1: torch.Tensor) -> None:
    for name, z in (("z0", z0), ("z1", z1)):
        if not isinstance(z, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape (..., D), got {type(z).__name__}")
        if z.dim() == 0 or not z.is_floating_point():
            raise ValueError(f"{name} must be a float tensor of shape (..., D), got shape {tuple(z.shape)} and dtype {z.dtype}")
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape (..., D), got {tuple(z0.shape)} and {tuple(z1.shape)}")


def _as_t(t: float | torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """t as a tensor that broadcasts against (..., D): 0-d for a number, (T, 1, ..., 1) for a (T,) tensor."""
    if isinstance(t, torch.Tensor):
        if t.dim() > 1:
            raise ValueError(f"t must be a number or a 1-D tensor of shape (T,), got shape {tuple(t.shape)}")
        t = t.to(device=z0.device, dtype=z0.dtype)
        if t.dim() == 1:
            return t.view(-1, *([1] * z0.dim()))  # (T, 1, ..., 1)
        return t
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise ValueError(f"t must be a finite number (usually in [0, 1]) or a 1-D tensor, got {t!r}")
    return torch.tensor(float(t), device=z0.device, dtype=z0.dtype)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``(1 - t) z0 + t z1``: exactly z0 at t = 0 and z1 at t = 1.

    Args:
        z0: start, shape (..., D), float.
        z1: end, same shape.
        t: a number (usually in [0, 1]) or a (T,) tensor of them.

    Returns:
        shape (..., D) for a number t, (T, ..., D) for a (T,) tensor t.
    """
    _check_endpoints(z0, z1)
    t = _as_t(t, z0)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation along the arc from z0 to z1, one angle per row (White 2016).

    ``omega = arccos(<z0, z1> / (|z0| |z1|))`` per pair of rows (the cosine is clamped to
    [-1, 1] against round-off). Where ``sin(omega) < eps``, i.e. the rows are parallel (identical
    directions, where sin(omega) = 0 would give 0 / 0) or anti-parallel (no unique arc), or one
    row is zero, the result falls back to ``lerp``. For equal norms the path keeps the norm; for
    unequal norms this is White's formula applied to the raw vectors.

    Args:
        z0: start, shape (..., D), float.
        z1: end, same shape.
        t: a number (usually in [0, 1]) or a (T,) tensor of them.
        eps: threshold on sin(omega) below which lerp is used.

    Returns:
        shape (..., D) for a number t, (T, ..., D) for a (T,) tensor t; exactly z0 at t = 0 and
        z1 at t = 1.
    """
    _check_endpoints(z0, z1)
    t = _as_t(t, z0)
    norm0 = z0.norm(dim=-1, keepdim=True)                                  # (..., 1)
    norm1 = z1.norm(dim=-1, keepdim=True)                                  # (..., 1)
    tiny = torch.finfo(z0.dtype).tiny
    cos = ((z0 / norm0.clamp_min(tiny)) * (z1 / norm1.clamp_min(tiny))).sum(dim=-1, keepdim=True)
    cos = cos.clamp(-1.0, 1.0)                                             # (..., 1)
    with torch.no_grad():  # sin(omega) = sqrt(1 - cos^2); the mask needs no gradient
        fallback = ((1 - cos * cos).clamp_min(0).sqrt() < eps) | (norm0 == 0) | (norm1 == 0)
    # arccos only where the arc is used: its derivative is infinite at cos = +-1, which would turn
    # the zero gradient of the unused branch into NaN
    omega = torch.arccos(torch.where(fallback, torch.zeros_like(cos), cos))  # (..., 1), in [0, pi]
    sin_omega = torch.sin(omega)                                             # >= eps where used
    w0 = torch.where(fallback, 1 - t, torch.sin((1 - t) * omega) / sin_omega)  # (T, ..., 1) or (..., 1)
    w1 = torch.where(fallback, t, torch.sin(t * omega) / sin_omega)
    return w0 * z0 + w1 * z1


def interpolation_path(z0: torch.Tensor, z1: torch.Tensor, steps: int, mode: str = "slerp") -> torch.Tensor:
    """``steps`` evenly spaced points from z0 to z1 (both included), along the arc or the line.

    Args:
        z0: start, shape (..., D), float; usually (D,) or (B, D).
        z1: end, same shape.
        steps: number of points, >= 2.
        mode: ``"slerp"`` (the arc, default) or ``"lerp"`` (the straight line).

    Returns:
        shape (steps, ..., D); row 0 is z0 and row ``steps - 1`` is z1.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'lerp' or 'slerp', got {mode!r}")
    _check_endpoints(z0, z1)
    t = torch.linspace(0.0, 1.0, steps, dtype=z0.dtype, device=z0.device)  # (steps,)
    return (slerp if mode == "slerp" else lerp)(z0, z1, t)
