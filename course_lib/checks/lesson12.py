"""Graded checks for lesson 12 (responsible generation).

The checks pin the learner's code to ``course_lib.responsible``: the centred log power spectrum that
the spectrum detector reads (Durall et al. 2020; Frank et al. 2020), the binomial threshold that fixes
a watermark test's false-positive rate (Fernandez et al. 2023), Mann-Whitney's z of Meehan et al.'s
data-copying test and the C_T that averages it over cells (Meehan et al. 2020), and one round of the
DCT mark's dither modulation (Chen & Wornell 2001).

The classic mistakes they recognise: a spectrum that is not centred, shifted along the batch axis too,
of the amplitude instead of the power, without the epsilon, with the mean left in, or per channel; a
threshold off by one, from one binomial term instead of the tail, from the normal approximation, or
that flags every-bit matches when even those are too likely; a z with the sign flipped, ties not
counted half, the variance without its + 1 or U not centred; a C_T weighted by samples, averaging the
cells unweighted, keeping cells that are too small or not renormalising; a dither modulation
without the dither, with a whole step between the two bits' lattices, rounding down, or moving the
projections the wrong way.
"""

from __future__ import annotations

import math

import torch

from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng


# Reference implementations (what course_lib.responsible computes) -------------------------------

def reference_log_spectrum(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): log(|FFT2(channel mean - its mean)|^2 + 1e-8), zero frequency at (H // 2, W // 2)."""
    grey = x.mean(1)
    grey = grey - grey.mean((1, 2), keepdim=True)
    return torch.fft.fftshift(torch.log(torch.fft.fft2(grey).abs() ** 2 + 1e-8), dim=(-2, -1))


def reference_threshold(n_bits: int, fpr: float) -> int:
    """The smallest k with P[Binomial(n_bits, 1/2) >= k] <= fpr (n_bits + 1 if there is none)."""
    tail = 0
    for k in range(n_bits, -1, -1):
        tail += math.comb(n_bits, k)
        if tail > fpr * 2 ** n_bits:
            return k + 1
    return 0


def reference_z_u(d_samples: torch.Tensor, d_test: torch.Tensor) -> float:
    """Mann-Whitney's z: (U - mn/2) / sqrt(mn(m + n + 1)/12), U = pairs where the sample is farther (ties half)."""
    m, n = len(d_samples), len(d_test)
    u = (d_samples[:, None] > d_test[None]).double().sum() + 0.5 * (d_samples[:, None] == d_test[None]).double().sum()
    return float((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))


def reference_c_t(z: list[float], samples_per_cell: list[int], test_per_cell: list[int], min_per_cell: int = 10) -> float:
    """The average of the cells' z weighted by their test counts, over the cells with >= min_per_cell of both."""
    kept = [(zi, t) for zi, s, t in zip(z, samples_per_cell, test_per_cell) if min(s, t) >= min_per_cell]
    if not kept:
        return float("nan")
    return sum(zi * t for zi, t in kept) / sum(t for _, t in kept)


def reference_dither_embed(x: torch.Tensor, patterns: torch.Tensor, bits: torch.Tensor, delta: float,
                           dither: torch.Tensor) -> torch.Tensor:
    """Images x (N, H, W) whose projections on orthonormal patterns (n, H, W) move to delta Z + dither + bit delta / 2."""
    p = torch.einsum("nhw,khw->nk", x, patterns)                                     # (N, n)
    target = bits.to(x.dtype) * delta / 2 + dither                                   # (n,)
    step = torch.round((p - target) / delta) * delta + target - p                     # (N, n), |step| <= delta / 2
    return x + torch.einsum("nk,khw->nhw", step, patterns)


# ----------------------------------------------------------------------------------------------
# 12.1 the log power spectrum
# ----------------------------------------------------------------------------------------------

@exercise("12.1", "the centred log power spectrum", forbid=("course_lib.responsible.spectrum.log_spectrum",
                                                             "course_lib.responsible.spectrum.spectrum_features"))
@own_rng
def check_log_spectrum(log_spectrum) -> None:
    g = torch.Generator().manual_seed(case_seed(0))
    x = torch.rand(3, 3, 8, 6, generator=g) * 2 - 1                    # colour, non-square: axes cannot be confused
    out = expect_tensor(call(log_spectrum, x.clone()), "log_spectrum")
    if tuple(out.shape) == (3, 3, 8, 6):
        raise Mistake("one spectrum per channel: average the channels first (x.mean(1)), then one spectrum per image, "
                      "(N, H, W).")
    expect_shape(out, (3, 8, 6), "log_spectrum", "One (H, W) spectrum per image, (N, H, W).")
    ref = reference_log_spectrum(x)
    if close(out, ref, atol=1e-4):
        return
    grey = x.mean(1) - x.mean(1).mean((1, 2), keepdim=True)
    power = torch.fft.fft2(grey).abs() ** 2
    off = torch.ones(8, 6, dtype=torch.bool)
    off[4, 3] = False                                                  # the zero frequency, once centred
    if not torch.isfinite(out).all() or (close(out[:, off], ref[:, off], atol=1e-4)
                                          and bool((out[:, 4, 3] < ref[:, 4, 3] - 1).all())):
        raise Mistake("the zero frequency is off: with the mean removed it has no power, and log(0) is -inf (or, "
                      "after rounding, a huge negative number). Add a small epsilon (1e-8) to the power before the log.")
    suspects = [
        (torch.log(power + 1e-8), "the spectrum is not centred: fftshift over the last two axes moves the zero "
                                  "frequency to (H // 2, W // 2), where the pictures (and the detector) expect it."),
        (torch.fft.fftshift(torch.log(power + 1e-8)), "fftshift without dim= also rolls the batch axis, so image i "
                                                      "gets image i + N // 2's spectrum: pass dim=(-2, -1)."),
        (torch.fft.fftshift(torch.log(power.sqrt() + 1e-8), dim=(-2, -1)),
         "that is the log of the amplitude |F|, not of the power |F|^2 (half the value away from the zero frequency)."),
        (torch.fft.fftshift(power, dim=(-2, -1)), "the log is missing: the power spans many orders of magnitude, "
                                                  "and the detector reads its logarithm."),
        (torch.fft.fftshift(torch.log(torch.fft.fft2(x.mean(1)).abs() ** 2 + 1e-8), dim=(-2, -1)),
         "the mean is still in: subtract each image's mean before the FFT, so brightness plays no part (the zero "
         "frequency holds the mean)."),
    ]
    for wrong, message in suspects:
        if close(out, wrong, atol=1e-4):
            raise Mistake(message)
    raise Mistake("log_spectrum should be fftshift(log(|fft2(grey - mean)|^2 + 1e-8), dim=(-2, -1)) with grey the "
                  "channel mean of each image.")


# ----------------------------------------------------------------------------------------------
# 12.2 the binomial threshold
# ----------------------------------------------------------------------------------------------

def _as_int(value, name: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Mistake(f"{name} should return an int (a number of matched bits), got {value!r}.")
    return value


@exercise("12.2", "the binomial threshold at a fixed false-positive rate",
          forbid=("course_lib.responsible.watermarks.threshold",))
def check_threshold(detection_threshold) -> None:
    cases = [(10, 0.05), (32, 1e-3), (48, 1e-3), (64, 1e-6), (7, 0.3), (200, 1e-9)]
    z_of = {0.05: 1.645, 1e-3: 3.090, 1e-6: 4.753, 0.3: 0.524, 1e-9: 5.998}   # the normal quantiles z_{1 - fpr}
    got_all = [_as_int(call(detection_threshold, n, fpr), "detection_threshold") for n, fpr in cases]
    want_all = [reference_threshold(n, fpr) for n, fpr in cases]
    if got_all != want_all and all(g == w - 1 for g, w in zip(got_all, want_all)):
        raise Mistake("every threshold is one too low: P[m >= k] includes k itself (not P[m > k]), so the smallest k "
                      "with P[m >= k] <= fpr is one higher than the k where P[m > k] first drops below fpr.")
    if got_all != want_all and all(abs(g - (n / 2 + z_of[f] * math.sqrt(n) / 2)) <= 1 for g, (n, f) in zip(got_all, cases)):
        raise Mistake("that looks like the normal approximation n/2 + z sqrt(n)/2: it is off by a bit in the tail "
                      "that matters (e.g. n = 32, fpr = 1e-3: the exact answer is 26). Count exactly with math.comb.")
    for (n, fpr), got, want in zip(cases, got_all, want_all):
        if got == want:
            continue
        tail = sum(math.comb(n, i) for i in range(got, n + 1)) / 2 ** n if 0 <= got <= n else 0.0
        pmf = next(k for k in range(n // 2, n + 2) if k > n or math.comb(n, k) <= fpr * 2 ** n)
        if got == pmf:
            raise Mistake(f"n = {n}, fpr = {fpr}: the false-positive rate is the whole tail, P[m >= k] = sum over "
                          "i >= k of C(n, i) / 2^n, not the single term P[m = k].")
        if got == want - 1:
            raise Mistake(f"n = {n}, fpr = {fpr}: you return {got}, but P[m >= {got}] = {tail:.3g} > fpr. The tail "
                          "that counts includes k itself (P[m >= k], not P[m > k]): the answer is one higher.")
        if got == want + 1 and want <= n:
            raise Mistake(f"n = {n}, fpr = {fpr}: {want} already keeps P[m >= k] <= fpr; you return one more, the "
                          "smallest k is wanted (a higher k misses marked images for nothing).")
        raise Mistake(f"n = {n}, fpr = {fpr}: the smallest k with P[Binomial(n, 1/2) >= k] <= fpr is {want}, "
                      f"you return {got}.")
    got = _as_int(call(detection_threshold, 8, 1e-3), "detection_threshold")
    if got != 9:
        raise Mistake(f"n = 8, fpr = 1e-3: even all 8 bits match an unmarked image with probability 1/256 > fpr, so "
                      f"no count may flag: return n + 1 = 9 (you return {got}).")


# ----------------------------------------------------------------------------------------------
# 12.3 Mann-Whitney's z
# ----------------------------------------------------------------------------------------------

@exercise("12.3", "Mann-Whitney's z of the data-copying test",
          forbid=("course_lib.memorisation.mann_whitney_z",))
@own_rng
def check_z_u(z_u) -> None:
    g = torch.Generator().manual_seed(case_seed(1))
    samples = torch.randint(0, 12, (15,), generator=g).double()   # ties on purpose
    test = torch.randint(3, 15, (22,), generator=g).double()
    got = call(z_u, samples.clone(), test.clone())
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        raise Mistake(f"z_u should return one number, got {type(got).__name__}.")
    want = reference_z_u(samples, test)
    if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
        return
    m, n = len(samples), len(test)
    farther = float((samples[:, None] > test[None]).sum())
    ties = float((samples[:, None] == test[None]).sum())
    sd = math.sqrt(m * n * (m + n + 1) / 12)
    suspects = [
        (-want, "the sign is flipped: U counts the pairs where the SAMPLE is the farther one, so samples closer to the "
                "training set than test images (copying) give a negative z."),
        ((farther - m * n / 2) / sd, "ties are not counted: a (sample, test) pair at equal distance counts half."),
        ((farther + ties - m * n / 2) / sd, "ties count as a whole pair; they count half."),
        ((farther + ties / 2 - m * n / 2) / math.sqrt(m * n * (m + n) / 12),
         "the variance is m n (m + n + 1) / 12: the + 1 is missing."),
        ((farther + ties / 2) / sd, "U is not centred: subtract its mean under the null, m n / 2."),
    ]
    for wrong, message in suspects:
        if math.isclose(got, wrong, rel_tol=1e-6, abs_tol=1e-9):
            raise Mistake(message)
    raise Mistake(f"z should be {want:.4f}, got {got:.4f}: (U - m n / 2) / sqrt(m n (m + n + 1) / 12).")


# ----------------------------------------------------------------------------------------------
# 12.4 C_T from the cells
# ----------------------------------------------------------------------------------------------

@exercise("12.4", "C_T: the cells' z averaged", forbid=("course_lib.memorisation.data_copying",))
def check_c_t(c_t) -> None:
    z = [-2.0, 1.0, 4.0, 0.5, -6.0]
    samples_per_cell = [30, 12, 5, 40, 25]          # cell 2 has too few samples
    test_per_cell = [50, 30, 20, 8, 12]             # cell 3 has too few test images
    got = call(c_t, list(z), list(samples_per_cell), list(test_per_cell), 10)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        raise Mistake(f"c_t should return one number, got {type(got).__name__}.")
    want = reference_c_t(z, samples_per_cell, test_per_cell, 10)
    if math.isclose(got, want, rel_tol=1e-9):
        other = call(c_t, [1.0, -1.0], [20, 20], [10, 30], 15)
        if not math.isclose(float(other), reference_c_t([1.0, -1.0], [20, 20], [10, 30], 15), rel_tol=1e-9):
            raise Mistake("right for min_per_cell = 10 but not for 15: use the argument.")
        return
    kept = [i for i in range(5) if min(samples_per_cell[i], test_per_cell[i]) >= 10]
    total = sum(test_per_cell)
    suspects = [
        (sum(z[i] * samples_per_cell[i] for i in kept) / sum(samples_per_cell[i] for i in kept),
         "the cells are weighted by their SAMPLES: Meehan et al. weight each cell by its share of the held-out TEST "
         "images, which says how much of the data distribution the cell holds."),
        (sum(z[i] for i in kept) / len(kept), "the cells are averaged with equal weights: weight each by its number "
                                              "of test images."),
        (sum(z[i] * test_per_cell[i] for i in range(5)) / total,
         "cells with fewer than min_per_cell samples or test images are kept: their z is noise; leave them out."),
        (sum(z[i] * test_per_cell[i] for i in kept) / total,
         "the weights of the kept cells do not sum to 1: divide by the test images of the kept cells, not of all."),
        (sum(z[i] * test_per_cell[i] for i in range(5) if test_per_cell[i] >= 10) /
         sum(test_per_cell[i] for i in range(5) if test_per_cell[i] >= 10),
         "a cell needs enough of BOTH: at least min_per_cell samples and min_per_cell test images."),
    ]
    for wrong, message in suspects:
        if math.isclose(got, wrong, rel_tol=1e-9):
            raise Mistake(message)
    raise Mistake(f"C_T should be {want:.4f}, got {got:.4f}: over the cells with enough samples and test images, "
                  "the average of z weighted by the test counts.")


# ----------------------------------------------------------------------------------------------
# 12.5 dither modulation on orthonormal patterns (the DCT mark)
# ----------------------------------------------------------------------------------------------

def _patterns(g: torch.Generator, n: int, h: int, w: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(h * w, n, generator=g, dtype=torch.float64))
    return q.T.reshape(n, h, w)                                                     # (n, H, W) orthonormal


@exercise("12.5", "one round of the DCT mark's dither modulation",
          forbid=("course_lib.responsible.watermarks.dct_embed",))
@own_rng
def check_dither_embed(dither_embed) -> None:
    g = torch.Generator().manual_seed(case_seed(2))
    x = torch.rand(4, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    patterns = _patterns(g, 6, 8, 8)
    bits = torch.tensor([0, 1, 1, 0, 1, 0])
    delta = 0.3
    dither = torch.rand(6, generator=g, dtype=torch.float64) * delta
    out = expect_tensor(call(dither_embed, x.clone(), patterns.clone(), bits.clone(), delta, dither.clone()),
                        "dither_embed")
    expect_shape(out, (4, 8, 8), "dither_embed", "The marked images, (N, H, W) like x.")
    ref = reference_dither_embed(x, patterns, bits, delta, dither)
    if close(out.double(), ref, atol=1e-6):
        return
    p_out = torch.einsum("nhw,khw->nk", out.double(), patterns)
    p = torch.einsum("nhw,khw->nk", x, patterns)
    target = bits.double() * delta / 2 + dither
    read = torch.remainder(torch.round((p_out - dither) / (delta / 2)), 2).long()     # what the extractor reads
    if not torch.equal(read, bits.expand(4, -1)):
        no_dither = reference_dither_embed(x, patterns, bits, delta, torch.zeros_like(dither))
        if close(out.double(), no_dither, atol=1e-6):
            raise Mistake("the dither is missing: the lattices are delta Z + dither_j + bit_j delta / 2; without the "
                          "key's dither the extractor (and anyone) reads the wrong lattice.")
        whole = reference_dither_embed(x, patterns, bits * 2, delta, dither)
        if close(out.double(), whole, atol=1e-6):
            raise Mistake("bit 1 shifts the lattice by a whole step delta, which is the same lattice as bit 0: the two "
                          "lattices interleave, so bit 1 shifts by delta / 2.")
        backwards = x - (ref - x)
        if close(out.double(), backwards, atol=1e-6):
            raise Mistake("the projections move the wrong way: add step * pattern where step = nearest lattice point "
                          "- p (not p - nearest point).")
        raise Mistake("after your embedding the extractor does not read the bits back: each projection <x, P_j> must "
                      "land on delta Z + dither_j + bit_j delta / 2.")
    moved = (p_out - p).abs()
    if (moved > delta / 2 + 1e-6).any():
        raise Mistake(f"the bits read back, but some projections moved by up to {float(moved.max()):.3f} > delta / 2 = "
                      f"{delta / 2}: round to the NEAREST lattice point (torch.round), not down or up, to keep the "
                      "mark as faint as possible.")
    if not close(p_out, torch.round((p - target) / delta) * delta + target, atol=1e-6):
        raise Mistake("the projections land on the right lattice but not on its nearest point.")
    raise Mistake("the projections are right but the rest of the image changed: move x only along the patterns, "
                  "x + sum_j step_j P_j.")


EXERCISES = [check_log_spectrum, check_threshold, check_z_u, check_c_t, check_dither_embed]

HINTS = {
    "12.1": ("Three steps: make each image grey, take its 2-D Fourier transform, and look at the energy per frequency "
             "on a log scale.",
             "Subtract each image's own mean before the transform, square the magnitude of the complex result, and add "
             "a tiny constant before the logarithm.",
             "torch.fft.fftshift moves the zero frequency to the centre; tell it which axes are the image's."),
    "12.2": ("On an unmarked image the number of matched bits is Binomial(n, 1/2); the chance of k or more matches "
             "is a sum of binomial coefficients divided by 2^n.",
             "Accumulate that tail from k = n downwards with math.comb (exact integers), and stop when adding one more "
             "term would make it larger than fpr.",
             "If even k = n alone is too likely, nothing may be flagged: the answer is then n + 1."),
    "12.3": ("Compare every sample distance with every test distance: broadcasting a column against a row gives "
             "all the pairs at once.",
             "U counts the pairs in which the sample's distance is the larger one, plus half of the pairs with equal "
             "distances.",
             "Under the null U has mean m n / 2 and variance m n (m + n + 1) / 12; standardise with both."),
    "12.4": ("Not every cell counts: a cell needs at least min_per_cell samples and at least min_per_cell test images.",
             "Each kept cell's z is weighted by how many test images it holds.",
             "Divide by the total weight of the kept cells only, so the weights sum to 1."),
    "12.5": ("Because the patterns are orthonormal, adding t * P_j to an image changes its projection on P_j by t and "
             "leaves the others alone.",
             "Bit j asks the projection to sit on the lattice delta Z + dither_j + bit_j delta / 2: compute that target "
             "offset, then the nearest lattice point to the current projection.",
             "torch.einsum('nhw,khw->nk', ...) gives all projections; the same pattern of einsum in reverse turns the "
             "steps (N, n) back into an image-sized change."),
}
