"""Does a generator copy its training data? Meehan et al. 2020's data-copying test C_T.

For each generated sample, the distance to its nearest training image; for each held-out test image,
the same. A model that copies puts its samples closer to the training set than fresh real images
are; one that generalises puts them about as close. The comparison is made cell by cell of a k-means
partition of the training set (a model may copy in one region and underfit in another), each cell by
a Mann-Whitney U test turned into a z-score:

    Z_U(cell) = (U - m n / 2) / sqrt(m n (m + n + 1) / 12)

U counting the (sample, test image) pairs of the cell where the sample is the farther one (ties
half), m and n the numbers of samples and of test images in the cell. C_T is the average of Z_U over
the cells with enough of both, weighted by the cell's share of test images. C_T << 0: copying
(Meehan et al. flag C_T < -3); near 0: samples as far from the training set as new data; >> 0:
samples farther than real data (underfitting). The distances are taken in pixel space or in the
course classifier's feature space, where a copy shifted by a pixel still looks like a copy.

A metric of the shared layer (``python -m course_lib.evaluate --memorisation`` runs it on a samples file); lesson 12
calibrates it with deliberately memorising models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_lib.classifier import classify, load_classifier
from course_lib.data import mnist5k

SPACES = ("pixel", "features")
MIN_PER_CELL = 10   # a cell counts only with at least this many samples and test images


def nearest_distances(x: torch.Tensor, reference: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """The Euclidean distance (N,) from each row of x (N, D) to its nearest row of ``reference`` (M, D)."""
    if x.dim() != 2 or reference.dim() != 2 or x.shape[1] != reference.shape[1]:
        raise ValueError(f"x and reference must be (N, D) and (M, D), got {tuple(x.shape)} and {tuple(reference.shape)}")
    reference = reference.double()
    return torch.cat([torch.cdist(x[i:i + chunk].double(), reference).min(1).values
                      for i in range(0, len(x), chunk)]).float()


def mann_whitney_z(samples: np.ndarray, test: np.ndarray) -> float:
    """Z_U of distances ``samples`` (m,) against ``test`` (n,): negative when the samples are the closer ones."""
    from scipy.stats import rankdata

    m, n = len(samples), len(test)
    ranks = rankdata(np.concatenate([samples, test]))          # average ranks: ties count half
    u = ranks[:m].sum() - m * (m + 1) / 2                      # pairs where the sample is the farther one
    return float((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


@dataclass(frozen=True)
class DataCopying:
    """The test's result: C_T, and Z_U, weight and counts of each cell (cells too small have z = None)."""

    ct: float
    cell_z: list[float | None]
    cell_weights: list[float]
    cell_samples: list[int]
    cell_test: list[int]


def data_copying(samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor, cells: int = 10,
                 seed: int = 0, min_per_cell: int = MIN_PER_CELL) -> DataCopying:
    """C_T of generated samples against the training set, calibrated by a held-out test set.

    Args:
        samples, train, test: (N, D), (M, D), (L, D) feature vectors (flattened pixels or classifier features).
        cells: k of the k-means partition, fitted on ``train`` (scikit-learn, seeded by ``seed``).
        min_per_cell: cells with fewer samples or test points are left out of C_T.

    Returns:
        A ``DataCopying``; ``ct`` is NaN when no cell has enough of both.
    """
    from sklearn.cluster import KMeans

    for name, value in (("samples", samples), ("train", train), ("test", test)):
        if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.shape[1] != train.shape[1]:
            raise ValueError(f"{name} must be an (N, {train.shape[1]}) tensor, got {tuple(getattr(value, 'shape', ()))}")
    if not isinstance(cells, int) or not 1 <= cells <= len(train):
        raise ValueError(f"cells must be an int in 1..{len(train)}, got {cells!r}")
    kmeans = KMeans(n_clusters=cells, n_init=3, random_state=seed).fit(train.double().numpy())
    cell_of_samples = kmeans.predict(samples.double().numpy())
    cell_of_test = kmeans.predict(test.double().numpy())
    d_samples = nearest_distances(samples, train).numpy()
    d_test = nearest_distances(test, train).numpy()
    zs: list[float | None] = []
    weights, counts_s, counts_t = [], [], []
    for cell in range(cells):
        a, b = d_samples[cell_of_samples == cell], d_test[cell_of_test == cell]
        counts_s.append(len(a))
        counts_t.append(len(b))
        weights.append(len(b) / len(test))
        zs.append(mann_whitney_z(a, b) if min(len(a), len(b)) >= min_per_cell else None)
    kept = [(z, w) for z, w in zip(zs, weights) if z is not None]
    total = sum(w for _, w in kept)
    ct = sum(z * w for z, w in kept) / total if kept else float("nan")
    return DataCopying(float(ct), zs, weights, counts_s, counts_t)


def features_of(images: torch.Tensor, space: str, classifier: torch.nn.Module | None = None) -> torch.Tensor:
    """The vectors the test compares: flattened pixels (N, C * H * W) or the course classifier's features (N, F)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float (N, C, H, W) tensor, got {shape}")
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if space == "pixel":
        return images.flatten(1).float()
    _, features = classify(classifier or load_classifier(), images)
    return features


def digit_copying(samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor, space: str = "pixel",
                  cells: int = 10, seed: int = 0, classifier: torch.nn.Module | None = None) -> DataCopying:
    """``data_copying`` of digits (N, 1, 32, 32) in [-1, 1] against training and held-out digits, in ``space``."""
    return data_copying(*(features_of(x, space, classifier) for x in (samples, train, test)), cells=cells, seed=seed)


COPYING = -3.0  # C_T below this flags copying (Meehan et al. 2020)


def memorisation_report(samples: torch.Tensor, spaces: tuple[str, ...] = SPACES, cells: int = 10,
                        seed: int = 0) -> dict[str, float | int | bool]:
    """C_T of digits (N, 1, 32, 32) in [-1, 1] against mnist5k's train split, calibrated by its test split.

    Returns:
        For each space: ``ct_<space>`` (C_T), ``cells_<space>`` (cells with enough samples and test digits)
        and ``copying_<space>`` (C_T < -3).
    """
    train, test = mnist5k("train").x, mnist5k("test").x
    report: dict[str, float | int | bool] = {}
    for space in spaces:
        result = digit_copying(samples, train, test, space, cells=cells, seed=seed)
        report[f"ct_{space}"] = result.ct
        report[f"cells_{space}"] = sum(z is not None for z in result.cell_z)
        report[f"copying_{space}"] = result.ct < COPYING
    return report
