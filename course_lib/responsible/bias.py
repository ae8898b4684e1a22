"""Whom does a generator leave out? Class shares of its samples against its training data.

A generator trained on data where one class is rare tends to make it rarer still, or to drop it
(mode dropping hits small modes first); StyleGAN's truncation trick (samples pulled towards the
average w) trades diversity for quality and pulls them away from rare classes most. Shares of
samples are read by the course classifier, so they carry its errors (~2.6% on real digits).
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.classifier import classify, load_classifier
from course_lib.run.sampling import generate

NUM_CLASSES = 10


def class_shares(labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """The share (num_classes,) of each class among integer labels (N,) in 0..num_classes - 1; sums to 1."""
    if labels.dim() != 1 or len(labels) == 0 or labels.is_floating_point():
        raise ValueError(f"labels must be a non-empty (N,) integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got values in {int(labels.min())}..{int(labels.max())}")
    return torch.bincount(labels.long(), minlength=num_classes).float() / len(labels)


def predicted_shares(images: torch.Tensor, classifier: nn.Module | None = None) -> torch.Tensor:
    """The share (10,) of each digit among images (N, 1, 32 or 28, 32 or 28) in [-1, 1], as the classifier reads them."""
    logits, _ = classify(classifier or load_classifier(), images)
    return class_shares(logits.argmax(1))


def minority_subset(labels: torch.Tensor, minority: int, share: float, seed: int = 0) -> torch.Tensor:
    """Indices (K,) of a training set where class ``minority`` makes up ``share`` of the data and every other class
    keeps all its examples (those of the minority drawn at random, seeded).

    E.g. 4,000 digits with 400 per class and share 0.02: 3,600 others and round(0.02 / 0.98 * 3,600) = 73 of the minority.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share!r}")
    mine = torch.nonzero(labels == minority).squeeze(1)
    others = torch.nonzero(labels != minority).squeeze(1)
    if len(mine) == 0:
        raise ValueError(f"minority: no example of class {minority} in labels")
    keep = min(len(mine), max(1, round(share / (1 - share) * len(others))))
    picked = mine[torch.randperm(len(mine), generator=torch.Generator().manual_seed(seed))[:keep]]
    return torch.cat([others, picked]).sort().values


def share_report(sample_shares: torch.Tensor, train_shares: torch.Tensor, minority: int) -> dict[str, float]:
    """The minority's share in the samples and in the training data, their ratio, and the total variation
    distance between the two class distributions (half the L1 distance: 0 equal, 1 disjoint)."""
    sample_share, train_share = float(sample_shares[minority]), float(train_shares[minority])
    return {"minority_share": sample_share, "train_share": train_share,
            "ratio": sample_share / train_share if train_share > 0 else float("nan"),
            "total_variation": float((sample_shares - train_shares).abs().sum() / 2)}


def shares_under_truncation(G: nn.Module, psis: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4), n: int = 1000,
                            seed: int = 0, classifier: nn.Module | None = None) -> dict[float, torch.Tensor]:
    """The class shares (10,) of n samples of a StyleGAN at each truncation psi (the same z for every psi)."""
    return {psi: predicted_shares(generate(G, n, seed, truncation_psi=psi)[0], classifier) for psi in psis}
