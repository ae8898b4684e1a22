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

Conventions: every loss is a mean over the batch, and ``d_loss_bce`` is the *sum* of the two batch
means (real term + fake term), not their average, so it equals ``2 log 2 ~ 1.386`` when D outputs
1/2 everywhere and ``-V(D, G)`` exactly. Logits may have shape ``(B,)`` or ``(B, 1)``.

Later lessons add the hinge and Wasserstein losses and the gradient penalty (lesson 05) to this
module, in the same style.
"""

from __future__ import annotations

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
