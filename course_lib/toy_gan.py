"""A 2-D GAN on the ring of 8 Gaussians: the smallest GAN that can visibly collapse.

The data are 8 Gaussians of standard deviation ``std`` (0.02 in Metz et al. 2017, "Unrolled
Generative Adversarial Networks") centred on a circle of radius 2. The generator is an MLP from
noise ``z ~ N(0, I)`` to a point in R^2; the discriminator is an MLP from R^2 to one logit.
Training alternates one discriminator step and one generator step (``toy_gan_step``) with the
losses of ``course_lib.losses``. ``mode_coverage`` measures how many of the 8 modes the generator
reaches, following Srivastava et al. 2017 (VEEGAN).

Read top-down: config, networks, optimisers, the training step, then the metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from course_lib.data.toy2d import ring_centres  # re-exported: the lesson uses it with mode_coverage
from course_lib.losses import d_loss_bce, g_loss_nonsaturating, g_loss_saturating


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass
class ToyGANConfig:
    """Architecture and training settings of the toy GAN.

    The defaults are the lesson's laptop run, chosen by experiment on a 2-core CPU: all 8 modes
    within ~1,000 steps and ~90% high-quality samples after 4,000 steps (30-40 s at 100-145
    steps/s), in every one of 15 runs (10 seeds). Changing the learning-rate ratio breaks it:
    ``lr_g=1e-3, lr_d=1e-4`` (G ten times faster than D, the ratio of Metz et al. 2017) makes G's
    samples hop from mode to mode, and ``lr_g=1e-4, lr_d=1e-3`` (D ten times faster) drops every
    other mode or collapses onto one. With ``activation="relu"`` the same budget covers only 2-5
    modes. ``steps=200`` is the smoke run (~2 s; it does not reach the modes).
    """

    z_dim: int = 8                 # size of the noise vector z fed to G
    hidden_dim: int = 128          # width of every hidden layer, in G and in D
    depth: int = 3                 # number of hidden layers, in G and in D
    activation: str = "tanh"       # hidden non-linearity: "tanh", "relu" or "leaky_relu" (slope 0.2)
    lr_g: float = 5e-4             # Adam learning rate of G
    lr_d: float = 5e-4             # Adam learning rate of D
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas; beta1 = 0.5 as in DCGAN
    batch_size: int = 256          # real samples and fake samples per step
    steps: int = 4000              # training steps, each one D update + one G update (smoke: 200)
    g_loss: str = "nonsaturating"  # generator loss: "nonsaturating" (-log D) or "saturating" (log(1 - D))
    modes: int = 8                 # ring data: number of Gaussians
    radius: float = 2.0            # ring data: radius of the circle of centres
    std: float = 0.02              # ring data: standard deviation of each Gaussian (Metz et al. 2017)


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------

def _activation(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    raise ValueError(f"activation must be 'tanh', 'relu' or 'leaky_relu', got {name!r}")


def _mlp(in_dim: int, out_dim: int, cfg: ToyGANConfig) -> nn.Sequential:
    """in_dim -> [hidden_dim, activation] x depth -> out_dim (linear output)."""
    if cfg.depth < 1 or cfg.hidden_dim < 1:
        raise ValueError(f"depth and hidden_dim must be >= 1, got depth={cfg.depth}, hidden_dim={cfg.hidden_dim}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(cfg.depth):
        layers += [nn.Linear(width, cfg.hidden_dim), _activation(cfg.activation)]
        width = cfg.hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class ToyGenerator(nn.Module):
    """G: noise z (B, z_dim) -> point x_fake (B, 2). The output is linear (no tanh): the ring has radius 2."""

    def __init__(self, cfg: ToyGANConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        self.net = _mlp(cfg.z_dim, 2, cfg)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map noise to points.

        Args:
            z: noise, shape (B, z_dim), usually N(0, I).

        Returns:
            x_fake, shape (B, 2), unbounded.
        """
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z)


class ToyDiscriminator(nn.Module):
    """D: point x (B, 2) -> logit (B,). ``sigmoid(logit)`` is D's probability that x is real."""

    def __init__(self, cfg: ToyGANConfig) -> None:
        super().__init__()
        self.net = _mlp(2, 1, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score points.

        Args:
            x: points, shape (B, 2).

        Returns:
            logits, shape (B,), unbounded.
        """
        if x.dim() != 2 or x.shape[1] != 2:
            raise ValueError(f"x must have shape (B, 2), got {tuple(x.shape)}")
        return self.net(x)[:, 0]  # (B, 1) -> (B,)


def make_optimizers(G: nn.Module, D: nn.Module, cfg: ToyGANConfig) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam optimisers ``(opt_G, opt_D)`` with the learning rates and betas of ``cfg``."""
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    return opt_G, opt_D


# ----------------------------------------------------------------------------------------------
# One training step
# ----------------------------------------------------------------------------------------------

def toy_gan_step(
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    x_real: torch.Tensor,
    z: torch.Tensor,
    g_loss: str = "nonsaturating",
) -> dict[str, float]:
    """One discriminator update, then one generator update.

    1. D step: ``x_fake = G(z)`` is *detached*, so the D loss does not reach G's weights.
    2. G step: the same ``x_fake`` (G has not changed) goes through the *updated* D; D's weights
       are frozen meanwhile, so the G loss gives gradients to G only.

    Args:
        G: generator, (B, z_dim) -> (B, 2).
        D: discriminator, (B, 2) -> logits (B,).
        opt_G: optimiser over G's parameters.
        opt_D: optimiser over D's parameters.
        x_real: a batch of real points, shape (B, 2).
        z: noise for the fake batch, shape (B', z_dim).
        g_loss: ``"nonsaturating"`` (-log D(G(z))) or ``"saturating"`` (log(1 - D(G(z)))).

    Returns:
        ``{"d_loss", "g_loss", "d_real", "d_fake"}`` as Python floats: the two losses, and D's
        mean probability of "real" on the real and the fake batch (in [0, 1], measured in the D
        step, before D's update).
    """
    if g_loss == "nonsaturating":
        generator_loss = g_loss_nonsaturating
    elif g_loss == "saturating":
        generator_loss = g_loss_saturating
    else:
        raise ValueError(f"g_loss must be 'nonsaturating' or 'saturating', got {g_loss!r}")
    if x_real.dim() != 2 or x_real.shape[1] != 2:
        raise ValueError(f"x_real must have shape (B, 2), got {tuple(x_real.shape)}")

    # --- D step: maximise log D(x_real) + log(1 - D(x_fake)) ---
    x_fake = G(z)                                   # (B', 2), graph kept for the G step
    real_logits = D(x_real)                         # (B,)
    fake_logits = D(x_fake.detach())                # (B',), no gradient path to G
    loss_D = d_loss_bce(real_logits, fake_logits)
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()

    # --- G step: fool the updated D; D's weights are frozen so only G gets gradients ---
    requires_grad = [p.requires_grad for p in D.parameters()]
    for p in D.parameters():
        p.requires_grad_(False)
    try:
        loss_G = generator_loss(D(x_fake))
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
    finally:
        for p, flag in zip(D.parameters(), requires_grad):
            p.requires_grad_(flag)

    return {
        "d_loss": loss_D.item(),
        "g_loss": loss_G.item(),
        "d_real": torch.sigmoid(real_logits.detach()).mean().item(),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean().item(),
    }


# ----------------------------------------------------------------------------------------------
# Mode coverage
# ----------------------------------------------------------------------------------------------

@dataclass
class ModeCoverage:
    """Result of ``mode_coverage``."""

    modes_covered: int              # modes that received at least min_fraction of the samples as high-quality
    num_modes: int                  # number of modes (centres)
    high_quality_fraction: float    # fraction of all samples within threshold_std * std of their nearest centre
    counts: list[int] = field(default_factory=list)  # high-quality samples per mode, length num_modes


def mode_coverage(
    samples: torch.Tensor,
    centres: torch.Tensor,
    std: float,
    threshold_std: float = 3.0,
    min_fraction: float = 0.01,
) -> ModeCoverage:
    """Count the modes a generator covers, following Srivastava et al. 2017 (VEEGAN).

    A sample is *high quality* if it lies within ``threshold_std * std`` (3 std in VEEGAN) of its
    nearest centre. A mode is *covered* if at least ``min_fraction`` of all samples (and at least
    one) are high-quality samples assigned to it. The default of 1% is a choice: PacGAN (Lin et al. 2018)
    calls a mode lost with fewer than 20 of 2,500 samples (0.8%); with 8 equal modes a perfect
    generator puts 12.5% on each, so 1% only rules out stray samples.

    Args:
        samples: generated points, shape (N, 2) (any dimension D works: (N, D)).
        centres: mode centres, shape (M, D), e.g. ``ring_centres()``.
        std: standard deviation of each mode of the data, > 0.
        threshold_std: radius of a mode, in units of ``std``.
        min_fraction: share of all N samples a mode needs to count as covered, in [0, 1].

    Returns:
        ``ModeCoverage`` with ``modes_covered`` in [0, M], ``high_quality_fraction`` in [0, 1] and
        per-mode ``counts``.
    """
    if samples.dim() != 2 or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape (N, D) with N >= 1, got {tuple(samples.shape)}")
    if centres.dim() != 2 or centres.shape[1] != samples.shape[1]:
        raise ValueError(
            f"centres must have shape (M, {samples.shape[1]}) to match samples {tuple(samples.shape)}, "
            f"got {tuple(centres.shape)}"
        )
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction!r}")
    samples = samples.detach().to("cpu", torch.float64)
    centres = centres.detach().to("cpu", torch.float64)
    distances = torch.cdist(samples, centres)                 # (N, M)
    nearest_distance, nearest = distances.min(dim=1)          # (N,), (N,)
    high_quality = nearest_distance <= threshold_std * std    # (N,)
    counts = torch.bincount(nearest[high_quality], minlength=centres.shape[0])  # (M,)
    n = samples.shape[0]
    return ModeCoverage(
        modes_covered=int(((counts > 0) & (counts >= min_fraction * n)).sum().item()),
        num_modes=centres.shape[0],
        high_quality_fraction=high_quality.double().mean().item(),
        counts=counts.tolist(),
    )
