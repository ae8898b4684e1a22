"""course_lib.gan_math: the identities of Goodfellow et al. 2014, checked on 1-D grids."""

import math

import pytest
import torch

from course_lib.gan_math import (
    gaussian_pdf,
    generator_loss_gradients,
    js_divergence,
    kl_divergence,
    optimal_discriminator,
    value_function,
)
from course_lib.losses import g_loss_nonsaturating, g_loss_saturating

LOG2, LOG4 = math.log(2.0), math.log(4.0)

X = torch.linspace(-12.0, 12.0, 24001, dtype=torch.float64)
DX = (X[1] - X[0]).item()


def _pairs():
    """(name, p_data, p_g): two Gaussians, and a Gaussian against a mixture of two."""
    two_gaussians = (gaussian_pdf(X, 0.0, 1.0), gaussian_pdf(X, 1.5, 0.7))
    mixture = (
        gaussian_pdf(X, -1.0, 0.7),
        0.6 * gaussian_pdf(X, 1.5, 0.5) + 0.4 * gaussian_pdf(X, -2.0, 1.0),
    )
    return [("two gaussians", *two_gaussians), ("mixture", *mixture)]


def test_gaussian_pdf_is_a_density():
    p = gaussian_pdf(X, 0.3, 0.8)
    assert p.dtype == torch.float64
    assert (p.sum() * DX).item() == pytest.approx(1.0, abs=1e-10)
    assert p.max().item() == pytest.approx(1 / (0.8 * math.sqrt(2 * math.pi)), rel=1e-6)
    with pytest.raises(ValueError, match="std"):
        gaussian_pdf(X, 0.0, 0.0)


# ---- the optimal discriminator ---------------------------------------------------------------

def test_optimal_discriminator_values():
    p = gaussian_pdf(X, 0.0, 1.0)
    torch.testing.assert_close(optimal_discriminator(p, p), torch.full_like(p, 0.5))
    data = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    fake = torch.tensor([0.0, 0.3, 0.5, 0.0], dtype=torch.float64)
    expected = torch.tensor([1.0, 0.5 / 0.8, 0.0, 0.5], dtype=torch.float64)  # 1/2 where both are 0
    torch.testing.assert_close(optimal_discriminator(data, fake), expected)


@pytest.mark.parametrize("name,p_data,p_g", _pairs())
def test_value_at_optimum_is_minus_log4_plus_2js(name, p_data, p_g):
    d_star = optimal_discriminator(p_data, p_g)
    value = value_function(d_star, p_data, p_g, DX)
    js = js_divergence(p_data, p_g, DX)
    assert 0.0 < js.item() < LOG2, name
    assert value.item() == pytest.approx(-LOG4 + 2 * js.item(), abs=1e-9), name


@pytest.mark.parametrize("name,p_data,p_g", _pairs())
def test_optimal_discriminator_maximises_value(name, p_data, p_g):
    d_star = optimal_discriminator(p_data, p_g)
    best = value_function(d_star, p_data, p_g, DX).item()
    generator = torch.Generator().manual_seed(0)
    interior = (d_star > 1e-9) & (d_star < 1 - 1e-9)  # where a logit perturbation is representable
    logit_star = torch.logit(d_star.clamp(1e-9, 1 - 1e-9))
    for scale in (1e-3, 0.1, 1.0):
        noise = scale * torch.randn(X.shape, generator=generator, dtype=torch.float64)
        perturbed = torch.where(interior, torch.sigmoid(logit_star + noise), d_star)
        assert value_function(perturbed, p_data, p_g, DX).item() < best, (name, scale)
    # The constant "can't tell" discriminator gives exactly -log 4 <= V(D*, G).
    half = torch.full_like(d_star, 0.5)
    assert value_function(half, p_data, p_g, DX).item() == pytest.approx(-LOG4, abs=1e-9)
    assert best > -LOG4


def test_value_at_optimum_is_finite_in_light_tails():
    """Far in the tails D* rounds to exactly 1 in float64; V(D*, G) must stay finite and correct."""
    p_data, p_g = gaussian_pdf(X, 0.0, 1.5), gaussian_pdf(X, 0.5, 0.5)  # both ~all mass on the grid
    d_star = optimal_discriminator(p_data, p_g)
    assert ((d_star == 1.0) & (p_g > 0)).any()  # the situation this test is about
    value = value_function(d_star, p_data, p_g, DX)
    assert value.item() == pytest.approx(-LOG4 + 2 * js_divergence(p_data, p_g, DX).item(), abs=1e-9)


def test_perfect_discriminator():
    data = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    fake = torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=torch.float64)
    d = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert value_function(d, data, fake, 1.0).item() == 0.0           # disjoint supports: V = 0
    assert value_function(1 - d, data, fake, 1.0).item() < -700        # totally wrong D: huge penalty


def test_optimal_discriminator_maximises_pointwise():
    """At each x, a -> p log a + q log(1 - a) peaks at a = p / (p + q)."""
    p, q = torch.tensor([0.3], dtype=torch.float64), torch.tensor([0.9], dtype=torch.float64)
    d_star = optimal_discriminator(p, q)
    for delta in (-0.1, -1e-3, 1e-3, 0.1):
        assert value_function(d_star + delta, p, q, 1.0) < value_function(d_star, p, q, 1.0)


# ---- divergences -----------------------------------------------------------------------------

def test_js_zero_for_equal_densities():
    for _, p_data, _ in _pairs():
        assert js_divergence(p_data, p_data, DX).item() == pytest.approx(0.0, abs=1e-12)


def test_js_is_log2_on_disjoint_supports():
    left = ((X > -3) & (X <= -1)).double() / 2.0   # uniform on (-3, -1]
    right = ((X > 1) & (X <= 3)).double() / 2.0    # uniform on (1, 3]
    assert js_divergence(left, right, DX).item() == pytest.approx(LOG2, abs=1e-3)
    # on the grid, with densities that sum exactly to 1, it is exact
    a = torch.tensor([1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert js_divergence(a, b, 1.0).item() == pytest.approx(LOG2, abs=1e-15)


def test_js_bounded_and_symmetric():
    for mean in (0.5, 2.0, 5.0, 15.0):
        p, q = gaussian_pdf(X, 0.0, 1.0), gaussian_pdf(X, mean, 1.0)
        js = js_divergence(p, q, DX).item()
        assert 0.0 <= js <= LOG2 + 1e-12
        assert js == pytest.approx(js_divergence(q, p, DX).item(), abs=1e-12)


def test_kl_of_gaussians_matches_closed_form():
    m1, s1, m2, s2 = 0.0, 1.0, 1.0, 2.0
    expected = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    kl = kl_divergence(gaussian_pdf(X, m1, s1), gaussian_pdf(X, m2, s2), DX)
    assert kl.item() == pytest.approx(expected, abs=1e-8)
    p = gaussian_pdf(X, 0.0, 1.0)
    assert kl_divergence(p, p, DX).item() == pytest.approx(0.0, abs=1e-12)


def test_kl_is_infinite_where_q_vanishes():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    q = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert math.isinf(kl_divergence(p, q, 1.0).item())
    assert kl_divergence(q, p, 1.0).item() == pytest.approx(LOG2)  # 0 log 0 = 0


# ---- saturating vs non-saturating gradients --------------------------------------------------

def test_generator_loss_gradients_match_autograd():
    logits = torch.linspace(-30.0, 30.0, 121, dtype=torch.float64, requires_grad=True)
    n = logits.shape[0]
    (auto_sat,) = torch.autograd.grad(g_loss_saturating(logits) * n, logits)
    (auto_ns,) = torch.autograd.grad(g_loss_nonsaturating(logits) * n, logits)
    grads = generator_loss_gradients(logits.detach())
    torch.testing.assert_close(grads["saturating"], auto_sat)
    torch.testing.assert_close(grads["nonsaturating"], auto_ns)
    torch.testing.assert_close(grads["d_fake"], torch.sigmoid(logits.detach()))


def test_saturating_gradient_vanishes_when_d_rejects_fakes():
    """As D(G(z)) -> 0 (logit -> -inf): d/dlogit log(1 - D) -> 0 but d/dlogit -log D -> -1."""
    for logit in (-5.0, -10.0, -20.0, -40.0):
        x = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
        (g_sat,) = torch.autograd.grad(g_loss_saturating(x), x)
        (g_ns,) = torch.autograd.grad(g_loss_nonsaturating(x), x)
        assert abs(g_sat.item()) <= math.exp(logit) * 1.0001
        assert g_ns.item() == pytest.approx(-1.0, abs=1e-2)
    grads = generator_loss_gradients(torch.tensor([-40.0, 0.0, 40.0], dtype=torch.float64))
    assert grads["saturating"][0].abs().item() < 1e-17
    assert grads["nonsaturating"][0].item() == pytest.approx(-1.0)
    assert grads["saturating"][1].item() == pytest.approx(-0.5)
    assert grads["nonsaturating"][1].item() == pytest.approx(-0.5)
    assert grads["saturating"][2].item() == pytest.approx(-1.0)  # roles swap once D is fooled
    assert grads["nonsaturating"][2].abs().item() < 1e-17


# ---- input checks ----------------------------------------------------------------------------

def test_input_checks():
    p = gaussian_pdf(X, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"same grid.*\(24001,\).*\(10,\)"):
        optimal_discriminator(p, p[:10])
    with pytest.raises(ValueError, match="non-negative"):
        js_divergence(p, -p, DX)
    with pytest.raises(ValueError, match="dx"):
        kl_divergence(p, p, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        value_function(p * 10, p, p, DX)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        value_function(p[None], p, p, DX)
    with pytest.raises(ValueError, match="floating-point"):
        generator_loss_gradients(torch.zeros(3, dtype=torch.long))
