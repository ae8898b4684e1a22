"""The variational autoencoder for 32x32 images: encoder, decoder, ELBO, importance-weighted bound.

Kingma & Welling 2014, "Auto-Encoding Variational Bayes", and Rezende et al. 2014, "Stochastic
Backpropagation and Approximate Inference in Deep Generative Models", train a decoder p(x|z) with
a prior p(z) = N(0, I) together with an encoder q(z|x) = N(mu, diag exp(logvar)) by maximising the
evidence lower bound (ELBO), per sample x:

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))  <=  log p(x)

The expectation is estimated with one reparameterised draw z = mu + exp(logvar / 2) * eps, eps ~
N(0, I), so gradients flow into mu and logvar; the KL between two Gaussians is in closed form. With
W = ``base_channels``, C = ``img_channels`` and D = ``latent_dim``:

    encoder: x (B, C, 32, 32) -> (B, W, 16, 16) -> (B, 2W, 8, 8) -> (B, 4W, 4, 4) -> mu, logvar (B, D)
    decoder: z (B, D) -> linear -> (B, 4W, 4, 4) -> (B, 2W, 8, 8) -> (B, W, 16, 16) -> (B, C, 32, 32)

Reductions (everything here is in nats): log p(x|z) is summed over pixels and channels, the KL over
latent dimensions, both per sample (B,); the training loss is the batch *mean* of -ELBO. Averaging
over pixels instead silently multiplies the KL's weight by the number of pixels (1,024).

Two likelihoods (``VAEConfig.likelihood``); the course's images x are in [-1, 1]:

- ``"bernoulli"``: the decoder outputs logits of pixel probabilities for x01 = (x + 1) / 2 in
  [0, 1]. On grey-level x01 this is the usual cross-entropy (not a normalised density); on
  dynamically binarised data (``binarize``: a fresh Bernoulli draw of every pixel each time a batch
  is used, as in Burda et al.) it is an exact log-likelihood in nats, comparable to the literature.
- ``"gaussian"``: the decoder outputs the mean (linear, no tanh: on MNIST's all -1 background a
  tanh saturated within 30 steps and the decoder stalled at the blank image; ``sample`` clamps to
  [-1, 1]) with one scalar log-variance ``x_logvar`` shared by all pixels: learned by default (the
  calibrated decoder of Rybkin et al. 2021, "Simple and Effective VAE Training with Calibrated
  Decoders"; it starts at 0, sigma = 1, and is clamped at ``MIN_X_LOGVAR``), or fixed with
  ``VAEConfig.x_logvar``. A fixed unit variance makes the reconstruction term a sum of squared
  errors / 2 that the KL outweighs (blurry samples); a learned one finds the balance itself.

Extensions switched on through ``VAEConfig``:

- ``beta``: the KL is weighted by beta (beta-VAE, Higgins et al. 2017, "beta-VAE: Learning Basic
  Visual Concepts with a Constrained Variational Framework"); beta > 1 trades reconstruction for a
  more factorised latent code. Only beta = 1 gives a bound on log p(x).
- ``num_classes = K > 0``: a conditional VAE (Sohn et al. 2015, "Learning Structured Output
  Representation using Deep Conditional Generative Models"): the encoder reads one-hot label maps
  stacked onto the image channels, q(z|x, y), and the decoder reads the one-hot label concatenated
  to z, p(x|z, y); the prior stays N(0, I).

``iwae_log_px`` is the importance-weighted bound of Burda et al. 2015 ("Importance Weighted
Autoencoders"): log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q. It equals the ELBO's estimate for
k = 1, never decreases in expectation as k grows, and tends to log p(x).

No batch norm anywhere: the ELBO and the IWAE bound are per-sample quantities, and batch norm
would make each one depend on the rest of the batch. Read top-down: config, networks, the
probability functions, the bound. Sampling decodes prior draws z ~ N(0, I) (``VAE.generate``;
``course_lib.run.sample``, re-exported here, draws them). The training step (``vae_step``), the run
config and the test likelihood of metrics.json are in ``course_lib.vae.training``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.run.inputs import check_images, check_labels
from course_lib.run.sampling import sample  # noqa: F401 (re-exported: decoded prior draws, VAE.generate of z ~ N(0, I))

LIKELIHOODS = ("bernoulli", "gaussian")
MIN_X_LOGVAR = -6.0  # a learned Gaussian decoder's log-variance is clamped here (sigma >= 0.05)


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass
class VAEConfig:
    """Architecture and objective of a VAE. The defaults: a grey-digit VAE with a 16-D latent.

    With the defaults the encoder has about 0.23M parameters and the decoder about 0.20M.
    """

    latent_dim: int = 16                # D: size of z; the prior is N(0, I)
    img_channels: int = 1               # C: channels of the images (1 grey, 3 colour)
    img_size: int = 32                  # height = width of the images; only 32 is supported
    base_channels: int = 32             # W: width of the encoder's first and decoder's last stage; others 2W, 4W
    likelihood: str = "bernoulli"       # p(x|z): "bernoulli" (logits for (x + 1) / 2) or "gaussian" (mean for x)
    x_logvar: float | None = None       # "gaussian" only: None learns one scalar log sigma^2, a float fixes it
    num_classes: int = 0                # 0: unconditional; K > 0: a conditional VAE taking labels in [0, K)
    beta: float = 1.0                   # weight of the KL term (beta-VAE); 1 is the true ELBO

    def __post_init__(self) -> None:
        for name in ("latent_dim", "img_channels", "base_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.img_size != 32:
            raise ValueError(f"img_size must be 32 (three stride-2 stages from 32x32 to 4x4), got {self.img_size!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if self.x_logvar is not None and (self.likelihood != "gaussian" or isinstance(self.x_logvar, bool)
                                          or not isinstance(self.x_logvar, (int, float)) or not math.isfinite(self.x_logvar)):
            raise ValueError(f"x_logvar must be None, or a finite float with likelihood='gaussian'; got "
                             f"{self.x_logvar!r} with likelihood={self.likelihood!r}")
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0: unconditional), got {self.num_classes!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not self.beta >= 0 \
                or not math.isfinite(self.beta):
            raise ValueError(f"beta must be a finite number >= 0 (1: the ELBO), got {self.beta!r}")


# ----------------------------------------------------------------------------------------------
# Encoder q(z|x) and decoder p(x|z)
# ----------------------------------------------------------------------------------------------

class Encoder(nn.Module):
    """q(z|x[, y]): images (B, C, 32, 32) [and labels (B,)] -> mu, logvar, each (B, latent_dim).

    Conv 4x4 stride 2 + LeakyReLU(0.2) three times, then two linear heads on the flattened
    (B, 16 * 4W) features. A conditional encoder stacks one-hot label maps (B, K, 32, 32) onto the
    image channels, as the "concat" discriminator of lesson 04 does.
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.base_channels
        self.blocks = nn.Sequential(
            nn.Conv2d(cfg.img_channels + cfg.num_classes, width, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, W, 16, 16)
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),                          # (B, 2W, 8, 8)
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),                      # (B, 4W, 4, 4)
            nn.Flatten(),                                                                     # (B, 16 * 4W)
        )
        self.to_mu = nn.Linear(4 * width * 4 * 4, cfg.latent_dim)
        self.to_logvar = nn.Linear(4 * width * 4 * 4, cfg.latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(x, self.cfg)
        check_labels(labels, x.shape[0], self.cfg.num_classes)
        if self.cfg.num_classes:
            maps = F.one_hot(labels, self.cfg.num_classes).to(x.dtype)      # (B, K)
            maps = maps[:, :, None, None].expand(-1, -1, *x.shape[2:])       # (B, K, 32, 32)
            x = torch.cat([x, maps], dim=1)                                  # (B, C + K, 32, 32)
        h = self.blocks(x)                                                   # (B, 16 * 4W)
        return self.to_mu(h), self.to_logvar(h)                              # (B, D) each


class Decoder(nn.Module):
    """p(x|z[, y]): latents (B, latent_dim) [and labels (B,)] -> decoder output (B, C, 32, 32).

    The output is the Bernoulli logits of x01 = (x + 1) / 2, or the Gaussian mean (linear, for x in [-1, 1]).
    A conditional decoder concatenates the one-hot label to z, (B, D + K), before the first layer.
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.base_channels
        self.project = nn.Linear(cfg.latent_dim + cfg.num_classes, 4 * width * 4 * 4)  # (B, 16 * 4W)
        self.blocks = nn.Sequential(
            nn.ReLU(),                                                                  # (B, 4W, 4, 4)
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1), nn.ReLU(),               # (B, 2W, 8, 8)
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),                   # (B, W, 16, 16)
            nn.ConvTranspose2d(width, cfg.img_channels, 4, 2, 1),                       # (B, C, 32, 32)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        D = self.cfg.latent_dim
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != D or z.shape[0] == 0:
            raise ValueError(f"z must have shape (B, {D}) with B >= 1, got {tuple(getattr(z, 'shape', ()))}")
        check_labels(labels, z.shape[0], self.cfg.num_classes)
        if self.cfg.num_classes:
            z = torch.cat([z, F.one_hot(labels, self.cfg.num_classes).to(z.dtype)], dim=1)  # (B, D + K)
        h = self.project(z).view(z.shape[0], 4 * self.cfg.base_channels, 4, 4)            # (B, 4W, 4, 4)
        return self.blocks(h)                                                               # (B, C, 32, 32)


class VAE(nn.Module):
    """Encoder, decoder and (Gaussian likelihood only) the decoder's scalar log-variance.

    ``iwae_log_px`` needs only the three methods ``encode``, ``decode`` and ``log_likelihood``, so
    any model with them (for example an exactly solvable linear-Gaussian one) can be plugged in.

    Args:
        cfg: a ``VAEConfig``.
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.num_classes = cfg.latent_dim, cfg.num_classes  # what every sampler has (course_lib.run.sampling)
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        if cfg.likelihood == "bernoulli":
            self.x_logvar = None                                                  # no variance to learn
        elif cfg.x_logvar is None:
            self.x_logvar = nn.Parameter(torch.zeros(()))                        # learned, starts at sigma = 1
        else:
            self.register_buffer("x_logvar", torch.tensor(float(cfg.x_logvar)))   # fixed

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, 32, 32) in [-1, 1] -> mu, logvar of q(z|x), each (B, latent_dim)."""
        return self.encoder(x, labels)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> (B, C, 32, 32): Bernoulli logits or the Gaussian mean."""
        return self.decoder(z, labels)

    def log_likelihood(self, x: torch.Tensor, decoder_output: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per sample (B,), with this model's likelihood and decoder variance."""
        x_logvar = 0.0 if self.x_logvar is None else self.x_logvar.clamp(min=MIN_X_LOGVAR)
        return log_likelihood(x, decoder_output, self.cfg.likelihood, x_logvar)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw one z ~ q(z|x) by reparameterisation, decode.

        Returns:
            decoder_output (B, C, 32, 32), mu (B, latent_dim), logvar (B, latent_dim).
        """
        mu, logvar = self.encode(x, labels)
        z = reparameterize(mu, logvar, generator)          # (B, D)
        return self.decode(z, labels), mu, logvar

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's *mean* image for latents z (B, latent_dim): (B, C, 32, 32) in [-1, 1].

        Bernoulli: the pixel probabilities sigmoid(logits) mapped to [-1, 1] as 2p - 1; Gaussian: the
        mean clamped to [-1, 1] (pixel noise of sigma would only add grain). ``sample`` decodes prior draws.
        """
        out = self.decode(z, labels)                                                # (B, C, 32, 32)
        return torch.sigmoid(out) * 2 - 1 if self.cfg.likelihood == "bernoulli" else out.clamp(-1, 1)


# ----------------------------------------------------------------------------------------------
# Probability functions
# ----------------------------------------------------------------------------------------------

def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    first, second = names.split(" and ")
    for name, t in ((first, a), (second, b)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() < 2 or t.shape[0] == 0:
            got = f"shape {tuple(t.shape)}, dtype {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a float tensor of shape (B, ...) with B >= 1, got {got}")
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw z ~ N(mu, diag exp(logvar)) as z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).

    eps is drawn on the generator's device (CPU without one) and moved, as ``gan.sample_z`` does,
    so a CPU generator gives the same z on every device. Gradients reach mu and logvar.

    Args:
        mu, logvar: (B, D) float tensors, the mean and log-variance of q(z|x).
        generator: optional ``torch.Generator`` for eps.

    Returns:
        z, shape (B, D).
    """
    _check_pair(mu, logvar, "mu and logvar")
    source = generator.device if generator is not None else "cpu"
    eps = torch.randn(mu.shape, generator=generator, device=source, dtype=mu.dtype).to(mu.device)  # (B, D)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in closed form, summed over latent dimensions.

    Per dimension: (mu^2 + exp(logvar) - 1 - logvar) / 2 (Kingma & Welling 2014, appendix B).

    Args:
        mu, logvar: (B, D) float tensors.

    Returns:
        (B,) nats, >= 0, exactly 0 for mu = 0 and logvar = 0.
    """
    _check_pair(mu, logvar, "mu and logvar")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(dim=1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension (shapes broadcast), in nats."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(dim=-1)


def log_likelihood(x: torch.Tensor, decoder_output: torch.Tensor, likelihood: str,
                   x_logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    """log p(x|z) summed over pixels (every non-batch dimension), per sample, in nats.

    Args:
        x: (B, ...) data in [-1, 1] (the course's convention).
        decoder_output: (B, ...) like x: Bernoulli logits of x01 = (x + 1) / 2, or the Gaussian mean.
        likelihood: "bernoulli" or "gaussian".
        x_logvar: Gaussian only: scalar log sigma^2 of every pixel (float or 0-d tensor).

    Returns:
        (B,) log-likelihoods, float32 or float64 (<= 0 for Bernoulli).
    """
    _check_pair(x, decoder_output, "x and decoder_output")
    dtype = torch.promote_types(torch.promote_types(x.dtype, decoder_output.dtype), torch.float32)  # fp32 under amp
    x, decoder_output = x.to(dtype), decoder_output.to(dtype)
    if likelihood == "bernoulli":
        x01 = (x + 1) / 2                                                          # [-1, 1] -> [0, 1]
        nll = F.binary_cross_entropy_with_logits(decoder_output, x01, reduction="none")
        return -nll.flatten(1).sum(dim=1)                                          # (B,)
    if likelihood == "gaussian":
        x_logvar = torch.as_tensor(x_logvar, dtype=dtype, device=x.device)  # a Python float straight to dtype
        if x_logvar.dim() != 0:
            raise ValueError(f"x_logvar must be a scalar (one variance for every pixel), got shape {tuple(x_logvar.shape)}")
        sq = (x - decoder_output).pow(2) * torch.exp(-x_logvar)
        return -0.5 * (sq + x_logvar + math.log(2 * math.pi)).flatten(1).sum(dim=1)
    raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")


def elbo(x: torch.Tensor, decoder_output: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
         likelihood: str, beta: float = 1.0, x_logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Per-sample ELBO, log p(x|z) - beta * KL(q(z|x) || p(z)), with one z ~ q behind decoder_output.

    The training loss is ``-elbo(...).mean()``: sum over pixels and latent dims, mean over the batch.
    With beta != 1 (beta-VAE) this is no longer a bound on log p(x).

    Returns:
        (B,) nats.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    kl = kl_normal(mu, logvar)                                                     # (B,)
    if kl.shape[0] != x.shape[0]:
        raise ValueError(f"x and mu must have the same batch size, got {tuple(x.shape)} and {tuple(mu.shape)}")
    return log_likelihood(x, decoder_output, likelihood, x_logvar) - beta * kl


def binarize(x01: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation (Burda et al. 2015): each pixel becomes 1 with probability x01, else 0.

    Draw afresh for every batch. For the model, map back to the course's range:
    ``x = 2 * binarize((x + 1) / 2, generator) - 1``.

    Args:
        x01: float tensor with values in [0, 1].
        generator: optional ``torch.Generator``; the uniforms are drawn on its device (CPU without one).

    Returns:
        a float tensor like x01 with values in {0, 1}.
    """
    if not isinstance(x01, torch.Tensor) or not x01.is_floating_point():
        raise ValueError(f"x01 must be a float tensor with values in [0, 1], got {getattr(x01, 'dtype', type(x01).__name__)}")
    if x01.numel() and (x01.min() < 0 or x01.max() > 1):
        raise ValueError(f"x01 must have values in [0, 1] (map images with (x + 1) / 2), got "
                         f"[{x01.min().item():.3f}, {x01.max().item():.3f}]")
    source = generator.device if generator is not None else "cpu"
    u = torch.rand(x01.shape, generator=generator, device=source, dtype=x01.dtype).to(x01.device)
    return (u < x01).to(x01.dtype)


# ----------------------------------------------------------------------------------------------
# The importance-weighted bound (Burda et al. 2015)
# ----------------------------------------------------------------------------------------------

def iwae_bound(log_px_given_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    """log (1/k) sum_i w_i with log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), stably.

    ``torch.logsumexp`` over the k samples minus log k: the log-weights are hundreds of nats below 0,
    so exponentiating them directly underflows to 0. Averaging the log-weights instead gives the
    (k-sample) ELBO, which is lower by Jensen's inequality.

    Args:
        log_px_given_z, log_pz, log_qz: (k, B) each, for k samples z_i ~ q(z|x) of each of B inputs.

    Returns:
        (B,) nats.
    """
    if not (log_px_given_z.shape == log_pz.shape == log_qz.shape) or log_pz.dim() != 2:
        raise ValueError(f"log_px_given_z, log_pz and log_qz must all have shape (k, B), got "
                         f"{tuple(log_px_given_z.shape)}, {tuple(log_pz.shape)}, {tuple(log_qz.shape)}")
    log_w = log_px_given_z + log_pz - log_qz                                       # (k, B)
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


@torch.no_grad()
def iwae_log_px(model: nn.Module, x: torch.Tensor, k: int, labels: torch.Tensor | None = None,
                generator: torch.Generator | None = None, batch: int = 64) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) with k samples from q(z|x), without gradients.

    A lower bound in expectation that rises with k towards log p(x); k = 1 is a one-sample ELBO.
    ``model`` needs ``encode(x, labels) -> (mu, logvar)``, ``decode(z, labels)`` and
    ``log_likelihood(x, decoder_output) -> (B,)``, as ``VAE`` has.

    Args:
        model: a ``VAE`` or any model with those three methods.
        x: (B, ...) inputs in the model's range ([-1, 1] for a ``VAE``).
        k: number of importance samples, >= 1.
        labels: (B,) int64 labels for a conditional model, else None.
        generator: optional ``torch.Generator`` for the samples.
        batch: how many of the k samples per input go through the decoder at once (memory).

    Returns:
        (B,) nats; per dimension, divide by the number of pixels (and by log 2 for bits).
    """
    for name, value in (("k", k), ("batch", batch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    mu, logvar = model.encode(x, labels)                                           # (B, D) each
    B = x.shape[0]
    terms: list[list[torch.Tensor]] = [[], [], []]
    for start in range(0, k, batch):
        m = min(batch, k - start)
        z = reparameterize(mu.repeat(m, 1), logvar.repeat(m, 1), generator)         # (m * B, D), sample-major
        x_rep = x.repeat(m, *([1] * (x.dim() - 1)))                                 # (m * B, ...)
        y_rep = labels.repeat(m) if labels is not None else None
        log_px = model.log_likelihood(x_rep, model.decode(z, y_rep))                # (m * B,)
        log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))           # (m * B,)
        log_qz = log_normal(z, mu.repeat(m, 1), logvar.repeat(m, 1))               # (m * B,)
        for store, t in zip(terms, (log_px, log_pz, log_qz)):
            store.append(t.view(m, B))                                             # (m, B)
    return iwae_bound(*(torch.cat(t) for t in terms))                              # (k, B) each -> (B,)
