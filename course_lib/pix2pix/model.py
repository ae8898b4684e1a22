"""pix2pix: paired image-to-image translation with a U-Net generator and a PatchGAN discriminator.

Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks". G maps an
input image x (an edge map, a grey photo, a low-resolution or damaged photo) to an output G(x)
that should look like the target y of the pair (x, y). The objective has two parts:

    G* = arg min_G max_D  L_cGAN(G, D) + lambda_l1 * E ||y - G(x)||_1

- **L1** pulls G(x) towards y pixel by pixel. On its own it gives blurry results: the L1-optimal
  output is the per-pixel median of the plausible targets, so where the target is uncertain
  (which colour was this shirt?) the output is a grey average.
- **The conditional GAN term** adds what L1 misses: D sees the *pair* (x, G(x)) or (x, y), so it
  judges whether the output is a plausible target *for this input*, and G is pushed towards
  sharp, realistic detail. D is a **PatchGAN**: a fully convolutional classifier whose output is a
  grid of logits, each judging one N x N patch (its receptive field, ``receptive_field``); it
  models high frequencies only, and leaves the low frequencies to L1.

The generator is a **U-Net** (Ronneberger et al. 2015): an encoder-decoder whose decoder stage i
also receives the encoder's feature map of the same size through a skip connection, so the
low-level structure of x (edges, positions) passes straight to the output instead of squeezing
through the 1x1 bottleneck. With W = ``base_channels`` and ``depth`` = 5 on 32x32 images:

    encoder: x (B, C_in, 32, 32) -> (B, W, 16, 16) -> (B, 2W, 8, 8) -> (B, 4W, 4, 4) -> (B, 8W, 2, 2) -> (B, 8W, 1, 1)
    decoder: (B, 8W, 1, 1) -> (B, 8W, 2, 2) ++ skip -> (B, 4W, 4, 4) ++ skip -> (B, 2W, 8, 8) ++ skip
             -> (B, W, 16, 16) ++ skip -> (B, C_out, 32, 32)        (++ concatenates channels)

(with ``max_mult`` = 2, as the course trains it, every stage after the first has 2W channels: 0.63M
parameters at W = 32 instead of 4.2M, a 2.5 MB checkpoint, and nearly the same compute, which the
large outer stages dominate.)

Read top-down: config, U-Net, PatchGAN and its receptive field, losses. The training step, the run
config and the run are in ``course_lib.pix2pix.training``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


NORMS = ("batch", "instance")  # the normalisation layers these networks accept
RECONSTRUCTIONS = ("l1", "l2")  # the reconstruction term of G's loss: the paper's L1, or L2 (Pathak et al. 2016)


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass
class Pix2PixConfig:
    """Architecture of a pix2pix pair (U-Net G, PatchGAN D) for square images."""

    in_channels: int = 1          # C_in: channels of G's input x (grey 1, colour 3, masked photo + mask 4)
    out_channels: int = 3         # C_out: channels of G's output and of the target y
    img_size: int = 32            # height = width; must be divisible by 2 ** depth
    base_channels: int = 32       # W: width of the U-Net's first stage (stage i has W * min(2^i, max_mult))
    max_mult: int = 8             # cap on the stage widths (the paper's 8: 512 channels with W = 64)
    depth: int = 5                # stride-2 downsamplings in the U-Net (5: 32x32 -> 1x1 bottleneck)
    skips: bool = True            # False: a plain encoder-decoder (the ablation of Isola et al., Fig. 5)
    residual: bool = False        # True: G(x) = x_image + a learned correction (global residual learning, Kim et al. 2016)
    correction_stride: int = 1    # residual: the correction is averaged over stride x stride blocks, then upsampled
    dropout: float = 0.5          # dropout in the innermost decoder stages (pix2pix's only noise source)
    dropout_stages: int = 2       # how many innermost decoder stages get dropout
    norm: str = "batch"           # "batch" (pix2pix) or "instance" (CycleGAN)
    d_base_channels: int = 32     # width of D's first layer (the paper: 64 at 256 px)
    d_layers: int = 1             # stride-2 convolutions in D; 1 gives 16x16 patches, 3 the paper's 70x70

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "img_size", "base_channels", "max_mult", "depth", "d_base_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.img_size % 2 ** self.depth:
            raise ValueError(f"img_size must be divisible by 2 ** depth = {2 ** self.depth}, got img_size={self.img_size}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.d_layers, int) or not 0 <= self.d_layers <= 5:
            raise ValueError(f"d_layers must be an int in [0, 5], got {self.d_layers!r}")
        if not isinstance(self.dropout_stages, int) or self.dropout_stages < 0:
            raise ValueError(f"dropout_stages must be an int >= 0, got {self.dropout_stages!r}")
        stride = self.correction_stride
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1 or self.img_size % stride:
            raise ValueError(f"correction_stride must be an int >= 1 dividing img_size ({self.img_size}), got {stride!r}")
        if stride != 1 and not self.residual:
            raise ValueError("correction_stride shapes a residual correction: it needs residual=True")
        if self.residual and not (self.in_channels >= self.out_channels or self.in_channels == 1):
            raise ValueError(f"residual=True adds the input image to the output: in_channels ({self.in_channels}) must be "
                             f">= out_channels ({self.out_channels}), or 1 (a grey input added to every channel)")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """Batch norm, or instance norm with a learned affine map (normalises each image on its own)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def check_pair_images(x: torch.Tensor, channels: int, size: int, name: str = "x") -> None:
    """Raise a ValueError unless ``x`` is a float tensor of shape (B, channels, size, size), B >= 1."""
    expected = f"(B, {channels}, {size}, {size})"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[0] == 0 or tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(f"{name} must have shape {expected} with B >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1], got dtype {x.dtype}")


# ----------------------------------------------------------------------------------------------
# The U-Net generator
# ----------------------------------------------------------------------------------------------

class UNet(nn.Module):
    """U-Net generator: ``depth`` stride-2 encoder stages, a mirrored decoder, and a skip per size.

    Encoder stage i: Conv 4x4 stride 2 -> norm (not on the first stage, nor on the 1x1 bottleneck)
    -> LeakyReLU(0.2). Decoder stage: ConvTranspose 4x4 stride 2 -> norm -> dropout (innermost
    stages) -> ReLU, then the encoder's map of the same size is concatenated (the skip). The last
    stage maps to ``out_channels`` with a tanh, so outputs are in [-1, 1].

    With ``cfg.residual`` the tanh output is a correction instead: G(x) = clamp(x_image + tanh(.), -1, 1),
    where x_image is the input's first ``out_channels`` channels (a grey input is added to every
    channel). A restoration task then starts from its input (the bicubic image, the noisy photo,
    the grey photo) and only has to learn what the degradation took away, as in VDSR (Kim et al.
    2016, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks").

    Two settings shape that correction. ``correction_stride`` = s averages it over s x s blocks
    and upsamples it bilinearly, so it can only vary slowly: right for colour, which changes
    slowly across an image (JPEG keeps chroma at half resolution; Zhang et al. 2016, "Colorful
    Image Colorization", predict colour at a quarter of the resolution), wrong for the sharp
    detail of the other tasks. The buffer ``correction_scale`` = c (a residual U-Net's only; 1.0
    until fitted) gives x_image + c * (G(x) - x_image): a model whose corrections are right in
    direction but too strong on unseen images (over-fitted colours) is shrunk towards its input;
    ``course_lib.pix2pix.calibrate_pix2pix`` fits c on validation pairs by least squares
    (``least_squares_scale``). c is fitted, not designed, so it lives in the state_dict with the
    weights (``set_correction_scale`` sets it), not in the architecture config.

    Args:
        cfg: ``Pix2PixConfig``.

    Shapes:
        forward(x): x (B, in_channels, S, S) in [-1, 1] -> (B, out_channels, S, S) in [-1, 1].
    """

    correction_scale: torch.Tensor  # () float, residual U-Nets only: the correction's scale c

    def __init__(self, cfg: Pix2PixConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_channels * min(2 ** i, cfg.max_mult) for i in range(cfg.depth)]  # encoder stage i's channels
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):
            innermost = i == cfg.depth - 1
            layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels if i == 0 else widths[i - 1], width, 4, 2, 1,
                                                 bias=i == 0 or innermost)]
            if i > 0 and not innermost:  # no norm on the raw input side, none on the 1x1 bottleneck
                layers.append(norm_layer(cfg.norm, width))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()  # up[j] brings the map from encoder level depth-1-j to level depth-2-j
        for j, i in enumerate(range(cfg.depth - 1, 0, -1)):
            # input: the bottleneck, or the previous decoder output concatenated with its skip
            in_width = widths[i] if (j == 0 or not cfg.skips) else 2 * widths[i]
            layers = [nn.ConvTranspose2d(in_width, widths[i - 1], 4, 2, 1, bias=False),
                      norm_layer(cfg.norm, widths[i - 1])]
            if j < cfg.dropout_stages and cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
            layers.append(nn.ReLU())
            self.up.append(nn.Sequential(*layers))
        last_in = 2 * widths[0] if (cfg.skips and cfg.depth > 1) else widths[0]
        self.to_image = nn.Sequential(nn.ConvTranspose2d(last_in, cfg.out_channels, 4, 2, 1), nn.Tanh())
        if cfg.residual:
            self.register_buffer("correction_scale", torch.tensor(1.0))  # (), c: 1 applies the correction as trained

    def set_correction_scale(self, value: float) -> None:
        """Set c, the scale of a residual U-Net's correction (in place): G(x) = x_image + c * (correction).

        Args:
            value: a finite number >= 0 (0 returns the input image, 1 the correction as trained).

        Raises:
            ValueError: ``value`` is not a finite number >= 0, or the U-Net is not residual (nothing to scale).
        """
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < float("inf"):
            raise ValueError(f"correction_scale must be a finite number >= 0, got {value!r}")
        if not self.cfg.residual:
            raise ValueError("correction_scale scales a residual correction: the U-Net needs residual=True")
        self.correction_scale.fill_(value)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """A state_dict without ``correction_scale`` (written before c was a buffer) leaves c as it is.

        Such files kept c in their architecture; ``course_lib.pix2pix.build_sampler`` sets it from there.
        """
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        key = prefix + "correction_scale"
        if self.cfg.residual and key in missing_keys:
            missing_keys.remove(key)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_pair_images(x, self.cfg.in_channels, self.cfg.img_size)
        skips = []
        h = x
        for stage in self.down:
            h = stage(h)          # (B, widths[i], S / 2^(i+1), S / 2^(i+1))
            skips.append(h)
        skips.pop()               # the bottleneck h itself, (B, 8W, 1, 1) with the defaults
        for stage in self.up:
            h = stage(h)          # doubles the size: now the size of the next skip
            if self.cfg.skips:
                h = torch.cat([h, skips.pop()], dim=1)  # (B, c_up + c_skip, s, s): the skip connection
        out = self.to_image(h)    # (B, out_channels, S, S) in [-1, 1]
        if self.cfg.residual:     # a correction to the input image
            x_image = x[:, :self.cfg.out_channels]  # (B, out_channels or 1, S, S): a grey input broadcasts
            stride = self.cfg.correction_stride
            if stride > 1:        # (B, C, S/s, S/s) block means, back to (B, C, S, S)
                out = F.interpolate(F.avg_pool2d(out, stride), scale_factor=stride, mode="bilinear", align_corners=False)
            out = (x_image + out).clamp(-1, 1)
            # x_image + c * (out - x_image); lerp returns out exactly at c = 1 (and x_image at c = 0)
            out = torch.lerp(x_image, out, self.correction_scale).clamp(-1, 1)
        return out


# ----------------------------------------------------------------------------------------------
# The PatchGAN discriminator
# ----------------------------------------------------------------------------------------------

def patch_layers(d_layers: int) -> list[tuple[int, int]]:
    """(kernel, stride) of every convolution of a PatchGAN with ``d_layers`` stride-2 layers."""
    return [(4, 2)] * d_layers + [(4, 1), (4, 1)]


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Side of the input window one output unit sees, for a stack of (kernel, stride) convolutions.

    Walk back from one output pixel: a layer with kernel k and stride s turns a window of r units
    of its output into ``(r - 1) * s + k`` units of its input. The 70x70 PatchGAN of Isola et al.
    (``patch_layers(3)``) gives 70.
    """
    r = 1
    for kernel, stride in reversed(layers):
        r = (r - 1) * stride + kernel
    return r


def patch_output_size(img_size: int, d_layers: int) -> int:
    """Side of D's grid of logits for an img_size x img_size input (padding 1 on every convolution)."""
    size = img_size
    for kernel, stride in patch_layers(d_layers):
        size = (size + 2 - kernel) // stride + 1
    if size < 1:
        raise ValueError(f"img_size {img_size} is too small for d_layers={d_layers}")
    return size


class PatchDiscriminator(nn.Module):
    """PatchGAN: a fully convolutional D returning one logit per overlapping input patch.

    ``d_layers`` Conv 4x4 stride 2 layers (channels W, 2W, 4W, ..., capped at 8W), then a Conv 4x4
    stride 1 to twice the width and a Conv 4x4 stride 1 to one channel: the logits. Norm after
    every layer but the first and the last; LeakyReLU(0.2). A conditional D (pix2pix) is called
    on the pair concatenated along channels, ``D(torch.cat([x, y], 1))``.

    Args:
        in_channels: channels D sees (pix2pix: in_channels + out_channels of the pair).
        base_channels: width of the first layer.
        d_layers: stride-2 layers, 0 to 5.
        norm: "batch" or "instance".

    Shapes:
        forward(x): (B, in_channels, S, S) -> logits (B, 1, P, P) with P = ``patch_output_size(S, d_layers)``.
    """

    def __init__(self, in_channels: int, base_channels: int = 64, d_layers: int = 1, norm: str = "batch") -> None:
        super().__init__()
        self.in_channels, self.d_layers = in_channels, d_layers
        layers: list[nn.Module] = []
        width_in, width = in_channels, base_channels
        for i, (kernel, stride) in enumerate(patch_layers(d_layers)[:-1]):
            layers.append(nn.Conv2d(width_in, width, kernel, stride, 1, bias=i == 0))
            if i > 0:
                layers.append(norm_layer(norm, width))
            layers.append(nn.LeakyReLU(0.2))
            width_in, width = width, min(2 * width, 8 * base_channels)
        layers.append(nn.Conv2d(width_in, 1, 4, 1, 1))  # (B, 1, P, P) logits, one per patch
        self.net = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        """Side of the patch each logit judges."""
        return receptive_field(patch_layers(self.d_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (B, {self.in_channels}, S, S), got {tuple(getattr(x, 'shape', ()))}")
        return self.net(x)


def least_squares_scale(base: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> float:
    """The c >= 0 that minimises ||base + c (output - base) - target||^2 over all pixels.

    With d = output - base and r = target - base, the squared error ||c d - r||^2 is a parabola in
    c with its minimum at c* = <d, r> / <d, d> (clipped at 0; 1.0 when the output equals the base).
    c* < 1 says the corrections are too strong on these pairs, c* > 1 too weak.
    """
    if not (base.shape == output.shape == target.shape):
        raise ValueError(f"base, output and target must have the same shape, got {tuple(base.shape)}, "
                         f"{tuple(output.shape)} and {tuple(target.shape)}")
    d = (output - base).double()
    energy = d.pow(2).sum()
    if energy == 0:
        return 1.0
    return max(0.0, ((d * (target - base).double()).sum() / energy).item())


def init_weights_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix / CycleGAN initialisation: conv weights ~ N(0, std), norm gains ~ N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

def patch_bce(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Mean binary cross-entropy of a grid of patch logits (B, 1, P, P) against all-real or all-fake."""
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def pix2pix_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss on the pairs (x, y) and (x, G(x)): ``0.5 * (BCE(real, 1) + BCE(fake, 0))``.

    Isola et al. halve D's objective "to slow down the rate at which D learns relative to G".
    """
    return 0.5 * (patch_bce(real_logits, True) + patch_bce(fake_logits, False))


def pix2pix_g_loss(fake_logits: torch.Tensor, y_fake: torch.Tensor, y_real: torch.Tensor,
                   lambda_l1: float = 100.0, reconstruction: str = "l1") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G's loss: the non-saturating cGAN term plus ``lambda_l1`` times the mean absolute error.

    ``reconstruction="l2"`` uses the mean squared error instead, as the Context Encoders of Pathak et
    al. 2016 did for inpainting: L1 pulls each pixel to the conditional median, L2 to the
    conditional mean, and the mean is what PSNR rewards where the content is uncertain (a hole).

    Args:
        fake_logits: D's patch logits on (x, G(x)), (B, 1, P, P).
        y_fake: G(x), (B, C, H, W) in [-1, 1].
        y_real: the target y, same shape.
        lambda_l1: weight of the L1 term (100 in the paper).
        reconstruction: "l1" (the paper) or "l2".

    Returns:
        ``(total, gan_term, l1_term)``: scalar tensors; total = gan_term + lambda_l1 * l1_term (the
        mean squared error in place of l1_term with ``reconstruction="l2"``).
    """
    if reconstruction not in RECONSTRUCTIONS:
        raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {reconstruction!r}")
    if y_fake.shape != y_real.shape:
        raise ValueError(f"y_fake and y_real must have the same shape, got {tuple(y_fake.shape)} and {tuple(y_real.shape)}")
    gan = patch_bce(fake_logits, True)                  # -log D(x, G(x)), averaged over patches
    error = y_fake.float() - y_real.float()
    l1 = error.abs().mean() if reconstruction == "l1" else error.pow(2).mean()  # L1 by default: less blur (Isola et al., Sec. 3.1)
    return gan + lambda_l1 * l1, gan, l1
