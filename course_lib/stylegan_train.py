"""Training the course's StyleGAN: style mixing, the non-saturating loss with lazy R1, and the CLI's run.

The objective is StyleGAN2's (Karras et al. 2020): the non-saturating logistic loss of Goodfellow
et al. 2014 for both networks, plus the R1 penalty ``(gamma / 2) E_real ||grad_x D(x)||^2`` on D
(Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?"). R1 is *lazy*: it
is computed only every ``r1_every`` steps (16 in the paper), multiplied by ``r1_every`` so its
average strength is unchanged, and D's Adam is given ``lr * c`` and ``beta ** c`` with
``c = r1_every / (r1_every + 1)`` to compensate for the extra updates (StyleGAN2, section 3.1).
Style mixing regularisation (StyleGAN, section 3.1) draws two latents for a fraction
``mixing_prob`` of the fakes and switches from the first w to the second at a random layer, so the
generator cannot rely on neighbouring layers' styles being correlated.

Mixed precision and compilation: with ``amp`` the forward passes run under bf16 autocast on CUDA
(a no-op elsewhere); R1 always runs in float32 with autocast off, on the *uncompiled* D
(``course_lib.losses.r1_penalty`` unwraps a ``torch.compile`` module), because it needs a double
backward. ``channels_last`` converts the real batch; convert the models once yourself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from course_lib.data import ShuffledBatches, load_dataset
from course_lib.ema import ema_copy, ema_update_
from course_lib.gan import sample_z
from course_lib.gan_steps import _autocast, _frozen, _prepare
from course_lib.losses import d_loss_bce, g_loss_nonsaturating, r1_penalty
from course_lib.stylegan import Discriminator, Generator, StyleGANConfig, mix_styles
from course_lib.training import TrainState


def sample_ws(G: Generator, batch_size: int, mixing_prob: float = 0.0, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer codes for a batch of fakes, with style mixing for a fraction ``mixing_prob`` of them.

    Two latents are always drawn (so the random stream does not depend on the coin flips); a
    mixed sample uses w1 for the layers before a crossover drawn uniformly from 1..num_ws-1 and w2
    from there on; the others use w1 everywhere.

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
    w = G.mapping(z)                                                                   # (2B, w_dim)
    w1, w2 = w[:batch_size], w[batch_size:]
    return mix_styles(G.broadcast(w1), G.broadcast(w2), cut), w1


def lazy_adam(module: nn.Module, lr: float, betas: tuple[float, float], reg_every: int = 0,
              fused: bool = False) -> torch.optim.Adam:
    """Adam for a network regularised every ``reg_every`` steps: ``lr * c`` and ``beta ** c``, c = k / (k + 1)."""
    c = reg_every / (reg_every + 1) if reg_every else 1.0
    return torch.optim.Adam(module.parameters(), lr=lr * c, betas=(betas[0] ** c, betas[1] ** c),
                            **({"fused": True} if fused else {}))


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
) -> dict[str, float]:
    """One D update (with lazy R1 on every ``r1_every``-th step), then one G update.

    ``D`` may be a ``torch.compile`` wrapper (R1 unwraps it); for G pass a compiled
    ``G.synthesis`` as ``synthesis`` (the step calls the mapping and the synthesis network
    separately, for style mixing). The w's mapped for G's update feed ``w_avg``, the average the
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
        amp: bf16 autocast on CUDA; channels_last: convert x_real to channels_last.
        synthesis: ``G.synthesis`` or a compiled copy of it (None: ``G.synthesis``).

    Returns:
        ``{"d_loss", "g_loss", "d_real", "d_fake"}`` (``d_real``/``d_fake``: mean sigmoid of D's
        logits before its update), plus ``"r1"`` (the unweighted penalty) on regularisation steps.
    """
    if not r1_gamma >= 0 or not isinstance(r1_every, int) or r1_every < 1:
        raise ValueError(f"r1_gamma must be >= 0 and r1_every an int >= 1, got {r1_gamma!r} and {r1_every!r}")
    x_real = _prepare(x_real, channels_last)
    B, device = x_real.shape[0], x_real.device
    G_net = getattr(G, "_orig_mod", G)  # the module, for mapping / broadcast / w_avg
    synthesize = synthesis if synthesis is not None else G_net.synthesis

    # --- D step: real -> high, fakes -> low; every r1_every steps also the R1 penalty ---
    with torch.no_grad(), _autocast(amp, device):
        ws, _ = sample_ws(G_net, B, mixing_prob, generator, device)
        x_fake = synthesize(ws)                                             # (B, C, 32, 32), no graph
    if channels_last:
        x_fake = x_fake.contiguous(memory_format=torch.channels_last)
    with _autocast(amp, device):
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
    with _frozen(D):
        with _autocast(amp, device):
            ws, w = sample_ws(G_net, B, mixing_prob, generator, device)
            loss_G = g_loss_nonsaturating(D(synthesize(ws)).float())
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
    G_net.update_w_avg(w, w_avg_beta)

    return {"d_loss": loss_D.item(), "g_loss": loss_G.item(),
            "d_real": torch.sigmoid(real_logits.detach()).mean().item(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean().item(), **logs}


# ----------------------------------------------------------------------------------------------
# The training CLI's run (course_lib.train builds a run of model "stylegan" with this)
# ----------------------------------------------------------------------------------------------

@dataclass
class StyleGANRun:
    """What ``course_lib.train.build_run`` needs from a StyleGAN run."""

    model_cfg: StyleGANConfig
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    batches: ShuffledBatches
    step: Callable[[], dict[str, float]]
    sampler: nn.Module  # G_ema (or G without an average)


def stylegan_config(cfg: Any, img_channels: int = 1) -> StyleGANConfig:
    """The architecture of a ``TrainConfig`` of model ``stylegan``."""
    return StyleGANConfig(z_dim=cfg.z_dim, w_dim=cfg.w_dim, mapping_layers=cfg.mapping_layers,
                          img_channels=img_channels, base_channels=cfg.base_channels,
                          max_channels=cfg.max_channels, style_mode=cfg.style_mode)


def build_stylegan(cfg: Any, generator: torch.Generator, device: torch.device,
                   state: Callable[[], TrainState]) -> StyleGANRun:
    """Data, networks (G, D, G_ema), optimisers and the step closure of a StyleGAN run.

    ``state`` returns the run's ``TrainState`` (its step drives lazy R1 and the EMA warm-up; its
    history gives the latest R1 value, which steps without R1 log again).
    """
    data = load_dataset(cfg.dataset, "train")
    if data.x.dim() != 4 or tuple(data.x.shape[2:]) != (32, 32):
        raise ValueError(f"dataset {cfg.dataset!r} must hold 32x32 images, got shape {tuple(data.x.shape)}")
    model_cfg = stylegan_config(cfg, img_channels=data.x.shape[1])
    G, D = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
    if cfg.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = device.type == "cuda"
    optimizers = {"G": lazy_adam(G, cfg.lr_g, (cfg.beta1, cfg.beta2), fused=fused),
                  "D": lazy_adam(D, cfg.lr_d, (cfg.beta1, cfg.beta2), cfg.r1_every, fused=fused)}
    models: dict[str, nn.Module] = {"G": G, "D": D}
    if cfg.ema_decay:
        models["G_ema"] = ema_copy(G)
    synthesis_fast, D_fast = (torch.compile(G.synthesis), torch.compile(D)) if cfg.compile else (None, D)
    batches = ShuffledBatches(data.x, None, batch_size=cfg.batch_size, generator=generator)

    def step() -> dict[str, float]:
        run = state()
        logs = stylegan_step(G, D_fast, optimizers["G"], optimizers["D"], next(batches).to(device, non_blocking=True),
                             step=run.step, r1_gamma=cfg.r1_gamma, r1_every=cfg.r1_every,
                             mixing_prob=cfg.mixing_prob, generator=generator, amp=cfg.amp,
                             channels_last=cfg.channels_last, synthesis=synthesis_fast)
        if cfg.ema_decay:
            ema_update_(models["G_ema"], G, cfg.ema_decay, step=run.step)
        logs.setdefault("r1", (run.history.get("r1") or [0.0])[-1])  # the latest R1: every step logs the same keys
        return logs

    return StyleGANRun(model_cfg, models, optimizers, batches, step, models.get("G_ema", G))
