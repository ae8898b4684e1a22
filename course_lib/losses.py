"""GAN losses as plain functions of discriminator logits.

Every function here takes the raw scores (logits) of a discriminator, never probabilities: the
discriminator's probability that ``x`` is real is ``D(x) = sigmoid(logit)``, and every
``log D`` or ``log(1 - D)`` is computed from the logit with ``F.logsigmoid`` or
``F.binary_cross_entropy_with_logits``, which stay finite for logits of any size (computing
``torch.log(torch.sigmoid(logit))`` gives ``-inf`` already at ``logit = -104`` in fp32).

The losses follow Goodfellow et al. 2014, "Generative Adversarial Nets". With the value function

    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]

the discriminator maximises V and the generator minimises it. Written as losses to *minimise*:

- ``d_loss_bce``: ``-V``, the binary cross-entropy of "real" on real data plus "fake" on fakes.
- ``g_loss_saturating``: ``E_z[log(1 - D(G(z)))]``, the generator's half of V as in the minimax
  game. Its gradient vanishes when D confidently rejects the fakes (early in training).
- ``g_loss_nonsaturating``: ``-E_z[log D(G(z))]``, the "-log D trick" from the same paper. Same
  fixed point, strong gradients when D rejects the fakes. This is the loss used in practice.

Lesson 05 adds losses on raw scores (no sigmoid) and two gradient regularisers of D:

- ``d_loss_hinge`` / ``g_loss_hinge``: the hinge loss of Lim & Ye 2017, "Geometric GAN", used by
  Miyato et al. 2018 (SNGAN) and BigGAN. D: ``mean relu(1 - D(x)) + mean relu(1 + D(G(z)))``;
  G: ``-mean D(G(z))``.
- ``d_loss_wasserstein`` / ``g_loss_wasserstein``: the critic and generator losses of the
  Wasserstein GAN (Arjovsky et al. 2017), ``mean D(G(z)) - mean D(x)`` and ``-mean D(G(z))``.
- ``gradient_penalty``: WGAN-GP's ``mean (||grad D(x_hat)||_2 - 1)^2`` on random interpolates
  (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs").
- ``r1_penalty``: ``mean ||grad D(x)||^2`` on real data (Mescheder et al. 2018, "Which Training
  Methods for GANs do actually Converge?"), without the paper's factor gamma / 2.

Conventions: every loss is a mean over the batch, and ``d_loss_bce`` is the *sum* of the two batch
means (real term + fake term), not their average, so it equals ``2 log 2 ~ 1.386`` when D outputs
1/2 everywhere and ``-V(D, G)`` exactly; ``d_loss_hinge`` likewise sums its two means (2 at zero
scores). Logits and scores may have shape ``(B,)`` or ``(B, 1)``. The two penalties always compute
in float32 with autocast switched off, and create the graph for the double backward they need
(never ``torch.compile`` through them).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _check_logits(name: str, logits: torch.Tensor) -> torch.Tensor:
    """Validate a logits tensor of shape (B,) or (B, 1) and return it flattened to (B,)."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of discriminator logits, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]  # (B, 1) -> (B,)
    if logits.dim() != 1 or logits.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (B,) or (B, 1) with B >= 1, got shape {tuple(logits.shape)}"
        )
    return logits


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss ``-[mean log D(x) + mean log(1 - D(G(z)))]``, i.e. ``-V(D, G)``.

    Binary cross-entropy with label 1 for real and 0 for fake samples. The two batch means are
    *summed*, so at all-zero logits (D = 1/2 everywhere) the loss is ``2 log 2 ~ 1.386``. Pass the
    fake logits of a *detached* fake batch when updating D.

    Args:
        real_logits: D's logits on real data, shape (B,) or (B, 1), any real values.
        fake_logits: D's logits on generated data, shape (B',) or (B', 1); the batch sizes may
            differ, but both must have the same layout ((B,) or (B, 1)).

    Returns:
        Scalar tensor in [0, inf).
    """
    if isinstance(real_logits, torch.Tensor) and isinstance(fake_logits, torch.Tensor):
        if real_logits.dim() != fake_logits.dim():
            raise ValueError(
                "real_logits and fake_logits must have the same layout, (B,) or (B, 1); got shapes "
                f"{tuple(real_logits.shape)} and {tuple(fake_logits.shape)}"
            )
    real_logits = _check_logits("real_logits", real_logits)
    fake_logits = _check_logits("fake_logits", fake_logits)
    # BCE(logit, 1) = -log sigmoid(logit);  BCE(logit, 0) = -log(1 - sigmoid(logit))
    loss_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    loss_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return loss_real + loss_fake


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``-mean log D(G(z))`` (the "-log D trick").

    Equals ``log 2 ~ 0.693`` at logit 0. Its gradient with respect to a logit is
    ``sigmoid(logit) - 1``, which tends to -1 (strong signal) when D rejects the fakes.

    Args:
        fake_logits: D's logits on generated data (not detached), shape (B,) or (B, 1).

    Returns:
        Scalar tensor in [0, inf).
    """
    fake_logits = _check_logits("fake_logits", fake_logits)
    return -F.logsigmoid(fake_logits).mean()  # softplus(-logit) = -log sigmoid(logit)


def g_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Saturating (original minimax) generator loss ``mean log(1 - D(G(z)))``.

    Equals ``-log 2 ~ -0.693`` at logit 0 and is always negative. Its gradient with respect to a
    logit is ``-sigmoid(logit)``, which vanishes when D confidently rejects the fakes
    (logit -> -inf): the generator stops learning exactly when it is worst.

    Args:
        fake_logits: D's logits on generated data (not detached), shape (B,) or (B, 1).

    Returns:
        Scalar tensor in (-inf, 0].
    """
    fake_logits = _check_logits("fake_logits", fake_logits)
    return F.logsigmoid(-fake_logits).mean()  # log(1 - sigmoid(l)) = log sigmoid(-l)


# ----------------------------------------------------------------------------------------------
# Lesson 05: hinge and Wasserstein losses, gradient penalties
# ----------------------------------------------------------------------------------------------

def _check_pair(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate real and fake scores of the same layout and return both flattened to (B,)."""
    if isinstance(real_scores, torch.Tensor) and isinstance(fake_scores, torch.Tensor):
        if real_scores.dim() != fake_scores.dim():
            raise ValueError(
                "real_scores and fake_scores must have the same layout, (B,) or (B, 1); got shapes "
                f"{tuple(real_scores.shape)} and {tuple(fake_scores.shape)}"
            )
    return _check_logits("real_scores", real_scores), _check_logits("fake_scores", fake_scores)


def d_loss_hinge(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss ``mean relu(1 - D(x)) + mean relu(1 + D(G(z)))`` (Lim & Ye 2017).

    D is pushed to score real data above +1 and fakes below -1, and gets no gradient from samples
    already beyond their margin. At all-zero scores the loss is 2 (1 per term). Used with
    ``g_loss_hinge`` by SNGAN (Miyato et al. 2018) and BigGAN. Pass a *detached* fake batch.

    Args:
        real_scores: D's raw scores on real data, shape (B,) or (B, 1).
        fake_scores: D's raw scores on generated data, shape (B',) or (B', 1), same layout.

    Returns:
        Scalar tensor in [0, inf).
    """
    real_scores, fake_scores = _check_pair(real_scores, fake_scores)
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_loss_hinge(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator loss paired with the hinge D loss: ``-mean D(G(z))`` (no margin for G).

    Numerically the same as ``g_loss_wasserstein``; both names exist so a training step reads
    like the paper it follows.

    Args:
        fake_scores: D's raw scores on generated data (not detached), shape (B,) or (B, 1).

    Returns:
        Scalar tensor, unbounded.
    """
    return -_check_logits("fake_scores", fake_scores).mean()


def d_loss_wasserstein(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss ``mean D(G(z)) - mean D(x)`` (Arjovsky et al. 2017).

    Minimising it maximises ``mean D(x) - mean D(G(z))``, the critic's estimate of the
    Wasserstein-1 distance (valid only for a 1-Lipschitz critic; add ``gradient_penalty``).
    Negative when the critic scores real data higher than fakes.

    Args:
        real_scores: critic scores on real data, shape (B,) or (B, 1).
        fake_scores: critic scores on generated data (detached), shape (B',) or (B', 1), same layout.

    Returns:
        Scalar tensor, unbounded.
    """
    real_scores, fake_scores = _check_pair(real_scores, fake_scores)
    return fake_scores.mean() - real_scores.mean()


def g_loss_wasserstein(fake_scores: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator loss ``-mean D(G(z))``: raise the critic's score of the fakes.

    Args:
        fake_scores: critic scores on generated data (not detached), shape (B,) or (B, 1).

    Returns:
        Scalar tensor, unbounded.
    """
    return -_check_logits("fake_scores", fake_scores).mean()


def _call(D: Callable[..., torch.Tensor], x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return D(x) if labels is None else D(x, labels)


def gradient_penalty(
    critic: Callable[..., torch.Tensor],
    x_real: torch.Tensor,
    x_fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``mean_i (||grad_x critic(x_hat_i)||_2 - 1)^2`` (Gulrajani et al. 2017).

    ``x_hat_i = eps_i x_real_i + (1 - eps_i) x_fake_i`` with one ``eps_i ~ U[0, 1]`` per sample,
    and the norm is taken per sample over all non-batch dimensions. The graph of the gradient is
    kept (``create_graph=True``) so the penalty can be backpropagated into the critic's weights;
    both inputs are detached, so no gradient reaches G. Computed in float32 with autocast
    switched off, even when called inside ``torch.autocast``. The critic must treat samples
    independently (no batch norm). Multiply by ``lambda_gp`` (10 in the paper) yourself.

    Args:
        critic: the critic, called as ``critic(x_hat)`` or ``critic(x_hat, labels)``, returning
            scores of shape (B,) or (B, 1).
        x_real: real batch, shape (B, ...), e.g. (B, C, H, W).
        x_fake: generated batch of the same shape.
        labels: optional (B,) labels passed to a conditional critic.
        generator: optional ``torch.Generator`` for eps (drawn on its device, then moved).

    Returns:
        Scalar float32 tensor in [0, inf). A linear critic ``w . x`` gives ``(||w|| - 1)^2``.
    """
    if not isinstance(x_real, torch.Tensor) or not isinstance(x_fake, torch.Tensor):
        raise TypeError("x_real and x_fake must be torch.Tensors")
    if x_real.shape != x_fake.shape or x_real.dim() < 2 or x_real.shape[0] == 0:
        raise ValueError(
            "x_real and x_fake must have the same shape (B, ...) with B >= 1, got "
            f"{tuple(x_real.shape)} and {tuple(x_fake.shape)}"
        )
    with torch.autocast(device_type=x_real.device.type, enabled=False):
        x_real, x_fake = x_real.detach().float(), x_fake.detach().float()
        source = generator.device if generator is not None else x_real.device
        eps_shape = (x_real.shape[0],) + (1,) * (x_real.dim() - 1)                # (B, 1, 1, 1)
        eps = torch.rand(eps_shape, generator=generator, device=source).to(x_real.device)
        x_hat = (eps * x_real + (1.0 - eps) * x_fake).requires_grad_(True)       # (B, ...)
        scores = _check_logits("critic(x_hat)", _call(critic, x_hat, labels)).float()  # (B,)
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)    # (B, ...)
        norms = grad.flatten(1).norm(2, dim=1)                                   # (B,)
        return ((norms - 1.0) ** 2).mean()


def r1_penalty(
    D: Callable[..., torch.Tensor],
    x_real: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """R1 penalty ``mean_i ||grad_x D(x_real_i)||^2`` on real data (Mescheder et al. 2018).

    The paper's regulariser is ``(gamma / 2) * E ||grad_x D(x)||^2``; this returns the expectation
    *without* the factor ``gamma / 2``, so add ``0.5 * gamma * r1_penalty(D, x_real)`` to D's
    loss. The squared norm is summed over all non-batch dimensions, then averaged over the batch.
    Computed in float32 with autocast off, with ``create_graph=True``, and on the uncompiled module
    when D is a ``torch.compile`` wrapper (no double backward through compiled graphs).

    Args:
        D: the discriminator, called as ``D(x)`` or ``D(x, labels)``, returning (B,) or (B, 1).
        x_real: real batch, shape (B, ...), e.g. (B, C, H, W).
        labels: optional (B,) labels passed to a conditional D.

    Returns:
        Scalar float32 tensor in [0, inf). A linear ``D(x) = w . x + b`` gives ``||w||^2``.
    """
    if not isinstance(x_real, torch.Tensor) or x_real.dim() < 2 or x_real.shape[0] == 0:
        got = tuple(getattr(x_real, "shape", ()))
        raise ValueError(f"x_real must be a tensor of shape (B, ...) with B >= 1, got {got}")
    D = getattr(D, "_orig_mod", D)  # a torch.compile wrapper: differentiate the plain module twice
    with torch.autocast(device_type=x_real.device.type, enabled=False):
        x = x_real.detach().float().requires_grad_(True)                  # (B, ...)
        logits = _check_logits("D(x_real)", _call(D, x, labels)).float()  # (B,)
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)  # (B, ...)
        return grad.pow(2).flatten(1).sum(dim=1).mean()
