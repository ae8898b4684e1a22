"""A second digit feature network, independent of the course classifier: a small MLP on the pixels.

The Fréchet distance is a distance between Gaussian fits of *features*, so its value depends on the
network that computes them. Lesson 03 measures how much: it scores the same sets of digits in the
course classifier's features (``course_lib.classifier``, a CNN with 128 features) and in this
network's, which differs in everything but the training data: no convolutions, no batch norm, a
different width (64 features), trained by the same script (``scripts/train_classifier.py --mlp``)
with its own seed. Rankings of models agree across the two; ratios to the real-data floor do not,
so a target such as "FD at most 4x the floor" means something only within one feature space.

Inputs follow the course classifier's convention (``check_digit_images``): MNIST-framed digits in
[-1, 1], 28x28 or 32x32 (centre-cropped to 28x28, never resized). ``course_lib.classifier.classify``
works with this network too (it uses ``features``, ``head`` and ``cfg``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from course_lib.checkpoint import CheckpointError, load_weights
from course_lib.classifier import CROP, ClassifierConfig, check_digit_images, file_sha256

MLP_WEIGHTS_PATH = Path(__file__).parent / "assets" / "digit_mlp.safetensors"
# SHA-256 of the shipped weights file; scripts/train_classifier.py --mlp prints the line to paste here.
MLP_WEIGHTS_SHA256 = "9efa16a5ab4c6c3ff35f4129493ef844bcc0f880db415c0d173ce985b1044c6a"


@dataclass
class MLPConfig(ClassifierConfig):
    """Architecture of the MLP, plus the training settings it shares with the course classifier."""

    hidden_dim: int = 256          # width of the first hidden layer
    feature_dim: int = 64          # F: width of the second, the features FD compares
    epochs: int = 30               # training: passes over the 4,000 mnist5k train digits
    seed: int = 1                  # training: another seed than the course classifier's


class DigitMLP(nn.Module):
    """Flattened 28x28 pixels -> linear, ReLU -> linear, ReLU (features) -> linear (logits).

        (B, 1, 28, 28) -> flatten (B, 784) -> (B, hidden_dim) -> features (B, F) -> logits (B, 10)

    With the defaults: 218,058 parameters.

    Args:
        cfg: an ``MLPConfig`` (only the architecture fields are used).
    """

    def __init__(self, cfg: MLPConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or MLPConfig()
        self.cfg = cfg
        self.feature_layer = nn.Sequential(
            nn.Flatten(),                                                           # (B, 784)
            nn.Linear(cfg.img_channels * 28 * 28, cfg.hidden_dim), nn.ReLU(inplace=True),   # (B, hidden_dim)
            nn.Linear(cfg.hidden_dim, cfg.feature_dim), nn.ReLU(inplace=True),      # (B, F)
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)                     # (B, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28 or 32, same) digits in [-1, 1] -> (B, F) non-negative features."""
        check_digit_images(x, channels=self.cfg.img_channels)
        if x.shape[-1] == 32:
            x = x[..., CROP:32 - CROP, CROP:32 - CROP]                              # (B, C, 28, 28)
        return self.feature_layer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28 or 32, same) digits in [-1, 1] -> (B, num_classes) logits."""
        return self.head(self.dropout(self.features(x)))


def load_digit_mlp(device: str | torch.device = "cpu", path: str | Path | None = None) -> DigitMLP:
    """Load the shipped MLP after checking the file's SHA-256 (as ``load_classifier`` does).

    Args:
        device: where to put the model.
        path: the weights file; None for the one in ``course_lib/assets``.

    Returns:
        A ``DigitMLP`` in eval mode on ``device``.

    Raises:
        CheckpointError: the file is missing or its checksum does not match.
    """
    path = Path(path) if path is not None else MLP_WEIGHTS_PATH
    regenerate = ("Restore it with `git checkout -- course_lib/assets/digit_mlp.safetensors`, or regenerate it with "
                  "`python scripts/train_classifier.py --mlp` (under a minute on a CPU).")
    if not path.is_file():
        raise CheckpointError(f"the digit MLP's weights are missing: no file at {path}. {regenerate}")
    actual = file_sha256(path)
    if actual != MLP_WEIGHTS_SHA256:
        raise CheckpointError(f"the digit MLP's weights file {path} is corrupt or was changed: its SHA-256 is "
                              f"{actual}, expected {MLP_WEIGHTS_SHA256}. {regenerate}")
    _, config = load_weights(path)
    model = DigitMLP(MLPConfig(**config))
    load_weights(path, model)
    return model.to(device).eval()
