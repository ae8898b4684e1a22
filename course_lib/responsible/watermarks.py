"""Invisible watermarks keyed by an integer, and the statistical test that decides whether a mark is there.

Every mark here carries n bits derived from a secret ``key``. Detection extracts n bits from an image
and counts how many match the key's: on an unmarked image each bit matches with probability 1/2, so
the count is Binomial(n, 1/2), and an image is flagged when the count reaches ``threshold(n, fpr)``,
the smallest k with P[Binomial(n, 1/2) >= k] <= fpr (Stable Signature, Fernandez et al. 2023). The
false-positive rate is then at most ``fpr`` by construction, whatever the images.

- LSB: the key's bits replace the least significant bit of every pixel value. Invisible (PSNR ~51 dB)
  and exact, and gone after any re-encoding: the textbook example of a fragile mark.
- DCT: spread-transform dither modulation (Chen & Wornell 2001), the spread-spectrum mark without the
  host's interference. The key draws n orthonormal directions in the low and middle frequencies of
  the image's 2-D DCT; bit j moves the image's projection on direction j to the nearest point of one
  of two interleaved lattices of step ``delta`` (which one says the bit). Energy n delta^2 / 12 in
  all on average, whatever the image (plus what re-embedding after clamping adds: 38 dB on 32x32
  digits with the defaults); a perturbation that moves a projection by less than delta / 4 leaves
  the bit intact. The low frequencies survive JPEG and noise; blur and resizing scale every
  projection (QIM's known weakness to a change of gain) and a crop shifts them: both erase the mark.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from course_lib.responsible.attacks import from_uint8, to_uint8
from course_lib.responsible.spectrum import check_images

MAX_KEY = 2 ** 63 - 1
DCT_BITS = 48        # bits of the DCT mark
DCT_BAND = 12        # the mark lives on the DCT frequencies (u, v) with u, v < DCT_BAND, the DC term excepted
DCT_DELTA = 0.28     # lattice step of the projections ([-1, 1] units): ~38 dB on 32x32 digits, flips at noise > delta / 4
MIN_SIZE = 28        # the smallest images the marks take


def check_key(key: int) -> int:
    """The key itself, or a ValueError naming ``key``: an int in 0..2**63 - 1."""
    if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= MAX_KEY:
        raise ValueError(f"key must be an int in 0..2**63 - 1, got {key!r}")
    return key


def key_bits(key: int, n_bits: int) -> torch.Tensor:
    """The n_bits message bits (n_bits,) int64 in {0, 1} that ``key`` stands for (a generator seeded with it)."""
    g = torch.Generator().manual_seed(check_key(key))
    return torch.randint(0, 2, (n_bits,), generator=g)


# ----------------------------------------------------------------------------------------------
# The decision: a one-sided binomial test on the matched bits
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _tail_counts(n_bits: int) -> tuple[int, ...]:
    """tails[k] = sum_{i >= k} C(n, i), for k = 0..n + 1 (exact integers)."""
    tails = [0] * (n_bits + 2)
    for k in range(n_bits, -1, -1):
        tails[k] = tails[k + 1] + math.comb(n_bits, k)
    return tuple(tails)


def p_value(matched: int, n_bits: int) -> float:
    """P[Binomial(n_bits, 1/2) >= matched]: the chance that an unmarked image matches this many bits or more."""
    if not isinstance(n_bits, int) or n_bits < 1:
        raise ValueError(f"n_bits must be an int >= 1, got {n_bits!r}")
    if not 0 <= matched <= n_bits:
        raise ValueError(f"matched must be in 0..{n_bits}, got {matched!r}")
    return _tail_counts(n_bits)[matched] / 2 ** n_bits


def threshold(n_bits: int, fpr: float) -> int:
    """The smallest k with P[Binomial(n_bits, 1/2) >= k] <= fpr, exactly (n_bits + 1 if even k = n_bits is too likely).

    Args:
        n_bits: bits compared, >= 1.
        fpr: the false-positive rate allowed, in (0, 1).
    """
    if not isinstance(n_bits, int) or n_bits < 1:
        raise ValueError(f"n_bits must be an int >= 1, got {n_bits!r}")
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr!r}")
    allowed = Fraction(fpr) * 2 ** n_bits           # compare integers: no rounding anywhere
    tails = _tail_counts(n_bits)
    return next(k for k in range(n_bits + 2) if tails[k] <= allowed)


@dataclass(frozen=True)
class Detection:
    """The verdict on one image: bits matched out of n_bits, their p-value, and whether it is flagged as marked."""

    matched: int
    n_bits: int
    p_value: float
    marked: bool


def decide(bits: torch.Tensor, key: int, fpr: float = 1e-3) -> list[Detection]:
    """The test on extracted bits (N, n) against ``key``'s n bits: one ``Detection`` per image, at ``fpr``."""
    if bits.dim() != 2:
        raise ValueError(f"bits must be (N, n_bits), got {tuple(bits.shape)}")
    n = bits.shape[1]
    k = threshold(n, fpr)
    matched = (bits.long() == key_bits(key, n)).sum(1).tolist()
    return [Detection(m, n, p_value(m, n), m >= k) for m in matched]


# ----------------------------------------------------------------------------------------------
# LSB: the key's bits in the least significant bit of every pixel value
# ----------------------------------------------------------------------------------------------

def lsb_embed(x: torch.Tensor, key: int) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1], quantised to 8 bits, with the key's C * H * W bits as their LSBs."""
    check_images(x, "x")
    pixels = torch.from_numpy(to_uint8(x)).permute(0, 3, 1, 2)              # (N, C, H, W) uint8
    bits = key_bits(key, pixels[0].numel()).view(pixels.shape[1:]).to(torch.uint8)
    marked = (pixels & 0xFE) | bits
    return from_uint8(marked.permute(0, 2, 3, 1).numpy()).to(x.device)


def lsb_extract(x: torch.Tensor) -> torch.Tensor:
    """The least significant bits (N, C * H * W) int64 of images (N, C, H, W) in [-1, 1], read as 8-bit values."""
    check_images(x, "x")
    pixels = torch.from_numpy(to_uint8(x)).permute(0, 3, 1, 2)
    return (pixels & 1).flatten(1).long()


# ----------------------------------------------------------------------------------------------
# DCT: spread-transform dither modulation in the low and middle frequencies
# ----------------------------------------------------------------------------------------------

def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix (n, n): coefficients = D @ signal, signal = D.T @ coefficients."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def dct_patterns(key: int, size: tuple[int, int], n_bits: int = DCT_BITS, band: int = DCT_BAND) -> torch.Tensor:
    """The key's n_bits orthonormal pixel patterns (n_bits, H, W): keyed directions in the DCT band, seen as images.

    The DCT is orthonormal, so patterns orthonormal in the band are orthonormal in pixels: the projection
    of an image on pattern j is <x, P_j>, and adding t P_j moves it by t, and no other projection.
    """
    h, w = size
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"images must be at least {MIN_SIZE}x{MIN_SIZE} for the DCT mark, got {h}x{w}")
    u, v = torch.meshgrid(torch.arange(band), torch.arange(band), indexing="ij")
    keep = (u + v) > 0                                                        # no DC term
    if n_bits > int(keep.sum()):
        raise ValueError(f"n_bits must be at most {int(keep.sum())} for band {band}, got {n_bits}")
    g = torch.Generator().manual_seed(check_key(key))
    q, _ = torch.linalg.qr(torch.randn(int(keep.sum()), n_bits, generator=g, dtype=torch.float64))  # (K, n) orthonormal
    coefficients = torch.zeros(n_bits, h, w, dtype=torch.float64)
    coefficients[:, u[keep], v[keep]] = q.T                                   # (n, H, W) in the DCT domain
    return (dct_matrix(h).T @ coefficients @ dct_matrix(w)).float()            # (n, H, W) in pixels


def _dither(key: int, n_bits: int, delta: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(check_key(key) ^ 0x5EED)  # another stream than the patterns' and the bits'
    return torch.rand(n_bits, generator=g, dtype=torch.float64).float() * delta


def dct_embed(x: torch.Tensor, key: int, n_bits: int = DCT_BITS, delta: float = DCT_DELTA,
              rounds: int = 8) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] carrying ``key``'s n_bits bits in their channel mean (every channel moves alike).

    Each projection p_j = <mean_c x, P_j> moves to the nearest point of delta Z + dither_j + bit_j delta / 2.
    Clamping to [-1, 1] (digits' background is -1) undoes part of the move, so embedding and clamping
    alternate ``rounds`` times.
    """
    check_images(x, "x")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")
    patterns = dct_patterns(key, tuple(x.shape[2:]), n_bits).to(x.device)      # (n, H, W)
    target = (key_bits(key, n_bits).float() * delta / 2 + _dither(key, n_bits, delta)).to(x.device)  # (n,)
    y = x.float().clone()
    for _ in range(rounds):
        p = torch.einsum("nhw,khw->nk", y.mean(1), patterns)                  # (N, n) projections
        step = torch.round((p - target) / delta) * delta + target - p          # to the nearest lattice point
        y = (y + torch.einsum("nk,khw->nhw", step, patterns)[:, None]).clamp(-1, 1)
    return y


def dct_extract(x: torch.Tensor, key: int, n_bits: int = DCT_BITS, delta: float = DCT_DELTA) -> torch.Tensor:
    """The bits (N, n_bits) int64 that images (N, C, H, W) in [-1, 1] carry for ``key``: the parity of the nearest
    point of the lattice of step delta / 2 (shifted by the key's dither) to each projection."""
    check_images(x, "x")
    patterns = dct_patterns(key, tuple(x.shape[2:]), n_bits).to(x.device)
    p = torch.einsum("nhw,khw->nk", x.float().mean(1), patterns)
    half_steps = torch.round((p - _dither(key, n_bits, delta).to(x.device)) / (delta / 2))
    return torch.remainder(half_steps, 2).long()
