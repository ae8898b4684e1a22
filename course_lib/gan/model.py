"""The DCGAN family for 32x32 images: generator, discriminator, initialisation and sampling.

Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks" (DCGAN), gave the recipe this module follows: no pooling (strided
convolutions in D, transposed convolutions in G), batch norm in both networks except D's first
layer and G's last, ReLU in G with a tanh output, LeakyReLU(0.2) in D, weights from N(0, 0.02).
With W = ``base_channels`` and C = ``img_channels``:

    G: z (B, z_dim) -> linear -> (B, 4W, 4, 4) -> (B, 2W, 8, 8) -> (B, W, 16, 16) -> (B, C, 32, 32)
    D: x (B, C, 32, 32) -> (B, W, 16, 16) -> (B, 2W, 8, 8) -> (B, 4W, 4, 4) -> flatten -> logit (B,)

Later lessons switch parts on through ``DCGANConfig``:

- class-conditional models (``num_classes > 0``; Mirza & Osindero 2014, "Conditional Generative
  Adversarial Nets"). G's batch norms become class-conditional: a learned class embedding sets
  each layer's scale and shift (conditional batch norm, as in the generator of Miyato & Koyama
  2018; the shared embedding with a linear map per layer is BigGAN's, Brock et al. 2019). D either adds a projection term to its logit (Miyato & Koyama 2018, "cGANs with
  Projection Discriminator") or reads one-hot label maps stacked onto the image channels
  ("concat", the older input-concatenation design).
- spectral normalisation of every layer of D (Miyato et al. 2018, "Spectral Normalization for
  Generative Adversarial Networks"), which replaces D's batch norm.
- a critic for WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"): D without
  batch norm, because the gradient penalty is a per-sample quantity and batch norm mixes samples.

Read top-down: config, the two networks, initialisation. Losses live in ``course_lib.losses``; the
training steps, the run config and the run are in ``course_lib.gan.training``. The noise z, balanced
labels and ``sample`` (n images of G) come from the shared layer ``course_lib.run``: every family draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from course_lib.run.inputs import balanced_labels, check_images, check_labels, sample_z  # noqa: F401 (re-exported)
from course_lib.run.sampling import sample  # noqa: F401 (re-exported: n images of G, from noise and balanced labels)

CONDITIONINGS = ("projection", "concat")  # how a conditional D reads the labels


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass
class DCGANConfig:
    """Architecture of a DCGAN pair. The defaults are the usual 32x32 DCGAN for grey digits.

    With the defaults G has about 0.92M parameters and D about 0.66M.
    """

    z_dim: int = 64                    # size of the noise vector z ~ N(0, I) fed to G
    img_channels: int = 1              # C: channels of the images (1 grey, 3 colour)
    img_size: int = 32                 # height = width of the images; only 32 is supported
    base_channels: int = 64            # W: width of G's last and D's first stage; the others have 2W and 4W
    num_classes: int = 0               # 0: unconditional; K > 0: G and D take labels in [0, K)
    embed_dim: int = 32                # G only: size of the class embedding that feeds G's conditional batch norms
    conditioning: str = "projection"   # D only: "projection" (Miyato & Koyama 2018) or "concat" (one-hot maps)
    spectral_norm: bool = False        # D only: spectral norm on every layer (Miyato et al. 2018); no batch norm
    critic: bool = False               # D only: no normalisation at all, for WGAN-GP (Gulrajani et al. 2017)

    def __post_init__(self) -> None:
        for name in ("z_dim", "img_channels", "base_channels", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.img_size != 32:
            raise ValueError(
                f"img_size must be 32 (G grows 4x4 to 32x32 in three stride-2 stages), got {self.img_size!r}; "
                "pad or resize the images to 32x32"
            )
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0: unconditional), got {self.num_classes!r}")
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be 'projection' or 'concat', got {self.conditioning!r}")

    @property
    def batch_norm_in_d(self) -> bool:
        """D's middle blocks use batch norm unless D is a critic or spectrally normalised."""
        return not (self.critic or self.spectral_norm)


# ----------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------

class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift come from the class: ``BN(h) * (1 + gain(e)) + bias(e)``.

    ``BN`` normalises each channel with the batch statistics (running statistics in eval mode)
    and has no affine parameters of its own. ``e`` is the class embedding of each sample, (B, E),
    and ``gain`` and ``bias`` are linear maps ``E -> C`` without bias terms, so every class gets
    its own scale and shift per channel. Both maps start at zero: a fresh layer is a plain batch
    norm and every class starts from the same G.

    Why a linear map of an embedding, not a (K, C) table of scales? The two are equally
    expressive (K <= E), but Adam moves every parameter by about ``lr`` per step: a table entry
    changes by ~``lr``, while ``gain(e) = W e`` changes by ~``lr * sum(|e_i|)``, about 25x more
    for a 32-d N(0, 1) embedding. On mnist5k (width 32, projection D, same seed) the samples of
    the table G were classified as their label 17% of the time after 1,000 steps, those of this
    G 70%.

    Args:
        channels: C, the channels of the (B, C, H, W) input.
        embed_dim: E, the size of the class embedding.
    """

    def __init__(self, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(embed_dim, channels, bias=False)  # e -> gamma_y - 1, (B, C)
        self.bias = nn.Linear(embed_dim, channels, bias=False)  # e -> beta_y, (B, C)
        zero_init_(self)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) features and (B, E) class embeddings -> (B, C, H, W)."""
        gain = 1 + self.gain(e)[:, :, None, None]   # (B, C, 1, 1)
        bias = self.bias(e)[:, :, None, None]       # (B, C, 1, 1)
        return self.bn(h) * gain + bias


def zero_init_(cbn: ConditionalBatchNorm2d) -> ConditionalBatchNorm2d:
    """Set a conditional batch norm's gain and bias maps to zero: a plain batch norm for every class."""
    nn.init.zeros_(cbn.gain.weight)
    nn.init.zeros_(cbn.bias.weight)
    return cbn


def _norm(channels: int, embed_dim: int) -> nn.Module:
    """G's normalisation: batch norm, or conditional batch norm when G embeds classes (embed_dim > 0)."""
    return ConditionalBatchNorm2d(channels, embed_dim) if embed_dim else nn.BatchNorm2d(channels)


def up_block(in_channels: int, out_channels: int, embed_dim: int = 0) -> nn.Sequential:
    """Transposed conv 4x4 stride 2 (doubles H and W), batch norm (conditional if embed_dim > 0), ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),
        _norm(out_channels, embed_dim),
        nn.ReLU(),
    )


class Generator(nn.Module):
    """G: noise z (B, z_dim) [and labels (B,)] -> images x_fake (B, C, 32, 32) in [-1, 1].

    The first layer is a linear map to a 4x4 feature map, the same operation as DCGAN's 4x4
    transposed convolution of a 1x1 input. A conditional G (``num_classes > 0``) looks the label
    up in a learned embedding ``embed`` (K, embed_dim), N(0, 1) like z, and replaces every batch
    norm with a ``ConditionalBatchNorm2d`` fed by it: the label sets the scale and shift of the
    features at 4x4, 8x8 and 16x16, while z alone enters the first layer.

    Why not concatenate a label embedding to z (Mirza & Osindero's design)? On mnist5k that G
    learnt to ignore z: its first layer's label part outgrew the noise part, the batch norm right
    after it normalised by statistics dominated by the label, and within 1,000 steps every class
    had one prototype (recall 0.00 with the course metrics, for both discriminators). Conditional
    batch norm normalises z's features first and lets the label act only through scales and
    shifts, so the noise cannot be drowned out.

    Args:
        cfg: a ``DCGANConfig``.
    """

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.num_classes = cfg.z_dim, cfg.num_classes
        width = cfg.base_channels
        k = cfg.embed_dim if cfg.num_classes else 0  # 0: plain batch norms
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim) if cfg.num_classes else None  # (K, E), N(0, 1)
        self.project = nn.Linear(cfg.z_dim, 4 * width * 4 * 4, bias=False)  # (B, 16 * 4W)
        self.blocks = nn.Sequential(
            _norm(4 * width, k),
            nn.ReLU(),                                        # (B, 4W, 4, 4)
            up_block(4 * width, 2 * width, k),               # (B, 2W, 8, 8)
            up_block(2 * width, width, k),                   # (B, W, 16, 16)
            nn.ConvTranspose2d(width, cfg.img_channels, kernel_size=4, stride=2, padding=1),  # (B, C, 32, 32)
            nn.Tanh(),                                        # no batch norm on G's output layer
        )
        dcgan_init_(self)
        for m in self.modules():  # dcgan_init_ drew the conditional maps from N(0, 0.02): start them at zero
            if isinstance(m, ConditionalBatchNorm2d):
                zero_init_(m)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images.

        Args:
            z: noise, shape (B, z_dim), float, usually N(0, I).
            labels: (B,) int64 class indices in [0, num_classes) for a conditional G, else None.

        Returns:
            x_fake, shape (B, img_channels, 32, 32), values in [-1, 1].
        """
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.z_dim or z.shape[0] == 0:
            raise ValueError(f"z must have shape (B, {self.z_dim}) with B >= 1, got {tuple(getattr(z, 'shape', ()))}")
        check_labels(labels, z.shape[0], self.cfg.num_classes)
        h = self.project(z).view(z.shape[0], 4 * self.cfg.base_channels, 4, 4)  # (B, 4W, 4, 4)
        if self.embed is None:
            return self.blocks(h)                                                # (B, C, 32, 32)
        e = self.embed(labels).to(h.dtype)                                       # (B, embed_dim)
        for block in self.blocks:  # the same layers, handing e to each conditional batch norm
            for layer in block if isinstance(block, nn.Sequential) else [block]:
                h = layer(h, e) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h                                                                 # (B, C, 32, 32)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images from noise: ``forward``, under the name every sampler of the course has (``course_lib.run.generate``)."""
        return self(z, labels)


# ----------------------------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------------------------

def down_block(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """Conv 4x4 stride 2 (halves H and W), optional batch norm, LeakyReLU(0.2)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """D: images x (B, C, 32, 32) [and labels (B,)] -> logits (B,).

    The features ``h = phi(x)`` are the flattened (B, 16 * 4W) output of the last conv stage; the
    unconditional logit is ``linear(h)``, the same as DCGAN's final 4x4 convolution.

    Conditional variants (``num_classes > 0``):

    - ``"projection"``: ``logit = linear(h) + <embed(labels), h>`` (Miyato & Koyama 2018). The
      embedding is a class-specific second linear head, so it starts like the head, N(0, 0.02).
    - ``"concat"``: one-hot label maps (B, K, 32, 32) are stacked onto the image channels before
      the first convolution, so D's input has C + K channels.

    Batch norm sits in the two middle blocks (never the first, as in DCGAN) unless
    ``cfg.critic`` or ``cfg.spectral_norm``. A critic (WGAN-GP) has no normalisation at all: the
    gradient penalty is defined per sample, and batch norm makes each output depend on the whole
    batch. (Gulrajani et al. suggest layer norm as a drop-in; this small D trains without it.)
    With ``cfg.spectral_norm`` every conv, the linear head and the projection embedding are
    spectrally normalised with ``torch.nn.utils.parametrizations.spectral_norm`` (one power
    iteration per training-mode forward).

    Args:
        cfg: a ``DCGANConfig``.
    """

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.base_channels
        self.concat = cfg.num_classes > 0 and cfg.conditioning == "concat"
        in_channels = cfg.img_channels + (cfg.num_classes if self.concat else 0)
        batch_norm = cfg.batch_norm_in_d
        self.blocks = nn.Sequential(
            down_block(in_channels, width, batch_norm=False),   # (B, W, 16, 16): no batch norm on D's input layer
            down_block(width, 2 * width, batch_norm),           # (B, 2W, 8, 8)
            down_block(2 * width, 4 * width, batch_norm),       # (B, 4W, 4, 4)
            nn.Flatten(),                                        # (B, 16 * 4W): the features h
        )
        self.head = nn.Linear(4 * width * 4 * 4, 1)             # (B, 1)
        self.embed = None
        if cfg.num_classes and cfg.conditioning == "projection":
            self.embed = nn.Embedding(cfg.num_classes, 4 * width * 4 * 4)  # one (16 * 4W) vector per class
        dcgan_init_(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        if cfg.spectral_norm:  # after initialisation: spectral_norm wraps the initialised weights
            for module in list(self.modules()):
                if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    _spectral_norm(module)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Score images.

        Args:
            x: images, shape (B, img_channels, 32, 32), float, real ones in [-1, 1].
            labels: (B,) int64 class indices in [0, num_classes) for a conditional D, else None.

        Returns:
            logits, shape (B,), unbounded (``sigmoid(logit)`` is D's probability of "real" for
            the BCE loss; a raw score for the hinge and Wasserstein losses).
        """
        check_images(x, self.cfg)
        check_labels(labels, x.shape[0], self.cfg.num_classes)
        if self.concat:
            maps = F.one_hot(labels, self.cfg.num_classes).to(x.dtype)   # (B, K)
            maps = maps[:, :, None, None].expand(-1, -1, *x.shape[2:])    # (B, K, 32, 32)
            x = torch.cat([x, maps], dim=1)                               # (B, C + K, 32, 32)
        h = self.blocks(x)                                                # (B, 16 * 4W)
        logits = self.head(h)[:, 0]                                       # (B, 1) -> (B,)
        if self.embed is not None:
            logits = logits + (self.embed(labels) * h).sum(dim=1)         # + <embed(y), h>, (B,)
        return logits


# ----------------------------------------------------------------------------------------------
# Initialisation
# ----------------------------------------------------------------------------------------------

def _raw_weight(module: nn.Module) -> torch.Tensor:
    """The weight parameter itself, also under a parametrisation such as spectral norm."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def dcgan_init_(module: nn.Module) -> nn.Module:
    """Initialise in place as in Radford et al. 2016: conv and linear weights N(0, 0.02), biases 0.

    Batch-norm scales are drawn from N(1, 0.02) and their shifts set to 0 (the usual reading of
    the paper, as in pytorch/examples). Embeddings are left alone: G's class embedding keeps
    PyTorch's N(0, 1) (``Generator`` then zeroes its conditional batch norms' maps), D's
    projection embedding is initialised by ``Discriminator``. ``Generator`` and ``Discriminator`` call this at construction.

    Args:
        module: any module; every Conv2d, ConvTranspose2d, Linear and BatchNorm inside it is reset.

    Returns:
        ``module`` itself, for chaining.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(_raw_weight(m), mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.normal_(m.weight, mean=1.0, std=0.02)
            nn.init.zeros_(m.bias)
    return module
