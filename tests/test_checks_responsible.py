"""Graded checks of lesson 12 (responsible generation): the library and a learner's solution pass, a stub
is not attempted, and a bank of classic mistakes is caught, each with its own message."""

import math

import numpy as np
import pytest
import torch

from course_lib.checks import CheckResult, lesson12
from course_lib import memorisation
from course_lib.responsible import spectrum, watermarks


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ----- solutions, as a learner writes them ---------------------------------------------------

def solution_log_spectrum(x):
    grey = x.mean(dim=1)
    grey = grey - grey.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(grey).abs().pow(2)
    return torch.fft.fftshift(torch.log(power + 1e-8), dim=(-2, -1))


def solution_threshold(n_bits, fpr):
    k, tail = n_bits + 1, 0
    while k > 0 and tail + math.comb(n_bits, k - 1) <= fpr * 2 ** n_bits:
        k -= 1
        tail += math.comb(n_bits, k)
    return k


def solution_z_u(d_samples, d_test):
    m, n = len(d_samples), len(d_test)
    diff = d_samples[:, None] - d_test[None, :]
    u = (diff > 0).sum() + 0.5 * (diff == 0).sum()
    return float((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))


def solution_c_t(z, samples_per_cell, test_per_cell, min_per_cell):
    num = den = 0.0
    for zi, s, t in zip(z, samples_per_cell, test_per_cell):
        if s >= min_per_cell and t >= min_per_cell:
            num += zi * t
            den += t
    return num / den


def solution_dither_embed(x, patterns, bits, delta, dither):
    p = (x[:, None] * patterns[None]).sum(dim=(-2, -1))                  # (N, n)
    target = bits * delta / 2 + dither
    nearest = torch.round((p - target) / delta) * delta + target
    return x + ((nearest - p)[:, :, None, None] * patterns[None]).sum(1)


def library_z_u(d_samples, d_test):
    return memorisation.mann_whitney_z(np.asarray(d_samples), np.asarray(d_test))


REFERENCES = [
    (lesson12.check_log_spectrum, lesson12.reference_log_spectrum),
    (lesson12.check_log_spectrum, spectrum.log_spectrum),
    (lesson12.check_log_spectrum, solution_log_spectrum),
    (lesson12.check_threshold, lesson12.reference_threshold),
    (lesson12.check_threshold, watermarks.threshold),
    (lesson12.check_threshold, solution_threshold),
    (lesson12.check_z_u, lesson12.reference_z_u),
    (lesson12.check_z_u, library_z_u),
    (lesson12.check_z_u, solution_z_u),
    (lesson12.check_c_t, lesson12.reference_c_t),
    (lesson12.check_c_t, solution_c_t),
    (lesson12.check_dither_embed, lesson12.reference_dither_embed),
    (lesson12.check_dither_embed, solution_dither_embed),
]


@pytest.mark.parametrize("check, reference", REFERENCES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(REFERENCES)])
def test_reference_passes_and_stub_is_not_attempted(check, reference):
    assert check(reference).status == "passed", check(reference).message
    assert check(stub).status == "not_attempted"


def test_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson12.EXERCISES] == ["12.1", "12.2", "12.3", "12.4", "12.5"]


def test_library_dct_mark_is_the_dither_modulation_of_the_exercise():
    """One round of watermarks.dct_embed without clamping is the exercise's dither modulation on its patterns."""
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.2 - 0.1   # far from the clamp
    patterns = watermarks.dct_patterns(7, (32, 32)).double()
    bits = watermarks.key_bits(7, watermarks.DCT_BITS)
    dither = watermarks._dither(7, watermarks.DCT_BITS, watermarks.DCT_DELTA).double()
    ours = lesson12.reference_dither_embed(x[:, 0].double(), patterns, bits, watermarks.DCT_DELTA, dither)
    library = watermarks.dct_embed(x, 7, rounds=1)[:, 0]
    assert torch.allclose(ours.float(), library, atol=1e-4)


# ----- the bank of mistakes ------------------------------------------------------------------

def _power(x):
    grey = x.mean(1)
    return torch.fft.fft2(grey - grey.mean((1, 2), keepdim=True)).abs() ** 2


def per_channel(x):
    c = x - x.mean((2, 3), keepdim=True)
    return torch.fft.fftshift(torch.log(torch.fft.fft2(c).abs() ** 2 + 1e-8), dim=(-2, -1))


def not_centred(x):
    return torch.log(_power(x) + 1e-8)


def batch_shifted(x):
    return torch.fft.fftshift(torch.log(_power(x) + 1e-8))


def amplitude(x):
    return torch.fft.fftshift(torch.log(_power(x).sqrt() + 1e-8), dim=(-2, -1))


def no_log(x):
    return torch.fft.fftshift(_power(x), dim=(-2, -1))


def no_epsilon(x):
    return torch.fft.fftshift(torch.log(_power(x)), dim=(-2, -1))


def mean_left_in(x):
    return torch.fft.fftshift(torch.log(torch.fft.fft2(x.mean(1)).abs() ** 2 + 1e-8), dim=(-2, -1))


def strict_tail(n, fpr):   # the smallest k with P[m > k] <= fpr
    return lesson12.reference_threshold(n, fpr) - 1


def one_term(n, fpr):
    return next(k for k in range(n // 2, n + 2) if k > n or math.comb(n, k) <= fpr * 2 ** n)


def normal_approximation(n, fpr):
    z = {0.05: 1.645, 1e-3: 3.090, 1e-6: 4.753, 0.3: 0.524, 1e-9: 5.998}[fpr]
    return round(n / 2 + z * math.sqrt(n) / 2)


def never_above_n(n, fpr):
    return min(n, lesson12.reference_threshold(n, fpr))


def closer_counted(d_samples, d_test):
    return -lesson12.reference_z_u(d_samples, d_test)


def ties_ignored(d_samples, d_test):
    m, n = len(d_samples), len(d_test)
    u = float((d_samples[:, None] > d_test[None]).sum())
    return (u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12)


def no_plus_one(d_samples, d_test):
    m, n = len(d_samples), len(d_test)
    u = float((d_samples[:, None] > d_test[None]).sum() + 0.5 * (d_samples[:, None] == d_test[None]).sum())
    return (u - m * n / 2) / math.sqrt(m * n * (m + n) / 12)


def not_centred_u(d_samples, d_test):
    m, n = len(d_samples), len(d_test)
    u = float((d_samples[:, None] > d_test[None]).sum() + 0.5 * (d_samples[:, None] == d_test[None]).sum())
    return u / math.sqrt(m * n * (m + n + 1) / 12)


def weighted_by_samples(z, s, t, k):
    kept = [(zi, si) for zi, si, ti in zip(z, s, t) if min(si, ti) >= k]
    return sum(zi * si for zi, si in kept) / sum(si for _, si in kept)


def unweighted(z, s, t, k):
    kept = [zi for zi, si, ti in zip(z, s, t) if min(si, ti) >= k]
    return sum(kept) / len(kept)


def small_cells_kept(z, s, t, k):
    return sum(zi * ti for zi, ti in zip(z, t)) / sum(t)


def not_renormalised(z, s, t, k):
    return sum(zi * ti for zi, si, ti in zip(z, s, t) if min(si, ti) >= k) / sum(t)


def counts_only_test(z, s, t, k):
    kept = [(zi, ti) for zi, ti in zip(z, t) if ti >= k]
    return sum(zi * ti for zi, ti in kept) / sum(ti for _, ti in kept)


def no_dither(x, patterns, bits, delta, dither):
    return lesson12.reference_dither_embed(x, patterns, bits, delta, torch.zeros_like(dither))


def whole_step(x, patterns, bits, delta, dither):
    return lesson12.reference_dither_embed(x, patterns, bits * 2, delta, dither)


def rounded_down(x, patterns, bits, delta, dither):
    p = torch.einsum("nhw,khw->nk", x, patterns)
    target = bits.to(x.dtype) * delta / 2 + dither
    step = torch.floor((p - target) / delta) * delta + target - p
    return x + torch.einsum("nk,khw->nhw", step, patterns)


def wrong_way(x, patterns, bits, delta, dither):
    return 2 * x - lesson12.reference_dither_embed(x, patterns, bits, delta, dither)


MISTAKES = [
    ("per channel", lesson12.check_log_spectrum, per_channel, "per channel"),
    ("not centred", lesson12.check_log_spectrum, not_centred, "not centred"),
    ("batch axis shifted", lesson12.check_log_spectrum, batch_shifted, "batch axis"),
    ("amplitude", lesson12.check_log_spectrum, amplitude, "amplitude"),
    ("no log", lesson12.check_log_spectrum, no_log, "log is missing"),
    ("no epsilon", lesson12.check_log_spectrum, no_epsilon, "epsilon"),
    ("mean left in", lesson12.check_log_spectrum, mean_left_in, "mean is still in"),
    ("strict tail", lesson12.check_threshold, strict_tail, "one too low"),
    ("one binomial term", lesson12.check_threshold, one_term, "single term"),
    ("normal approximation", lesson12.check_threshold, normal_approximation, "normal approximation"),
    ("never above n", lesson12.check_threshold, never_above_n, "n + 1"),
    ("closer pairs counted", lesson12.check_z_u, closer_counted, "sign is flipped"),
    ("ties ignored", lesson12.check_z_u, ties_ignored, "ties are not counted"),
    ("no + 1", lesson12.check_z_u, no_plus_one, "+ 1 is missing"),
    ("U not centred", lesson12.check_z_u, not_centred_u, "not centred"),
    ("weighted by samples", lesson12.check_c_t, weighted_by_samples, "SAMPLES"),
    ("unweighted", lesson12.check_c_t, unweighted, "equal weights"),
    ("small cells kept", lesson12.check_c_t, small_cells_kept, "are kept"),
    ("not renormalised", lesson12.check_c_t, not_renormalised, "do not sum to 1"),
    ("test count only", lesson12.check_c_t, counts_only_test, "BOTH"),
    ("no dither", lesson12.check_dither_embed, no_dither, "dither is missing"),
    ("a whole step for bit 1", lesson12.check_dither_embed, whole_step, "delta / 2"),
    ("rounded down", lesson12.check_dither_embed, rounded_down, "NEAREST"),
    ("moved the wrong way", lesson12.check_dither_embed, wrong_way, "wrong way"),
]


@pytest.mark.parametrize("name, check, wrong, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, wrong, expected):
    result = check(wrong)
    assert isinstance(result, CheckResult)
    assert result.status == "failed", f"{name} was not caught: {result.message}"
    assert expected in result.message, result.message
