"""Training the course's StyleGAN: its run config, style mixing, the non-saturating loss with lazy R1, its run.

The objective is StyleGAN2's (Karras et al. 2020): the non-saturating logistic loss of Goodfellow
et al. 2014 for both networks, plus the R1 penalty ``(gamma / 2) E_real ||grad_x D(x)||^2`` on D
(Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?"). R1 is *lazy*: it
is computed only every ``r1_every`` steps (16 in the paper), multiplied by ``r1_every`` so its
average strength is unchanged, and D's Adam is given ``lr * c`` and ``beta ** c`` with
``c = r1_every / (r1_every + 1)`` to compensate for the extra updates (StyleGAN2, section 3.1).
Style mixing regularisation (StyleGAN, section 3.1) draws two latents for a fraction
``mixing_prob`` of the fakes and switches from the first w to the second at a random layer, so the
generator cannot rely on neighbouring layers' styles being correlated.

Mixed precision and compilation: with ``amp`` the forward passes run under bf16 autocast (CUDA or
the CPU); R1 always runs in float32 with autocast off, on the *uncompiled* D
(``course_lib.losses.r1_penalty`` unwraps a ``torch.compile`` module), because it needs a double
backward. ``channels_last`` converts the real batch; convert the models once yourself.

``StyleGANTrainConfig`` extends the shared ``RunConfig``; ``build_run(cfg, device)`` puts it together for
``course_lib.train``: data, G, D, G_ema, Adam with the lazy-R1 correction (``lazy_adam``), the batch
sampler and the step closure, seeded by ``cfg.seed``; under ``torchrun`` the step gets G's mapping and
synthesis networks and D in ``DistributedDataParallel`` and this rank's share of every batch
(``course_lib.run.distributed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from course_lib.data import ShuffledBatches
from course_lib.device import seed_everything
from course_lib.ema import ema_copy, ema_update_
from course_lib.losses import d_loss_bce, g_loss_nonsaturating, r1_penalty
from course_lib.run import (Run, RunConfig, adam, architecture_of, autocast, check_ints, distributed,
                            check_numbers, fixed_noise, frozen, generated_arrays, make_config, prepare_images,
                            sample_metrics, sample_z, training_images)
from course_lib.stylegan.model import STYLE_MODES, Discriminator, Generator, StyleGANConfig, mix_styles
from course_lib.training import TrainState

lazy_adam = adam  # Adam with the lazy-regularisation correction for D (reg_every = r1_every); the name lesson 09 uses


# ----------------------------------------------------------------------------------------------
# The run config
# ----------------------------------------------------------------------------------------------

@dataclass
class StyleGANTrainConfig(RunConfig):
    """A run of the course's StyleGAN on 32x32 images: StyleGAN2's recipe, small."""

    model: str = "stylegan"           # stylegan
    batch_size: int = 32              # real images per D update
    z_dim: int = 64                   # size of z
    w_dim: int = 64                   # size of w
    mapping_layers: int = 4           # layers of the mapping network z -> w
    base_channels: int = 16           # the width at 32x32 (each halving of the resolution doubles it, up to max_channels)
    max_channels: int = 128           # width cap of the low resolutions
    style_mode: str = "demod"         # "demod" (modulated conv, StyleGAN2) or "adain" (StyleGAN)
    r1_gamma: float = 10.0            # R1 weight gamma (0: off); 10 as StyleGAN2 on FFHQ (0.05 and 1 collapsed here)
    r1_every: int = 16                # steps between (lazy) R1 computations
    mixing_prob: float = 0.9          # fraction of fakes with mixed styles
    lr_g: float = 2.5e-3              # Adam learning rate of G (StyleGAN2's for CIFAR-10)
    lr_d: float = 2.5e-3              # Adam learning rate of D (before the lazy-R1 correction)
    beta1: float = 0.0                # Adam beta1 (StyleGAN2: 0)
    beta2: float = 0.99               # Adam beta2 (StyleGAN2: 0.99)
    ema_decay: float = 0.998          # G_ema <- decay G_ema + (1 - decay) G every step (0: no G_ema); half-life ~10k images
    compile: bool = False             # torch.compile G's synthesis network and D (R1 runs the uncompiled D)

    MODELS: ClassVar[dict[str, str]] = {"stylegan": "the style-based generator of lesson 09 (StyleGAN2, small)"}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"style_mode": STYLE_MODES}
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("lr_g", "lr_d")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.mixing_prob <= 1.0:
            raise ValueError(f"mixing_prob must be in [0, 1], got {self.mixing_prob!r}")
        check_ints(self, "z_dim", "w_dim", "mapping_layers", "base_channels", "max_channels", "r1_every")
        check_numbers(self, "beta1", "beta2", "ema_decay", below_one=True)
        check_numbers(self, "r1_gamma")


def default_config(model: str = "stylegan", **overrides: Any) -> StyleGANTrainConfig:
    """The course's StyleGAN settings, with ``overrides`` applied: StyleGAN2's Adam (lr 0.0025 as for CIFAR-10,
    betas (0, 0.99)), batch 32, width 16 at 32x32, R1 gamma 10 every 16 steps, G_ema with a half-life of ~10k images."""
    if model not in StyleGANTrainConfig.MODELS:
        raise ValueError(f"model must be one of {tuple(StyleGANTrainConfig.MODELS)}, got {model!r}")
    return make_config(StyleGANTrainConfig, {"model": model}, overrides)


def stylegan_config(cfg: StyleGANTrainConfig, img_channels: int = 1) -> StyleGANConfig:
    """The architecture a run of ``cfg`` trains on images with ``img_channels`` channels."""
    return StyleGANConfig(z_dim=cfg.z_dim, w_dim=cfg.w_dim, mapping_layers=cfg.mapping_layers,
                          img_channels=img_channels, base_channels=cfg.base_channels,
                          max_channels=cfg.max_channels, style_mode=cfg.style_mode)


# ----------------------------------------------------------------------------------------------
# Style mixing and the step function
# ----------------------------------------------------------------------------------------------

def sample_ws(G: Generator, batch_size: int, mixing_prob: float = 0.0, generator: torch.Generator | None = None,
              device: torch.device | str | None = None,
              mapping: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer codes for a batch of fakes, with style mixing for a fraction ``mixing_prob`` of them.

    Two latents are always drawn (so the random stream does not depend on the coin flips); a
    mixed sample uses w1 for the layers before a crossover drawn uniformly from 1..num_ws-1 and w2
    from there on; the others use w1 everywhere. ``mapping`` is ``G.mapping`` (None) or a wrapper
    of it (``DistributedDataParallel`` under torchrun).

    Returns:
        ``(ws, w1)``: (B, num_ws, w_dim) and the unmixed w's (B, w_dim) (for ``G.update_w_avg``).
    """
    if not 0.0 <= mixing_prob <= 1.0:
        raise ValueError(f"mixing_prob must be in [0, 1], got {mixing_prob!r}")
    source = generator.device if generator is not None else "cpu"
    z = sample_z(2 * batch_size, G.z_dim, generator=generator, device=device)         # (2B, z_dim)
    mixed = torch.rand(batch_size, generator=generator, device=source) < mixing_prob   # (B,) coin flips
    cut = torch.randint(1, G.num_ws, (batch_size,), generator=generator, device=source)
    cut = torch.where(mixed, cut, torch.full_like(cut, G.num_ws)).to(z.device)        # num_ws: no mixing
    w = (mapping if mapping is not None else G.mapping)(z)                             # (2B, w_dim)
    w1, w2 = w[:batch_size], w[batch_size:]
    return mix_styles(G.broadcast(w1), G.broadcast(w2), cut), w1


def stylegan_step(
    G: Generator,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    x_real: torch.Tensor,
    *,
    step: int,
    r1_gamma: float = 10.0,
    r1_every: int = 16,
    mixing_prob: float = 0.9,
    w_avg_beta: float = 0.995,
    generator: torch.Generator | None = None,
    amp: bool = False,
    channels_last: bool = False,
    synthesis: Callable[[torch.Tensor], torch.Tensor] | None = None,
    mapping: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """One D update (with lazy R1 on every ``r1_every``-th step), then one G update.

    ``D`` may be a ``torch.compile`` wrapper (R1 unwraps it); for G pass a compiled
    ``G.synthesis`` as ``synthesis`` (the step calls the mapping and the synthesis network
    separately, for style mixing); under torchrun pass both in ``DistributedDataParallel``
    (``synthesis`` and ``mapping``), so that their gradients are averaged across the ranks. The w's mapped for G's update feed ``w_avg``, the average the
    truncation trick pulls towards.

    Args:
        G, D: the networks; opt_G, opt_D: their optimisers (``lazy_adam`` for D).
        x_real: (B, C, 32, 32) real images in [-1, 1].
        step: completed steps so far; R1 runs when ``step % r1_every == 0``.
        r1_gamma: R1 weight gamma >= 0 (0: off).
        r1_every: steps between R1 computations (1: every step, not lazy).
        mixing_prob: fraction of fakes with mixed styles, in [0, 1].
        w_avg_beta: decay of the tracked w average.
        generator: ``torch.Generator`` for z and the mixing draws.
        amp: bf16 autocast (CUDA or CPU); channels_last: convert x_real to channels_last.
        synthesis: ``G.synthesis`` or a compiled copy of it (None: ``G.synthesis``).
        mapping: ``G.mapping`` or a wrapper of it (None: ``G.mapping``).

    Returns:
        ``{"d_loss", "g_loss", "d_real", "d_fake"}`` (``d_real``/``d_fake``: mean sigmoid of D's
        logits before its update), plus ``"r1"`` (the unweighted penalty) on regularisation steps.
    """
    if not r1_gamma >= 0 or not isinstance(r1_every, int) or r1_every < 1:
        raise ValueError(f"r1_gamma must be >= 0 and r1_every an int >= 1, got {r1_gamma!r} and {r1_every!r}")
    x_real = prepare_images(x_real, channels_last)
    B, device = x_real.shape[0], x_real.device
    G_net = getattr(G, "_orig_mod", G)  # the module, for mapping / broadcast / w_avg
    synthesize = synthesis if synthesis is not None else G_net.synthesis

    # --- D step: real -> high, fakes -> low; every r1_every steps also the R1 penalty ---
    with torch.no_grad(), autocast(amp, device):
        ws, _ = sample_ws(G_net, B, mixing_prob, generator, device, mapping)
        x_fake = synthesize(ws)                                             # (B, C, 32, 32), no graph
    if channels_last:
        x_fake = x_fake.contiguous(memory_format=torch.channels_last)
    with autocast(amp, device):
        real_logits, fake_logits = D(x_real).float(), D(x_fake).float()    # (B,) each
    loss_D = d_loss_bce(real_logits, fake_logits)
    logs: dict[str, float] = {}
    if r1_gamma > 0 and step % r1_every == 0:
        r1 = r1_penalty(D, x_real)                                           # float32, autocast off, uncompiled D
        loss_D = loss_D + 0.5 * r1_gamma * r1_every * r1                    # lazy: r1_every times as strong
        logs["r1"] = r1.item()
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()

    # --- G step: fresh fakes through the frozen D ---
    with frozen(D):
        with autocast(amp, device):
            ws, w = sample_ws(G_net, B, mixing_prob, generator, device, mapping)
            loss_G = g_loss_nonsaturating(D(synthesize(ws)).float())
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
    G_net.update_w_avg(w, w_avg_beta)

    return {"d_loss": loss_D.item(), "g_loss": loss_G.item(),
            "d_real": torch.sigmoid(real_logits.detach()).mean().item(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean().item(), **logs}


# ----------------------------------------------------------------------------------------------
# The run (course_lib.train builds a run of stylegan with this)
# ----------------------------------------------------------------------------------------------

def build_run(cfg: StyleGANTrainConfig, device: torch.device | str = "cpu") -> Run:
    """Data, networks (G, D, G_ema), optimisers and the step closure of a StyleGAN run, seeded by ``cfg.seed``.

    The run's step count drives lazy R1 and the EMA warm-up; steps without R1 log the latest R1 value again,
    so every step logs the same keys.
    """
    device = torch.device(device)
    amp = cfg.bf16(device)  # bf16 autocast of the forward passes (--precision), refused early where unsupported
    channels_last = cfg.use_channels_last(device)  # --channels-last; by default on with bf16
    generator = seed_everything(cfg.seed)
    data = training_images(cfg)  # checked before anything is built
    model_cfg = stylegan_config(cfg, img_channels=data.x.shape[1])
    G, D = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = device.type == "cuda"
    optimizers = {"G": lazy_adam(G, cfg.lr_g, (cfg.beta1, cfg.beta2), fused=fused),
                  "D": lazy_adam(D, cfg.lr_d, (cfg.beta1, cfg.beta2), cfg.r1_every, fused=fused)}
    models: dict[str, nn.Module] = {"G": G, "D": D}
    if cfg.ema_decay:
        models["G_ema"] = ema_copy(G)
    sampler = models.get("G_ema", G)
    # several processes: mapping, synthesis and D in DistributedDataParallel (as StyleGAN2-ADA), gradients averaged
    mapping, synthesis, D_train = distributed.wrap(G.mapping), distributed.wrap(G.synthesis), distributed.wrap(D)
    synthesis_fast, D_fast = (torch.compile(synthesis), torch.compile(D_train)) if cfg.compile else (synthesis, D_train)
    batches = ShuffledBatches(data.x, None, batch_size=cfg.batch_size,
                              generator=distributed.batch_generator(generator, cfg.seed), **distributed.shard())

    def step() -> dict[str, float]:
        logs = stylegan_step(G, D_fast, optimizers["G"], optimizers["D"], next(batches).to(device, non_blocking=True),
                             step=state.step, r1_gamma=cfg.r1_gamma, r1_every=cfg.r1_every,
                             mixing_prob=cfg.mixing_prob, generator=generator, amp=amp,
                             channels_last=channels_last, synthesis=synthesis_fast, mapping=mapping)
        if cfg.ema_decay:
            ema_update_(models["G_ema"], G, cfg.ema_decay, step=state.step)
        logs.setdefault("r1", (state.history.get("r1") or [0.0])[-1])  # the latest R1: every step logs the same keys
        return logs

    state = TrainState(models=models, optimizers=optimizers, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    fixed_z, _ = fixed_noise(cfg, cfg.z_dim, conditional=False, device=device)

    @torch.no_grad()
    def grid() -> torch.Tensor:  # the fixed z with the generator's fixed noise maps, in eval mode
        was_training = sampler.training
        sampler.eval()
        images = sampler(fixed_z, noise_mode="const")
        sampler.train(was_training)
        return images

    return Run(cfg, state, step, sampler, grid=grid,
               evaluate=lambda: sample_metrics(sampler, cfg.eval_samples, cfg.seed, raw=G if sampler is not G else None),
               images_per_step=cfg.batch_size, fixed_z=fixed_z)


def build_sampler(architecture: dict[str, Any], where: str = "the weights file") -> Generator:
    """The (untrained) G that a run's generator.safetensors holds, from its architecture.

    Files written before ``StyleGANConfig`` lost its ``num_classes`` field (always 0) still load.
    """
    architecture = {k: v for k, v in architecture.items() if not (k == "num_classes" and v == 0)}
    return Generator(architecture_of(StyleGANConfig, architecture, where))


def sample_arrays(model: Generator, train: dict[str, Any], n: int, *, seed: int = 0, chunk: int = 500,
                  truncation_psi: float = 1.0) -> Iterator[dict[str, torch.Tensor]]:
    """``python -m course_lib.sample``'s arrays: n samples (``arr_0``) with fresh noise inputs and, with
    ``truncation_psi`` < 1, the truncation trick ``w <- w_avg + psi (w - w_avg)``."""
    if not 0.0 <= truncation_psi <= 1.0:
        raise ValueError(f"truncation_psi must be in [0, 1], got {truncation_psi}")
    return generated_arrays(model, n, seed, chunk, truncation_psi)
