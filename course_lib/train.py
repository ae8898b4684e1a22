"""Train a model of the course from the command line: checkpoint, sample grid and metrics in one directory.

Usage::

    python -m course_lib.train {dcgan,cgan,wgan_gp,vae,cvae} --dataset mnist5k [--steps N | --minutes M]
        --out DIR [--seed S] [--device auto] [--resume]
    python -m course_lib.train pix2pix --task {colorize,superres,inpaint,denoise,edges2digits} --out DIR ...
    python -m course_lib.train cyclegan --out DIR ...
    python -m course_lib.train stylegan --out DIR ...

The GANs are those of ``course_lib.gan``; ``vae`` and ``cvae`` (class-conditional) are the
variational autoencoders of ``course_lib.vae``; ``pix2pix`` (``course_lib.pix2pix``) learns a
paired task of ``course_lib.data.paired`` and ``cyclegan`` (``course_lib.cyclegan``) translates
between handwritten (mnist5k) and printed digits (see ``course_lib.translate``); ``stylegan`` is the
style-based generator of ``course_lib.stylegan``, trained by ``course_lib.stylegan_train``. DIR receives

- ``checkpoint.pt``: the whole run (models, optimisers, RNG states, batch position, history),
  rewritten atomically every ``--checkpoint-every`` steps; ``--resume`` continues from it and ends
  exactly where a straight run would have;
- ``generator.safetensors``: the weights of G_ema (the moving average of G's weights, see
  ``course_lib.ema``; G itself with ``--ema-decay 0``), or of the whole VAE (a VAE keeps no
  average), pix2pix's U-Net or CycleGAN's two generators, and the model config, what
  ``course_lib.sample`` reads;
- ``samples.png``: a grid from fixed noise (for cgan and cvae one class per column; a VAE's are
  decoded prior draws z ~ N(0, I)); for pix2pix rows of test inputs, outputs and targets, for
  cyclegan rows of handwritten digits, their printed translations, printed digits and theirs;
- ``metrics.json``: the course metrics of ``--eval-samples`` samples (see ``course_lib.evaluate``),
  with the step count, training seconds and throughput (with a G_ema also ``raw_fd``, ``raw_precision``,
  ``raw_recall`` and ``raw_modes`` of the raw G); for a VAE also ``test_neg_elbo`` and
  ``test_iwae``, mean nats per test image (see ``course_lib.evaluate.evaluate_likelihood``); for
  pix2pix PSNR / SSIM of the model and of the task's baseline on the test pairs (for a photo task
  also ``raw_psnr``, ``raw_ssim`` before and ``correction_scale`` from ``--calibrate``), for cyclegan the
  identity kept in each direction and FD to the target domain (``course_lib.translate``);
- ``config.json``: the `TrainConfig` of the run.

``--out`` must be a new or empty folder: one that holds anything is refused unless ``--resume``
(continue the run in it) or ``--force`` (delete the previous run's files and start again); so is
the repository's ``checkpoints/`` without ``--force``. ``--resume`` needs a ``checkpoint.pt`` there,
refuses changed settings except when the run ends, how it is evaluated and the learning rates (a
change is recorded, with its step, as ``lr_changes`` in the checkpoint and ``metrics.json``).
Ctrl-C (or SIGTERM) finishes the step under way, writes the checkpoint, prints the command that
continues the run and exits with status 130; a second Ctrl-C stops at once (the last checkpoint
stays intact). Every setting is checked before the first step; errors are one line on stderr
(status 2 for a bad flag or folder, 1 for a failure such as a full disk or a diverged run).

A step is one generator update (for WGAN-GP: ``n_critic`` critic updates, then one G update; for a
VAE one update of encoder and decoder on a batch, dynamically binarised for the Bernoulli likelihood;
for pix2pix one D and one G update; for cyclegan one update of both generators, then of both Ds;
for stylegan one D update, with lazy R1 every ``r1_every`` steps, then one G update).
``--minutes`` stops at a wall-clock budget instead (whichever of steps and minutes comes first);
the time of earlier sessions of a resumed run counts towards it. The library functions
(`TrainConfig`, `build_run`, `train`) do the work; ``main`` only turns flags into a config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from course_lib.checkpoint import (CheckpointError, DiskFullError, atomic_write, describe_os_error, is_temporary,
                                   read_checkpoint, remove_stale_temporaries, save_weights)
from course_lib.data import DatasetUnavailableError, ShuffledBatches, load_dataset
from course_lib.data.paired import TASKS
from course_lib.device import get_device, seed_everything
from course_lib.augment import translate
from course_lib.ema import ema_copy, ema_update_
from course_lib.evaluate import MIN_SAMPLES, evaluate, evaluate_likelihood
from course_lib.gan import DCGANConfig, Discriminator, Generator, balanced_labels, sample_z
from course_lib.gan_steps import gan_step, wgan_gp_step
from course_lib.stylegan import StyleGANConfig
from course_lib.stylegan_train import build_stylegan
from course_lib.sample import CHECKPOINTS_ENV, SHIPPED
from course_lib.training import StopSignals, TrainingDiverged, TrainingInterrupted, TrainState, fit
from course_lib.translate import GRID_PAIRS, build_cyclegan, build_pix2pix, calibrate_pix2pix, evaluate_translation
from course_lib.vae import LIKELIHOODS, VAE, VAEConfig, binarize, sample, vae_step
from course_lib.viz import save_images

MODELS = ("dcgan", "cgan", "wgan_gp", "vae", "cvae", "pix2pix", "cyclegan", "stylegan")
VAES = ("vae", "cvae")            # trained with vae_step
TRANSLATION = ("pix2pix", "cyclegan")  # image-to-image: course_lib.translate builds and scores them
CONDITIONAL = ("cgan", "cvae")    # need a labelled dataset
CHECKPOINT, GENERATOR, SAMPLES, METRICS, CONFIG = (
    "checkpoint.pt", "generator.safetensors", "samples.png", "metrics.json", "config.json")
RUN_FILES = (CHECKPOINT, GENERATOR, SAMPLES, METRICS, CONFIG)
GRID_SIZE = 100  # samples in samples.png: 10 x 10
LEARNING_RATES = ("lr_g", "lr_d", "lr_vae")  # may change on --resume (recorded in lr_changes)
# settings that may differ on --resume: when the run ends, how it is evaluated, the learning rates
RESUMABLE_CHANGES = ("steps", "minutes", "eval_samples", "checkpoint_every", "iwae_k", "eval_test_digits",
                     "calibrate", *LEARNING_RATES)


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in the checkpoint and in ``config.json``."""

    model: str = "dcgan"              # dcgan, cgan (conditional, projection D), wgan_gp, vae, cvae (conditional VAE), pix2pix, cyclegan or stylegan
    dataset: str = "mnist5k"          # a built-in dataset of 32x32 images (course_lib.data.load_dataset)
    steps: int | None = 3000          # generator updates to reach (None: no limit, needs minutes)
    minutes: float | None = None      # optional wall-clock budget; the run ends at steps or minutes
    batch_size: int = 64              # real images per D update (VAE: per update)
    z_dim: int = 64                   # GANs: size of the noise vector z
    base_channels: int = 32           # W: network width (DCGANConfig / VAEConfig.base_channels); 32 trains 2.4x faster than 64 on a CPU
    loss: str = "bce"                 # dcgan / cgan: "bce" (non-saturating) or "hinge"
    conditioning: str = "projection"  # cgan: "projection" or "concat" discriminator
    spectral_norm: bool = False       # spectral norm in D (Miyato et al. 2018)
    lr_g: float = 2e-4                # Adam learning rate of G
    lr_d: float = 2e-4                # Adam learning rate of D
    beta1: float = 0.5                # Adam beta1 (DCGAN: 0.5; WGAN-GP: 0.0; VAE: 0.9)
    beta2: float = 0.999              # Adam beta2 (DCGAN: 0.999; WGAN-GP: 0.9; VAE: 0.999)
    n_critic: int = 5                 # wgan_gp: critic updates per generator update
    lambda_gp: float = 10.0           # wgan_gp: gradient-penalty weight
    augment_shift: int = 0            # dcgan / cgan: DiffAugment translation of D's inputs by up to this many px (0: off)
    ema_decay: float = 0.999          # GANs: G_ema <- decay G_ema + (1 - decay) G every step (0: no G_ema); VAEs: must be 0
    latent_dim: int = 16              # vae / cvae: size of z (VAEConfig.latent_dim)
    likelihood: str = "bernoulli"     # vae / cvae: p(x|z), "bernoulli" (dynamically binarised images) or "gaussian" (grey)
    beta: float = 1.0                 # vae / cvae: weight of the KL term (beta-VAE; 1 is the ELBO)
    lr_vae: float = 1e-3              # vae / cvae: Adam learning rate of encoder and decoder (betas beta1, beta2)
    task: str = "colorize"            # pix2pix: colorize, superres, inpaint, denoise or edges2digits (course_lib.data.paired)
    lambda_l1: float = 100.0          # pix2pix: weight of the L1 term
    reconstruction: str = "l1"        # pix2pix: "l1" (the paper) or "l2" (Context Encoders, Pathak et al. 2016: the conditional mean)
    calibrate: bool = False           # pix2pix photo tasks: fit G's correction scale on the val pairs after training
    correction_stride: int = 0        # pix2pix photo tasks: block size of G's correction (0: the task's, 8 for colorize, else 1)
    lambda_cycle: float = 10.0        # cyclegan: weight of the cycle loss
    lambda_identity: float = 0.5      # cyclegan: weight of the identity loss, relative to lambda_cycle (0: off)
    pool_size: int = 50               # cyclegan: fakes kept in each history pool (0: off)
    n_blocks: int = 3                 # cyclegan: residual blocks in each generator
    w_dim: int = 64                   # stylegan: size of w
    mapping_layers: int = 4           # stylegan: layers of the mapping network z -> w
    max_channels: int = 128           # stylegan: width cap of the low resolutions (base_channels is the 32x32 width)
    style_mode: str = "demod"         # stylegan: "demod" (modulated conv, StyleGAN2) or "adain" (StyleGAN)
    r1_gamma: float = 10.0            # stylegan: R1 weight gamma (0: off); 10 as StyleGAN2 on FFHQ (0.05 and 1 collapsed here)
    r1_every: int = 16                # stylegan: steps between (lazy) R1 computations
    mixing_prob: float = 0.9          # stylegan: fraction of fakes with mixed styles
    compile: bool = False             # stylegan: torch.compile G and D (R1 runs the uncompiled D)
    seed: int = 0                     # seeds initialisation, noise, binarisation and batch order
    eval_samples: int = 1000          # samples scored for metrics.json (0: skip the evaluation)
    eval_test_digits: int = 1000      # vae / cvae: test images for test_neg_elbo and test_iwae (0: skip them)
    iwae_k: int = 100                 # vae / cvae: importance samples per test image for test_iwae
    checkpoint_every: int = 250       # steps between checkpoints
    amp: bool = False                 # bf16 autocast on CUDA (no effect elsewhere)
    channels_last: bool = False       # channels_last memory format (for CUDA tensor cores)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.steps is None and self.minutes is None:
            raise ValueError("give steps or minutes (or both): a run needs an end")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes!r}")
        if self.loss not in ("bce", "hinge"):
            raise ValueError(f"loss must be 'bce' or 'hinge', got {self.loss!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.model in VAES + TRANSLATION and self.ema_decay:
            raise ValueError(f"ema_decay must be 0 for model {self.model!r}: it keeps no weight average "
                             "(default_config sets 0)")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        expected = {"pix2pix": "mnist5k" if self.task == "edges2digits" else "photo_patches",
                    "cyclegan": "mnist5k+printed_digits"}.get(self.model)
        if expected and self.dataset != expected:
            raise ValueError(f"dataset must be {expected!r} for model {self.model!r}"
                             + (f" with task {self.task!r}" if self.model == "pix2pix" else "")
                             + f" (the data come with the task), got {self.dataset!r}")
        if not isinstance(self.pool_size, int) or self.pool_size < 0:
            raise ValueError(f"pool_size must be an int >= 0, got {self.pool_size!r}")
        if not isinstance(self.correction_stride, int) or self.correction_stride < 0:
            raise ValueError(f"correction_stride must be an int >= 0 (0: the task's default), got {self.correction_stride!r}")
        if self.correction_stride > 1 and (self.model != "pix2pix" or self.task == "edges2digits"):
            raise ValueError("correction_stride > 1 needs model 'pix2pix' with a photo task (a residual U-Net), "
                             f"got model {self.model!r} with task {self.task!r}")
        if self.calibrate and (self.model != "pix2pix" or self.task == "edges2digits"):
            raise ValueError("calibrate needs model 'pix2pix' with a photo task (the val split of photo_patches), "
                             f"got model {self.model!r} with task {self.task!r}")
        if self.reconstruction not in ("l1", "l2"):
            raise ValueError(f"reconstruction must be 'l1' or 'l2', got {self.reconstruction!r}")
        if self.style_mode not in ("demod", "adain"):
            raise ValueError(f"style_mode must be 'demod' or 'adain', got {self.style_mode!r}")
        if not 0.0 <= self.mixing_prob <= 1.0:
            raise ValueError(f"mixing_prob must be in [0, 1], got {self.mixing_prob!r}")
        if not 0 <= self.r1_gamma < math.inf:
            raise ValueError(f"r1_gamma must be a number >= 0, got {self.r1_gamma!r}")
        for name in ("batch_size", "n_critic", "checkpoint_every", "iwae_k", "r1_every", "z_dim", "base_channels",
                     "latent_dim", "w_dim", "mapping_layers", "max_channels", "n_blocks"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        for name in ("eval_test_digits", "augment_shift", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an int >= 0, got {getattr(self, name)!r}")
        for name in LEARNING_RATES:
            if not (isinstance(getattr(self, name), (int, float)) and 0 < getattr(self, name) < math.inf):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        for name in ("beta1", "beta2", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("lambda_gp", "lambda_l1", "lambda_cycle", "lambda_identity", "beta"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a number >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.eval_samples, int) or self.eval_samples < 0:
            raise ValueError(f"eval_samples must be an int >= 0 (0: no evaluation), got {self.eval_samples!r}")
        # the sample metrics (IS, KID, ...) need MIN_SAMPLES; translation models score pairs (edges2digits: >= 10 digits)
        least = 10 if self.model in TRANSLATION else MIN_SAMPLES
        if 0 < self.eval_samples < least:
            raise ValueError(f"eval_samples must be 0 (no evaluation) or at least {least}"
                             + (", what the sample metrics need (see course_lib.evaluate.MIN_SAMPLES)"
                                if least == MIN_SAMPLES else "") + f", got {self.eval_samples}")


def default_config(model: str, **overrides: Any) -> TrainConfig:
    """The recommended settings of each family, with ``overrides`` applied.

    WGAN-GP uses the paper's Adam settings (lr 1e-4, betas (0, 0.9)); the conditional GAN uses
    Radford et al.'s (lr 2e-4, betas (0.5, 0.999)); the DCGAN their betas with lr 5e-4, because a
    few thousand steps are all a CPU gets: on mnist5k (width 32, G_ema) FD after 3,000 steps was
    about 175 at 2e-4, 72 at 5e-4 and 65 at 1e-3. The VAEs use Adam's own defaults (lr 1e-3, betas
    (0.9, 0.999); Kingma & Ba 2015) and no weight average (ema_decay 0).
    """
    base: dict[str, Any] = {"model": model}
    if model == "dcgan":
        base.update(lr_g=5e-4, lr_d=5e-4)
    if model == "wgan_gp":
        base.update(lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9)
    if model in VAES:
        base.update(lr_vae=1e-3, beta1=0.9, beta2=0.999, ema_decay=0.0)
    if model == "pix2pix":
        base.update(batch_size=16, ema_decay=0.0)
    if model == "cyclegan":
        base.update(batch_size=8, base_channels=16, ema_decay=0.0, dataset="mnist5k+printed_digits")
    if model == "stylegan":  # StyleGAN2's Adam (lr 0.0025 as for CIFAR-10, betas (0, 0.99)); EMA half-life ~10k images
        base.update(lr_g=2.5e-3, lr_d=2.5e-3, beta1=0.0, beta2=0.99, batch_size=32, base_channels=16, ema_decay=0.998)
    if model == "pix2pix":  # photo tasks calibrate G on the val pairs; edges2digits has no val split
        edges = overrides.get("task") == "edges2digits"
        base.update(dataset="mnist5k" if edges else "photo_patches", calibrate=not edges)
    if overrides.get("minutes") is not None and overrides.get("steps") is None:
        base["steps"] = None  # a time budget alone
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)


def model_config(cfg: TrainConfig, img_channels: int) -> DCGANConfig | VAEConfig:
    """The architecture a GAN or VAE run trains (``course_lib.translate`` has pix2pix's and CycleGAN's)."""
    num_classes = 10 if cfg.model in CONDITIONAL else 0
    if cfg.model in VAES:
        return VAEConfig(
            latent_dim=cfg.latent_dim,
            img_channels=img_channels,
            base_channels=cfg.base_channels,
            likelihood=cfg.likelihood,
            num_classes=num_classes,
            beta=cfg.beta,
        )
    return DCGANConfig(
        z_dim=cfg.z_dim,
        img_channels=img_channels,
        base_channels=cfg.base_channels,
        num_classes=num_classes,
        conditioning=cfg.conditioning,
        spectral_norm=cfg.spectral_norm,
        critic=cfg.model == "wgan_gp",
    )


# ----------------------------------------------------------------------------------------------
# Building a run
# ----------------------------------------------------------------------------------------------

@dataclass
class Run:
    """A training run: its state (for ``fit``), the step closure, fixed monitoring inputs and the network sampled."""

    cfg: TrainConfig
    model_cfg: DCGANConfig | VAEConfig | StyleGANConfig | Any
    state: TrainState
    step_fn: Callable[[], dict[str, float]]
    fixed_z: torch.Tensor                # (GRID_SIZE, z_dim or latent_dim) noise for samples.png
    fixed_labels: torch.Tensor | None    # (GRID_SIZE,) labels 0..9 repeated, for cgan and cvae
    sampler: nn.Module                   # G_ema (or G), or the VAE: what samples.png, metrics.json, generator.safetensors use
    grid: Callable[[], torch.Tensor] | None = None  # pix2pix / cyclegan: the images of samples.png
    grid_columns: int = 10               # images per row of samples.png

    def sample_grid(self) -> torch.Tensor:
        """The images of samples.png from the fixed noise: (GRID_SIZE, C, 32, 32) in [-1, 1]."""
        if self.grid is not None:  # image-to-image: fixed test inputs instead of fixed noise
            return self.grid()
        if isinstance(self.sampler, VAE):  # vae.sample redraws fixed_z from its seed, maps the decoder's mean to [-1, 1]
            monitor = torch.Generator().manual_seed(self.cfg.seed + 1)
            return sample(self.sampler, GRID_SIZE, self.fixed_labels, generator=monitor)
        return self.sampler(self.fixed_z, self.fixed_labels)


def build_run(cfg: TrainConfig, device: torch.device | str = "cpu") -> Run:
    """Data, models, optimisers, batch sampler and step function of a run, all seeded by ``cfg.seed``."""
    device = torch.device(device)
    if cfg.model in TRANSLATION + ("stylegan",):
        return _built_run(cfg, device)
    data = load_dataset(cfg.dataset, "train")
    if data.x.dim() != 4 or tuple(data.x.shape[2:]) != (32, 32):
        raise ValueError(f"dataset {cfg.dataset!r} must hold 32x32 images, got shape {tuple(data.x.shape)}")
    if cfg.model in CONDITIONAL and data.labels is None:
        raise ValueError(f"model {cfg.model!r} needs a labelled dataset; {cfg.dataset!r} has no labels")
    _check_evaluable(cfg, img_channels=data.x.shape[1])
    generator = seed_everything(cfg.seed)  # seeds the initialisation too
    model_cfg = model_config(cfg, img_channels=data.x.shape[1])
    fused = {"fused": True} if device.type == "cuda" else {}

    def adam(module: nn.Module, lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(cfg.beta1, cfg.beta2), **fused)

    labels = data.labels if cfg.model in CONDITIONAL else None
    batches = ShuffledBatches(data.x, labels, batch_size=cfg.batch_size, generator=generator)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = next(batches)
        x, y = batch if labels is not None else (batch, None)
        return x.to(device, non_blocking=True), (y.to(device) if y is not None else None)

    if cfg.model in VAES:
        vae = VAE(model_cfg).to(device)
        if cfg.channels_last:
            vae = vae.to(memory_format=torch.channels_last)
        models, optimizers = {"vae": vae}, {"vae": adam(vae, cfg.lr_vae)}
        sampler = vae

        def step() -> dict[str, float]:
            x, y = next_batch()
            if cfg.likelihood == "bernoulli":  # a fresh binary draw of every pixel each time a batch is used
                x = 2 * binarize(((x + 1) / 2).clamp(0, 1), generator) - 1   # [-1, 1] -> {0, 1} -> {-1, 1}
            return vae_step(vae, optimizers["vae"], x, y, generator=generator, amp=cfg.amp)
    else:
        G, D = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
        if cfg.channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        models, optimizers = {"G": G, "D": D}, {"G": adam(G, cfg.lr_g), "D": adam(D, cfg.lr_d)}
        if cfg.ema_decay:
            models["G_ema"] = ema_copy(G)
        sampler = models.get("G_ema", G)  # sample from the average when there is one
        augment = None
        if cfg.augment_shift:
            def augment(t: torch.Tensor) -> torch.Tensor:
                return translate(t, cfg.augment_shift, generator=generator)

        def step() -> dict[str, float]:
            if cfg.model == "wgan_gp":
                xs, ys = zip(*[next_batch() for _ in range(cfg.n_critic)])
                logs = wgan_gp_step(G, D, optimizers["G"], optimizers["D"], list(xs), None, lambda_gp=cfg.lambda_gp,
                                    generator=generator, amp=cfg.amp, channels_last=cfg.channels_last)
            else:
                x, y = next_batch()
                logs = gan_step(G, D, optimizers["G"], optimizers["D"], x, y, loss=cfg.loss, generator=generator,
                                amp=cfg.amp, channels_last=cfg.channels_last, augment=augment)
            if cfg.ema_decay:
                ema_update_(models["G_ema"], G, cfg.ema_decay, step=state.step)
            return logs

    state = TrainState(models=models, optimizers=optimizers, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    monitor = torch.Generator().manual_seed(cfg.seed + 1)  # fixed noise, independent of training
    z_dim = cfg.latent_dim if cfg.model in VAES else cfg.z_dim
    fixed_z = sample_z(GRID_SIZE, z_dim, generator=monitor).to(device)
    fixed_labels = balanced_labels(GRID_SIZE, 10, device=device) if cfg.model in CONDITIONAL else None
    return Run(cfg, model_cfg, state, step, fixed_z, fixed_labels, sampler)


def _check_evaluable(cfg: TrainConfig, img_channels: int) -> None:
    """Refuse, before the first step, an evaluation that would fail after training: the metrics score digits."""
    if cfg.eval_samples and img_channels != 1:
        raise ValueError(f"eval_samples: the course metrics score one-channel digits (the digit classifier), "
                         f"dataset {cfg.dataset!r} has {img_channels} channels; pass --eval-samples 0 to train "
                         "without metrics")


def _built_run(cfg: TrainConfig, device: torch.device) -> Run:
    """A pix2pix, CycleGAN (``course_lib.translate``) or StyleGAN (``course_lib.stylegan_train``) run."""
    generator = seed_everything(cfg.seed)
    if cfg.model == "stylegan":
        holder: list[TrainState] = []
        built = build_stylegan(cfg, generator, device, state=lambda: holder[0])
        _check_evaluable(cfg, built.model_cfg.img_channels)
    else:
        built = (build_pix2pix if cfg.model == "pix2pix" else build_cyclegan)(cfg, generator, device)
    state = TrainState(models=built.models, optimizers=built.optimizers, generator=generator, batches=built.batches,
                       config=dataclasses.asdict(cfg))
    if cfg.model == "stylegan":
        holder.append(state)
        monitor = torch.Generator().manual_seed(cfg.seed + 1)
        fixed_z = sample_z(GRID_SIZE, cfg.z_dim, generator=monitor).to(device)

        @torch.no_grad()
        def grid() -> torch.Tensor:  # the fixed z with the generator's fixed noise maps, in eval mode
            was_training = built.sampler.training
            built.sampler.eval()
            images = built.sampler(fixed_z, noise_mode="const")
            built.sampler.train(was_training)
            return images

        return Run(cfg, built.model_cfg, state, built.step, fixed_z, None, built.sampler, grid=grid)
    return Run(cfg, built.model_cfg, state, built.step, torch.zeros(0), None, built.sampler,
               grid=built.grid, grid_columns=GRID_PAIRS)


# ----------------------------------------------------------------------------------------------
# Training and writing the results
# ----------------------------------------------------------------------------------------------

def save_generator(path: str | Path, model: nn.Module, model_cfg: Any, cfg: TrainConfig) -> Path:
    """G's (the VAE's, the CycleGAN pair's) weights as safetensors; the metadata says how to rebuild it (``sample.load_generator``)."""
    config = {"model": cfg.model, "architecture": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(cfg)}
    return save_weights(path, model, config=config)


@torch.no_grad()
def generate_batches(model: Generator | VAE, n: int, seed: int = 0, batch_size: int = 500,
                     truncation_psi: float = 1.0) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """The samples of ``generate``, ``batch_size`` at a time: the same images, in flat memory for any n.

    Yields:
        images (b, C, 32, 32) in [-1, 1] on the CPU, and their labels (b,) (conditional models) or None.
    """
    device = next(model.parameters()).device
    noise = torch.Generator().manual_seed(seed)  # a CPU generator: the same z on every device
    labels = balanced_labels(n, model.cfg.num_classes) if model.cfg.num_classes else None
    style = {"truncation_psi": truncation_psi} if truncation_psi != 1.0 else {}
    if style and not hasattr(model, "truncate"):
        raise ValueError(f"truncation_psi must be 1 for a {type(model).__name__}: only a StyleGAN has a truncation trick")
    z = None if isinstance(model, VAE) else sample_z(n, model.z_dim, generator=noise)  # (n, z_dim), drawn at once
    was_training = model.training
    model.eval()
    try:
        for i in range(0, n, batch_size):
            y = None if labels is None else labels[i:i + batch_size]
            if z is None:  # a VAE draws its z batch by batch
                images = sample(model, min(batch_size, n - i), y, generator=noise)
            else:
                images = model(z[i:i + batch_size].to(device), None if y is None else y.to(device), **style)
            yield images.float().cpu(), y
    finally:
        model.train(was_training)


def generate(model: Generator | VAE, n: int, seed: int = 0, batch_size: int = 500,
             truncation_psi: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples from G, or decoded prior draws of a VAE, in eval mode, on the CPU.

    ``truncation_psi`` != 1 applies a StyleGAN's truncation trick (other models have none).

    Returns:
        images (n, C, 32, 32) in [-1, 1], and balanced labels (n,) for a conditional model or None.
    """
    batches = list(generate_batches(model, n, seed, batch_size, truncation_psi))
    labels = None if batches[0][1] is None else torch.cat([y for _, y in batches])
    return torch.cat([images for images, _ in batches]), labels


def evaluate_generator(model: Generator | VAE, n: int, seed: int = 0) -> dict[str, float]:
    """Course metrics of n samples from G or a VAE against the mnist5k test digits (``course_lib.evaluate``)."""
    images, labels = generate(model, n, seed)
    return evaluate(images, labels)


def check_out(out: str | Path, resume: bool = False, force: bool = False) -> None:
    """Refuse an output folder that would lose saved work; called before anything is built or written.

    Raises:
        FileExistsError: ``out`` is inside the shipped ``checkpoints/`` (without ``force``), is a file,
            or holds anything (without ``resume`` or ``force``).
        FileNotFoundError: ``resume`` but there is no run (``checkpoint.pt``) in ``out``.
    """
    out = Path(out)
    shipped = [SHIPPED] + ([Path(os.environ[CHECKPOINTS_ENV])] if os.environ.get(CHECKPOINTS_ENV) else [])
    for folder in shipped:
        if not force and (out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents):
            raise FileExistsError(f"--out {out} is inside {folder}, the checkpoints shipped with the course: train "
                                  "into another folder, or pass --force to replace a shipped checkpoint")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder")
    contents = sorted(p.name for p in out.iterdir() if not is_temporary(p)) if out.is_dir() else []
    if resume and not (out / CHECKPOINT).is_file():
        where = "the folder does not exist" if not out.exists() else f"it holds no {CHECKPOINT}"
        restart = " (with --force, since the folder is not empty)" if contents else ""
        raise FileNotFoundError(f"--resume: there is no run to resume in {out} ({where}); check the path, "
                                f"or leave out --resume to start a new run{restart}")
    if contents and not resume and not force:
        what = (f"a run ({CHECKPOINT})" if CHECKPOINT in contents
                else f"a run's files ({', '.join(n for n in contents if n in RUN_FILES)})" if set(contents) & set(RUN_FILES)
                else f"files ({', '.join(contents[:3])}{', ...' if len(contents) > 3 else ''})")
        raise FileExistsError(f"--out {out} already holds {what}: pass --resume to continue the run, --force to "
                              "delete its files and start a new one, or choose another --out")


def _resume(run: Run, checkpoint: Path) -> list[dict[str, Any]]:
    """Load a checkpoint into ``run`` after checking its settings; returns the run's learning-rate changes.

    Only the settings of ``RESUMABLE_CHANGES`` may differ. New learning rates replace the stored
    ones in the optimisers (as built by ``build_run``, so StyleGAN's lazy-R1 scaling applies) and are
    appended, with the step, to ``lr_changes``.
    """
    stored = read_checkpoint(checkpoint)["config"]
    wanted = run.state.config
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # for settings newer than the checkpoint
    changed = {k for k in wanted if k not in RESUMABLE_CHANGES and stored.get(k, defaults[k]) != wanted[k]}
    if changed:
        raise CheckpointError(f"cannot resume {checkpoint}: it was trained with different settings "
                              f"({', '.join(f'{k}={stored.get(k, defaults[k])!r}' for k in sorted(changed))})")
    rates = {name: [group["lr"] for group in opt.param_groups] for name, opt in run.state.optimizers.items()}
    run.state.load(checkpoint)
    if run.cfg.steps is not None and run.state.step > run.cfg.steps:
        raise ValueError(f"steps: the run in {checkpoint.parent} is already at step {run.state.step}, past "
                         f"--steps {run.cfg.steps}; give at least {run.state.step}")
    for name, opt in run.state.optimizers.items():  # load_state_dict restored the stored rates: use this run's
        for group, lr in zip(opt.param_groups, rates[name]):
            group["lr"] = lr
    changes = list(stored.get("lr_changes", []))
    used = ("lr_vae",) if run.cfg.model in VAES else ("lr_g", "lr_d")  # the rates this model's optimisers use
    new = {k: (stored.get(k, defaults[k]), wanted[k]) for k in used if stored.get(k, defaults[k]) != wanted[k]}
    if new:
        changes.append({"step": run.state.step, **{k: wanted[k] for k in used}})
        print(f"resuming at step {run.state.step} with new learning rates: "
              + ", ".join(f"{k} {old:g} -> {lr:g}" for k, (old, lr) in new.items()), file=sys.stderr)
    if changes:
        run.state.config["lr_changes"] = changes
    return changes


def train(cfg: TrainConfig, out: str | Path, device: str = "auto", resume: bool = False,
          show_progress: bool = True, force: bool = False, stop: StopSignals | None = None) -> dict[str, Any]:
    """Run (or resume) a training run into ``out``; returns the content of ``metrics.json``.

    Args:
        cfg: the run's settings.
        out: its folder: new or empty, or with ``resume`` one that holds its ``checkpoint.pt``.
        device: "auto", "cpu", "cuda[:N]" or "mps".
        resume: continue the run in ``out``.
        show_progress: show a progress bar (on stderr in a script).
        force: start a new run in a folder that holds files (the previous run's files are deleted)
            or inside the shipped ``checkpoints/``.
        stop: ``StopSignals`` installed by the caller: on Ctrl-C the step under way finishes, the
            checkpoint is written and ``TrainingInterrupted`` is raised.

    Raises:
        FileExistsError, FileNotFoundError: see ``check_out`` (never overwrite a run silently).
        CheckpointError: ``resume`` with a checkpoint of a different configuration, or a corrupt one.
        TrainingDiverged: a logged value became NaN or Inf (the last good checkpoint is kept).
        TrainingInterrupted: ``stop`` received a signal; the checkpoint of the last step is written.
        DiskFullError: no space left (the previous checkpoint is unchanged).
    """
    out = Path(out)
    checkpoint = out / CHECKPOINT
    check_out(out, resume, force)
    device = get_device(device)
    run = build_run(cfg, device)  # every setting and the data are checked here, before anything is written
    for stale in remove_stale_temporaries(out):  # left by a process killed during a write
        print(f"removed {stale}, a temporary file left by an interrupted write", file=sys.stderr)
    lr_changes = _resume(run, checkpoint) if resume else []
    if force and not resume:
        removed = [name for name in RUN_FILES if (out / name).is_file()]
        for name in removed:
            (out / name).unlink()
        if removed:
            print(f"--force: deleted the previous run's {', '.join(removed)} in {out}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / CONFIG, lambda tmp: tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=2)))

    seconds_before = run.state.history.get("seconds", [0.0])[-1] if run.state.history.get("seconds") else 0.0
    start = time.perf_counter()
    step_fn = run.step_fn

    def timed_step() -> dict[str, float]:
        logs = step_fn()
        logs["seconds"] = seconds_before + time.perf_counter() - start  # wall time of the run so far
        return logs

    def should_stop() -> bool:  # the wall-clock budget is spent, or Ctrl-C asked to stop
        out_of_time = cfg.minutes is not None and seconds_before + time.perf_counter() - start >= 60 * cfg.minutes
        return out_of_time or (stop is not None and stop())

    steps_before = run.state.step
    with stop.deferred() if stop is not None else nullcontext():
        fit(run.state, timed_step, cfg.steps, checkpoint_path=checkpoint, checkpoint_every=cfg.checkpoint_every,
            sample_fn=run.sample_grid, sample_every=0, show_progress=show_progress, should_stop=should_stop)
    if stop is not None and stop():
        raise TrainingInterrupted(f"{stop.requested} at step {run.state.step}"
                                  + (f" of {cfg.steps}" if cfg.steps else "") + f": the run is saved in {checkpoint}",
                                  step=run.state.step)
    seconds = run.state.history["seconds"][-1] if run.state.history.get("seconds") else 0.0
    session = time.perf_counter() - start
    calibration: dict[str, float] = {}
    if cfg.calibrate:  # the test scores of G as trained, then its correction scale fitted on the val pairs
        as_trained = evaluate_translation(run.sampler, cfg) if cfg.eval_samples else {}
        calibration = {f"raw_{key}": as_trained[key] for key in ("psnr", "ssim") if key in as_trained}
        calibration["correction_scale"] = calibrate_pix2pix(run.sampler, cfg.task)
    save_generator(out / GENERATOR, run.sampler, run.model_cfg, cfg)
    grid = run.sample_grid() if cfg.calibrate else run.state.grids[-1][1]  # a calibrated G's own outputs
    save_images(grid, out / SAMPLES, nrow=run.grid_columns)
    images_per_step = cfg.batch_size * {"wgan_gp": cfg.n_critic, "cyclegan": 2}.get(cfg.model, 1)  # cyclegan: a batch per domain
    result: dict[str, Any] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        **({"task": cfg.task} if cfg.model == "pix2pix" else {}),
        "steps": run.state.step,
        "train_seconds": round(seconds, 1),
        "images_per_second": round((run.state.step - steps_before) * images_per_step / max(session, 1e-9), 1),
        "device": str(device),
        **({"lr_changes": lr_changes} if lr_changes else {}),
    }
    if cfg.eval_samples and cfg.model in TRANSLATION:
        result.update(evaluate_translation(run.sampler, cfg))
    elif cfg.eval_samples:
        result["eval_samples"] = cfg.eval_samples
        result.update(evaluate_generator(run.sampler, cfg.eval_samples, seed=cfg.seed))
        if "G_ema" in run.state.models:  # what the weight average buys: the same metrics for the raw G
            raw = evaluate_generator(run.state.models["G"], cfg.eval_samples, seed=cfg.seed)
            result.update({f"raw_{key}": raw[key] for key in ("fd", "precision", "recall", "modes")})
    result.update(calibration)
    if cfg.model in VAES and cfg.eval_test_digits:
        result.update(evaluate_likelihood(run.sampler, cfg.dataset, cfg.eval_test_digits, k=cfg.iwae_k))
    atomic_write(out / METRICS, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    return result


EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130  # a bad flag or folder; a failed run; Ctrl-C or SIGTERM


def _flag_message(message: str) -> str:
    """Name the flag in a configuration error: 'lr_g must be ...' -> '--lr-g must be ...'."""
    first = message.split(" ", 1)[0].rstrip(":")
    if first in {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}:
        return f"--{first.replace('_', '-')}{message[len(first):]}"
    return message


def _continue_command(argv: list[str], **flags: float) -> str:
    """The command line that continues this run: ``argv`` without --force, with --resume and ``flags`` set."""
    replaced = {"--" + name.replace("_", "-") for name in flags}
    words: list[str] = []
    i = 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        skip = 0 if name not in replaced else 1 if "=" in argv[i] else 2  # the flag and its value
        if name != "--force" and not skip:
            words.append(argv[i])
        i += max(skip, 1)
    words += [] if "--resume" in words else ["--resume"]
    for name, value in flags.items():
        words += ["--" + name.replace("_", "-"), f"{value:g}"]
    return "python -m course_lib.train " + shlex.join(words)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n")[0],
                                     usage="%(prog)s MODEL --out DIR [--steps N | --minutes M] [--resume | --force] "
                                           "[options] (--help lists them)")
    parser.add_argument("model", choices=MODELS, help="which model to train")
    parser.add_argument("--dataset", help="GANs and VAEs: built-in dataset of 32x32 images (default mnist5k)")
    parser.add_argument("--steps", type=int, help="generator updates to reach (default 3000, or none with --minutes)")
    parser.add_argument("--minutes", type=float, help="wall-clock budget in minutes (stops at steps or minutes)")
    parser.add_argument("--out", type=Path, required=True, help="directory for checkpoint, samples and metrics")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--batch-size", type=int, help="real images per update (default 64)")
    parser.add_argument("--base-channels", type=int, help="network width W (default 32)")
    parser.add_argument("--z-dim", type=int, help="GANs: size of the noise vector z (default 64)")
    parser.add_argument("--loss", choices=["bce", "hinge"], help="dcgan/cgan loss (default bce)")
    parser.add_argument("--conditioning", choices=["projection", "concat"], help="cgan discriminator (default projection)")
    parser.add_argument("--spectral-norm", action="store_true", default=None, help="spectral norm in D")
    parser.add_argument("--lr-g", type=float, help="G learning rate")
    parser.add_argument("--lr-d", type=float, help="D learning rate")
    parser.add_argument("--n-critic", type=int, help="wgan_gp: critic updates per G update (default 5)")
    parser.add_argument("--augment-shift", type=int, help="dcgan/cgan: DiffAugment shift of D's inputs in px (default 0: off)")
    parser.add_argument("--ema-decay", type=float, help="GANs: decay of G_ema, the weight average sampled from (default 0.999; 0: none)")
    parser.add_argument("--latent-dim", type=int, help="vae/cvae: size of z (default 16)")
    parser.add_argument("--likelihood", choices=LIKELIHOODS, help="vae/cvae: p(x|z) (default bernoulli)")
    parser.add_argument("--beta", type=float, help="vae/cvae: weight of the KL term (default 1: the ELBO)")
    parser.add_argument("--lr-vae", type=float, help="vae/cvae: learning rate (default 1e-3)")
    parser.add_argument("--task", choices=TASKS, help="pix2pix: the paired task (default colorize)")
    parser.add_argument("--lambda-l1", type=float, help="pix2pix: weight of the L1 term (default 100)")
    parser.add_argument("--reconstruction", choices=["l1", "l2"], help="pix2pix: reconstruction term (default l1)")
    parser.add_argument("--correction-stride", type=int,
                        help="pix2pix photo tasks: G's correction is constant-ish over blocks of this side (default: 8 for colorize, else 1)")
    parser.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=None,
                        help="pix2pix photo tasks: fit G's correction scale on the val pairs (default on)")
    parser.add_argument("--lambda-cycle", type=float, help="cyclegan: weight of the cycle loss (default 10)")
    parser.add_argument("--lambda-identity", type=float, help="cyclegan: identity loss weight relative to the cycle's (default 0.5)")
    parser.add_argument("--pool-size", type=int, help="cyclegan: fakes in each history pool (default 50; 0: off)")
    parser.add_argument("--n-blocks", type=int, help="cyclegan: residual blocks per generator (default 3)")
    parser.add_argument("--w-dim", type=int, help="stylegan: size of w (default 64)")
    parser.add_argument("--mapping-layers", type=int, help="stylegan: layers of the mapping network (default 4)")
    parser.add_argument("--max-channels", type=int, help="stylegan: width cap of the low resolutions (default 128)")
    parser.add_argument("--style-mode", choices=["demod", "adain"], help="stylegan: demodulation (default) or AdaIN")
    parser.add_argument("--r1-gamma", type=float, help="stylegan: R1 weight (default 10; 0: off)")
    parser.add_argument("--r1-every", type=int, help="stylegan: steps between lazy R1 computations (default 16)")
    parser.add_argument("--mixing-prob", type=float, help="stylegan: fraction of fakes with mixed styles (default 0.9)")
    parser.add_argument("--compile", action="store_true", default=None, help="stylegan: torch.compile G and D")
    parser.add_argument("--eval-samples", type=int, help="samples scored for metrics.json (default 1000; 0 skips)")
    parser.add_argument("--eval-test-digits", type=int, help="vae/cvae: test images for the likelihood (default 1000; 0 skips)")
    parser.add_argument("--iwae-k", type=int, help="vae/cvae: importance samples of test_iwae (default 100)")
    parser.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 250)")
    parser.add_argument("--amp", action="store_true", default=None, help="bf16 autocast on CUDA")
    parser.add_argument("--channels-last", action="store_true", default=None, help="channels_last memory format")
    parser.add_argument("--force", action="store_true",
                        help="start a new run in an --out that holds files (deletes the previous run's files), "
                             "or inside checkpoints/")
    args = parser.parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k not in ("model", "out", "device", "resume", "force")}  # config fields

    def error(message: str, status: int) -> int:
        print(f"error: {message}", file=sys.stderr)
        return status

    if args.resume and args.force:
        return error("--resume continues the run in --out and --force replaces it: give one of them", EXIT_USAGE)
    try:
        cfg = default_config(args.model, **settings)
    except ValueError as err:
        return error(_flag_message(str(err)), EXIT_USAGE)
    checkpoint = args.out / CHECKPOINT
    with StopSignals() as stop:
        try:
            result = train(cfg, args.out, device=args.device, resume=args.resume, force=args.force, stop=stop)
        except TrainingInterrupted as err:
            return error(f"interrupted by {err}; continue it with: {_continue_command(argv)}", EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            if checkpoint.is_file():
                return error(f"interrupted: the last checkpoint, {checkpoint}, is intact; continue the run with: "
                             f"{_continue_command(argv)}", EXIT_INTERRUPTED)
            return error("interrupted before the first checkpoint: nothing to resume", EXIT_INTERRUPTED)
        except TrainingDiverged as err:
            rates = {"lr_vae": cfg.lr_vae / 2} if cfg.model in VAES else {"lr_g": cfg.lr_g / 2, "lr_d": cfg.lr_d / 2}
            if err.checkpoint_step is not None:
                advice = f"Continue from it with lower learning rates, e.g.: {_continue_command(argv, **rates)}"
            else:
                advice = ("Start again with lower learning rates and --force, e.g. "
                          + " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in rates.items()))
            return error(f"{err} {advice}", EXIT_FAILURE)
        except DiskFullError as err:
            after = (f"; then continue the run with: {_continue_command(argv)}" if checkpoint.is_file()
                     else " (with --force: the folder holds the new run's config.json)")
            return error(f"{err}{after}", EXIT_FAILURE)
        except (ValueError, FileExistsError, FileNotFoundError, CheckpointError) as err:
            return error(_flag_message(str(err)), EXIT_USAGE)
        except DatasetUnavailableError as err:  # the command never downloads: say how to fetch the files once
            return error(f"{err} (This command does not download; in Python, "
                         f"course_lib.data.load_dataset({cfg.dataset!r}, download=True) fetches the files once.)",
                         EXIT_FAILURE)
        except OSError as err:  # e.g. a read-only --out
            return error(describe_os_error(err), EXIT_FAILURE)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
