"""Sample-quality metrics on feature vectors: Fréchet distance, KID, precision/recall, an IS analogue.

Every function takes feature arrays of shape (N, F) (torch tensors or NumPy arrays; computed in
float64) or class probabilities / predictions, and returns plain Python floats. They are
feature-agnostic: the course computes them on its digit classifier's penultimate features, where
published FIDs use Inception-v3's pool features, so the numbers are comparable within the course
only.

- ``frechet_distance``: Heusel et al. 2017 (FID), with the matrix square root done exactly through
  symmetric eigendecompositions.
- ``kernel_inception_distance``: Bińkowski et al. 2018 (KID), the unbiased MMD² with the cubic
  polynomial kernel, averaged over random subsets.
- ``precision_recall``: Kynkäänniemi et al. 2019, k-nearest-neighbour manifolds (k = 3).
- ``inception_score``: Salimans et al. 2016, from any classifier's softmax.
- ``class_histogram_stats``: how many classes a set of predictions covers, and the entropy of the mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def _as_features(name: str, x, min_rows: int = 2) -> torch.Tensor:
    """Validate an (N, F) feature array and return it as a float64 CPU tensor."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array of shape (N, F), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, F), got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {x.shape[0]}")
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values (did the generator diverge?)")
    return x


def _same_width(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} must have the same feature size F, got {a.shape[1]} and {b.shape[1]}")


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a feature set: what FD compares."""

    mu: np.ndarray     # (F,) float64
    sigma: np.ndarray  # (F, F) float64, unbiased (divides by N - 1)
    n: int             # samples they came from


def gaussian_stats(features) -> GaussianStats:
    """Mean and unbiased covariance of (N, F) features, for ``frechet_distance`` or for shipping."""
    x = _as_features("features", features)
    mu = x.mean(0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)  # (F, F), like numpy.cov's default
    return GaussianStats(mu.numpy(), sigma.numpy(), x.shape[0])


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh((m + m.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``FD = ||mu_a - mu_b||² + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))``. The trace of the matrix
    square root is computed as ``tr((A^(1/2) S_b A^(1/2))^(1/2))`` with ``A = S_a``: the same
    eigenvalues, but of a symmetric matrix, so no complex round-off appears.

    Args:
        a: (N, F) features, or ``GaussianStats``.
        b: (M, F) features, or ``GaussianStats``.

    Returns:
        FD >= 0 (a float; 0 only for identical statistics). Biased upwards for small N.
    """
    sa = a if isinstance(a, GaussianStats) else gaussian_stats(a)
    sb = b if isinstance(b, GaussianStats) else gaussian_stats(b)
    if sa.mu.shape != sb.mu.shape:
        raise ValueError(f"the two feature sets must have the same feature size F, got {sa.mu.shape[0]} and {sb.mu.shape[0]}")
    root_a = _sqrt_psd(sa.sigma)
    middle = root_a @ sb.sigma @ root_a  # symmetric PSD, same eigenvalues as S_a S_b
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = sa.mu - sb.mu
    fd = diff @ diff + np.trace(sa.sigma) + np.trace(sb.sigma) - 2 * trace_sqrt
    return float(max(fd, 0.0))


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (x·y / F + 1)³, the kernel of Bińkowski et al. 2018."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x, y) -> float:
    """Unbiased estimate of MMD² between two samples with the cubic polynomial kernel.

    ``MMD² = mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)``; the
    diagonal terms k(x_i, x_i) are left out, which makes the estimate unbiased (it can be < 0).
    """
    x, y = _as_features("x", x), _as_features("y", y)
    _same_width(x, y, "x and y")
    m, n = x.shape[0], y.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(term_xx + term_yy - 2 * k_xy.mean())


def kernel_inception_distance(real, fake, subsets: int = 50, subset_size: int = 500,
                              generator: torch.Generator | None = None) -> tuple[float, float]:
    """KID: the unbiased MMD² averaged over random subsets (Bińkowski et al. 2018).

    Args:
        real: (N, F) features of real samples.
        fake: (M, F) features of generated samples.
        subsets: number of random subsets, >= 1.
        subset_size: samples per subset, drawn without replacement from each set; at most min(N, M).
        generator: a ``torch.Generator`` for the subset draws (default: a fixed seed, so KID is repeatable).

    Returns:
        ``(mean, std)`` over subsets. Unlike FD the mean is unbiased: about 0 for equal distributions
        at any sample size.
    """
    real, fake = _as_features("real", real), _as_features("fake", fake)
    _same_width(real, fake, "real and fake")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if not 2 <= subset_size <= min(len(real), len(fake)):
        raise ValueError(f"subset_size must be in [2, min(N, M)] = [2, {min(len(real), len(fake))}], got {subset_size}")
    generator = generator or torch.Generator().manual_seed(0)
    values = []
    for _ in range(subsets):
        i = torch.randperm(len(real), generator=generator)[:subset_size]
        j = torch.randperm(len(fake), generator=generator)[:subset_size]
        values.append(mmd2_unbiased(real[i], fake[j]))
    values = torch.tensor(values, dtype=torch.float64)
    return float(values.mean()), float(values.std(unbiased=False)) if subsets > 1 else 0.0


def kth_neighbour_radii(x, k: int = 3) -> torch.Tensor:
    """Distance from every row of x (N, F) to its k-th nearest *other* row: (N,) float64.

    The radius of each sample's k-NN ball in the manifold estimate of Kynkäänniemi et al. 2019.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    x = _as_features("x", x, k + 1)
    d = torch.cdist(x, x)  # (N, N); the diagonal (distance to itself, 0) is the 0-th neighbour
    return d.kthvalue(k + 1, dim=1).values


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of Kynkäänniemi et al. 2019.

    Each real sample's neighbourhood is a ball reaching its k-th nearest real neighbour (the sample
    itself does not count); the real manifold is their union. **Precision** is the fraction of fake
    samples inside the real manifold (are the samples realistic?); **recall** is the fraction of real
    samples inside the fake manifold, built the same way from the fakes (is the data covered?).

    Args:
        real: (N, F) features, N > k.
        fake: (M, F) features, M > k.
        k: neighbourhood size (3 in the paper).

    Returns:
        ``(precision, recall)``, each in [0, 1].
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    real, fake = _as_features("real", real, k + 1), _as_features("fake", fake, k + 1)
    _same_width(real, fake, "real and fake")
    real_radii, fake_radii = kth_neighbour_radii(real, k), kth_neighbour_radii(fake, k)
    d = torch.cdist(fake, real)  # (M, N)
    precision = (d <= real_radii[None, :]).any(dim=1).double().mean()
    recall = (d.T <= fake_radii[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """Inception Score analogue ``exp(E_x KL(p(y|x) || p(y)))`` from any classifier's softmax.

    Between 1 (every sample gets the same prediction, or predictions are uniform) and the number of
    classes (confident predictions spread evenly over all classes). Salimans et al. 2016 average it
    over ``splits`` parts of the sample set.

    Args:
        probs: (N, C) class probabilities (rows sum to 1).
        splits: number of equal parts, 1 <= splits <= N.

    Returns:
        ``(mean, std)`` over the splits.
    """
    p = _as_features("probs", probs, 1)
    if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-4):
        raise ValueError("probs must be class probabilities: non-negative rows that sum to 1 (apply softmax to logits)")
    if not 1 <= splits <= len(p):
        raise ValueError(f"splits must be in [1, N] = [1, {len(p)}], got {splits}")
    scores = []
    for part in p.tensor_split(splits):
        marginal = part.mean(0, keepdim=True)  # p(y) within the split
        kl = (torch.xlogy(part, part) - torch.xlogy(part, marginal)).sum(1)  # KL(p(y|x) || p(y)) per row
        scores.append(math.exp(kl.mean().item()))
    scores = torch.tensor(scores, dtype=torch.float64)
    return float(scores.mean()), float(scores.std(unbiased=False)) if splits > 1 else 0.0


def class_accuracy(predictions, labels) -> float:
    """Fraction of conditional samples the classifier assigns to the label they were generated for."""
    predictions, labels = torch.as_tensor(predictions), torch.as_tensor(labels)
    if predictions.dim() == 2:
        predictions = predictions.argmax(1)  # (N, C) logits or probabilities
    if predictions.shape != labels.shape or predictions.dim() != 1 or len(labels) == 0:
        raise ValueError(f"predictions (N,) or (N, C) and labels (N,) must match, got {tuple(predictions.shape)} and {tuple(labels.shape)}")
    return float((predictions.long() == labels.long()).double().mean())


@dataclass(frozen=True)
class ClassHistogram:
    """How a set of samples spreads over the classes."""

    counts: list[int]      # predictions per class
    modes: int             # classes that receive at least min_fraction of the samples
    entropy: float         # entropy of the class histogram in nats; log(C) when perfectly balanced


def class_histogram_stats(predictions, num_classes: int = 10, min_fraction: float = 0.01) -> ClassHistogram:
    """Mode coverage of unconditional samples: how many classes appear, and how evenly.

    Args:
        predictions: (N,) predicted classes, or (N, C) logits/probabilities.
        num_classes: C.
        min_fraction: share of the samples a class needs to count as produced (1% by default, so
            a handful of stray predictions do not count as a mode).
    """
    predictions = torch.as_tensor(predictions)
    if predictions.dim() == 2:
        predictions = predictions.argmax(1)
    if predictions.dim() != 1 or len(predictions) == 0:
        raise ValueError(f"predictions must have shape (N,) or (N, C) with N >= 1, got {tuple(predictions.shape)}")
    counts = torch.bincount(predictions.long(), minlength=num_classes)[:num_classes].double()
    share = counts / counts.sum()
    entropy = float(-(torch.xlogy(share, share)).sum())
    modes = int((share >= min_fraction).sum())
    return ClassHistogram(counts.long().tolist(), modes, entropy)
