"""course_lib.image_quality: PSNR and SSIM pinned against scikit-image, identical images,
an analytic PSNR, the [-1, 1] -> [0, 1] convention and the input checks."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from course_lib.image_quality import MAX_PSNR, gaussian_window, psnr, ssim


def skimage_psnr(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """scikit-image's PSNR of each image pair, a and b (B, C, H, W) in [-1, 1], measured on [0, 1]."""
    a01, b01 = ((a.double().numpy() + 1) / 2), ((b.double().numpy() + 1) / 2)
    return np.array([peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(a01, b01)])


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """scikit-image's SSIM with the settings of Wang et al. 2004, channels first."""
    a01, b01 = ((a.double().numpy() + 1) / 2), ((b.double().numpy() + 1) / 2)
    return np.array([structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=1.0, channel_axis=0) for x, y in zip(a01, b01)])


def random_pairs(seed: int, shape=(4, 3, 32, 32), noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random images and a noisy copy, both in [-1, 1] (the copy clamped)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    b = (a + noise * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    return a, b


def structured_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Images with structure: a ramp, a checkerboard, a disc, a blurred copy, a shifted copy, a contrast change."""
    s = 32
    r = torch.arange(s, dtype=torch.float64)
    ramp = (r[None, :] / (s - 1) * 2 - 1).expand(s, s)
    checker = ((r[:, None] // 4 + r[None, :] // 4) % 2) * 2 - 1
    disc = torch.where((r[:, None] - 15.5) ** 2 + (r[None, :] - 12) ** 2 < 81, 0.8, -0.6)
    a = torch.stack([ramp, checker, disc, checker]).unsqueeze(1)  # (4, 1, 32, 32)
    blur = torch.nn.functional.avg_pool2d(a, 3, 1, 1, count_include_pad=False)
    shifted = torch.roll(a, shifts=2, dims=-1)
    contrast = a * 0.5 + 0.2
    b = torch.cat([blur[:2], shifted[2:3], contrast[3:]])
    return a, b


# ---- against scikit-image --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (3, 1, 32, 32), (2, 3, 24, 40)])
@pytest.mark.parametrize("noise", [0.05, 0.5])
def test_psnr_and_ssim_match_scikit_image_on_random_images(shape, noise):
    a, b = random_pairs(0, shape, noise)
    np.testing.assert_allclose(psnr(a, b).numpy(), skimage_psnr(a, b), rtol=0, atol=1e-6)
    np.testing.assert_allclose(ssim(a, b).numpy(), skimage_ssim(a, b), rtol=0, atol=1e-6)


def test_psnr_and_ssim_match_scikit_image_on_structured_images():
    a, b = structured_pairs()
    np.testing.assert_allclose(psnr(a, b).numpy(), skimage_psnr(a, b), rtol=0, atol=1e-6)
    np.testing.assert_allclose(ssim(a, b).numpy(), skimage_ssim(a, b), rtol=0, atol=1e-6)
    # the same with colour images made of three different structured channels
    colour_a, colour_b = a.view(1, 4, 32, 32)[:, :3], b.view(1, 4, 32, 32)[:, :3]
    np.testing.assert_allclose(ssim(colour_a, colour_b).numpy(), skimage_ssim(colour_a, colour_b), atol=1e-6)


def test_float32_inputs_give_the_float64_answer():
    a, b = random_pairs(1, (2, 3, 32, 32), 0.2)
    assert psnr(a.float(), b.float()).dtype == torch.float64
    np.testing.assert_allclose(psnr(a.float(), b.float()).numpy(), skimage_psnr(a, b), atol=1e-4)
    np.testing.assert_allclose(ssim(a.float(), b.float()).numpy(), skimage_ssim(a, b), atol=1e-5)


# ---- analytic values -------------------------------------------------------------------------

def test_identical_images_give_the_psnr_cap_and_ssim_one():
    a, _ = random_pairs(2, (3, 3, 32, 32))
    assert torch.equal(psnr(a, a.clone()), torch.full((3,), MAX_PSNR, dtype=torch.float64))
    torch.testing.assert_close(ssim(a, a.clone()), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    flat = torch.full((2, 1, 16, 16), 0.3)  # constant images: SSIM's constants keep it finite
    torch.testing.assert_close(ssim(flat, flat), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [0.5, 0.1, 0.01, 1e-4])
def test_constant_offset_gives_minus_20_log10_d(d):
    """On [0, 1], b = a + d everywhere: MSE = d^2, PSNR = 10 log10(1 / d^2) = -20 log10 d."""
    a01 = torch.full((2, 3, 16, 16), 0.25, dtype=torch.float64)
    a01[1] = torch.linspace(0, 0.45, 16 * 16, dtype=torch.float64).view(16, 16)  # any image that stays in [0, 1]
    a, b = a01 * 2 - 1, (a01 + d) * 2 - 1  # the course's [-1, 1] convention: an offset of 2d
    expected = -20 * math.log10(d)
    torch.testing.assert_close(psnr(a, b), torch.full((2,), expected, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(psnr(b, a), psnr(a, b), rtol=0, atol=0)  # symmetric


def test_halving_the_error_adds_6_db_and_values_are_clamped_to_the_range():
    a = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    gain = psnr(a, a + 0.1) - psnr(a, a + 0.2)
    assert gain.item() == pytest.approx(20 * math.log10(2), abs=1e-9)  # 6.02 dB
    ones = torch.ones(1, 1, 16, 16, dtype=torch.float64)
    assert torch.equal(psnr(3 * ones, ones), torch.tensor([MAX_PSNR], dtype=torch.float64))  # 3 clamps to 1
    assert psnr(-ones, ones).item() == pytest.approx(0.0, abs=1e-12)  # black vs white: MSE 1 on [0, 1]


def test_ssim_is_symmetric_bounded_and_ranks_degradations():
    a, _ = random_pairs(3, (1, 3, 32, 32))
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(a.shape, generator=g, dtype=torch.float64)
    values = [ssim(a, (a + s * noise).clamp(-1, 1)).item() for s in (0.05, 0.2, 0.8)]
    assert values[0] > values[1] > values[2]
    b = (a + 0.3 * noise).clamp(-1, 1)
    torch.testing.assert_close(ssim(a, b), ssim(b, a), rtol=0, atol=1e-12)
    assert ssim(a, -a).item() < 0  # anti-correlated structure gives a negative SSIM


def test_gaussian_window_sums_to_one_and_matches_the_1d_gaussian():
    w = gaussian_window(11, 1.5)
    assert w.shape == (11, 11) and w.dtype == torch.float64
    assert w.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.equal(w, w.T) and w.argmax().item() == 5 * 11 + 5
    g = np.exp(-(np.arange(11) - 5) ** 2 / (2 * 1.5 ** 2))
    np.testing.assert_allclose(w.numpy(), np.outer(g, g) / g.sum() ** 2, atol=1e-15)


# ---- input checks ----------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [psnr, ssim])
def test_shape_errors_name_the_argument(fn):
    good = torch.zeros(2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"^a must .*\(B, C, H, W\).*\(1, 16, 16\)"):
        fn(good[0], good)
    with pytest.raises(ValueError, match=r"^b must .*\(B, C, H, W\).*\(16, 16\)"):
        fn(good, good[0, 0])
    with pytest.raises(ValueError, match=r"^a must"):
        fn(good[:0], good[:0])  # an empty batch
    with pytest.raises(ValueError, match=r"^b must"):
        fn(good, good.numpy())
    with pytest.raises(ValueError, match=r"a and b must have the same shape.*\(2, 1, 16, 16\).*\(2, 3, 16, 16\)"):
        fn(good, torch.zeros(2, 3, 16, 16))


def test_ssim_refuses_images_smaller_than_the_window():
    small = torch.zeros(1, 1, 10, 32)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(small, small)
    assert ssim(small, small, window_size=7).item() == pytest.approx(1.0)
