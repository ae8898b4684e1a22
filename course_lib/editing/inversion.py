"""GAN inversion by optimisation: the latent code whose image is closest to a target.

Given a generator G and target images x, find the code whose image G(code) is nearest to x under a
distance d. Three spaces, from the least to the most expressive:

- ``z``: optimise z (B, z_dim); the image is synthesis(broadcast(mapping(z))). Z is a Gaussian
  that the mapping network warps, so a gradient step in Z moves W unevenly: the hardest space.
- ``w``: optimise one w (B, w_dim), shared by every layer (StyleGAN2's projector, Karras et al. 2020).
- ``w+``: one w per layer (B, num_ws, w_dim) (Image2StyleGAN, Abdal et al. 2019): it reconstructs
  better, but its codes leave the distribution the generator was trained on, so edits of them
  behave worse (the distortion-editability trade-off; Tov et al. 2021).

The schedule is the projector's: start at the mean of many mapped w (or z = 0), Adam with a learning
rate that ramps up over the first 5% of the steps and down along a cosine over the last 25%, and
Gaussian noise added to the code with a scale that decays to zero over the first 75% (it lets the
early steps explore). StyleGAN2 measures d with LPIPS on VGG features; offline there is no VGG, so
``features_distance`` uses the course classifier's features instead, and ``pixel_distance`` the mean
squared error. A ``degrade`` function turns the same machinery into restoration (CSGM, Bora et al.
2017; PULSE, Menon et al. 2020): the distance compares degrade(G(code)) with the degraded target,
so the generator fills in what the degradation hid (``restoration.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from course_lib.stylegan import Generator

SPACES = ("z", "w", "w+")
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # (B, C, H, W) x 2 -> (B,)


@dataclass
class ProjectorConfig:
    """The optimisation schedule (defaults: StyleGAN2's projector, with fewer steps for 32x32 digits)."""

    steps: int = 300                  # Adam steps
    lr: float = 0.1                   # peak learning rate
    lr_rampup: float = 0.05           # fraction of the steps over which the rate rises from 0
    lr_rampdown: float = 0.25         # fraction of the steps over which it falls back to 0 (cosine)
    noise_factor: float = 0.05        # initial std of the noise on the code, in units of the code's spread
    noise_ramp: float = 0.75          # fraction of the steps over which that noise decays to 0 (quadratically)
    w_avg_samples: int = 10_000       # z samples whose mapped mean is the start in W and W+

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("lr_rampup", "lr_rampdown", "noise_ramp"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        if self.noise_factor < 0:
            raise ValueError(f"noise_factor must be >= 0, got {self.noise_factor!r}")


def learning_rate(cfg: ProjectorConfig, step: int) -> float:
    """The rate at ``step``: linear ramp-up over ``lr_rampup``, cosine ramp-down over ``lr_rampdown``."""
    t = step / cfg.steps
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / cfg.lr_rampup)
    return cfg.lr * ramp


def noise_scale(cfg: ProjectorConfig, step: int, spread: float) -> float:
    """Std of the noise added to the code at ``step``: ``spread * noise_factor * max(0, 1 - t / noise_ramp)^2``."""
    t = step / cfg.steps
    return spread * cfg.noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2


@torch.no_grad()
def w_statistics(G: Generator, n: int = 10_000, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Mean of ``n`` mapped w (w_dim,) and their spread sqrt(E ||w - mean||^2), as the projector starts from."""
    g = torch.Generator().manual_seed(seed)
    device = G.w_avg.device
    z = torch.randn(n, G.z_dim, generator=g).to(device)
    w = G.mapping(z)                                         # (n, w_dim)
    mean = w.mean(dim=0)
    spread = float((w - mean).pow(2).sum(dim=1).mean().sqrt())
    return mean, spread


def pixel_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: (B,)."""
    return (x - y).pow(2).flatten(1).mean(dim=1)


def features_distance(classifier: nn.Module, pixel_weight: float = 1.0) -> Distance:
    """A perceptual distance for digits: squared distance of the classifier's features, plus pixel MSE.

    The features (the course classifier's 128-d penultimate layer) care about strokes and shapes,
    not exact pixels (the role LPIPS plays for photos); the pixel term keeps the intensities honest.
    Each part is scaled to about 1 for two unrelated digits.
    """
    for p in classifier.parameters():
        p.requires_grad_(False)

    def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = classifier.features(x), classifier.features(y)          # (B, F)
        scale = fy.pow(2).sum(dim=1).mean().clamp_min(1e-8)
        return (fx - fy).pow(2).sum(dim=1) / scale + pixel_weight * pixel_distance(x, y)

    return distance


def discriminator_distance(D: nn.Module, layers: int = 2, pixel_weight: float = 1.0) -> Distance:
    """A distance on the first ``layers`` blocks of a trained StyleGAN discriminator's features, plus pixel MSE."""
    for p in D.parameters():
        p.requires_grad_(False)

    def feats(x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], nn.functional.leaky_relu(D.from_rgb(x), 0.2) * math.sqrt(2)     # as in D.forward
        for block in D.blocks[:layers]:
            h = block(h)
            out.append(h)
        return out

    def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = pixel_weight * pixel_distance(x, y)
        for fx, fy in zip(feats(x), feats(y)):
            total = total + (fx - fy).pow(2).flatten(1).mean(dim=1) / fy.pow(2).mean().clamp_min(1e-8)
        return total

    return distance


def synthesize(G: Generator, code: torch.Tensor, space: str) -> torch.Tensor:
    """Images (B, C, 32, 32) of codes in ``space``: z (B, z_dim), w (B, w_dim) or w+ (B, num_ws, w_dim)."""
    return G.synthesis(to_ws(G, code, space), noise_mode="const")


def to_ws(G: Generator, code: torch.Tensor, space: str) -> torch.Tensor:
    """The per-layer codes (B, num_ws, w_dim) of a code in ``space``."""
    if space == "z":
        return G.broadcast(G.mapping(code))
    if space == "w":
        return G.broadcast(code)
    if space == "w+":
        return code
    raise ValueError(f"space must be one of {SPACES}, got {space!r}")


@dataclass
class Projection:
    """The result of an inversion."""

    codes: torch.Tensor                        # (B, z_dim), (B, w_dim) or (B, num_ws, w_dim), by space
    ws: torch.Tensor                           # (B, num_ws, w_dim), the per-layer codes
    images: torch.Tensor                       # (B, C, 32, 32) in [-1, 1], G(codes)
    space: str
    losses: list[float] = field(default_factory=list)   # mean distance per step


def start_code(G: Generator, space: str, batch: int, w_mean: torch.Tensor) -> torch.Tensor:
    """Where the optimisation starts: z = 0 (the mode of the prior), else the mean w (broadcast for w+)."""
    if space == "z":
        return torch.zeros(batch, G.z_dim, device=w_mean.device)
    if space == "w":
        return w_mean.expand(batch, -1).clone()
    return w_mean.expand(batch, G.num_ws, -1).clone()


def project(G: Generator, target: torch.Tensor, space: str = "w", cfg: ProjectorConfig | None = None,
            distance: Distance = pixel_distance, degrade: Callable[[torch.Tensor], torch.Tensor] | None = None,
            init: torch.Tensor | None = None, generator: torch.Generator | None = None,
            statistics: tuple[torch.Tensor, float] | None = None,
            callback: Callable[[int, float], None] | None = None) -> Projection:
    """Find the codes whose images are nearest to ``target``, one per image.

    Args:
        G: a StyleGAN generator (its weights are not changed; it is put in eval mode).
        target: (B, C, 32, 32) images in [-1, 1]; with ``degrade``, the degraded images.
        space: "z", "w" or "w+".
        cfg: the schedule (``ProjectorConfig()``: 300 steps).
        distance: (x, y) -> (B,) per-image distance to minimise.
        degrade: applied to G's images before the distance (a mask, a down-sampling); None for inversion.
        init: start codes in ``space`` (an encoder's output, for hybrid inversion); None for the mean.
        generator: seeds the noise on the code.
        statistics: ``w_statistics(G)``, to reuse between calls (computed when None).
        callback: called as ``callback(step, mean_distance)`` after every step (a progress bar).

    Returns:
        A ``Projection``: codes, per-layer codes, images G(codes) and the loss curve.
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if target.dim() != 4 or target.shape[1] != G.cfg.img_channels:
        raise ValueError(f"target must be (B, {G.cfg.img_channels}, H, W) images, got {tuple(target.shape)}")
    cfg = cfg or ProjectorConfig()
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    w_mean, w_spread = statistics or w_statistics(G, cfg.w_avg_samples)
    spread = 1.0 if space == "z" else w_spread / math.sqrt(G.cfg.w_dim)     # per-coordinate spread of the code
    code = (init.detach().clone() if init is not None else start_code(G, space, target.shape[0], w_mean))
    code = code.to(target.device).requires_grad_(True)
    optimizer = torch.optim.Adam([code], lr=cfg.lr, betas=(0.9, 0.999))
    degrade = degrade or (lambda x: x)
    losses = []
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        noise = torch.randn(code.shape, generator=generator).to(code.device) * noise_scale(cfg, step, spread)
        images = synthesize(G, code + noise, space)                         # (B, C, 32, 32)
        loss = distance(degrade(images), target)                            # (B,)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        losses.append(float(loss.detach().mean()))
        if callback is not None:
            callback(step, losses[-1])
    with torch.no_grad():
        ws = to_ws(G, code, space)
        images = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
    return Projection(code.detach(), ws.detach(), images, space, losses)
