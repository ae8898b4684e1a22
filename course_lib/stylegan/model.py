"""A style-based generator and its discriminator for 32x32 images (StyleGAN 1 and 2 ideas, small).

Karras et al. 2019, "A Style-Based Generator Architecture for Generative Adversarial Networks"
(StyleGAN) replaced the generator's input with a learned constant and fed the latent code to every
layer as a *style*: a mapping network turns z into an intermediate code w, per-layer affine maps
turn w into styles, and adaptive instance normalisation (AdaIN) applies them; per-pixel noise adds
stochastic detail. Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"
(StyleGAN2) traced the "droplet" artefacts to AdaIN's normalisation and replaced it with
*modulated convolution and weight demodulation*, the toRGB outputs summed across resolutions
("skip" generator) and a residual discriminator with lazy R1. With ``channels(r)`` the width at
resolution r and C = ``img_channels``:

    mapping:   z (B, z_dim) -> normalise -> mapping_layers x [linear, lrelu] -> w (B, w_dim)
    synthesis: const (C4, 4, 4) -> [conv]         -> toRGB --------------------------+
               -> [up, conv, conv] (C8, 8, 8)     -> toRGB + upsampled rgb ----------+
               -> [up, conv, conv] (C16, 16, 16)  -> toRGB + upsampled rgb ----------+
               -> [up, conv, conv] (C32, 32, 32)  -> toRGB + upsampled rgb -> image (B, C, 32, 32)
    D:         image -> fromRGB -> 3 residual blocks (down to 4x4) -> minibatch std -> conv
               -> linear -> logit (B,)

Every conv and toRGB takes its own w (``num_ws`` of them: the input of style mixing). Simplifications
against the papers, each stated where it happens: bilinear up/downsampling instead of the
papers' FIR filters, no path-length regulariser, 4 mapping layers instead of 8. Equalised learning
rate (weights drawn from N(0, 1), scaled at run time by He's constant; Karras et al. 2018) is kept:
the papers' learning rates depend on it.

Read top-down: config, the
mapping and synthesis networks, the generator with its truncation and mixing, the discriminator.
The training step (non-saturating loss, lazy R1, style-mixing regularisation), the run config and
the run are in ``course_lib.stylegan.training``; the measurements of lesson 09 in ``course_lib.stylegan.analysis``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.stylegan.layers import (NOISE_MODES, STYLE_MODES, EqualConv2d, EqualLinear, StyleConv, ToRGB)


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass
class StyleGANConfig:
    """Architecture of a small StyleGAN for 32x32 images (the defaults: grey digits, ~0.9M + 0.9M parameters)."""

    z_dim: int = 64                 # size of z ~ N(0, I)
    w_dim: int = 64                 # size of w, the intermediate latent code (and of each style's source)
    mapping_layers: int = 4         # fully connected layers of the mapping network (the papers: 8)
    mapping_lr_mul: float = 0.01    # learning-rate multiplier of the mapping network (the papers: 0.01)
    img_channels: int = 1           # C: channels of the images
    img_size: int = 32              # height = width; 32 (three upsampling stages from the 4x4 constant)
    base_channels: int = 32         # width at 32x32; each halving of the resolution doubles it, up to max_channels
    max_channels: int = 128         # cap on the width of the low resolutions
    style_mode: str = "demod"       # "demod": modulated conv + demodulation (StyleGAN2); "adain": AdaIN (StyleGAN)
    mbstd_group: int = 4            # D: group size of the minibatch standard deviation (the batch must divide by it or be smaller)

    def __post_init__(self) -> None:
        if self.img_size != 32:
            raise ValueError(f"img_size must be 32, got {self.img_size!r}")
        if self.style_mode not in STYLE_MODES:
            raise ValueError(f"style_mode must be one of {STYLE_MODES}, got {self.style_mode!r}")
        for name in ("z_dim", "w_dim", "mapping_layers", "img_channels", "base_channels", "max_channels", "mbstd_group"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if not self.mapping_lr_mul > 0:
            raise ValueError(f"mapping_lr_mul must be > 0, got {self.mapping_lr_mul!r}")

    def channels(self, resolution: int) -> int:
        """Feature maps at ``resolution`` (4, 8, 16 or 32): base_channels * 32 / resolution, capped."""
        return min(self.max_channels, self.base_channels * self.img_size // resolution)


# ----------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------

class MappingNetwork(nn.Module):
    """z -> w: normalise z to unit second moment, then ``mapping_layers`` equalised linear layers."""

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__()
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=cfg.mapping_lr_mul, activation=True)
                                      for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # (B, z_dim), the papers' pixel norm
        return self.layers(z)                                           # (B, w_dim)


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> image (B, C, 32, 32) from a learned 4x4 constant (the "skip" generator).

    Style indices: the 4x4 conv reads ws[:, 0]; a block at resolution r with first index i reads
    ws[:, i] (upsampling conv) and ws[:, i + 1] (second conv); every toRGB reads the index after its
    block's last conv, which the next block's first conv shares (as in StyleGAN2). 32x32: 8 ws.
    """

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.const = nn.Parameter(torch.randn(cfg.channels(4), 4, 4))       # the learned constant input
        self.convs = nn.ModuleList([StyleConv(cfg.channels(4), cfg.channels(4), cfg.w_dim, 4, False, cfg.style_mode)])
        self.to_rgbs = nn.ModuleList([ToRGB(cfg.channels(4), cfg.img_channels, cfg.w_dim)])
        self.resolutions = [8, 16, 32]
        for r in self.resolutions:
            self.convs.append(StyleConv(cfg.channels(r // 2), cfg.channels(r), cfg.w_dim, r, True, cfg.style_mode))
            self.convs.append(StyleConv(cfg.channels(r), cfg.channels(r), cfg.w_dim, r, False, cfg.style_mode))
            self.to_rgbs.append(ToRGB(cfg.channels(r), cfg.img_channels, cfg.w_dim))
        self.num_ws = len(self.convs) + 1                                   # 7 convs + the last toRGB's: 8

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused: bool = False,
                noises: list[torch.Tensor | None] | None = None, return_features: bool = False):
        """Args: ws (B, num_ws, w_dim); noise_mode random|const|none; noises: one map (B, 1, r, r) or None per conv.

        Returns (B, C, 32, 32), and with ``return_features`` also the list of every conv's output.
        """
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.cfg.w_dim):
            raise ValueError(f"ws must be (B, {self.num_ws}, {self.cfg.w_dim}), got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        noises = noises if noises is not None else [None] * len(self.convs)
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)        # (B, C4, 4, 4)
        x = self.convs[0](x, ws[:, 0], noise_mode, fused, noises[0])
        rgb = self.to_rgbs[0](x, ws[:, 1], fused)                           # (B, C, 4, 4)
        features = [x]
        for block, r in enumerate(self.resolutions):
            i = 1 + 2 * block                                               # index of the block's first conv and w
            x = self.convs[i](x, ws[:, i], noise_mode, fused, noises[i])     # (B, Cr, r, r)
            features.append(x)
            x = self.convs[i + 1](x, ws[:, i + 1], noise_mode, fused, noises[i + 1])
            features.append(x)
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + \
                self.to_rgbs[block + 1](x, ws[:, i + 2], fused)               # (B, C, r, r)
        return (rgb, features) if return_features else rgb


class Generator(nn.Module):
    """z -> w -> image, with a tracked average w for the truncation trick.

    ``G(z)`` maps z, broadcasts w to every layer and synthesises; ``G(z, truncation_psi=0.7)``
    pulls each w towards ``w_avg`` first. ``w_avg`` is a buffer that the training step updates
    with a moving average of the mapped w's (``update_w_avg``). In eval mode the images are clamped
    to [-1, 1] (the synthesis network has no output nonlinearity; D sees the raw values in training).
    """

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__()
        self.cfg, self.z_dim = cfg, cfg.z_dim
        self.num_classes = 0  # unconditional: it takes no labels (what every sampler says, course_lib.run.sampling)
        self.mapping = MappingNetwork(cfg)
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, beta: float = 0.995) -> None:
        """``w_avg <- beta w_avg + (1 - beta) mean(w)`` (the papers track it during training)."""
        self.w_avg.lerp_(w.detach().float().mean(dim=0), 1 - beta)

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """The truncation trick in W: ``w_avg + psi (w - w_avg)``; psi = 1 leaves w, psi = 0 gives the average."""
        return self.w_avg.to(w.dtype) + psi * (w - self.w_avg.to(w.dtype))

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> (B, num_ws, w_dim): the same w for every layer."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, *, truncation_psi: float = 1.0,
                noise_mode: str = "random", fused: bool = False) -> torch.Tensor:
        """Args: z (B, z_dim); labels must be None. Returns images (B, C, 32, 32), clamped to [-1, 1] in eval mode."""
        if labels is not None:
            raise ValueError("labels must be None: the StyleGAN is unconditional")
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (B, {self.z_dim}), got {tuple(z.shape)}")
        w = self.mapping(z)                                                 # (B, w_dim)
        if truncation_psi != 1.0:
            w = self.truncate(w, truncation_psi)
        img = self.synthesis(self.broadcast(w), noise_mode=noise_mode, fused=fused)
        return img if self.training else img.clamp(-1, 1)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, *, truncation_psi: float = 1.0) -> torch.Tensor:
        """Images from noise: ``forward`` with fresh noise inputs, under the name every sampler of the course has."""
        return self(z, labels, truncation_psi=truncation_psi)


def mix_styles(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int | torch.Tensor) -> torch.Tensor:
    """Style mixing: layers before ``crossover`` take ws_a's styles, the others ws_b's (StyleGAN, section 3.1).

    Args:
        ws_a, ws_b: (B, num_ws, w_dim).
        crossover: an int in [0, num_ws], or a (B,) tensor of them (one per sample).

    Returns:
        (B, num_ws, w_dim). Low indices are the coarse styles (4x4, 8x8: pose, shape), high the fine.
    """
    if ws_a.shape != ws_b.shape or ws_a.dim() != 3:
        raise ValueError(f"ws_a and ws_b must both be (B, num_ws, w_dim), got {tuple(ws_a.shape)} and {tuple(ws_b.shape)}")
    layer = torch.arange(ws_a.shape[1], device=ws_a.device)                 # (num_ws,)
    cut = torch.as_tensor(crossover, device=ws_a.device).reshape(-1, 1)      # (B or 1, 1)
    return torch.where((layer[None, :] < cut)[:, :, None], ws_a, ws_b)


# ----------------------------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------------------------

def minibatch_std(x: torch.Tensor, group_size: int = 4, eps: float = 1e-8) -> torch.Tensor:
    """Appends one feature map: the average standard deviation of the features within a group of samples.

    Karras et al. 2018 (ProGAN, section 3): split the batch into groups of ``group_size`` (sample i
    belongs to group i mod (B / G)), compute each feature's standard deviation over the group,
    average it over features and pixels to one number per group, and append it as a constant
    channel to the group's samples. A collapsed generator produces groups with a small std, which
    D can then see.

    Args:
        x: (B, C, H, W); B must be divisible by min(group_size, B).

    Returns:
        (B, C + 1, H, W).
    """
    B, C, H, W = x.shape
    G = min(group_size, B)
    if B % G:
        raise ValueError(f"the batch size ({B}) must be divisible by the group size ({G})")
    y = x.reshape(G, B // G, C, H, W)                   # (G, M, C, H, W): group member g, group m
    y = y - y.mean(dim=0)                               # deviations within each group
    y = (y.pow(2).mean(dim=0) + eps).sqrt()             # (M, C, H, W): std over the group
    y = y.mean(dim=(1, 2, 3))                           # (M,): averaged over features and pixels
    y = y.reshape(-1, 1, 1, 1).repeat(G, 1, H, W)       # (B, 1, H, W): sample i gets its group's value
    return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs and a 2x downsampling, plus a 1x1 skip, summed and scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, 0.2) * math.sqrt(2)  # noqa: E731
        y = F.avg_pool2d(act(self.conv0(x)), 2)                               # (B, I, H/2, W/2)
        y = act(self.conv1(y))                                               # (B, O, H/2, W/2): the papers' strided conv
        return (self.skip(F.avg_pool2d(x, 2)) + y) / math.sqrt(2)


class Discriminator(nn.Module):
    """StyleGAN2's residual D: fromRGB, residual blocks 32 -> 16 -> 8 -> 4, minibatch std, conv, linear, logit."""

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.from_rgb = EqualConv2d(cfg.img_channels, cfg.channels(32), 1)
        self.blocks = nn.ModuleList([DiscriminatorBlock(cfg.channels(r), cfg.channels(r // 2)) for r in (32, 16, 8)])
        self.conv = EqualConv2d(cfg.channels(4) + 1, cfg.channels(4), 3)
        self.fc = EqualLinear(cfg.channels(4) * 16, cfg.channels(4), activation=True)
        self.out = EqualLinear(cfg.channels(4), 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B, C, 32, 32) in about [-1, 1]; labels must be None. Returns logits (B,)."""
        if x.dim() != 4 or x.shape[1:] != (self.cfg.img_channels, 32, 32):
            raise ValueError(f"x must be (B, {self.cfg.img_channels}, 32, 32), got {tuple(x.shape)}")
        if labels is not None:
            raise ValueError("labels must be None: the StyleGAN's D is unconditional")
        h = F.leaky_relu(self.from_rgb(x), 0.2) * math.sqrt(2)              # (B, C32, 32, 32)
        for block in self.blocks:
            h = block(h)                                                     # -> (B, C4, 4, 4)
        h = minibatch_std(h, self.cfg.mbstd_group)                           # (B, C4 + 1, 4, 4)
        h = F.leaky_relu(self.conv(h), 0.2) * math.sqrt(2)                   # (B, C4, 4, 4)
        return self.out(self.fc(h.flatten(1))).squeeze(1)                    # (B,)
