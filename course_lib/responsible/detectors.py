"""Detectors of generated images: a linear classifier on the log spectrum, and a small CNN (lesson 12).

Both are trained on real images (label 0) against one generator's samples (label 1) and score an
image with the probability that it is generated. Wang et al. 2020 found that a detector trained on
one generator with blur and JPEG augmentation generalises to others, and that its average precision
stays high where its accuracy at 0.5 collapses: the ranking survives, the calibration does not.
``evaluate`` reports both. Frank et al. 2020 and Durall et al. 2020: up-sampling leaves traces in the
spectrum, and a linear classifier on it suffices (``SpectrumDetector``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.responsible.attacks import blur, jpeg
from course_lib.responsible.spectrum import check_images, spectrum_features

DETECTORS = ("spectrum", "cnn")


def augment(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Wang et al.'s augmentation: each image blurred (sigma ~ U[0, 3]) with probability p, then saved as a JPEG
    (quality ~ U{30..100}, 96-100 read as 95) with probability p. x (N, C, H, W) in [-1, 1]; seeded by ``generator``."""
    out = []
    for image in x:
        image = image[None]
        if torch.rand((), generator=generator) < p:
            image = blur(image, float(torch.rand((), generator=generator)) * 3)
        if torch.rand((), generator=generator) < p:
            image = jpeg(image, min(95, int(torch.randint(30, 101, (), generator=generator))))
        out.append(image)
    return torch.cat(out)


def _labelled(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_images(real, "real")
    check_images(fake, "fake")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake must have the same image shape, got {tuple(real.shape[1:])} and "
                         f"{tuple(fake.shape[1:])}")
    return torch.cat([real, fake]), torch.cat([torch.zeros(len(real)), torch.ones(len(fake))])


# ----------------------------------------------------------------------------------------------
# The spectrum detector: standardised log spectrum -> logistic regression (fitted by scikit-learn)
# ----------------------------------------------------------------------------------------------

@dataclass
class DetectorConfig:
    """What a detector takes: images (N, img_channels, img_size, img_size), and the CNN's width."""

    kind: str = "spectrum"           # "spectrum" (logistic regression on the log spectrum) or "cnn"
    img_channels: int = 1            # C of the images
    img_size: int = 32               # H = W of the images
    base_channels: int = 16          # the CNN's width at full resolution (unused by the spectrum detector)

    def __post_init__(self) -> None:
        if self.kind not in DETECTORS:
            raise ValueError(f"kind must be one of {DETECTORS}, got {self.kind!r}")
        for name in ("img_channels", "img_size", "base_channels"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")


class SpectrumDetector(nn.Module):
    """x (N, C, S, S) -> logit (N,): a linear function of the standardised log spectrum (S * S features)."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        features = cfg.img_size ** 2
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.linear = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (spectrum_features(x) - self.mean) / self.scale              # (N, S * S)
        return self.linear(h).squeeze(1)                                  # (N,)


def fit_spectrum(detector: SpectrumDetector, x: torch.Tensor, y: torch.Tensor, c: float = 0.1) -> None:
    """Fit the detector's standardisation and weights on images x (N, C, S, S) and labels y (N,) in {0, 1}
    (L2-regularised logistic regression, inverse strength ``c``, scikit-learn's lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    h = spectrum_features(x)                                              # (N, S * S)
    mean, scale = h.mean(0), h.std(0).clamp_min(1e-6)
    fit = LogisticRegression(C=c, max_iter=2000).fit(((h - mean) / scale).numpy(), y.numpy())
    with torch.no_grad():
        detector.mean.copy_(mean)
        detector.scale.copy_(scale)
        detector.linear.weight.copy_(torch.from_numpy(fit.coef_).float())
        detector.linear.bias.copy_(torch.from_numpy(fit.intercept_).float())


# ----------------------------------------------------------------------------------------------
# The CNN detector: four stride-2 convolutions and a linear head
# ----------------------------------------------------------------------------------------------

class CNNDetector(nn.Module):
    """x (N, C, S, S) -> logit (N,).

        (N, C, S, S) -> [conv 3x3 s2, LeakyReLU] x 4 -> (N, 8W, S/16, S/16) -> mean over space (N, 8W) -> linear (N,)
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.img_channels] + [cfg.base_channels * 2 ** i for i in range(4)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3))).squeeze(1)       # (N,)


def build_detector(cfg: DetectorConfig) -> nn.Module:
    """The (untrained) detector that ``cfg`` describes."""
    return SpectrumDetector(cfg) if cfg.kind == "spectrum" else CNNDetector(cfg)


def train_detector(real: torch.Tensor, fake: torch.Tensor, kind: str = "spectrum", augmented: bool = False,
                   steps: int = 300, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                   base_channels: int = 16, device: torch.device | str = "cpu") -> nn.Module:
    """A detector trained on real images (label 0) against a generator's samples (label 1).

    Args:
        real, fake: (N, C, S, S) and (M, C, S, S) images in [-1, 1].
        kind: "spectrum" (fitted in one go) or "cnn" (``steps`` of Adam at ``lr`` on batches of ``batch_size``).
        augmented: blur and JPEG augmentation (``augment``): once per image for the spectrum detector,
            on every batch for the CNN.
        seed: seeds the initialisation, the batches and the augmentation.

    Returns:
        The detector in eval mode on ``device``; ``score`` reads it.
    """
    x, y = _labelled(real, fake)
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"images must be square, got {tuple(x.shape[2:])}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    detector = build_detector(DetectorConfig(kind, x.shape[1], x.shape[2], base_channels))
    if kind == "spectrum":
        fit_spectrum(detector, augment(x, generator) if augmented else x, y)
        return detector.to(device).eval()
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    detector.to(device).train()
    optimizer = torch.optim.Adam(detector.parameters(), lr=lr)
    for _ in range(steps):
        pick = torch.randint(0, len(x), (batch_size,), generator=generator)
        batch = augment(x[pick], generator) if augmented else x[pick]
        loss = F.binary_cross_entropy_with_logits(detector(batch.to(device)), y[pick].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return detector.eval()


@torch.no_grad()
def score(detector: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The probability (N,) in [0, 1] that each image of x (N, C, S, S) in [-1, 1] is generated, on the CPU."""
    cfg = detector.cfg
    check_images(x, "x")
    if x.shape[1:] != (cfg.img_channels, cfg.img_size, cfg.img_size):
        raise ValueError(f"the detector takes images ({cfg.img_channels}, {cfg.img_size}, {cfg.img_size}), got "
                         f"{tuple(x.shape[1:])}")
    device = next(detector.parameters()).device
    detector.eval()
    return torch.cat([torch.sigmoid(detector(x[i:i + batch_size].to(device))).cpu()
                      for i in range(0, len(x), batch_size)])


def evaluate(detector: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Average precision (generated = positive) and accuracy at probability 0.5 on real and fake images,
    with the accuracy on each side (a detector can keep its ranking and lose its threshold)."""
    from sklearn.metrics import average_precision_score

    x, y = _labelled(real, fake)
    p = score(detector, x)
    right = ((p >= 0.5).float() == y).float()
    return {"ap": float(average_precision_score(y.numpy(), p.numpy())), "accuracy": float(right.mean()),
            "real_accuracy": float(right[:len(real)].mean()), "fake_accuracy": float(right[len(real):].mean())}

