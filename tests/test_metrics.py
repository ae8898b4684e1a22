"""Metrics pinned against independent computations: scipy's sqrtm, closed forms for Gaussians,
brute-force MMD and k-NN on tiny sets, and the ordering of degraded sets."""

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from course_lib.metrics import (class_accuracy, class_histogram_stats, frechet_distance, gaussian_stats,
                                inception_score, kernel_inception_distance, mmd2_unbiased, precision_recall)


def gaussian(n, mean, cov, seed):
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


def test_fd_matches_scipy_sqrtm_on_random_features():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) + 1
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(expected, rel=1e-4)


def test_fd_closed_forms():
    x = gaussian(500, [0, 0, 0], np.diag([1.0, 2.0, 3.0]), 1)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0.5])
    assert frechet_distance(x, x + shift) == pytest.approx((shift ** 2).sum(), rel=1e-9)  # same covariance
    a = 3.0  # scaling: S_b = a² S_a, so tr sqrt(S_a S_b) = a tr S_a
    stats = gaussian_stats(x)
    expected = (1 - a) ** 2 * (stats.mu @ stats.mu) + (1 - a) ** 2 * np.trace(stats.sigma)
    assert frechet_distance(x, a * x) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(stats, x + shift) == pytest.approx((shift ** 2).sum(), rel=1e-9)


def test_mmd_matches_brute_force_and_kid_is_unbiased():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(6, 3)) + 0.5
    k = lambda a, b: (a @ b / 3 + 1) ** 3
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(7), 2)) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(6), 2)) / (6 * 5)
    xy = sum(k(a, b) for a in x for b in y) / (7 * 6)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    same_a, same_b = rng.normal(size=(600, 4)), rng.normal(size=(600, 4))
    mean, std = kernel_inception_distance(same_a, same_b, subsets=20, subset_size=200)
    assert abs(mean) < 3 * std + 1e-3  # about 0 for one distribution
    shifted, _ = kernel_inception_distance(same_a, same_b + 0.5, subsets=20, subset_size=200)
    assert shifted > mean + 10 * std


def test_precision_recall_match_brute_force_knn():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(12, 2)), rng.normal(size=(9, 2)) * 1.5 + 0.3

    def radii(s):
        return [sorted(np.linalg.norm(s - p, axis=1))[3] for p in s]  # index 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    precision = np.mean([any(np.linalg.norm(f - real[i]) <= r_real[i] for i in range(12)) for f in fake])
    recall = np.mean([any(np.linalg.norm(r - fake[j]) <= r_fake[j] for j in range(9)) for r in real])
    assert precision_recall(real, fake, k=3) == pytest.approx((precision, recall))


def test_precision_recall_extremes_and_mode_dropping():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(300, 2))
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100) == (0.0, 0.0)
    half = real[real[:, 0] > 0]  # a generator that drops half the data: precise, but low recall
    p, r = precision_recall(real, half)
    assert p == 1.0 and r < 0.7


def test_inception_score_analytic_cases():
    confident_even = torch.eye(10).repeat(20, 1)
    assert inception_score(confident_even, splits=2)[0] == pytest.approx(10.0)
    assert inception_score(torch.eye(10)[[3] * 50], splits=1)[0] == pytest.approx(1.0)
    assert inception_score(torch.full((40, 10), 0.1), splits=4)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="softmax"):
        inception_score(torch.randn(10, 10))


def test_class_accuracy_and_histogram():
    assert class_accuracy(torch.tensor([1, 2, 3, 3]), torch.tensor([1, 2, 3, 4])) == 0.75
    logits = torch.eye(10)[torch.arange(100) % 10]
    stats = class_histogram_stats(logits)
    assert stats.modes == 10 and stats.entropy == pytest.approx(math.log(10)) and stats.counts == [10] * 10
    collapsed = class_histogram_stats(torch.tensor([7] * 99 + [1]))
    assert collapsed.modes == 2 and collapsed.entropy < 0.1
    assert class_histogram_stats(torch.tensor([7] * 999 + [1])).modes == 1  # one stray sample is below 1%


def test_metrics_order_degraded_sets():
    rng = np.random.default_rng(5)
    real_a, real_b = rng.normal(size=(500, 6)), rng.normal(size=(500, 6))
    noisy = real_b + rng.normal(size=(500, 6)) * 0.7
    worse = real_b + rng.normal(size=(500, 6)) * 2.0
    fds = [frechet_distance(real_a, s) for s in (real_b, noisy, worse)]
    assert fds[0] < fds[1] < fds[2]
    precisions = [precision_recall(real_a, s)[0] for s in (real_b, noisy, worse)]
    assert precisions[0] > precisions[1] > precisions[2]


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5,)), r"shape \(N, F\)"),
    (np.full((5, 3), np.nan), "NaN"),
    (np.zeros((1, 3)), "at least 2"),
])
def test_bad_inputs_have_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(bad, np.zeros((5, 3)))


def test_mismatched_widths_and_subset_size():
    with pytest.raises(ValueError, match="same feature size"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(np.zeros((10, 3)), np.ones((10, 3)), subset_size=50)
    with pytest.raises(ValueError, match="at least 4"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
