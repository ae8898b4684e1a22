"""Training the DCGAN family (dcgan, cgan, wgan_gp): its run config, its step functions and its run.

``GANTrainConfig`` extends the shared ``RunConfig`` with the settings of the three models of lessons
02, 04 and 05; ``default_config(model)`` gives each model's recommended settings. Two step functions
update D, then G, and return floats:

- ``gan_step``: the standard alternating step with the BCE (non-saturating) or the hinge loss.
- ``wgan_gp_step``: one generator iteration of WGAN-GP, Algorithm 1 of Gulrajani et al. 2017,
  "Improved Training of Wasserstein GANs": ``n_critic`` critic updates with the gradient penalty,
  then one generator update.

Models and optimisers are built by the caller; a step function owns neither. Two opt-in flags run
the same code path faster on a GPU (and, on a CPU with native bf16, faster there too): ``amp=True`` (bf16 autocast on CUDA or the CPU; see
``course_lib.run.steps``) and ``channels_last=True`` (convert the models yourself, once).
``build_run(cfg, device)`` puts it together for ``course_lib.train``: data, G, D, G_ema (the weight
average sampled from), Adam, the batch sampler and the step closure, all seeded by ``cfg.seed``;
under ``torchrun`` the steps get G and D in ``DistributedDataParallel`` and this rank's share of
every batch (``course_lib.run.distributed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from course_lib.augment import translate as shift_images
from course_lib.data import ShuffledBatches
from course_lib.device import seed_everything
from course_lib.ema import ema_copy, ema_update_
from course_lib.gan.model import CONDITIONINGS, DCGANConfig, Discriminator, Generator
from course_lib.losses import (
    d_loss_bce,
    d_loss_hinge,
    d_loss_wasserstein,
    g_loss_hinge,
    g_loss_nonsaturating,
    g_loss_wasserstein,
    gradient_penalty,
)
from course_lib.run import (Run, RunConfig, adam, architecture_of, autocast, check_ints, distributed,
                            check_numbers, fixed_noise, frozen, generated_arrays, make_config, prepare_images,
                            sample_metrics, sample_z, training_images)
from course_lib.training import TrainState

LOSSES = ("bce", "hinge")  # the losses gan_step accepts


# ----------------------------------------------------------------------------------------------
# The run config
# ----------------------------------------------------------------------------------------------

@dataclass
class GANTrainConfig(RunConfig):
    """A run of dcgan, cgan (class-conditional) or wgan_gp (a critic with the gradient penalty) on 32x32 images."""

    model: str = "dcgan"              # dcgan, cgan (conditional: needs a labelled dataset) or wgan_gp
    z_dim: int = 64                   # size of the noise vector z
    base_channels: int = 32           # W: network width (DCGANConfig.base_channels); 32 trains 2.4x faster than 64 on a CPU
    loss: str = "bce"                 # "bce" (non-saturating) or "hinge"
    conditioning: str = "projection"  # how the conditional D reads the labels: "projection" or "concat"
    spectral_norm: bool = False       # spectral norm in D (Miyato et al. 2018)
    lr_g: float = 2e-4                # Adam learning rate of G
    lr_d: float = 2e-4                # Adam learning rate of D
    beta1: float = 0.5                # Adam beta1 (DCGAN: 0.5; WGAN-GP: 0.0)
    beta2: float = 0.999              # Adam beta2 (DCGAN: 0.999; WGAN-GP: 0.9)
    n_critic: int = 5                 # critic updates per generator update
    lambda_gp: float = 10.0           # gradient-penalty weight
    augment_shift: int = 0            # DiffAugment translation of D's inputs by up to this many px (0: off)
    ema_decay: float = 0.999          # G_ema <- decay G_ema + (1 - decay) G every step (0: no G_ema, sample G)

    MODELS: ClassVar[dict[str, str]] = {
        "dcgan": "the DCGAN of lesson 02",
        "cgan": "the class-conditional GAN of lesson 04: conditional batch norm in G, a projection (or concat) D",
        "wgan_gp": "WGAN-GP, lesson 05: a critic with the gradient penalty, n_critic critic updates per G update"}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"loss": LOSSES, "conditioning": CONDITIONINGS}
    ONLY_FOR: ClassVar[dict[str, tuple[str, ...]]] = {
        "loss": ("dcgan", "cgan"), "augment_shift": ("dcgan", "cgan"), "conditioning": ("cgan",),
        "n_critic": ("wgan_gp",), "lambda_gp": ("wgan_gp",)}
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("lr_g", "lr_d")
    AUTO_BF16: ClassVar[dict[str, tuple[str, ...]]] = {  # same quality at equal steps and >= 1.2x faster (README, Benchmark);
        "dcgan": ("cpu",), "cgan": ("cpu",)}             # wgan_gp waits for longer equal-step runs

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, "z_dim", "base_channels", "n_critic")
        check_ints(self, "augment_shift", at_least=0)
        check_numbers(self, "beta1", "beta2", "ema_decay", below_one=True)
        check_numbers(self, "lambda_gp")


PRESETS: dict[str, dict[str, Any]] = {  # each model's recommended settings (see default_config)
    "dcgan": {"lr_g": 5e-4, "lr_d": 5e-4},
    "cgan": {},
    "wgan_gp": {"lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.0, "beta2": 0.9},
}


def default_config(model: str = "dcgan", **overrides: Any) -> GANTrainConfig:
    """The recommended settings of ``model`` (dcgan, cgan or wgan_gp), with ``overrides`` applied.

    WGAN-GP uses the paper's Adam settings (lr 1e-4, betas (0, 0.9)); the conditional GAN uses
    Radford et al.'s (lr 2e-4, betas (0.5, 0.999)); the DCGAN their betas with lr 5e-4, because a
    few thousand steps are all a CPU gets: on mnist5k (width 32, G_ema) FD after 3,000 steps was
    about 175 at 2e-4, 72 at 5e-4 and 65 at 1e-3.
    """
    if model not in PRESETS:
        raise ValueError(f"model must be one of {tuple(GANTrainConfig.MODELS)}, got {model!r}")
    return make_config(GANTrainConfig, {"model": model, **PRESETS[model]}, overrides)


def dcgan_config(cfg: GANTrainConfig, img_channels: int) -> DCGANConfig:
    """The architecture a run of ``cfg`` trains on images with ``img_channels`` channels."""
    return DCGANConfig(z_dim=cfg.z_dim, img_channels=img_channels, base_channels=cfg.base_channels,
                       num_classes=10 if cfg.model == "cgan" else 0, conditioning=cfg.conditioning,
                       spectral_norm=cfg.spectral_norm, critic=cfg.model == "wgan_gp")


# ----------------------------------------------------------------------------------------------
# The step functions
# ----------------------------------------------------------------------------------------------

def gan_step(
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    x_real: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    loss: str = "bce",
    generator: torch.Generator | None = None,
    amp: bool = False,
    channels_last: bool = False,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """One discriminator update, then one generator update.

    1. D step: ``x_fake = G(z, labels)`` is *detached* for D's loss, so no gradient reaches G.
       Real and fake batches go through D separately (each with its own batch-norm statistics,
       as in DCGAN).
    2. G step: the same ``x_fake`` (G has not changed) goes through the *updated* D, whose
       parameters are frozen meanwhile, so the G loss gives gradients to G only.

    A conditional pair generates the fakes with the real batch's labels.

    Args:
        G: generator, ``G(z, labels)`` -> (B, C, H, W); needs a ``z_dim`` attribute.
        D: discriminator, ``D(x, labels)`` -> logits (B,).
        opt_G: optimiser over G's parameters.
        opt_D: optimiser over D's parameters.
        x_real: real images, shape (B, C, H, W), in [-1, 1].
        labels: (B,) int64 labels of x_real for a conditional pair, else None.
        loss: ``"bce"`` (``d_loss_bce`` + non-saturating G loss) or ``"hinge"``
            (``d_loss_hinge`` + ``g_loss_hinge``).
        generator: optional ``torch.Generator`` for z.
        amp: bf16 autocast of the networks, CUDA or CPU (``course_lib.run.steps.autocast``); losses in float32.
        channels_last: convert x_real to channels_last; convert the models beforehand.
        augment: a differentiable transformation applied to every batch D sees, real and fake, in
            both updates (DiffAugment, Zhao et al. 2020; see ``course_lib.augment``); None: none.

    Returns:
        ``{"d_loss", "g_loss", "d_real", "d_fake"}`` as Python floats. ``d_real`` and ``d_fake``
        are D's mean output on the real and the fake batch in the D step (before D's update):
        the probability ``sigmoid(logit)`` in [0, 1] for ``"bce"``, the raw score for ``"hinge"``.
    """
    if loss == "bce":
        d_loss_fn, g_loss_fn = d_loss_bce, g_loss_nonsaturating
    elif loss == "hinge":
        d_loss_fn, g_loss_fn = d_loss_hinge, g_loss_hinge
    else:
        raise ValueError(f"loss must be 'bce' or 'hinge', got {loss!r}")
    x_real = prepare_images(x_real, channels_last)
    z = sample_z(x_real.shape[0], G.z_dim, generator=generator, device=x_real.device)  # (B, z_dim)
    aug = augment if augment is not None else (lambda t: t)

    # --- D step: real -> high, detached fakes -> low ---
    with autocast(amp, x_real.device):
        x_fake = G(z, labels)                                  # (B, C, H, W), graph kept for the G step
        real_logits = D(aug(x_real), labels).float()           # (B,)
        fake_logits = D(aug(x_fake.detach()), labels).float()  # (B,), no gradient path to G
    loss_D = d_loss_fn(real_logits, fake_logits)
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()

    # --- G step: fool the updated D; D is frozen so only G gets gradients ---
    with frozen(D):
        with autocast(amp, x_real.device):
            loss_G = g_loss_fn(D(aug(x_fake), labels).float())
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()

    to_stat = torch.sigmoid if loss == "bce" else (lambda t: t)
    return {
        "d_loss": loss_D.item(),
        "g_loss": loss_G.item(),
        "d_real": to_stat(real_logits.detach()).mean().item(),
        "d_fake": to_stat(fake_logits.detach()).mean().item(),
    }


def wgan_gp_step(
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    x_real: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor] | None = None,
    *,
    lambda_gp: float = 10.0,
    generator: torch.Generator | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """One generator iteration of WGAN-GP: ``n_critic`` critic updates, then one G update.

    ``n_critic = len(x_real)``: the call takes one real batch per critic update (5 in the paper),
    so one call is one pass of the outer loop of Algorithm 1 of Gulrajani et al. 2017, every call
    updates G exactly once, and a run's step count is its number of generator iterations, as in
    the paper. With ``ShuffledBatches``: ``x_real = [next(batches) for _ in range(5)]``.

    Each critic update draws fresh noise, generates fakes without gradients, and minimises
    ``d_loss_wasserstein + lambda_gp * gradient_penalty`` (the penalty in float32, outside
    autocast). The G update draws fresh noise (with the last batch's labels when conditional) and
    minimises ``g_loss_wasserstein`` through the frozen critic.

    Args:
        G: generator, ``G(z, labels)`` -> (B, C, H, W); needs a ``z_dim`` attribute.
        D: the critic, ``D(x, labels)`` -> scores (B,); must not contain batch norm
            (``DCGANConfig(critic=True)``).
        opt_G: optimiser over G's parameters (the paper: Adam, lr 1e-4, betas (0, 0.9)).
        opt_D: optimiser over D's parameters (the same settings).
        x_real: a list of n_critic >= 1 real batches, each (B, C, H, W) in [-1, 1].
        labels: for a conditional pair, a list of the matching (B,) int64 label batches; else None.
        lambda_gp: weight of the gradient penalty, >= 0 (10 in the paper).
        generator: optional ``torch.Generator`` for z and for the penalty's interpolation weights.
        amp: bf16 autocast of the networks, CUDA or CPU (``course_lib.run.steps.autocast``); losses in float32.
        channels_last: convert the real batches to channels_last; convert the models beforehand.

    Returns:
        ``{"d_loss", "g_loss", "d_real", "d_fake", "gp"}`` as Python floats. ``d_loss`` (including
        ``lambda_gp * gp``), ``d_real``, ``d_fake`` (mean raw critic scores) and ``gp`` are
        averaged over the n_critic critic updates; ``d_real - d_fake`` is the critic's estimate
        of the Wasserstein-1 distance.
    """
    if isinstance(x_real, torch.Tensor) or not isinstance(x_real, Sequence) or len(x_real) == 0:
        raise TypeError(
            "x_real must be a non-empty list of n_critic real batches, each (B, C, H, W); "
            f"got {type(x_real).__name__}. For a single critic update pass [x_real]."
        )
    label_batches = [None] * len(x_real) if labels is None else list(labels)
    if len(label_batches) != len(x_real):
        raise ValueError(f"labels must be a list of {len(x_real)} label batches like x_real, got {len(label_batches)}")
    if not lambda_gp >= 0:
        raise ValueError(f"lambda_gp must be >= 0, got {lambda_gp!r}")
    if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) for m in D.modules()):
        raise ValueError("D must be a critic without batch norm for the gradient penalty; "
                         "build it with DCGANConfig(critic=True)")

    totals = {"d_loss": 0.0, "d_real": 0.0, "d_fake": 0.0, "gp": 0.0}
    for i, (x, y) in enumerate(zip(x_real, label_batches)):
        x = prepare_images(x, channels_last, name=f"x_real[{i}]")
        z = sample_z(x.shape[0], G.z_dim, generator=generator, device=x.device)  # (B, z_dim)
        with autocast(amp, x.device):
            with torch.no_grad():
                x_fake = G(z, y)                                # (B, C, H, W), no graph: only D learns here
            real_scores = D(x, y).float()                       # (B,)
            fake_scores = D(x_fake, y).float()                  # (B,)
        loss_w = d_loss_wasserstein(real_scores, fake_scores)
        gp = gradient_penalty(D, x, x_fake, y, generator=generator)  # float32, autocast off
        loss_D = loss_w + lambda_gp * gp
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        opt_D.step()
        totals["d_loss"] += loss_D.item()
        totals["d_real"] += real_scores.detach().mean().item()
        totals["d_fake"] += fake_scores.detach().mean().item()
        totals["gp"] += gp.item()

    # --- G step: raise the critic's score of fresh fakes; the critic is frozen ---
    z = sample_z(x.shape[0], G.z_dim, generator=generator, device=x.device)
    with frozen(D):
        with autocast(amp, x.device):
            loss_G = g_loss_wasserstein(D(G(z, y), y).float())
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()

    logs = {key: value / len(x_real) for key, value in totals.items()}
    logs["g_loss"] = loss_G.item()
    return {key: logs[key] for key in ("d_loss", "g_loss", "d_real", "d_fake", "gp")}


# ----------------------------------------------------------------------------------------------
# The run (course_lib.train builds a run of dcgan, cgan or wgan_gp with this)
# ----------------------------------------------------------------------------------------------

def build_run(cfg: GANTrainConfig, device: torch.device | str = "cpu") -> Run:
    """Data, G, D (and G_ema), Adam, batch sampler and step closure of a run, all seeded by ``cfg.seed``."""
    device = torch.device(device)
    amp = cfg.bf16(device)  # bf16 autocast of the forward passes (--precision), refused early where unsupported
    channels_last = cfg.use_channels_last(device)  # --channels-last; by default on with bf16
    conditional = cfg.model == "cgan"
    data = training_images(cfg, conditional)  # checked before anything is built
    generator = seed_everything(cfg.seed)  # seeds the initialisation too
    model_cfg = dcgan_config(cfg, img_channels=data.x.shape[1])
    labels = data.labels if conditional else None
    batches = ShuffledBatches(data.x, labels, batch_size=cfg.batch_size,
                              generator=distributed.batch_generator(generator, cfg.seed), **distributed.shard())

    def next_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = next(batches)
        x, y = batch if labels is not None else (batch, None)
        return x.to(device, non_blocking=True), (y.to(device) if y is not None else None)

    G, D = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = device.type == "cuda"
    optimizers = {"G": adam(G, cfg.lr_g, (cfg.beta1, cfg.beta2), fused=fused),
                  "D": adam(D, cfg.lr_d, (cfg.beta1, cfg.beta2), fused=fused)}
    models: dict[str, nn.Module] = {"G": G, "D": D}
    if cfg.ema_decay:
        models["G_ema"] = ema_copy(G)
    sampler = models.get("G_ema", G)  # sample from the average when there is one
    G_train, D_train = distributed.wrap(G), distributed.wrap(D)  # several processes: gradients averaged across them
    augment = None
    if cfg.augment_shift:
        def augment(t: torch.Tensor) -> torch.Tensor:
            return shift_images(t, cfg.augment_shift, generator=generator)

    def step() -> dict[str, float]:
        if cfg.model == "wgan_gp":
            xs, _ = zip(*[next_batch() for _ in range(cfg.n_critic)])
            logs = wgan_gp_step(G_train, D_train, optimizers["G"], optimizers["D"], list(xs), None, lambda_gp=cfg.lambda_gp,
                                generator=generator, amp=amp, channels_last=channels_last)
        else:
            x, y = next_batch()
            logs = gan_step(G_train, D_train, optimizers["G"], optimizers["D"], x, y, loss=cfg.loss, generator=generator,
                            amp=amp, channels_last=channels_last, augment=augment)
        if cfg.ema_decay:
            ema_update_(models["G_ema"], G, cfg.ema_decay, step=state.step)
        return logs

    state = TrainState(models=models, optimizers=optimizers, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    fixed_z, fixed_labels = fixed_noise(cfg, cfg.z_dim, conditional, device)
    return Run(cfg, state, step, sampler,
               grid=lambda: sampler(fixed_z, fixed_labels),
               evaluate=lambda: sample_metrics(sampler, cfg.eval_samples, cfg.seed, raw=G if sampler is not G else None),
               images_per_step=cfg.batch_size * (cfg.n_critic if cfg.model == "wgan_gp" else 1),
               fixed_z=fixed_z, fixed_labels=fixed_labels)


def build_sampler(architecture: dict[str, Any], where: str = "the weights file") -> Generator:
    """The (untrained) G that a run's generator.safetensors holds, from its architecture."""
    return Generator(architecture_of(DCGANConfig, architecture, where))


def sample_arrays(model: Generator, train: dict[str, Any], n: int, *, seed: int = 0,
                  chunk: int = 500) -> Iterator[dict[str, torch.Tensor]]:
    """``python -m course_lib.sample``'s arrays: n samples (``arr_0``), with balanced ``labels`` for a cGAN."""
    return generated_arrays(model, n, seed, chunk)
