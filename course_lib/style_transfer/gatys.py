"""Style transfer and texture synthesis by optimising pixels (Gatys et al. 2015, 2016).

Start from an image x (the content image, or noise) and change its pixels to minimise

    L(x) = content_weight * L_content(x) + style_weight * L_style(x) + tv_weight * TV(x),

where L_content compares the feature maps of x and of the content image at one layer and L_style
compares their Gram matrices with the style image's at several layers (``losses``). Without a
content image this is texture synthesis (Gatys et al. 2015): only the style term, from noise.

Both terms are relative errors, so that one set of weights suits every feature network: the
content term is divided by the mean square of the content image's features, and layer l's Gram
error by the mean square of the style's Gram matrix A_l (times the number of style layers).

- ``optimizer``: L-BFGS (Gatys et al.; a strong-Wolfe line search, so an iteration costs one or more
  forward/backward passes) or Adam (one pass per step). ``steps`` counts passes for both, so they compare
  at equal cost.
- ``scales``: coarse to fine (as in Gatys et al. 2017, "Controlling perceptual factors"): optimise at
  1 / 2^(scales-1) of the size first, upsample the result and continue at twice the size, up to the full size.
  Coarse levels fix the large structures cheaply; the fine level adds detail.
- ``preserve_colour``: luminance-only transfer (Gatys et al. 2017, colour control): the style is transferred
  to the luminance Y of the content (the style's luminance matched to the content's mean and spread),
  and the content's chroma (I, Q) is put back, so the result keeps the content's colours.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from course_lib.style_transfer.features import FeatureNet
from course_lib.style_transfer.images import match_luminance, resize, rgb_to_yiq, to_channels, yiq_to_rgb
from course_lib.style_transfer.losses import content_loss, gram_matrix, style_loss, total_variation

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")


@dataclass
class GatysConfig:
    """The settings of one optimisation (defaults: L-BFGS from the content image, one scale)."""

    steps: int = 100                  # forward-backward passes at each scale (Adam: steps; L-BFGS: evaluations)
    optimizer: str = "lbfgs"          # "lbfgs" (Gatys et al.) or "adam"
    lr: float = 0.02                  # Adam's step size on pixels in [-1, 1] (L-BFGS: 1, with a line search)
    content_weight: float = 1.0       # weight of the relative content error
    style_weight: float = 10.0        # weight of the relative Gram error
    tv_weight: float = 0.0            # weight of the total variation (smoothness) of the image
    scales: int = 1                   # pyramid levels, coarse to fine, each twice the side of the previous
    init: str = "content"             # start from the "content" image or from "noise" (textures: always noise)
    preserve_colour: bool = False     # transfer to the luminance only, keep the content's colours
    style_layers: tuple[str, ...] | None = None   # None: the network's style_layers
    content_layer: str | None = None              # None: the network's content_layer

    def __post_init__(self) -> None:
        for name in ("steps", "scales"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class Transfer:
    """The result of ``stylize``."""

    image: torch.Tensor                                   # (1, C, H, W) in [-1, 1]
    history: dict[str, list[float]] = field(default_factory=dict)  # loss, style, content, tv: one per evaluation
    seconds: float = 0.0                                  # wall time of the optimisation


class Objective:
    """L(x) for one scale: the targets of the style (and content) image, computed once.

    Args:
        net: the feature network.
        style: (1, C, H_s, W_s) style image, C = net.img_channels.
        content: (1, C, H, W) content image, or None (texture synthesis).
        cfg: the weights and layers.
    """

    def __init__(self, net: FeatureNet, style: torch.Tensor, content: torch.Tensor | None, cfg: GatysConfig) -> None:
        self.net, self.cfg = net, cfg
        self.style_layers = tuple(cfg.style_layers or net.style_layers)
        self.content_layer = cfg.content_layer or net.content_layer
        with torch.no_grad():
            grams = [gram_matrix(f) for f in net.pick(net(style), self.style_layers)]     # (1, C_l, C_l) each
            self.grams = grams
            self.layer_weights = [1.0 / (len(grams) * float(a.pow(2).mean().clamp_min(1e-12))) for a in grams]
            self.content = None if content is None else net.pick(net(content), [self.content_layer])[0]
            self.content_scale = (0.0 if self.content is None
                                  else 1.0 / float(self.content.pow(2).mean().clamp_min(1e-12)))

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss and its parts for image x (1, C, H, W): {"loss", "style", "content", "tv"}."""
        features = self.net(x)
        parts = {"style": style_loss(self.net.pick(features, self.style_layers), self.grams, self.layer_weights)}
        parts["content"] = (self.content_scale * content_loss(self.net.pick(features, [self.content_layer])[0],
                                                              self.content)
                            if self.content is not None else x.new_zeros(()))
        parts["tv"] = total_variation(x)
        parts["loss"] = (self.cfg.style_weight * parts["style"] + self.cfg.content_weight * parts["content"]
                         + self.cfg.tv_weight * parts["tv"])
        return parts


def optimise(objective: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor, cfg: GatysConfig,
             callback: Callable[[dict[str, float]], None] | None = None) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """About ``cfg.steps`` forward and backward passes of L-BFGS or Adam on the pixels of x (1, C, H, W).

    Adam takes ``cfg.steps`` steps and clamps the pixels to [-1, 1] after each. L-BFGS runs until it
    has evaluated the loss ``cfg.steps`` times (its strong-Wolfe line search may evaluate it more than
    once per iteration, and may finish its last search a few evaluations later), unconstrained, and
    the result is clamped at the end: the same budget of passes for both, so their curves compare.

    Returns:
        The optimised image (1, C, H, W) in [-1, 1] and the history: the loss and its parts at every
        evaluation.
    """
    x = x.detach().clone().requires_grad_(True)
    history: dict[str, list[float]] = {"loss": [], "style": [], "content": [], "tv": []}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        parts = objective(x)
        parts["loss"].backward()
        values = {k: float(v.detach()) for k, v in parts.items()}
        for k in history:
            history[k].append(values[k])
        if callback is not None:
            callback(values)
        return parts["loss"]

    if cfg.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam([x], lr=cfg.lr)
        for _ in range(cfg.steps):
            optimizer.step(closure)
            with torch.no_grad():
                x.clamp_(-1, 1)
    else:
        optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=cfg.steps, max_eval=cfg.steps, history_size=50,
                                      line_search_fn="strong_wolfe")
        optimizer.step(closure)
    return x.detach().clamp(-1, 1), history


def stylize(net: FeatureNet, style: torch.Tensor, content: torch.Tensor | None = None,
            cfg: GatysConfig | None = None, size: tuple[int, int] | None = None,
            generator: torch.Generator | None = None,
            callback: Callable[[dict[str, float]], None] | None = None) -> Transfer:
    """Paint ``content`` in the style of ``style`` (or synthesise the style's texture when content is None).

    Args:
        net: a feature network (``features``), on the device of the images.
        style: (1, C, H_s, W_s) in [-1, 1], C = 1 or 3.
        content: (1, C, H, W) in [-1, 1], or None for texture synthesis.
        cfg: the settings (``GatysConfig()``).
        size: texture synthesis only: the output's (H, W); default the style image's size.
        generator: seeds the starting noise.
        callback: called with the loss parts at each evaluation (a progress bar), about ``cfg.steps`` times per scale.

    Returns:
        A ``Transfer``: the image (1, C_out, H, W) in [-1, 1] and the loss history. C_out is 1 when the
        network is grey or every input is grey, else 3.

    Raises:
        ValueError: bad shapes, ``preserve_colour`` without a content image, or an image smaller at the
            coarsest scale than the network's ``min_size`` (naming the size needed).
    """
    cfg = cfg or GatysConfig()
    for name, image in (("style", style), ("content", content)):
        if image is not None and (image.dim() != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3)):
            raise ValueError(f"{name} must be one image (1, C, H, W) with C 1 or 3, got {tuple(image.shape)}")
    if cfg.preserve_colour and content is None:
        raise ValueError("preserve_colour keeps the content image's colours: it needs a content image")
    start = time.perf_counter()
    chroma = None
    if cfg.preserve_colour:  # optimise the luminance alone
        if content.shape[1] == 3:
            content_yiq = rgb_to_yiq(content)
            chroma, content = content_yiq[:, 1:], content_yiq[:, :1]          # (1, 2, H, W), (1, 1, H, W)
        style = match_luminance(to_channels(style, 1), content)
    grey = net.img_channels == 1 or all(im.shape[1] == 1 for im in (style, content) if im is not None)
    channels = 1 if grey else 3
    style = to_channels(style, channels)
    content = None if content is None else to_channels(content, channels)
    height, width = content.shape[-2:] if content is not None else (size or style.shape[-2:])
    coarsest = min(height, width) // 2 ** (cfg.scales - 1), min(style.shape[-2:]) // 2 ** (cfg.scales - 1)
    if min(coarsest) < net.min_size:
        raise ValueError(f"size: the images must be at least {net.min_size * 2 ** (cfg.scales - 1)} pixels on their "
                         f"shorter side for {type(net).__name__} with {cfg.scales} scale(s); got content/output "
                         f"{height}x{width} and style {style.shape[-2]}x{style.shape[-1]}")

    def view(x: torch.Tensor) -> torch.Tensor:  # what the network sees
        return to_channels(x, net.img_channels)

    history: dict[str, list[float]] = {}
    x = None
    for level in reversed(range(cfg.scales)):  # coarse to fine
        hw = (round(height / 2 ** level), round(width / 2 ** level))
        style_hw = (round(style.shape[-2] / 2 ** level), round(style.shape[-1] / 2 ** level))
        level_style = resize(style, style_hw)
        level_content = None if content is None else resize(content, hw)
        objective = Objective(net, view(level_style), None if content is None else view(level_content), cfg)
        if x is not None:
            x = resize(x, hw)
        elif content is not None and cfg.init == "content":
            x = level_content
        else:  # noise with the style's per-channel mean and spread
            mean = level_style.mean(dim=(2, 3), keepdim=True)                 # (1, C, 1, 1)
            std = level_style.std(dim=(2, 3), keepdim=True)
            noise = torch.randn((1, channels, *hw), generator=generator).to(style.device)
            x = (mean + std * noise).clamp(-1, 1)
        x, level_history = optimise(lambda image: objective(view(image)), x, cfg, callback)
        for k, values in level_history.items():
            history.setdefault(k, []).extend(values)
    if chroma is not None:
        x = yiq_to_rgb(torch.cat([x, chroma], dim=1)).clamp(-1, 1)            # (1, 3, H, W)
    return Transfer(x, history, time.perf_counter() - start)
