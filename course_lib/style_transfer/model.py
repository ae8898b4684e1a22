"""AdaIN style transfer's network (Huang & Belongie 2017): a fixed encoder, AdaIN, a trained decoder.

The encoder is a feature network of ``features``: the first layers of the random VGG-shaped net, up
to ``encoder_layer`` (Huang & Belongie use ImageNet VGG-19 up to relu4_1; offline, its random twin
up to relu2_1 by default, as deeper random features are harder to invert). The decoder mirrors it, as in the paper: 3x3 convolutions with reflection
padding and ReLU, nearest-neighbour upsampling where the encoder pooled, no normalisation, and a last
convolution to the image's channels. Shapes with W = base_channels and encoder_layer relu3_1:

    content, style (B, 3, H, W) -> encoder -> (B, 4W, H/4, W/4) -> AdaIN (+ alpha blend) -> t
    t (B, 4W, H/4, W/4) -> conv, ReLU, up -> (B, 2W, H/2, W/2) -> conv, ReLU, conv, ReLU, up
      -> (B, W, H, W) -> conv, ReLU -> conv -> (B, 3, H, W)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.style_transfer.adain import adaptive_instance_norm, blend
from course_lib.style_transfer.features import VGG19_BLOCKS, RandomVGG
from course_lib.style_transfer.images import resize

ENCODER_LAYERS = ("relu2_1", "relu3_1", "relu4_1")  # where the encoder may end (and AdaIN acts)


@dataclass
class AdaINConfig:
    """The architecture of an AdaIN network: its random VGG encoder and the decoder that mirrors it."""

    img_channels: int = 3             # channels of the content, style and output images
    base_channels: int = 16           # width of the encoder's first block (it doubles per block, as VGG's)
    encoder_layer: str = "relu2_1"    # the encoder's last layer, where AdaIN acts
    encoder_seed: int = 0             # seeds the encoder's random weights (they are stored with the decoder's too)

    def __post_init__(self) -> None:
        if self.encoder_layer not in ENCODER_LAYERS:
            raise ValueError(f"encoder_layer must be one of {ENCODER_LAYERS}, got {self.encoder_layer!r}")
        if self.img_channels not in (1, 3):
            raise ValueError(f"img_channels must be 1 or 3, got {self.img_channels!r}")

    @property
    def blocks(self) -> int:
        """How many VGG blocks the encoder enters (relu3_1: 3); it pools blocks - 1 times."""
        return int(self.encoder_layer[4])

    def widths(self) -> list[int]:
        """The channels of each block the encoder enters: [W, 2W, 4W] for relu3_1."""
        return [self.base_channels * widths[0] // 64 for widths in VGG19_BLOCKS[:self.blocks]]

    def style_layers(self) -> tuple[str, ...]:
        """The encoder layers of the style loss: relu1_1 up to the AdaIN layer (Huang & Belongie: relu1_1 ... relu4_1)."""
        return tuple(f"relu{b}_1" for b in range(1, self.blocks + 1))


def conv3x3(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 convolution with reflection padding (no border artefacts), as Huang & Belongie's decoder."""
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3))


class Decoder(nn.Module):
    """g: AdaIN features (B, widths[-1], H / 2^(blocks-1), W / 2^(blocks-1)) -> an image (B, img_channels, H, W), not clamped."""

    def __init__(self, cfg: AdaINConfig) -> None:
        super().__init__()
        widths = cfg.widths()
        layers: list[nn.Module] = []
        for wider, narrower in zip(widths[::-1], widths[-2::-1]):  # e.g. 4W -> 2W, then 2W -> W
            layers += [conv3x3(wider, narrower), nn.ReLU(),
                       nn.Upsample(scale_factor=2, mode="nearest"),                # (B, narrower, 2h, 2w)
                       conv3x3(narrower, narrower), nn.ReLU()]
        layers.append(conv3x3(widths[0], cfg.img_channels))                        # (B, img_channels, H, W)
        self.net = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.net(t)


class AdaINNet(nn.Module):
    """Arbitrary style transfer in one pass: g(alpha AdaIN(f(c), f(s)) + (1 - alpha) f(c)).

    ``encoder`` (frozen, always in eval mode) returns the maps of ``cfg.style_layers()``, the last of
    which is the AdaIN layer; ``decoder`` is what training changes.
    """

    def __init__(self, cfg: AdaINConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = RandomVGG(cfg.img_channels, cfg.base_channels, style_layers=cfg.style_layers(),
                                 content_layer=cfg.encoder_layer, seed=cfg.encoder_seed)
        self.decoder = Decoder(cfg)
        self.multiple = 2 ** (cfg.blocks - 1)  # image sides the encoder halves exactly

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's maps of x (B, C, H, W), relu1_1 ... the AdaIN layer; H, W multiples of ``multiple``."""
        return self.encoder(x)

    def transfer_features(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """t = alpha AdaIN(f(c), f(s)) + (1 - alpha) f(c): (B, C_t, H / m, W / m) for content (B, C, H, W)."""
        f_c = self.encode(content)[-1]
        f_s = self.encode(style)[-1]
        return blend(f_c, adaptive_instance_norm(f_c, f_s), alpha)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """Stylised images (B, C, H, W) in [-1, 1] of content (B, C, H, W) with style (B or 1, C, H_s, W_s).

        Any H, W >= the encoder's ``min_size``: sides that are not multiples of 2^(pools) are resized up
        to the next multiple and the result back.
        """
        for name, x in (("content", content), ("style", style)):
            if x.dim() != 4 or x.shape[1] != self.cfg.img_channels or min(x.shape[-2:]) < self.encoder.min_size:
                raise ValueError(f"{name} must be images (B, {self.cfg.img_channels}, H, W) with H, W >= "
                                 f"{self.encoder.min_size}, got {tuple(x.shape)}")
        hw = tuple(content.shape[-2:])
        padded = tuple(-(-side // self.multiple) * self.multiple for side in hw)
        style_hw = tuple(-(-side // self.multiple) * self.multiple for side in style.shape[-2:])
        t = self.transfer_features(resize(content, padded), resize(style, style_hw), alpha)
        return resize(self.decoder(t).clamp(-1, 1), hw)

    def train(self, mode: bool = True) -> AdaINNet:
        super().train(mode)
        self.encoder.train(False)  # fixed
        return self

