"""The maths of the original GAN, checked numerically on 1-D densities sampled on a grid.

Lesson 01 follows Goodfellow et al. 2014, "Generative Adversarial Nets". For a fixed generator with
density ``p_g``, the value function

    V(D, G) = integral p_data(x) log D(x) + p_g(x) log(1 - D(x)) dx

is maximised pointwise by the optimal discriminator ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``,
and plugging it back in gives

    V(D*, G) = -log 4 + 2 JS(p_data || p_g),

so the generator's minimax objective is the Jensen-Shannon divergence up to constants. The
functions below compute each quantity on a uniform grid ``x`` with spacing ``dx`` (integrals become
Riemann sums), in ``torch.float64`` so that the identities hold to ~1e-10. Every divergence is in
nats (natural logarithm). The last function compares the gradients of the saturating and the
non-saturating generator losses, the reason practice uses the latter.
"""

from __future__ import annotations

import math

import torch


def _check_density(name: str, p: torch.Tensor) -> torch.Tensor:
    """Validate a 1-D density sampled on a grid and return it as float64."""
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(p).__name__}")
    if p.dim() != 1 or p.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of shape (N,), got shape {tuple(p.shape)}")
    p = p.to(torch.float64)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative everywhere, got a minimum of {p.min().item():.3g}")
    return p


def _check_same_grid(names: tuple[str, ...], tensors: tuple[torch.Tensor, ...]) -> None:
    shapes = [tuple(t.shape) for t in tensors]
    if len(set(shapes)) != 1:
        described = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{' and '.join(names)} must be sampled on the same grid (same shape (N,)); got {described}")


def _check_dx(dx: float) -> float:
    if not isinstance(dx, (int, float)) or isinstance(dx, bool) or not dx > 0:
        raise ValueError(f"dx must be a positive grid spacing, got {dx!r}")
    return float(dx)


def gaussian_pdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Density of the normal distribution N(mean, std^2) at the points ``x``.

    Args:
        x: points, any shape; converted to float64.
        mean: the mean.
        std: the standard deviation, > 0.

    Returns:
        Tensor of the same shape as ``x``, float64, values in [0, 1 / (std sqrt(2 pi))].
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    x = x.to(torch.float64)
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2.0 * math.pi))


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """The optimal discriminator ``D*(x) = p_data(x) / (p_data(x) + p_g(x))`` for a fixed G.

    Where both densities are 0 the value does not affect V; we define it as 1/2 ("cannot tell").

    Args:
        p_data: data density on the grid, shape (N,), >= 0.
        p_g: generator density on the same grid, shape (N,), >= 0.

    Returns:
        D*, shape (N,), float64, values in [0, 1].
    """
    p_data = _check_density("p_data", p_data)
    p_g = _check_density("p_g", p_g)
    _check_same_grid(("p_data", "p_g"), (p_data, p_g))
    total = p_data + p_g
    safe_total = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, p_data / safe_total, torch.full_like(total, 0.5))


def value_function(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor, dx: float) -> torch.Tensor:
    """The GAN value function ``V(D, G) = integral p_data log D + p_g log(1 - D) dx``.

    Uses ``0 log 0 = 0``: where ``p_data`` is 0 the ``log D`` term is dropped even if ``D`` is 0,
    and likewise for ``p_g`` and ``log(1 - D)``, so a perfect discriminator on disjoint supports
    has V = 0. Where ``D`` is exactly 0 (or 1) but ``p_data`` (or ``p_g``) is positive, exact maths
    gives ``-inf``; here the log is taken at the nearest float64 instead (2.2e-308, or 1 - 2^-53),
    a large but finite penalty. The reason: in the light tails of two densities,
    ``D* = p_data / (p_data + p_g)`` rounds to exactly 1 once ``p_g < 1e-16 p_data``, and
    ``p_g log(1 - D*)`` must stay the negligible number it really is.

    Args:
        d: discriminator probabilities D(x) on the grid, shape (N,), values in [0, 1].
        p_data: data density on the grid, shape (N,), >= 0.
        p_g: generator density on the grid, shape (N,), >= 0.
        dx: grid spacing, > 0.

    Returns:
        Scalar float64 tensor, <= 0. At the optimum D* it equals ``-log 4 + 2 JS(p_data || p_g)``
        (for densities that integrate to 1 on the grid).
    """
    if not isinstance(d, torch.Tensor):
        raise TypeError(f"d must be a torch.Tensor, got {type(d).__name__}")
    if d.dim() != 1:
        raise ValueError(f"d must be a 1-D tensor of shape (N,), got shape {tuple(d.shape)}")
    d = d.to(torch.float64)
    if ((d < 0) | (d > 1)).any():
        raise ValueError(f"d must hold probabilities in [0, 1], got values in [{d.min().item():.3g}, {d.max().item():.3g}]")
    p_data = _check_density("p_data", p_data)
    p_g = _check_density("p_g", p_g)
    _check_same_grid(("d", "p_data", "p_g"), (d, p_data, p_g))
    dx = _check_dx(dx)
    # log D and log(1 - D), with -inf (D exactly 0 or 1) replaced by the log of the float64
    # number nearest 0 (2.2e-308) or 1 (1 - 2^-53); 0 * log(.) stays 0 where the density is 0.
    finfo = torch.finfo(torch.float64)
    log_d = torch.log(d).clamp(min=math.log(finfo.tiny))
    log_one_minus_d = torch.log1p(-d).clamp(min=math.log(finfo.eps / 2))
    integrand = torch.where(p_data > 0, p_data * log_d, 0.0) + torch.where(p_g > 0, p_g * log_one_minus_d, 0.0)
    return integrand.sum() * dx


def kl_divergence(p: torch.Tensor, q: torch.Tensor, dx: float) -> torch.Tensor:
    """Kullback-Leibler divergence ``KL(p || q) = integral p log(p / q) dx`` in nats.

    Uses ``0 log(0 / q) = 0``; where ``p > 0`` but ``q = 0`` the result is ``+inf``.

    Args:
        p: density on the grid, shape (N,), >= 0.
        q: density on the same grid, shape (N,), >= 0.
        dx: grid spacing, > 0.

    Returns:
        Scalar float64 tensor in [0, inf] (tiny negative values from the Riemann sum are possible
        when p and q do not integrate to exactly 1 on the grid).
    """
    p = _check_density("p", p)
    q = _check_density("q", q)
    _check_same_grid(("p", "q"), (p, q))
    dx = _check_dx(dx)
    # xlogy(a, b) = a log b with 0 log 0 = 0; p > 0 and q = 0 gives -(p * -inf) = +inf
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum() * dx


def js_divergence(p: torch.Tensor, q: torch.Tensor, dx: float) -> torch.Tensor:
    """Jensen-Shannon divergence ``JS(p || q) = KL(p || m)/2 + KL(q || m)/2`` with ``m = (p + q)/2``.

    Symmetric, always finite, 0 when ``p = q`` and ``log 2`` (nats) when the supports are disjoint.

    Args:
        p: density on the grid, shape (N,), >= 0.
        q: density on the same grid, shape (N,), >= 0.
        dx: grid spacing, > 0.

    Returns:
        Scalar float64 tensor in [0, log 2].
    """
    p = _check_density("p", p)
    q = _check_density("q", q)
    _check_same_grid(("p", "q"), (p, q))
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m, dx) + 0.5 * kl_divergence(q, m, dx)


def generator_loss_gradients(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Derivatives of the per-sample generator losses with respect to D's logit on a fake sample.

    With ``D = sigmoid(logit)``:

    - saturating ``log(1 - D)``:  d/dlogit = ``-sigmoid(logit) = -D``, which tends to 0 as
      ``D -> 0`` (D confidently rejects the fake): no learning signal when G is bad.
    - non-saturating ``-log D``:  d/dlogit = ``sigmoid(logit) - 1 = D - 1``, which tends to -1
      as ``D -> 0``: the strongest signal exactly when G is bad.

    Both are negative: descending either loss pushes the logit up (fakes look more real).

    Args:
        logits: D's logits on fake samples, any shape, any real values.

    Returns:
        Dict with ``"d_fake"`` (``sigmoid(logits)``, in (0, 1)), ``"saturating"`` (in (-1, 0))
        and ``"nonsaturating"`` (in (-1, 0)), each of the same shape and dtype as ``logits``.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point torch.Tensor, got {type(logits).__name__}"
                         + (f" of dtype {logits.dtype}" if isinstance(logits, torch.Tensor) else ""))
    d_fake = torch.sigmoid(logits)
    return {
        "d_fake": d_fake,
        "saturating": -d_fake,
        "nonsaturating": -torch.sigmoid(-logits),  # = D - 1, without the rounding of 1 - D
    }
