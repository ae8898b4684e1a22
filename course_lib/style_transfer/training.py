"""Training AdaIN's decoder (lesson 11): ``python -m course_lib.train adain``.

The encoder is fixed (random VGG-shaped weights, ``model.AdaINNet``); the decoder learns to paint
AdaIN's features. Content images are the offline photo patches (``course_lib.data.photo_patches``,
crops of the photos shrunk to half size), styles the offline texture patches
(``course_lib.data.textures``: brick, grass, gravel in random tints, immunohistochemistry). Each step
shows the decoder a batch of (content, style) pairs and takes one Adam step on Huang & Belongie's loss
(``adain.adain_loss``). The run's sampler is the whole ``AdaINNet``, so ``generator.safetensors``
holds the encoder it was trained with as well.

``metrics.json`` scores ``eval_samples`` held-out pairs (test photo patches with test texture patches):
the relative content error ||f(g(t)) - t||^2 / ||t||^2, the relative style error of the channel
statistics (the statistics loss over the mean square of the style's statistics), the SSIM of the
result's luminance against the content's (how much structure is kept), and the seconds per image of
one forward pass on the training device.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from course_lib.data import ShuffledBatches, photo_patches
from course_lib.data.textures import texture_patches
from course_lib.device import seed_everything
from course_lib.image_quality import ssim
from course_lib.run import (Run, RunConfig, adam, architecture_of, autocast, check_ints, check_numbers, distributed,
                            make_config)
from course_lib.style_transfer.adain import adain_loss, adaptive_instance_norm, channel_statistics, statistics_loss
from course_lib.style_transfer.images import rgb_to_yiq
from course_lib.style_transfer.model import ENCODER_LAYERS, AdaINConfig, AdaINNet
from course_lib.training import TrainState

PATCH_SIZE, PHOTO_SCALE = 32, 0.5   # 32x32 crops of the photos at half size (as pix2pix's photo tasks)
GRID_PAIRS = 10                     # samples.png: a row of test contents, a row of test styles, a row of results


@dataclass
class AdaINTrainConfig(RunConfig):
    """AdaIN's decoder for a fixed random VGG-shaped encoder, trained on photo patches and texture patches."""

    model: str = "adain"              # adain
    dataset: str = "photo_patches"    # the content images (the only choice; the styles are course_lib.data.textures)
    batch_size: int = 16              # (content, style) pairs per step
    base_channels: int = 16           # the encoder's first-block width (doubles per block)
    encoder_layer: str = "relu2_1"    # the encoder's last layer, where AdaIN acts (Huang & Belongie: VGG-19's relu4_1)
    lambda_style: float = 1.0         # weight of the style (channel statistics) loss (Huang & Belongie: 10)
    lr: float = 1e-3                  # Adam learning rate of the decoder
    patches: int = 2000               # training pairs: photo patches and texture patches drawn once
    eval_samples: int = 200           # held-out pairs scored for metrics.json (0: skip the evaluation)

    MODELS: ClassVar[dict[str, str]] = {"adain": "AdaIN's decoder for arbitrary style transfer (lesson 11)"}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"encoder_layer": ENCODER_LAYERS}
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("lr",)
    MIN_EVAL_SAMPLES: ClassVar[int] = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset != "photo_patches":
            raise ValueError(f"dataset must be 'photo_patches' for model 'adain' (its content images), "
                             f"got {self.dataset!r}")
        check_ints(self, "base_channels")
        check_ints(self, "patches", at_least=self.batch_size)
        check_numbers(self, "lambda_style")


def default_config(model: str = "adain", **overrides: Any) -> AdaINTrainConfig:
    """The course's AdaIN settings, with ``overrides`` applied: a width-16 random encoder up to relu2_1,
    batch 16, Adam at 1e-3, lambda_style 1, 3,000 steps.

    In short trial runs scored on held-out pairs, relu2_1 with lambda_style 1 kept more of the content
    (luminance SSIM) than relu3_1 with Huang & Belongie's 10 or with 1: a random encoder's deeper features
    are harder to invert."""
    if model not in AdaINTrainConfig.MODELS:
        raise ValueError(f"model must be one of {tuple(AdaINTrainConfig.MODELS)}, got {model!r}")
    return make_config(AdaINTrainConfig, {"model": model}, overrides)


def adain_step(net: AdaINNet, optimizer: torch.optim.Optimizer, content: torch.Tensor, style: torch.Tensor,
               lambda_style: float, decoder: nn.Module | None = None, amp: bool = False) -> dict[str, float]:
    """One Adam step of the decoder on a batch of pairs (B, C, H, W) each; returns loss, content and style (floats).

    ``decoder`` is ``net.decoder`` or a ``DistributedDataParallel`` wrapper of it (None: ``net.decoder``).
    ``amp``: bf16 autocast of the networks (``course_lib.run.steps.autocast``); AdaIN's statistics and the
    losses are computed in float32."""
    with torch.no_grad(), autocast(amp, content.device):
        style_maps = [m.float() for m in net.encode(style)]            # relu1_1 ... the AdaIN layer
        content_code = net.encode(content)[-1].float()
    t = adaptive_instance_norm(content_code, style_maps[-1])           # (B, C_t, H / m, W / m)
    with autocast(amp, content.device):
        decoded = (decoder or net.decoder)(t)                          # (B, C, H, W)
        decoded_maps = net.encode(decoded)
    decoded_maps = [m.float() for m in decoded_maps]
    parts = adain_loss(decoded_maps[-1], t, decoded_maps, style_maps, lambda_style)
    optimizer.zero_grad(set_to_none=True)
    parts["loss"].backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in parts.items()}


def build_sampler(architecture: dict[str, Any], where: str = "the weights file") -> AdaINNet:
    """The (untrained) ``AdaINNet`` that an adain run's generator.safetensors holds, from its architecture."""
    return AdaINNet(architecture_of(AdaINConfig, architecture, where))


def held_out_pairs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n held-out (content, style) pairs, (n, 3, 32, 32) each: test photo patches and test texture patches."""
    contents = photo_patches("test", size=PATCH_SIZE, n=n, seed=seed, scale=PHOTO_SCALE).x
    styles = texture_patches("test", size=PATCH_SIZE, n=n, seed=seed).x
    return contents, styles


@torch.no_grad()
def transfer_metrics(net: AdaINNet, contents: torch.Tensor, styles: torch.Tensor) -> dict[str, float]:
    """Relative content and style errors, luminance SSIM against the content, and seconds per image, for pairs (N, 3, H, W)."""
    net.eval()
    start = time.perf_counter()
    out = torch.cat([net(contents[i:i + 100], styles[i:i + 100]) for i in range(0, len(contents), 100)])
    seconds = (time.perf_counter() - start) / len(contents)
    t = adaptive_instance_norm(net.encode(contents)[-1], net.encode(styles)[-1])
    out_maps, style_maps = net.encode(out), net.encode(styles)
    reference = sum(channel_statistics(s)[0].pow(2).mean() + channel_statistics(s)[1].pow(2).mean()
                    for s in style_maps)
    luminance = [(rgb_to_yiq(x)[:, :1] + 1) / 2 for x in (out, contents)]   # (N, 1, H, W) in [0, 1]
    return {"content_error": float((out_maps[-1] - t).pow(2).mean() / t.pow(2).mean()),
            "style_error": float(statistics_loss(out_maps, style_maps) / reference),
            "ssim_luminance": float(ssim(*luminance).mean()),
            "seconds_per_image": seconds, "test_pairs": len(contents)}


def build_run(cfg: AdaINTrainConfig, device: torch.device | str = "cpu") -> Run:
    """Data, the network (random encoder seeded by ``cfg.seed``), Adam on the decoder and the step closure."""
    device = torch.device(device)
    amp = cfg.bf16(device)  # bf16 autocast of the forward passes (--precision), refused early where unsupported
    channels_last = cfg.use_channels_last(device)  # --channels-last; by default on with bf16
    generator = seed_everything(cfg.seed)
    contents = photo_patches("train", size=PATCH_SIZE, n=cfg.patches, seed=cfg.seed, scale=PHOTO_SCALE).x
    styles = texture_patches("train", size=PATCH_SIZE, n=cfg.patches, seed=cfg.seed).x
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = AdaINNet(AdaINConfig(3, cfg.base_channels, cfg.encoder_layer, encoder_seed=cfg.seed))
    net = net.to(device, memory_format=memory_format)
    optimizer = adam(net.decoder, cfg.lr, (0.9, 0.999), fused=device.type == "cuda")
    batches = ShuffledBatches(contents, styles, batch_size=cfg.batch_size,  # pairs; this rank's share under torchrun
                              generator=distributed.batch_generator(generator, cfg.seed), **distributed.shard())
    decoder = distributed.wrap(net.decoder)  # several processes: the decoder (the only learner) in DDP
    shown_contents, shown_styles = (x.to(device) for x in held_out_pairs(GRID_PAIRS))

    def step() -> dict[str, float]:
        content, style = (x.to(device, memory_format=memory_format) for x in next(batches))
        return adain_step(net, optimizer, content, style, cfg.lambda_style, decoder=decoder, amp=amp)

    @torch.no_grad()
    def grid() -> torch.Tensor:  # rows: 10 test contents, their styles, the results
        was_training = net.training
        out = net.eval()(shown_contents, shown_styles)
        net.train(was_training)
        return torch.cat([shown_contents, shown_styles, out])

    def evaluate() -> dict[str, Any]:
        if cfg.eval_samples == 0:
            return {}
        scores = transfer_metrics(net, *(x.to(device) for x in held_out_pairs(cfg.eval_samples)))
        net.train()
        return scores

    state = TrainState(models={"adain": net}, optimizers={"decoder": optimizer}, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    return Run(cfg, state, step, net, grid=grid, evaluate=evaluate, images_per_step=2 * cfg.batch_size)


def sample_arrays(model: AdaINNet, train: dict[str, Any], n: int, *, seed: int = 0,
                  chunk: int = 500) -> Iterator[dict[str, torch.Tensor]]:
    """``python -m course_lib.sample``'s arrays: n held-out photo patches (``content``) stylised (``arr_0``) with
    n held-out texture patches (``style``); ``seed`` picks the crops."""
    contents, styles = held_out_pairs(n, seed)
    device = next(model.parameters()).device
    for i in range(0, n, chunk):
        c, s = contents[i:i + chunk], styles[i:i + chunk]
        with torch.no_grad():
            out = model.eval()(c.to(device), s.to(device)).cpu()
        yield {"arr_0": out, "content": c, "style": s}
