"""StyleGAN's building blocks: equalised layers, modulated convolution with demodulation, AdaIN, noise.

Karras et al. 2018 (equalised learning rate), Karras et al. 2019 (StyleGAN: AdaIN styles, noise
inputs) and Karras et al. 2020 (StyleGAN2: modulated convolution and weight demodulation). The
networks built from them, and the overview of the whole model, are in ``course_lib.stylegan.model``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STYLE_MODES = ("demod", "adain")  # StyleGAN2's modulated convolution, or StyleGAN 1's AdaIN
NOISE_MODES = ("random", "const", "none")  # fresh noise per call, the generator's fixed maps, or none


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------

class EqualLinear(nn.Module):
    """A linear layer with equalised learning rate: ``y = x (c W)^T + lr_mul b``, ``c = lr_mul / sqrt(in)``.

    The stored weight is N(0, 1) / lr_mul, so the effective weight starts with He's scale and Adam's
    steps, which are about the same size for every parameter, change every layer equally fast
    (Karras et al. 2018, section 4.1). ``activation`` applies leaky ReLU(0.2) times sqrt(2) (keeps
    the second moment).
    """

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_features), lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(y, 0.2) * math.sqrt(2) if self.activation else y


class EqualConv2d(nn.Module):
    """A convolution with equalised learning rate (weight N(0, 1) scaled by 1 / sqrt(fan_in) at run time)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale, self.padding = 1 / math.sqrt(in_channels * kernel_size ** 2), kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def modulate(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample weights of a modulated convolution (StyleGAN2, eq. 1 and 3).

    Modulation scales input channel i by the style: ``w'_{oikl} = s_i w_{oikl}``. Demodulation
    rescales each output channel to unit norm, ``w''_{oikl} = w'_{oikl} / sqrt(sum_{i,k,l} w'^2 + eps)``,
    so that unit-variance inputs give unit-variance outputs: the statistics AdaIN forced on the
    activations are now expected of them, and no feature map is normalised after the fact.

    Args:
        weight: (O, I, k, k) convolution weight (already scaled).
        styles: (B, I) per-sample scales of the input channels.
        demodulate: divide by the norm over (I, k, k) of each sample's output channel.
        eps: added inside the square root (the papers: 1e-8).

    Returns:
        (B, O, I, k, k) weights, one set per sample.
    """
    if weight.dim() != 4 or styles.dim() != 2 or styles.shape[1] != weight.shape[1]:
        raise ValueError(f"weight must be (O, I, k, k) and styles (B, I) with the same I, "
                         f"got {tuple(weight.shape)} and {tuple(styles.shape)}")
    w = weight.unsqueeze(0) * styles[:, None, :, None, None]                  # (B, O, I, k, k)
    if demodulate:
        w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4), keepdim=True) + eps)  # unit norm per (b, o)
    return w


def modulated_conv2d_reference(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                               demodulate: bool = True) -> torch.Tensor:
    """The readable version: one ordinary convolution per sample, with that sample's weights."""
    per_sample = modulate(weight, styles, demodulate)  # (B, O, I, k, k)
    return torch.cat([F.conv2d(x[b:b + 1], per_sample[b], padding=weight.shape[-1] // 2)
                      for b in range(x.shape[0])])


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     fused: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """A modulated (and demodulated) convolution for a whole batch, without a Python loop.

    ``fused=True`` is StyleGAN2's grouped convolution: the batch becomes the channel axis of one
    sample, ``(1, B*I, H, W)``, convolved with the ``(B*O, I, k, k)`` stack of per-sample weights in
    B groups. ``fused=False`` gives the same result by scaling the activations instead of the
    weights (``conv(x * s, w) * d``, with d the demodulation coefficients), which uses the ordinary
    convolution kernels and is the faster path for training on a CPU. Both equal
    ``modulated_conv2d_reference`` (tested).

    Args:
        x: (B, I, H, W) input.
        weight: (O, I, k, k) shared weight; k odd.
        styles: (B, I) per-sample styles.
        demodulate: apply weight demodulation.
        fused: grouped convolution (True) or scaled activations (False).

    Returns:
        (B, O, H, W).
    """
    B, I, H, W = x.shape
    if styles.shape != (B, I) or weight.shape[1] != I:
        raise ValueError(f"x (B, I, H, W) = {tuple(x.shape)} needs styles (B, I) = {(B, I)} and weight (O, I, k, k), "
                         f"got styles {tuple(styles.shape)} and weight {tuple(weight.shape)}")
    O, k = weight.shape[0], weight.shape[-1]
    if fused:
        w = modulate(weight, styles, demodulate, eps)                          # (B, O, I, k, k)
        y = F.conv2d(x.reshape(1, B * I, H, W), w.reshape(B * O, I, k, k), padding=k // 2, groups=B)
        return y.reshape(B, O, H, W)                                           # (1, B*O, H, W) -> (B, O, H, W)
    y = F.conv2d(x * styles[:, :, None, None], weight, padding=k // 2)       # (B, O, H, W)
    if demodulate:
        # sum_{i,k,l} (s_i w_oikl)^2 = sum_i s_i^2 (sum_kl w_oikl^2): a (B, I) x (I, O) product
        dcoefs = torch.rsqrt(styles.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + eps)  # (B, O)
        y = y * dcoefs[:, :, None, None]
    return y


def adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017; StyleGAN eq. 1).

    ``AdaIN(x_i, y) = y_{s,i} (x_i - mu(x_i)) / sigma(x_i) + y_{b,i}``: each feature map of each
    sample is normalised to zero mean and unit standard deviation over its H x W pixels, then
    given the style's scale and bias.

    Args:
        x: (B, C, H, W) feature maps.
        scale: (B, C) style scales y_s.
        bias: (B, C) style biases y_b.
        eps: added to the variance inside the square root.

    Returns:
        (B, C, H, W).
    """
    if x.dim() != 4 or scale.shape != x.shape[:2] or bias.shape != x.shape[:2]:
        raise ValueError(f"x must be (B, C, H, W) and scale, bias (B, C), got {tuple(x.shape)}, "
                         f"{tuple(scale.shape)} and {tuple(bias.shape)}")
    mu = x.mean(dim=(2, 3), keepdim=True)                                        # (B, C, 1, 1)
    sigma = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()       # (B, C, 1, 1)
    return scale[:, :, None, None] * (x - mu) / sigma + bias[:, :, None, None]


class NoiseInjection(nn.Module):
    """Adds ``strength * noise`` to a feature map: one noise map (B, 1, H, W) shared by all channels.

    The strength is learned per layer, starting at 0 (StyleGAN2 uses one scalar per layer; StyleGAN a
    per-channel vector). ``const`` noise is a fixed map stored in the layer, for repeatable images.
    """

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("const_noise", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, noise_mode: str = "random", noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        elif noise is None and noise_mode == "const":
            noise = self.const_noise
        return x if noise is None else x + self.strength * noise


class StyleConv(nn.Module):
    """One synthesis layer: [upsample x2], 3x3 conv styled by w, noise, bias, leaky ReLU.

    ``demod``: the affine style modulates the conv weight, demodulated (StyleGAN2). ``adain``: a
    plain conv, then noise, bias and activation, then AdaIN with the style's scale and bias
    (StyleGAN's order).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, upsample: bool,
                 style_mode: str) -> None:
        super().__init__()
        self.upsample, self.style_mode = upsample, style_mode
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.scale = 1 / math.sqrt(in_channels * 9)
        if style_mode == "demod":
            self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)          # w -> s (B, I), starts near 1
        else:
            self.affine = EqualLinear(w_dim, 2 * out_channels, bias_init=0.0)     # w -> (y_s - 1, y_b) (B, 2 O)
        self.noise = NoiseInjection(resolution)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused: bool = False,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (B, I, 2H, 2W)
        if self.style_mode == "demod":
            x = modulated_conv2d(x, self.weight * self.scale, self.affine(w), demodulate=True, fused=fused)
        else:
            x = F.conv2d(x, self.weight * self.scale, padding=1)
        x = self.noise(x, noise_mode, noise)
        x = F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * math.sqrt(2)
        if self.style_mode == "adain":
            y_s, y_b = self.affine(w).chunk(2, dim=1)                            # (B, O) each
            x = adain(x, 1 + y_s, y_b)
        return x


class ToRGB(nn.Module):
    """A 1x1 modulated convolution to image channels, without demodulation (StyleGAN2), plus a bias."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.scale = 1 / math.sqrt(in_channels)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = False) -> torch.Tensor:
        y = modulated_conv2d(x, self.weight * self.scale, self.affine(w), demodulate=False, fused=fused)
        return y + self.bias[None, :, None, None]
