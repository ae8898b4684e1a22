"""Feature networks for style transfer: an image in, a list of feature maps from named layers out.

Gatys et al. (2015, 2016) describe textures and styles by the feature maps of an ImageNet-trained
VGG-19. Those weights cannot be downloaded here, and research shows what works without them:

- ``RandomMultiScale``: one convolutional layer of random filters at several sizes, then ReLU
  (Ustyuzhaninov et al., ICLR 2017, "What does it take to generate natural textures?": one such layer
  synthesises textures close to VGG's).
- ``RandomVGG``: the VGG-19 architecture, narrower, with untrained weights (He, Wang & Hopcroft 2016, "A
  powerful generative model using random weights for the deep image representation"). The weights are
  drawn with the fan-in scaling of He et al. (2015), N(0, 2 / fan_in), biases 0, which keeps the second
  moment of the activations the same from layer to layer through the ReLUs, so no layer's features
  vanish or explode and every layer's Gram matrix carries signal.
- ``ClassifierFeatures``: the course's trained digit classifier (``course_lib.classifier``), grey images only.
- ``VGG19Features``: torchvision's VGG-19 with weights read from a local file (never downloaded), for a
  learner who has them.

Every network takes images (B, C, H, W) in [-1, 1], returns the maps (B, C_l, H_l, W_l) of the layers
named in ``net.layers``, in that order, and names its default ``style_layers`` and ``content_layer``
(a subset of ``layers``). Its weights are frozen and it is in eval mode. ``min_size`` is the smallest
image side it accepts (at least one pixel at its deepest layer, or its padding's need).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.classifier import load_classifier

FEATURES = ("multiscale", "random", "classifier", "vgg19")  # the names build_features knows
# VGG-19's convolution widths per block (Simonyan & Zisserman 2015, configuration E); a pool ends each block.
VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # Gatys et al. 2016
GATYS_CONTENT_LAYER = "relu4_2"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's VGG input statistics


class FeatureNet(nn.Module):
    """What every feature network shares: its layer names, defaults, input check and frozen weights."""

    layers: tuple[str, ...]          # the layers forward returns, in order
    style_layers: tuple[str, ...]    # default layers of the style (Gram) loss
    content_layer: str               # default layer of the content loss
    img_channels: int                # 1 (grey) or 3 (RGB)
    min_size: int                    # the smallest image side accepted

    def freeze(self) -> FeatureNet:
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> FeatureNet:  # a feature network is fixed: it stays in eval mode
        return super().train(False)

    def check(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the expected and actual shape unless x is (B, img_channels, >= min_size, ...)."""
        if x.dim() != 4 or x.shape[1] != self.img_channels or min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"{type(self).__name__} takes images (B, {self.img_channels}, H, W) with H, W >= "
                             f"{self.min_size}, got {tuple(x.shape)}")

    def pick(self, features: list[torch.Tensor], names: tuple[str, ...] | list[str]) -> list[torch.Tensor]:
        """The maps of ``names`` out of ``features`` (forward's output), in the order of ``names``."""
        unknown = [n for n in names if n not in self.layers]
        if unknown:
            raise ValueError(f"layers {unknown} are not among {type(self).__name__}'s layers {self.layers}")
        return [features[self.layers.index(n)] for n in names]


def he_normal_(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fill a conv weight (O, I, k, k) from N(0, 2 / fan_in), fan_in = I k k (He et al. 2015), with ``generator``."""
    fan_in = weight[0].numel()
    with torch.no_grad():
        return weight.copy_(torch.randn(weight.shape, generator=generator) * math.sqrt(2.0 / fan_in))


# ----------------------------------------------------------------------------------------------
# One layer of random multi-scale filters (Ustyuzhaninov et al. 2017)
# ----------------------------------------------------------------------------------------------

class RandomMultiScale(FeatureNet):
    """One layer of random filters of several sizes, ReLU: one feature map per filter size.

    Args:
        img_channels: 1 or 3.
        kernel_sizes: the filter sizes (odd); the paper's went from 3 to 55, these stay affordable on a CPU.
        channels: filters per size.
        seed: seeds the weights (He-normal, biases 0).

    Layers ``k3``, ``k5``, ...: (B, channels, H, W) each (reflection padding keeps the size).
    """

    def __init__(self, img_channels: int = 3, kernel_sizes: tuple[int, ...] = (3, 5, 7, 11, 15, 23),
                 channels: int = 32, seed: int = 0) -> None:
        super().__init__()
        if any(k % 2 == 0 or k < 1 for k in kernel_sizes) or not kernel_sizes:
            raise ValueError(f"kernel_sizes must be odd ints >= 1, got {kernel_sizes!r}")
        generator = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList(nn.Conv2d(img_channels, channels, k) for k in kernel_sizes)
        for conv in self.convs:
            he_normal_(conv.weight, generator)
            nn.init.zeros_(conv.bias)
        self.layers = tuple(f"k{k}" for k in kernel_sizes)
        self.style_layers = self.layers
        self.content_layer = self.layers[len(self.layers) // 2]
        self.img_channels = img_channels
        self.min_size = max(kernel_sizes) // 2 + 1  # reflection padding needs pad < side
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check(x)
        out = []
        for conv in self.convs:
            pad = conv.kernel_size[0] // 2
            out.append(F.relu(conv(F.pad(x, (pad,) * 4, mode="reflect"))))  # (B, channels, H, W)
        return out


# ----------------------------------------------------------------------------------------------
# VGG-shaped networks: random, or torchvision's VGG-19 from a local file
# ----------------------------------------------------------------------------------------------

def vgg_names(blocks: tuple[tuple[int, ...], ...]) -> list[str]:
    """The names of VGG's modules in order: ``conv{b}_{i}``, ``relu{b}_{i}`` for each convolution, ``pool{b}`` per block."""
    names = []
    for b, widths in enumerate(blocks, start=1):
        for i in range(1, len(widths) + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def vgg_body(img_channels: int, blocks: tuple[tuple[int, ...], ...], pooling: str, last: str) -> nn.Sequential:
    """VGG's convolutional part up to layer ``last`` (a name of ``vgg_names``).

    The modules are numbered as in torchvision's ``vgg19().features`` (conv, ReLU, ..., pool), so its
    weights load by index.
    """
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    end = vgg_names(blocks).index(last) + 1  # build no further: the layers after ``last`` are never used
    modules: list[nn.Module] = []
    channels = img_channels
    for widths in blocks:
        for width in widths:
            modules += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        modules.append(nn.AvgPool2d(2) if pooling == "avg" else nn.MaxPool2d(2))  # (B, C, H / 2, W / 2)
        if len(modules) >= end:
            break
    return nn.Sequential(*modules[:end])


class _VGGFeatures(FeatureNet):
    """A VGG body that returns the maps of its named ``layers``."""

    def _setup(self, img_channels: int, blocks: tuple[tuple[int, ...], ...], pooling: str,
               style_layers: tuple[str, ...], content_layer: str) -> None:
        wanted = tuple(style_layers) + (content_layer,)
        order = vgg_names(blocks)
        unknown = [n for n in wanted if n not in order]
        if unknown:
            raise ValueError(f"layers {unknown} are not VGG-19 layers (relu1_1, relu2_1, ..., relu5_4)")
        last = max(wanted, key=order.index)
        self.body = vgg_body(img_channels, blocks, pooling, last)
        self.names = order[:len(self.body)]
        self.layers = tuple(n for n in self.names if n in wanted)
        self.style_layers, self.content_layer = tuple(style_layers), content_layer
        self.img_channels = img_channels
        self.min_size = 2 ** sum(n.startswith("pool") for n in self.names[:self.names.index(last)])

    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for name, module in zip(self.names, self.body):
            x = module(x)
            if name in self.layers:
                out.append(x)  # (B, C_l, H / 2^pools, W / 2^pools)
        return out


class RandomVGG(_VGGFeatures):
    """VGG-19's layers with random He-normal weights (N(0, 2 / fan_in), biases 0) and average pooling.

    Args:
        img_channels: 1 or 3.
        base_channels: the width of block 1 (VGG-19: 64); block b has base_channels * 2^(b-1), at most 8x.
        style_layers: Gram-loss layers (default Gatys et al.'s relu1_1 ... relu5_1, here up to relu4_1).
        content_layer: content-loss layer (default relu4_2 as in Gatys et al.).
        seed: seeds the weights.
    """

    def __init__(self, img_channels: int = 3, base_channels: int = 32,
                 style_layers: tuple[str, ...] = GATYS_STYLE_LAYERS[:4], content_layer: str = GATYS_CONTENT_LAYER,
                 seed: int = 0) -> None:
        super().__init__()
        blocks = tuple(tuple(base_channels * w // 64 for w in widths) for widths in VGG19_BLOCKS)
        self._setup(img_channels, blocks, "avg", style_layers, content_layer)
        generator = torch.Generator().manual_seed(seed)
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                he_normal_(module.weight, generator)
                nn.init.zeros_(module.bias)
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check(x)
        return self.run(x)


class VGG19Features(_VGGFeatures):
    """torchvision's VGG-19 (its ``features`` part) with ImageNet weights read from a local file.

    Args:
        weights: a ``torch.save``d state_dict of ``torchvision.models.vgg19()`` (e.g. torchvision's
            ``vgg19-dcbb9e9d.pth``) or a ``.safetensors`` file with the same keys; only ``features.*`` is read.
        style_layers, content_layer: as Gatys et al. 2016 (relu1_1 ... relu5_1; relu4_2).
        pooling: "avg" (Gatys et al.: better gradients for synthesis) or "max" (as trained).

    Input images in [-1, 1] are mapped to [0, 1] and normalised with ImageNet's mean and std, as VGG was trained.

    Raises:
        FileNotFoundError: no file at ``weights``.
        ValueError: the file does not hold VGG-19's convolution weights (naming the first missing or odd one).
    """

    def __init__(self, weights: str | Path, style_layers: tuple[str, ...] = GATYS_STYLE_LAYERS,
                 content_layer: str = GATYS_CONTENT_LAYER, pooling: str = "avg") -> None:
        super().__init__()
        self._setup(3, VGG19_BLOCKS, pooling, style_layers, content_layer)
        state = read_state_dict(weights)
        mine = self.body.state_dict()
        loaded = {}
        for key, value in mine.items():
            theirs = state.get(f"features.{key}")
            if theirs is None or tuple(theirs.shape) != tuple(value.shape):
                found = "missing" if theirs is None else f"of shape {tuple(theirs.shape)}"
                raise ValueError(f"weights: {weights} is not a VGG-19 state_dict: features.{key} is {found}, "
                                 f"expected shape {tuple(value.shape)}")
            loaded[key] = theirs
        self.body.load_state_dict(loaded)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check(x)
        return self.run(((x + 1) / 2 - self.mean) / self.std)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a ``.safetensors`` file or a ``torch.save``d one (loaded with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights: no file at {path} (this course never downloads weights: give the path "
                                "of a VGG-19 state_dict you have, e.g. torchvision's vgg19-dcbb9e9d.pth)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: say which one
        raise ValueError(f"weights: cannot read {path} as a state_dict ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise ValueError(f"weights: {path} holds a {type(state).__name__}, not a state_dict")
    return state


# ----------------------------------------------------------------------------------------------
# The course's digit classifier
# ----------------------------------------------------------------------------------------------

class ClassifierFeatures(FeatureNet):
    """The feature maps of the course's trained digit classifier: the last ReLU of each of its 3 stages.

    For grey images in [-1, 1] (digits: background -1); any size >= 8 (the classifier's 32x32 crop is not
    applied). Layers ``stage1`` (B, 32, H, W), ``stage2`` (B, 64, H / 2, W / 2), ``stage3`` (B, 128, H / 4, W / 4).

    Args:
        classifier: a ``DigitClassifier``; default ``course_lib.classifier.load_classifier()``.
    """

    def __init__(self, classifier: nn.Module | None = None) -> None:
        super().__init__()
        classifier = classifier or load_classifier()
        self.stages = classifier.stages
        self.layers = tuple(f"stage{i}" for i in range(1, len(self.stages) + 1))
        self.style_layers, self.content_layer = self.layers, self.layers[1]
        self.img_channels = classifier.cfg.img_channels
        self.min_size = 2 ** len(self.stages)
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check(x)
        out = []
        for stage in self.stages:
            *body, pool = stage  # conv, batch norm, ReLU (, ...), max pool
            for module in body:
                x = module(x)
            out.append(x)  # after the stage's last ReLU, before its pool
            x = pool(x)
        return out


def build_features(name: str, img_channels: int = 3, weights: str | Path | None = None, seed: int = 0) -> FeatureNet:
    """The feature network called ``name``: "multiscale", "random" (VGG-shaped), "classifier" or "vgg19".

    Args:
        name: one of ``FEATURES``.
        img_channels: the images' channels; "classifier" takes 1, "vgg19" 3 (convert with ``images.to_channels``).
        weights: the VGG-19 state_dict file; required for "vgg19", refused for the others.
        seed: seeds a random network's weights.
    """
    if name not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {name!r}")
    if (weights is not None) != (name == "vgg19"):
        raise ValueError("weights: give a weights file with features 'vgg19', and only with it")
    if name == "multiscale":
        return RandomMultiScale(img_channels, seed=seed)
    if name == "random":
        return RandomVGG(img_channels, seed=seed)
    if name == "classifier":
        return ClassifierFeatures()
    return VGG19Features(weights)
