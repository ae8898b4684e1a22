"""A small digit classifier whose penultimate features the course's sample-quality metrics use.

Published FIDs compute features with Inception-v3 trained on ImageNet. Those weights cannot be
downloaded here, and for MNIST-like digits a classifier trained on the domain itself is the
usual substitute (TF-GAN's MNIST score and MNIST Fréchet distance use one). So the course ships `DigitClassifier`, a small CNN trained on the 4,000 mnist5k train digits by
``scripts/train_classifier.py``, and computes Fréchet distance, KID, precision/recall, the
Inception-Score analogue and class accuracy on its outputs (see ``course_lib.metrics``).

Numbers computed with it are comparable within the course only, and only because every lesson uses
the same weights: `load_classifier` checks the shipped file against a SHA-256 checksum before it
loads it.

Inputs are MNIST-framed digits in [-1, 1] (background -1), either 28x28 or 32x32. A 32x32 image is
the course's framing of a 28x28 digit (2 background pixels on every side), so it is centre-cropped
back to 28x28, never resized: the two framings of one digit give identical outputs.

Read top-down: config, network, loading the shipped weights, batched inference.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from course_lib.checkpoint import CheckpointError, load_weights

WEIGHTS_PATH = Path(__file__).parent / "assets" / "digit_classifier.safetensors"
# SHA-256 of the shipped weights file; scripts/train_classifier.py prints the line to paste here.
WEIGHTS_SHA256 = "a4043c60d16bce8b055ad5fffb71d400a40abc1c4783a48debbcba191979b9e1"
INPUT_SIZES = (28, 32)  # accepted image sizes: 28x28 digits, or the course's 32x32 framing
CROP = 2  # background pixels per side that 32x32 framing adds around a 28x28 digit


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass
class ClassifierConfig:
    """Architecture of the digit classifier and the settings ``scripts/train_classifier.py`` uses.

    The architecture fields build the network; the training fields are stored with the shipped
    weights so the file says how it was made.
    """

    img_channels: int = 1          # channels of the input images (grey digits)
    num_classes: int = 10          # output logits, one per digit 0-9
    base_channels: int = 32        # width of the first conv stage; the next two have 2x and 4x
    feature_dim: int = 128         # F: width of the penultimate layer, the features the metrics use
    dropout: float = 0.3           # dropout on the features during training only (eval: none)
    epochs: int = 25               # training: passes over the 4,000 mnist5k train digits
    batch_size: int = 64           # training: digits per optimiser step
    lr: float = 2e-3               # training: peak AdamW learning rate (one-cycle schedule)
    weight_decay: float = 0.05     # training: AdamW decoupled weight decay
    max_shift: int = 2             # training: random translation in [-max_shift, max_shift] px
    max_rotation_deg: float = 10.0  # training: random rotation in +-max_rotation_deg (0: none)
    seed: int = 0                  # training: seed for initialisation, shuffling and augmentation


# ----------------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------------

def _conv_stage(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    """`convs` x (3x3 conv with same padding, batch norm, ReLU), then a 2x2 max pool: halves H and W."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


def check_digit_images(x: torch.Tensor, name: str = "x", channels: int = 1) -> None:
    """Raise a ValueError unless `x` is a (B, channels, 28, 28) or (B, channels, 32, 32) float tensor."""
    expected = f"(B, {channels}, 28, 28) or (B, {channels}, 32, 32)"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels or x.shape[-1] != x.shape[-2] or x.shape[-1] not in INPUT_SIZES:
        raise ValueError(f"{name} must have shape {expected} (32x32 is centre-cropped to 28x28), "
                         f"got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1], got dtype {x.dtype}")


class DigitClassifier(nn.Module):
    """A small VGG-style CNN for MNIST-framed digits: conv stages, a feature layer, a linear head.

    Each stage is 3x3 conv, batch norm, ReLU (once in stage 1, twice in stages 2 and 3), then a
    2x2 max pool. Shapes for a 28x28 input (after the centre crop of a 32x32 one), with
    W = base_channels and F = feature_dim:

        (B, 1, 28, 28) -> stage 1 -> (B, W, 14, 14) -> stage 2 -> (B, 2W, 7, 7)
        -> stage 3 -> (B, 4W, 3, 3) -> flatten (B, 36W) -> linear, ReLU -> features (B, F)
        -> dropout (training only) -> linear -> logits (B, num_classes)

    With the defaults (W = 32, F = 128) it has 426,474 parameters (1.7 MB in float32).

    Args:
        cfg: a `ClassifierConfig` (only the architecture fields are used).
    """

    def __init__(self, cfg: ClassifierConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ClassifierConfig()
        self.cfg = cfg
        width = cfg.base_channels
        self.stages = nn.Sequential(
            _conv_stage(cfg.img_channels, width, convs=1),  # (B, W, 14, 14)
            _conv_stage(width, 2 * width, convs=2),  # (B, 2W, 7, 7)
            _conv_stage(2 * width, 4 * width, convs=2),  # (B, 4W, 3, 3): the pool drops row and column 7
        )
        self.feature_layer = nn.Sequential(
            nn.Flatten(),  # (B, 36W)
            nn.Linear(4 * width * 3 * 3, cfg.feature_dim),
            nn.ReLU(inplace=True),
        )  # (B, F)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)  # (B, num_classes)

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        check_digit_images(x, channels=self.cfg.img_channels)
        if x.shape[-1] == 32:
            x = x[..., CROP:32 - CROP, CROP:32 - CROP]  # centre crop, (B, C, 28, 28)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, the vectors the metrics compare.

        Args:
            x: (B, 1, 28, 28) or (B, 1, 32, 32) digits in [-1, 1], background -1; 32x32 images
                are centre-cropped to 28x28.

        Returns:
            (B, F) float features, F = cfg.feature_dim (128 by default); non-negative (after ReLU).
        """
        return self.feature_layer(self.stages(self._crop(x)))  # (B, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            x: (B, 1, 28, 28) or (B, 1, 32, 32) digits in [-1, 1], background -1.

        Returns:
            (B, num_classes) unnormalised logits; ``softmax(dim=1)`` gives p(y | x).
        """
        return self.head(self.dropout(self.features(x)))  # (B, num_classes)


# ----------------------------------------------------------------------------------------------
# The shipped weights
# ----------------------------------------------------------------------------------------------

def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_classifier(device: str | torch.device = "cpu", path: str | Path | None = None) -> DigitClassifier:
    """Load the course's shipped digit classifier, after checking the file's SHA-256.

    The checksum is always compared with `WEIGHTS_SHA256`: every metric in the course must use
    the same features. To load weights you trained yourself, build ``DigitClassifier`` and use
    ``course_lib.checkpoint.load_weights``.

    Args:
        device: where to put the model, e.g. "cpu", "cuda", "mps".
        path: the weights file; None for the one shipped in ``course_lib/assets``.

    Returns:
        A `DigitClassifier` in eval mode on `device`.

    Raises:
        CheckpointError: the file is missing or its checksum does not match (corrupt or changed).
    """
    path = Path(path) if path is not None else WEIGHTS_PATH
    regenerate = ("Restore it with `git checkout -- course_lib/assets/digit_classifier.safetensors`, or "
                  "regenerate it with `python scripts/train_classifier.py` (about 3 minutes on a CPU; "
                  "with its default 2 threads and the course's PyTorch version it reproduces the "
                  "shipped file bit for bit).")
    if not path.is_file():
        raise CheckpointError(f"the digit classifier's weights are missing: no file at {path}. {regenerate}")
    actual = file_sha256(path)
    if actual != WEIGHTS_SHA256:
        raise CheckpointError(
            f"the digit classifier's weights file {path} is corrupt or was changed: its SHA-256 is "
            f"{actual}, expected {WEIGHTS_SHA256}. {regenerate}")
    _, config = load_weights(path)
    model = DigitClassifier(ClassifierConfig(**config))
    load_weights(path, model)
    return model.to(device).eval()


# ----------------------------------------------------------------------------------------------
# Batched inference
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def classify(model: DigitClassifier, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and features of many images, in batches on the model's device.

    The model runs in eval mode (restored afterwards), so the result does not depend on the
    batch size.

    Args:
        model: a `DigitClassifier`, on any device.
        images: (N, 1, 28, 28) or (N, 1, 32, 32) digits in [-1, 1], on any device (e.g. CPU);
            each batch is moved to the model's device.
        batch_size: images per forward pass, >= 1.

    Returns:
        ``(logits, features)``: (N, num_classes) and (N, F) float32 tensors on the CPU.
    """
    check_digit_images(images, "images", channels=model.cfg.img_channels)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, features = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device, torch.float32)  # (b, 1, H, W)
            h = model.features(x)  # (b, F)
            logits.append(model.head(h).float().cpu())  # (b, num_classes)
            features.append(h.float().cpu())
    finally:
        model.train(was_training)
    if not logits:  # N = 0
        return torch.zeros(0, model.cfg.num_classes), torch.zeros(0, model.cfg.feature_dim)
    return torch.cat(logits), torch.cat(features)  # (N, num_classes), (N, F)
