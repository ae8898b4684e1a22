"""Graded checks for lesson 03 (evaluating generative models).

Each check feeds the learner's metric small seeded feature sets, where the classic mistakes change
the answer visibly (few samples make ``/N`` and ``/(N - 1)`` differ by 10%), compares with the
reference in ``course_lib.metrics``, and names the mistake when it recognises one: a biased
covariance, a missing or element-wise matrix square root, a radius that counts the point itself,
a biased MMD, a reversed KL.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from course_lib import metrics
from course_lib.checks import Mistake, call, case_seed, close, exercise


def _features(seed: int, n: int, f: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """(n, f) float64 features: correlated Gaussian draws, so covariances are not diagonal."""
    g = torch.Generator().manual_seed(case_seed(seed))
    mixing = torch.randn(f, f, generator=g, dtype=torch.float64) / math.sqrt(f)
    return (torch.randn(n, f, generator=g, dtype=torch.float64) @ mixing) * scale + shift


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise Mistake(f"{name} should be a torch.Tensor (or NumPy array), got {type(value).__name__}.")
    return value.detach().to(torch.float64)


SQRT_HINT = ("An element-wise np.sqrt of a matrix with negative entries gives NaN: the formula needs the MATRIX "
             "square root (scipy.linalg.sqrtm).")


def _as_float(value, name: str, nan_hint: str = "") -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Mistake(f"{name} should return one number, got a tensor of shape {tuple(value.shape)}; reduce it to a scalar.")
        value = value.item()
    elif isinstance(value, np.ndarray):
        if value.size != 1:
            raise Mistake(f"{name} should return one number, got an array of shape {value.shape}; reduce it to a scalar.")
        value = value.item()
    if isinstance(value, complex) or np.iscomplexobj(value):
        raise Mistake(f"{name} returned a complex number ({value}). scipy.linalg.sqrtm can leave a tiny imaginary "
                      "part from round-off: keep the real part (.real) before the trace.")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise Mistake(f"{name} should return a number, got {type(value).__name__}.") from None
    if not math.isfinite(value):
        raise Mistake(f"{name} returned {value}. {nan_hint}".strip())
    return value


def _near(a: float, b: float, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    return abs(a - b) <= atol + rtol * abs(b)


# ----------------------------------------------------------------------------------------------
# 03.1 mean and covariance of a feature set
# ----------------------------------------------------------------------------------------------

@exercise("03.1", "mean and covariance of a feature set", forbid=("course_lib.metrics.gaussian_stats",))
def check_feature_stats(feature_stats) -> None:
    x = _features(0, 10, 4, shift=3.0)
    out = call(feature_stats, x.clone())
    if not isinstance(out, tuple) or len(out) != 2:
        raise Mistake(f"feature_stats should return a tuple (mu, sigma), got {type(out).__name__}.")
    mu, sigma = _as_tensor(out[0], "mu"), _as_tensor(out[1], "sigma")
    ref = metrics.gaussian_stats(x)
    if tuple(mu.shape) != (4,):
        raise Mistake(f"mu should have shape (F,) = (4,): one mean per feature (average over the N rows, dim 0), got {tuple(mu.shape)}.")
    if tuple(sigma.shape) == (10, 10):
        raise Mistake("sigma has shape (N, N): you multiplied the centred features the wrong way round. "
                      "The covariance of (N, F) features is (F, F): centred.T @ centred / (N - 1).")
    if tuple(sigma.shape) != (4, 4):
        raise Mistake(f"sigma should have shape (F, F) = (4, 4), got {tuple(sigma.shape)}.")
    if not close(mu, torch.from_numpy(ref.mu)):
        raise Mistake("mu is not the mean of each feature over the samples (x.mean(0)).")
    centred = x - x.mean(0)
    if close(sigma, centred.T @ centred / len(x)):
        raise Mistake("wrong normalisation: you divided by N. The unbiased covariance (numpy.cov's default, and what "
                      "FD implementations use) divides by N - 1; with 10 samples that is an 11% difference.")
    if close(sigma, x.T @ x / (len(x) - 1)) or close(sigma, x.T @ x / len(x)):
        raise Mistake("the covariance must be computed from CENTRED features (subtract the mean first); you used the raw features.")
    if close(sigma, (x - x.mean()).T @ (x - x.mean()) / (len(x) - 1)):
        raise Mistake("you subtracted one overall mean, x.mean(), from every feature: each feature has its own mean, "
                      "so centre with x.mean(0) (shape (F,)) before centred.T @ centred / (N - 1).")
    if not close(sigma, torch.from_numpy(ref.sigma)):
        raise Mistake("sigma is not the covariance centred.T @ centred / (N - 1). Centre with the per-feature mean "
                      "x.mean(0); with torch.cov or numpy.cov, pass the features as rows (x.T) or use rowvar=False.")


# ----------------------------------------------------------------------------------------------
# 03.2 Fréchet distance between two feature sets
# ----------------------------------------------------------------------------------------------

def _fd_variants(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """FD and the values the classic mistakes give, for recognising them."""
    import scipy.linalg

    def stats(x, ddof):
        c = (x - x.mean(0)).numpy()
        return x.mean(0).numpy(), c.T @ c / (len(x) - ddof)

    (mu_a, s_a), (mu_b, s_b) = stats(a, 1), stats(b, 1)
    (_, s_a0), (_, s_b0) = stats(a, 0), stats(b, 0)
    mean_term = float(((mu_a - mu_b) ** 2).sum())

    def trace_term(sa, sb, root):
        return float(np.trace(sa) + np.trace(sb) - 2 * np.trace(root(sa @ sb)))

    exact = lambda m: scipy.linalg.sqrtm(m).real  # noqa: E731
    with np.errstate(invalid="ignore"):
        elementwise = trace_term(s_a, s_b, np.sqrt)
    return {
        "biased covariance": mean_term + trace_term(s_a0, s_b0, exact),
        "no square root": mean_term + trace_term(s_a, s_b, lambda m: m),
        "element-wise root": mean_term + elementwise,
        "no mean term": trace_term(s_a, s_b, exact),
        "mean not squared": math.sqrt(mean_term) + trace_term(s_a, s_b, exact),
    }


@exercise("03.2", "Fréchet distance between two feature sets", forbid=("course_lib.metrics.frechet_distance",))
def check_frechet_distance(frechet_distance) -> None:
    a, b = _features(1, 12, 3), _features(2, 14, 3, shift=0.7, scale=1.5)
    out = _as_float(call(frechet_distance, a.clone(), b.clone()), "frechet_distance", SQRT_HINT)
    ref = metrics.frechet_distance(a, b)
    variants = _fd_variants(a, b)
    if _near(out, math.sqrt(ref)):
        raise Mistake("you returned the square root of FD. The Fréchet distance in the FID literature is the SQUARED "
                      "2-Wasserstein distance: ||mu_a - mu_b||² + Tr(...), with no final square root.")
    messages = {
        "biased covariance": "wrong covariance normalisation: divide by N - 1 (unbiased), not N. With a dozen samples the "
                             "difference is about 8%.",
        "no square root": "missing matrix square root: the cross term is -2 Tr((S_a S_b)^(1/2)), not -2 Tr(S_a S_b).",
        "element-wise root": "element-wise square root: np.sqrt / torch.sqrt take the root of each entry. The formula needs "
                             "the MATRIX square root, scipy.linalg.sqrtm(S_a @ S_b).",
        "no mean term": "the mean term is missing: FD = ||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).",
        "mean not squared": "the mean term must be the SQUARED distance ||mu_a - mu_b||², not the distance.",
    }
    for name, value in variants.items():
        if math.isfinite(value) and _near(out, value) and not _near(value, ref):
            raise Mistake(messages[name])
    if not _near(out, ref, rtol=1e-4, atol=1e-6):
        raise Mistake(f"frechet_distance gives {out:.6f} where the reference gives {ref:.6f}. "
                      "FD = ||mu_a - mu_b||² + Tr(S_a) + Tr(S_b) - 2 Tr(sqrtm(S_a @ S_b)) with unbiased covariances. "
                      "A common slip: sqrtm(S_a) @ sqrtm(S_b) in place of sqrtm(S_a @ S_b); they agree only when the two "
                      "covariances commute.")
    same = _as_float(call(frechet_distance, a.clone(), a.clone()), "frechet_distance")
    if abs(same) > 1e-6:
        raise Mistake(f"the FD of a set with itself should be 0, got {same:.3g}.")
    shifted = _as_float(call(frechet_distance, a.clone(), a + 2.0), "frechet_distance")
    if not _near(shifted, 3 * 2.0 ** 2, rtol=1e-5, atol=1e-6):
        raise Mistake(f"shifting every feature of a 3-D set by 2 should give FD = 3·2² = 12 (covariances equal), got {shifted:.6f}.")


# ----------------------------------------------------------------------------------------------
# 03.3 k-nearest-neighbour radii
# ----------------------------------------------------------------------------------------------

@exercise("03.3", "k-nearest-neighbour radii", forbid=("course_lib.metrics.kth_neighbour_radii",))
def check_kth_neighbour_radii(kth_neighbour_radii) -> None:
    x = _features(3, 9, 2)
    out = _as_tensor(call(kth_neighbour_radii, x.clone(), 3), "kth_neighbour_radii")
    if tuple(out.shape) != (9,):
        raise Mistake(f"kth_neighbour_radii should return one radius per sample, shape (N,) = (9,), got {tuple(out.shape)}.")
    ref = metrics.kth_neighbour_radii(x, 3)
    d = torch.cdist(x, x)
    if close(out, d.kthvalue(3, dim=1).values):
        raise Mistake("the radius includes the point itself: each sample is its own nearest neighbour at distance 0, so "
                      "the k-th nearest OTHER sample is the (k+1)-th smallest distance in its row.")
    if close(out, d.kthvalue(5, dim=1).values):
        raise Mistake("off by one: you skipped one neighbour too many. The radius is the (k+1)-th smallest distance in "
                      "the row (the first is the point itself).")
    if close(out, ref ** 2):
        raise Mistake("these are squared distances; the radius is the Euclidean distance (torch.cdist gives it directly).")
    if not close(out, ref):
        raise Mistake("the radii do not match the distance to the k-th nearest other sample. Use Euclidean distances "
                      "(torch.cdist), and mind the counting: kthvalue is 1-based, an index into sort() 0-based.")
    line = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    radii = _as_tensor(call(kth_neighbour_radii, line, 1), "kth_neighbour_radii")
    if not close(radii, torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64)):
        raise Mistake(f"on points 0, 1, 3, 7 on a line with k = 1 the radii are [1, 1, 2, 4], got {radii.tolist()}.")


# ----------------------------------------------------------------------------------------------
# 03.4 improved precision and recall
# ----------------------------------------------------------------------------------------------

def _pr_self_inclusive(real, fake, k):
    r_real = torch.cdist(real, real).kthvalue(k, dim=1).values
    r_fake = torch.cdist(fake, fake).kthvalue(k, dim=1).values
    d = torch.cdist(fake, real)
    return float((d <= r_real).any(1).double().mean()), float((d.T <= r_fake).any(1).double().mean())


def _wrong_balls_precision(real: torch.Tensor, fake: torch.Tensor, k: int) -> float:
    d = torch.cdist(fake, real)
    return float((d <= metrics.kth_neighbour_radii(fake, k)[:, None]).any(1).double().mean())


def _precision_recall_case() -> tuple[torch.Tensor, torch.Tensor]:
    """A wide real cloud and a tight fake cloud off-centre, drawn until every classic mistake gives other numbers.

    With few points a draw can make precision equal recall, or a mistake agree with the reference by
    chance; the grader's hidden seeds must not land on such a draw, so the case is chosen, not assumed.
    """
    for attempt in range(20):
        real = _features(4 + 2 * attempt, 40, 2, scale=2.0)
        fake = _features(5 + 2 * attempt, 30, 2, shift=1.5, scale=0.4)
        p, r = metrics.precision_recall(real, fake, 3)
        self_p, self_r = _pr_self_inclusive(real, fake, 3)
        others = [r, self_p, _wrong_balls_precision(real, fake, 3)]
        if all(abs(p - v) > 0.02 for v in others) and abs(r - self_r) > 0.02:
            return real, fake
    return real, fake


@exercise("03.4", "improved precision and recall", forbid=("course_lib.metrics.precision_recall",))
def check_precision_recall(precision_recall) -> None:
    real, fake = _precision_recall_case()
    out = call(precision_recall, real.clone(), fake.clone(), 3)
    if not isinstance(out, tuple) or len(out) != 2:
        raise Mistake(f"precision_recall should return a tuple (precision, recall), got {type(out).__name__}.")
    precision, recall = _as_float(out[0], "precision"), _as_float(out[1], "recall")
    ref_p, ref_r = metrics.precision_recall(real, fake, 3)
    if _near(precision, ref_r) and _near(recall, ref_p) and not _near(ref_p, ref_r):
        raise Mistake("precision and recall are swapped: precision asks which FAKES fall inside the real manifold "
                      "(realism); recall asks which REALS fall inside the fake manifold (coverage).")
    self_p, self_r = _pr_self_inclusive(real, fake, 3)
    if _near(precision, self_p) and _near(recall, self_r) and not (_near(self_p, ref_p) and _near(self_r, ref_r)):
        raise Mistake("the radii include the point itself (distance 0), so every ball is one neighbour too small. "
                      "Use the k-th nearest OTHER sample, as in exercise 03.3.")
    wrong_balls = _wrong_balls_precision(real, fake, 3)
    if _near(precision, wrong_balls) and not _near(wrong_balls, ref_p):
        raise Mistake("precision uses the wrong balls: a fake sample counts when it lies within the radius of some REAL "
                      "sample, i.e. d(fake_i, real_j) <= radius(real_j).")
    if not (0 <= precision <= 1 and 0 <= recall <= 1):
        raise Mistake(f"precision and recall are fractions in [0, 1], got {precision:.3g} and {recall:.3g}.")
    if not (_near(precision, ref_p) and _near(recall, ref_r)):
        raise Mistake(f"got precision {precision:.4f}, recall {recall:.4f}; expected {ref_p:.4f}, {ref_r:.4f}. A sample "
                      "counts when it lies in AT LEAST ONE ball of the other set (any over that set, not all or a count), "
                      "with the radii of exercise 03.3 for the given k.")
    same_p, same_r = (_as_float(v, "precision_recall") for v in call(precision_recall, real.clone(), real.clone(), 3))
    if not (same_p == 1.0 and same_r == 1.0):
        raise Mistake(f"a set compared with itself has precision = recall = 1 (every point lies in its own ball), got {same_p:.3g}, {same_r:.3g}.")
    line_real = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)  # k = 1 radii [1, 1, 2, 4]
    line_fake = torch.tensor([[11.0], [20.0]], dtype=torch.float64)                # 11 is exactly 4 from 7
    edge_p, edge_r = (_as_float(v, "precision_recall") for v in call(precision_recall, line_real, line_fake, 1))
    if (edge_p, edge_r) != (0.5, 0.5):
        hint = (" The fake at 11 lies exactly on the ball of the real 7 (radius 4): a ball includes its boundary, "
                "d <= radius, not d < radius." if edge_p == 0.0 else "")
        raise Mistake(f"on a line, reals 0, 1, 3, 7 and fakes 11, 20 with k = 1 give precision = recall = 0.5; "
                      f"yours gives {edge_p:.3g}, {edge_r:.3g}.{hint}")


# ----------------------------------------------------------------------------------------------
# 03.5 unbiased MMD² with the polynomial kernel (the core of KID)
# ----------------------------------------------------------------------------------------------

@exercise("03.5", "unbiased MMD² with the cubic polynomial kernel",
          forbid=("course_lib.metrics.mmd2_unbiased", "course_lib.metrics.kernel_inception_distance"))
def check_mmd2_unbiased(mmd2_unbiased) -> None:
    x, y = _features(6, 8, 5), _features(7, 10, 5, shift=0.3)
    out = _as_float(call(mmd2_unbiased, x.clone(), y.clone()), "mmd2_unbiased")
    ref = metrics.mmd2_unbiased(x, y)
    kernel = lambda a, b, f=5, p=3: (a @ b.T / f + 1) ** p  # noqa: E731
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    biased = float(k_xx.mean() + k_yy.mean() - 2 * k_xy.mean())
    if _near(out, biased):
        raise Mistake("biased MMD: the diagonal terms k(x_i, x_i) are included. The unbiased estimator averages "
                      "k(x_i, x_j) over pairs i != j only: (K.sum() - K.diagonal().sum()) / (m (m - 1)).")
    m, n = len(x), len(y)
    unbiased = lambda k, size: float((k.sum() - k.diagonal().sum()) / (size * (size - 1)))  # noqa: E731
    variants = {
        "no /F": unbiased(kernel(x, x, 1), m) + unbiased(kernel(y, y, 1), n) - 2 * float(kernel(x, y, 1).mean()),
        "cross once": unbiased(k_xx, m) + unbiased(k_yy, n) - float(k_xy.mean()),
        "degree 2": unbiased(kernel(x, x, 5, 2), m) + unbiased(kernel(y, y, 5, 2), n) - 2 * float(kernel(x, y, 5, 2).mean()),
        "self pairs over m²": float((k_xx.sum() - k_xx.diagonal().sum()) / m ** 2 + (k_yy.sum() - k_yy.diagonal().sum()) / n ** 2 - 2 * k_xy.mean()),
    }
    messages = {
        "no /F": "the kernel is k(x, y) = (x·y / F + 1)³: divide the dot product by the feature size F.",
        "cross once": "the cross term appears twice: MMD² = E k(x, x') + E k(y, y') - 2 E k(x, y).",
        "degree 2": "KID's kernel is cubic: (x·y / F + 1) ** 3.",
        "self pairs over m²": "dropping the diagonal is right, but then there are m (m - 1) pairs, not m²: divide by m (m - 1).",
    }
    for name, value in variants.items():
        if _near(out, value):
            raise Mistake(messages[name])
    if not _near(out, ref):
        raise Mistake(f"mmd2_unbiased gives {out:.6f} where the reference gives {ref:.6f}. The kernel is "
                      "(x·y / F + 1)³ with F the feature dimension; the cross term averages all m·n pairs, diagonal included.")
    swapped = _as_float(call(mmd2_unbiased, y.clone(), x.clone()), "mmd2_unbiased")
    if not _near(swapped, ref):
        raise Mistake("MMD² is symmetric: mmd2_unbiased(y, x) should equal mmd2_unbiased(x, y).")


# ----------------------------------------------------------------------------------------------
# 03.6 the Inception-Score analogue
# ----------------------------------------------------------------------------------------------

@exercise("03.6", "Inception Score from class probabilities", forbid=("course_lib.metrics.inception_score",))
def check_inception_score(inception_score) -> None:
    g = torch.Generator().manual_seed(case_seed(8))
    probs = torch.softmax(torch.randn(20, 4, generator=g, dtype=torch.float64) * 2, dim=1)
    out = _as_float(call(inception_score, probs.clone()), "inception_score")
    ref, _ = metrics.inception_score(probs, splits=1)
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.log() - marginal.log())).sum(1)
    reverse = (marginal * (marginal.log() - probs.log())).sum(1)
    if _near(out, float(kl.mean())):
        raise Mistake("missing exp: IS = exp(E_x KL(p(y|x) || p(y))). Without the exponential it is a KL in nats.")
    if _near(out, math.exp(float(reverse.mean()))):
        raise Mistake("reversed KL: the score uses KL(p(y|x) || p(y)), with the per-sample prediction first.")
    wrong_marginal = probs.mean(1, keepdim=True)
    if _near(out, math.exp(float((probs * (probs.log() - wrong_marginal.log())).sum(1).mean()))):
        raise Mistake("wrong marginal: p(y) is the average prediction over the SAMPLES (mean over dim 0), one probability per class.")
    if not _near(out, ref):
        raise Mistake(f"inception_score gives {out:.6f} where the reference gives {ref:.6f}: exp of the mean over samples "
                      "of KL(p(y|x) || p(y)), with p(y) the mean of the rows (over the samples, dim 0) and the KL summed "
                      "over the classes.")
    one_hot = torch.eye(4, dtype=torch.float64).repeat(5, 1)  # confident and balanced over 4 classes
    zero_hint = "Does your code handle zero probabilities? 0 · log 0 must count as 0 (torch.xlogy does that)."
    best = _as_float(call(inception_score, one_hot), "inception_score", zero_hint)
    if not _near(best, 4.0, rtol=1e-6):
        raise Mistake(f"confident, evenly spread predictions over 4 classes should score exactly 4, got {best:.6f}. "
                      f"{zero_hint}")


EXERCISES = [check_feature_stats, check_frechet_distance, check_kth_neighbour_radii, check_precision_recall,
             check_mmd2_unbiased, check_inception_score]

HINTS = {
    "03.1": ("Centre the features first: subtract each column's mean (the mean over the N rows) from every row.",
             "With X_c the centred (N, F) matrix, X_c.T @ X_c is (F, F): the sum of the outer products of the rows.",
             "Divide by N - 1, not N (the unbiased estimate). np.cov(x.numpy(), rowvar=False) lets you test "
             "yourself."),
    "03.2": ("Two parts: the squared distance between the means, plus the trace of Sigma_a + Sigma_b - 2 (Sigma_a "
             "Sigma_b)^(1/2). Take the means and covariances from your feature_stats.",
             "The root is a matrix square root of the product Sigma_a @ Sigma_b, not an element-wise root: "
             "scipy.linalg.sqrtm, on NumPy arrays (.numpy()).",
             "sqrtm may return a complex array with tiny imaginary parts: keep .real, then take np.trace of the "
             "whole root. Return a Python float."),
    "03.3": ("torch.cdist(x, x) gives the (N, N) distances between all rows; row i holds the distances from point i "
             "to every point, itself included.",
             "Sort each row in ascending order: column 0 is the point itself (distance 0), so the k-th nearest "
             "other point sits in column k, not k - 1.",
             "Tensor.sort(dim=1).values gives the sorted rows; pick column k of every row, shape (N,)."),
    "03.4": ("Precision: for each fake, is it inside at least one real ball? Recall: for each real, is it inside at "
             "least one fake ball? Each ball's radius is its centre's k-NN radius within its own set.",
             "Compute the (M, N) distances from the fakes to the reals once. Fake i is in the ball of real j when "
             "their distance is at most real j's radius: broadcast the real radii along the rows, then .any over "
             "the reals.",
             "For recall use the transposed distances and the fake radii. Average the booleans (.double().mean()) "
             "and return Python floats."),
    "03.5": ("Build the three kernel matrices, k(x, x) (m, m), k(y, y) (n, n) and k(x, y) (m, n), each as (a @ b.T "
             "/ F + 1) ** 3 with F the number of features.",
             "The unbiased estimate leaves out each sample paired with itself: subtract the diagonal's sum from a "
             "within-set matrix's sum, then divide by m (m - 1) (or n (n - 1)).",
             "The cross term keeps every pair: subtract twice its mean over all m n entries. The result may be "
             "negative; return it as a float."),
    "03.6": ("The marginal p(y) is the mean of the rows of probs; keep it (1, C) so it broadcasts against (N, C).",
             "KL(p(y|x_i) || p(y)) sums p log(p / p(y)) over the C classes. With zeros in p, write it as xlogy(p, "
             "p) - xlogy(p, marginal).",
             "Average the N KL values first, then exponentiate once (exp of the mean, not the mean of exps). Return "
             "a Python float."),
}
