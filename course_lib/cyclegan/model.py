"""CycleGAN: unpaired translation between two domains with cycle-consistency.

Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks". With images of domain A (handwritten digits) and of domain B (printed digits) but no
pairs, train two generators, G_AB: A -> B and G_BA: B -> A (the paper's G and F), and two
discriminators, D_B (is this a real B?) and D_A. The adversarial losses alone allow any mapping
that matches the distributions, e.g. one that turns every 3 into a printed 8; the **cycle loss**
asks that translating there and back returns the input,

    L_cyc = E_a ||G_BA(G_AB(a)) - a||_1 + E_b ||G_AB(G_BA(b)) - b||_1,

in *both* directions, so each translation has to keep enough of its input to undo it. The
**identity loss** ``E_b ||G_AB(b) - b||_1 + E_a ||G_BA(a) - a||_1`` asks a generator to leave an image
that already belongs to its output domain alone (it stops colour and intensity shifts). The full
generator objective is

    L_G = L_LSGAN(G_AB, D_B) + L_LSGAN(G_BA, D_A) + lambda_cycle L_cyc + lambda_identity lambda_cycle L_id,

with the least-squares GAN loss (Mao et al. 2017), and D is trained on a **history** of 50 earlier
fakes instead of only the newest ones (Shrivastava et al. 2017), which damps oscillation.

The generator is Johnson et al.'s (2016) ResNet: a 7x7 convolution, two stride-2 convolutions,
residual blocks at 1/4 resolution, two upsampling stages and a 7x7 convolution to a tanh, with
instance norm and reflection padding. The discriminator is pix2pix's PatchGAN
(``course_lib.pix2pix.PatchDiscriminator``) with instance norm, unconditional.

Read top-down: config, generator, the pair of generators, losses, the history pool. The training
step, the run config and the run are in ``course_lib.cyclegan.training``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.pix2pix.model import NORMS, PatchDiscriminator, check_pair_images, norm_layer

UPSAMPLES = ("transpose", "resize")  # how the generator doubles its resolution


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass
class CycleGANConfig:
    """Architecture of CycleGAN's generators and discriminators (both domains share it)."""

    img_channels: int = 1          # C: channels of the images of both domains
    img_size: int = 32             # height = width; divisible by 2 ** n_down
    base_channels: int = 32        # W: width of the first and last stage (2W, 4W after the downsamplings)
    n_down: int = 2                # stride-2 downsamplings before the residual blocks
    n_blocks: int = 4              # residual blocks at the lowest resolution (the paper: 6 at 128 px, 9 at 256 px)
    upsample: str = "transpose"    # "transpose" (the paper: stride-2 transposed conv) or "resize" (nearest x2 + conv)
    norm: str = "instance"         # "instance" (the paper) or "batch"
    d_base_channels: int = 32      # width of D's first layer
    d_layers: int = 2              # stride-2 layers of the PatchGAN D (2: 34x34 patches, a whole 32x32 digit)

    def __post_init__(self) -> None:
        for name in ("img_channels", "img_size", "base_channels", "n_blocks", "d_base_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.n_down, int) or self.n_down < 0 or self.img_size % 2 ** self.n_down:
            raise ValueError(f"n_down must be an int >= 0 with img_size divisible by 2 ** n_down, "
                             f"got n_down={self.n_down!r}, img_size={self.img_size}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {self.upsample!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not isinstance(self.d_layers, int) or not 0 <= self.d_layers <= 5:
            raise ValueError(f"d_layers must be an int in [0, 5], got {self.d_layers!r}")


# ----------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------

class ResidualBlock(nn.Module):
    """x + [reflect-pad, conv 3x3, norm, ReLU, reflect-pad, conv 3x3, norm](x); keeps (B, C, H, W)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), norm_layer(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def up_stage(in_channels: int, out_channels: int, upsample: str, norm: str) -> nn.Sequential:
    """Double the resolution: a transposed conv 3x3 stride 2, or nearest-neighbour x2 then a conv 3x3.

    The transposed convolution's kernel (3) is not divisible by its stride (2), so output pixels
    get uneven numbers of contributions: the checkerboard pattern of Odena et al. 2016
    ("Deconvolution and Checkerboard Artifacts"). Resize-then-convolve cannot make it.
    """
    if upsample == "transpose":
        conv = [nn.ConvTranspose2d(in_channels, out_channels, 3, 2, padding=1, output_padding=1, bias=False)]
    else:
        conv = [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                nn.Conv2d(in_channels, out_channels, 3, bias=False)]
    return nn.Sequential(*conv, norm_layer(norm, out_channels), nn.ReLU())


class ResnetGenerator(nn.Module):
    """Johnson et al.'s ResNet generator as used by CycleGAN, for one direction.

    Shapes (W = base_channels, n_down = 2, S = img_size):
        x (B, C, S, S) -> c7s1 (B, W, S, S) -> (B, 2W, S/2, S/2) -> (B, 4W, S/4, S/4)
        -> n_blocks residual blocks (B, 4W, S/4, S/4) -> (B, 2W, S/2, S/2) -> (B, W, S, S)
        -> c7s1 + tanh (B, C, S, S) in [-1, 1].
    """

    def __init__(self, cfg: CycleGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        W, norm = cfg.base_channels, cfg.norm
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cfg.img_channels, W, 7, bias=False),
                                   norm_layer(norm, W), nn.ReLU()]
        width = W
        for _ in range(cfg.n_down):
            layers += [nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), norm_layer(norm, 2 * width), nn.ReLU()]
            width *= 2
        layers += [ResidualBlock(width, norm) for _ in range(cfg.n_blocks)]
        for _ in range(cfg.n_down):
            layers.append(up_stage(width, width // 2, cfg.upsample, norm))
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, cfg.img_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_pair_images(x, self.cfg.img_channels, self.cfg.img_size)
        return self.net(x)


class CycleGAN(nn.Module):
    """The two generators of a CycleGAN: ``G_AB`` (A -> B) and ``G_BA`` (B -> A).

    ``forward(x, direction)`` translates with one of them; the discriminators are built
    separately (``discriminators``), since only the generators are needed after training.
    """

    def __init__(self, cfg: CycleGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.G_AB = ResnetGenerator(cfg)
        self.G_BA = ResnetGenerator(cfg)

    def forward(self, x: torch.Tensor, direction: str = "AB") -> torch.Tensor:
        if direction not in ("AB", "BA"):
            raise ValueError(f"direction must be 'AB' or 'BA', got {direction!r}")
        return self.G_AB(x) if direction == "AB" else self.G_BA(x)


def discriminators(cfg: CycleGANConfig) -> tuple[PatchDiscriminator, PatchDiscriminator]:
    """``(D_A, D_B)``: unconditional PatchGANs judging real vs translated images of each domain."""
    make = lambda: PatchDiscriminator(cfg.img_channels, cfg.d_base_channels, cfg.d_layers, cfg.norm)  # noqa: E731
    return make(), make()


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

def lsgan_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares D loss (Mao et al. 2017): ``0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2)``.

    The 0.5 is CycleGAN's: D learns at half G's rate. Scores of any shape (patch grids included).
    """
    return 0.5 * ((real_scores.float() - 1).pow(2).mean() + fake_scores.float().pow(2).mean())


def lsgan_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares G loss: ``mean (D(G(x)) - 1)^2``; it keeps pushing fakes that D already accepts a little."""
    return (fake_scores.float() - 1).pow(2).mean()


def cycle_loss(x_a: torch.Tensor, x_a_rec: torch.Tensor, x_b: torch.Tensor, x_b_rec: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency in both directions: ``mean|G_BA(G_AB(a)) - a| + mean|G_AB(G_BA(b)) - b|``.

    Args:
        x_a: images of A; x_a_rec = G_BA(G_AB(x_a)), same shape.
        x_b: images of B; x_b_rec = G_AB(G_BA(x_b)), same shape.
    """
    for name, (x, rec) in {"a": (x_a, x_a_rec), "b": (x_b, x_b_rec)}.items():
        if x.shape != rec.shape:
            raise ValueError(f"x_{name} and x_{name}_rec must have the same shape, got {tuple(x.shape)} and {tuple(rec.shape)}")
    return (x_a_rec - x_a).abs().mean() + (x_b_rec - x_b).abs().mean()


def identity_loss(G_AB: nn.Module, G_BA: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """Identity loss: each generator fed an image of its *output* domain should return it unchanged.

    ``mean|G_AB(x_b) - x_b| + mean|G_BA(x_a) - x_a|`` (Zhu et al. 2017, Sec. 5.2, after Taigman et al. 2017).
    """
    return (G_AB(x_b) - x_b).abs().mean() + (G_BA(x_a) - x_a).abs().mean()


# ----------------------------------------------------------------------------------------------
# The image history pool
# ----------------------------------------------------------------------------------------------

class ImagePool(nn.Module):
    """A buffer of earlier generated images that D is trained on (Shrivastava et al. 2017).

    While the pool is not full, new images are stored and returned as they are. Once it is full,
    each new image is, with probability 1/2, swapped with a random stored one (D sees the old
    image, the new one takes its slot), else returned as it is. One batch is handled with a few
    tensor operations, not a Python loop per image; the images swapped within one batch go to
    distinct slots. The stored images are buffers, so the pool is saved with a checkpoint and
    moves with ``.to(device)``.

    Args:
        capacity: images kept (50 in CycleGAN; 0 turns the pool off).
        image_shape: (C, H, W) of one image.
    """

    def __init__(self, capacity: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        if not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be an int >= 0, got {capacity!r}")
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {image_shape!r}")
        self.capacity = capacity
        self.register_buffer("images", torch.zeros(capacity, *image_shape))  # (capacity, C, H, W)
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))    # slots filled so far

    def forward(self, fakes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The batch for D: (B, C, H, W) detached images, each a new fake or an older one from the pool.

        Args:
            fakes: (B, C, H, W) the newest generated images.
            generator: a CPU ``torch.Generator`` for the coin flips and slots (None: torch's default).
        """
        if not isinstance(fakes, torch.Tensor) or tuple(fakes.shape[1:]) != tuple(self.images.shape[1:]):
            raise ValueError(f"fakes must have shape (B, {', '.join(map(str, self.images.shape[1:]))}), "
                             f"got {tuple(getattr(fakes, 'shape', ()))}")
        fakes = fakes.detach()
        if self.capacity == 0:
            return fakes.clone()
        out = fakes.clone()
        count = int(self.count)
        n_fill = min(len(fakes), self.capacity - count)
        if n_fill:  # not full yet: store the first images and return them unchanged
            self.images[count:count + n_fill] = fakes[:n_fill].to(self.images.dtype)
            self.count += n_fill
        rest = len(fakes) - n_fill
        if rest:
            swap = torch.rand(rest, generator=generator) < 0.5             # (rest,) coin per image
            rows = (n_fill + swap.nonzero()[:, 0])[: self.capacity]          # batch rows that swap
            slots = torch.randperm(self.capacity, generator=generator)[: len(rows)]  # distinct slots
            rows, slots = rows.to(fakes.device), slots.to(fakes.device)
            out[rows] = self.images[slots].to(out.dtype)    # D sees the old images (a copy)
            self.images[slots] = fakes[rows].to(self.images.dtype)  # the new ones take their slots
        return out
