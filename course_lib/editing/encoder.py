"""An encoder x -> W+ for a trained StyleGAN: inversion in one forward pass (pSp, e4e).

Optimisation inverts well but slowly (hundreds of generator passes per image). An encoder learns the
inverse once: E(x) gives the W+ code of x in one pass (Richardson et al. 2021, "pixel2style2pixel").
It predicts offsets from the average w, one per layer; the training loss is

    d(G(E(x)), x)                          reconstruction (pixels + the classifier's features)
    + lambda_latent mean (E(G(w)) - w)^2   on the generator's own samples, whose codes are known
    + lambda_delta mean (w_i - w_0)^2      the layers' codes kept close to each other (e4e, Tov et al. 2021)

The last term is e4e's answer to the distortion-editability trade-off: codes near the "one w for
every layer" subspace reconstruct a little worse but edit like the generator's own codes. The
encoder's output is also a good start for a few optimisation steps (hybrid inversion).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.editing.inversion import Distance, Projection, ProjectorConfig, pixel_distance, project
from course_lib.run.inputs import prepare_images
from course_lib.run.steps import autocast
from course_lib.stylegan import Generator


@dataclass
class EncoderConfig:
    """Architecture of the encoder (the defaults: 1 x 32 x 32 digits into 8 codes of 64, ~0.6M parameters)."""

    img_channels: int = 1            # C of the images
    base_channels: int = 16          # width at 32x32; doubles at every halving of the resolution
    num_ws: int = 8                  # codes predicted, one per generator layer
    w_dim: int = 64                  # size of each code

    def __post_init__(self) -> None:
        for name in ("img_channels", "base_channels", "num_ws", "w_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")


class Encoder(nn.Module):
    """x (B, C, 32, 32) -> W+ codes (B, num_ws, w_dim) = w_avg + offsets.

        (B, C, 32, 32) -> conv s1 -> (B, W, 32, 32) -> [conv s2, conv] x3 -> (B, 8W, 4, 4)
        -> 4x4 conv (no padding) -> (B, 8W, 1, 1) -> flatten (B, 8W) -> linear -> (B, num_ws * w_dim)
        -> reshape -> offsets (B, num_ws, w_dim)

    The 4x4 convolution reads the whole 4x4 map, as a linear layer on the flattened features would, with
    a 8W-wide bottleneck before the codes (pSp's map2style ends the same way, with a 1x1 map and a linear
    layer); ~0.6M parameters with W = 16.

    ``w_avg`` (w_dim,) is a buffer set from the generator (``from_generator``); the last layer starts at
    zero, so an untrained encoder returns the average code for every image.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.base_channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.img_channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        for i in range(3):
            c_in, c_out = width * 2 ** i, width * 2 ** (i + 1)
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.LeakyReLU(0.2),
                       nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(8 * width, 8 * width, 4), nn.LeakyReLU(0.2)]        # (B, 8W, 1, 1)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(8 * width, cfg.num_ws * cfg.w_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    @classmethod
    def from_generator(cls, G: Generator, base_channels: int = 16) -> "Encoder":
        """An untrained encoder sized for ``G``, starting at G's average w."""
        encoder = cls(EncoderConfig(G.cfg.img_channels, base_channels, G.num_ws, G.cfg.w_dim))
        encoder.w_avg.copy_(G.w_avg)
        return encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (self.cfg.img_channels, 32, 32):
            raise ValueError(f"x must be (B, {self.cfg.img_channels}, 32, 32), got {tuple(x.shape)}")
        offsets = self.head(self.features(x).flatten(1))                        # (B, num_ws * w_dim)
        return self.w_avg + offsets.view(-1, self.cfg.num_ws, self.cfg.w_dim)    # (B, num_ws, w_dim)


def delta_penalty(ws: torch.Tensor) -> torch.Tensor:
    """e4e's regulariser: the mean of (w_i - w_0)^2 over the layers i > 0 of W+ codes (B, num_ws, w_dim)."""
    return (ws[:, 1:] - ws[:, :1]).pow(2).mean()


def encoder_step(E: Encoder, G: Generator, optimizer: torch.optim.Optimizer, x_real: torch.Tensor,
                 distance: Distance = pixel_distance, lambda_latent: float = 1.0, lambda_delta: float = 0.1,
                 generator: torch.Generator | None = None, amp: bool = False,
                 channels_last: bool = False) -> dict[str, float]:
    """One update of the encoder on a real batch and as many of G's own samples (G stays frozen).

    Args:
        E, G: the encoder and the (frozen) generator.
        optimizer: over E's parameters.
        x_real: (B, C, 32, 32) real images in [-1, 1].
        distance: the reconstruction distance (B,).
        lambda_latent: weight of the code error on G's samples.
        lambda_delta: weight of e4e's penalty on the spread of the layers' codes.
        generator: seeds the z of G's samples.
        amp: bf16 autocast of E and G's synthesis (``course_lib.run.steps.autocast``); the losses are float32.
        channels_last: convert the images to channels_last (convert E once yourself).

    Returns:
        Floats for logging: ``loss``, ``real_rec``, ``fake_rec``, ``latent``, ``delta``.
    """
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        z = torch.randn(x_real.shape[0], G.z_dim, generator=generator).to(x_real.device)
        ws_fake = G.broadcast(G.mapping(z))                                      # (B, num_ws, w_dim), known codes
        x_fake = G.synthesis(ws_fake, noise_mode="const").clamp(-1, 1)
    x = prepare_images(torch.cat([x_real, x_fake]), channels_last, "x_real")    # (2B, C, 32, 32)
    with autocast(amp, x.device):
        ws = E(x)                                                                # (2B, num_ws, w_dim)
        rec = G.synthesis(ws, noise_mode="const")
    ws, rec = ws.float(), rec.float()
    rec_loss = distance(rec, x)                                                  # (2B,)
    real_rec, fake_rec = rec_loss[: len(x_real)].mean(), rec_loss[len(x_real):].mean()
    latent = F.mse_loss(ws[len(x_real):], ws_fake)
    delta = delta_penalty(ws)
    loss = real_rec + fake_rec + lambda_latent * latent + lambda_delta * delta
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "real_rec": real_rec.item(), "fake_rec": fake_rec.item(),
            "latent": latent.item(), "delta": delta.item()}


@torch.no_grad()
def encode(E: Encoder, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """W+ codes (N, num_ws, w_dim) of images (N, C, 32, 32), in batches, in eval mode."""
    E.eval()
    return torch.cat([E(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


HYBRID_STEPS = 55  # optimisation steps after the encoder, 18% of the projector's 300: on 32 training digits 50 steps
#                   reached 95.8% of W+ optimisation's PSNR and 60 steps 97.3% (the shipped encoder, the default schedule)


def hybrid_config(steps: int = HYBRID_STEPS) -> ProjectorConfig:
    """The projector's schedule for a start that is already close: the same ramps, no noise on the code
    (noise lets a start at the mean explore; here it would only undo part of the encoder's work)."""
    return ProjectorConfig(steps=steps, noise_factor=0.0)


def hybrid_invert(E: Encoder, G: Generator, x: torch.Tensor, steps: int = HYBRID_STEPS,
                  distance: Distance = pixel_distance, statistics: tuple[torch.Tensor, float] | None = None,
                  callback=None) -> Projection:
    """Hybrid inversion (pSp / e4e's suggestion): the encoder's W+ codes, then ``steps`` of W+ optimisation.

    Args:
        E, G: the encoder and the generator it was trained for.
        x: (B, C, 32, 32) targets in [-1, 1].
        steps: optimisation steps after the encoder (0: the encoder alone).
        distance, statistics, callback: as for ``project``.

    Returns:
        A ``Projection`` in W+ (its ``losses`` are empty for ``steps = 0``).
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    codes = encode(E, x).to(x.device)                                              # (B, num_ws, w_dim)
    if steps == 0:
        with torch.no_grad():
            images = G.eval().synthesis(codes, noise_mode="const").clamp(-1, 1)
        return Projection(codes, codes, images, "w+", [])
    if statistics is None:
        statistics = (G.w_avg.clone(), 1.0)  # the start is given; the spread only scales noise, which is off
    return project(G, x, "w+", hybrid_config(steps), distance=distance, init=codes, statistics=statistics,
                   callback=callback)
