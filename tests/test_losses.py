"""course_lib.losses: analytic values, stability at extreme logits, gradients, input checks."""

import math

import pytest
import torch

from course_lib.losses import d_loss_bce, g_loss_nonsaturating, g_loss_saturating

LOG2 = math.log(2.0)


def _logits(seed: int, n: int = 32) -> torch.Tensor:
    return 3.0 * torch.randn(n, generator=torch.Generator().manual_seed(seed))


# ---- analytic values -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (7, 1)])
def test_values_at_zero_logits(shape):
    zeros = torch.zeros(shape)
    assert d_loss_bce(zeros, zeros).item() == pytest.approx(2 * LOG2, abs=1e-6)
    assert g_loss_nonsaturating(zeros).item() == pytest.approx(LOG2, abs=1e-6)
    assert g_loss_saturating(zeros).item() == pytest.approx(-LOG2, abs=1e-6)


def test_losses_are_scalars():
    real, fake = _logits(0), _logits(1, 20)
    for loss in (d_loss_bce(real, fake), g_loss_nonsaturating(fake), g_loss_saturating(fake)):
        assert loss.shape == ()


def test_match_naive_formulas_on_moderate_logits():
    """Independent computation with probabilities, fine where sigmoid does not round to 0 or 1."""
    real = _logits(2).double()
    fake = _logits(3, 24).double()
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    torch.testing.assert_close(d_loss_bce(real, fake), expected_d)
    torch.testing.assert_close(g_loss_nonsaturating(fake), -torch.log(d_fake).mean())
    torch.testing.assert_close(g_loss_saturating(fake), torch.log(1 - d_fake).mean())


def test_d_loss_is_minus_value_function_with_sum_of_means():
    real, fake = _logits(4, 10), _logits(5, 30)  # different batch sizes
    expected = torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean()
    torch.testing.assert_close(d_loss_bce(real, fake), expected)


def test_signs_and_ranges():
    fake = _logits(6)
    assert d_loss_bce(_logits(7), fake).item() >= 0
    assert g_loss_nonsaturating(fake).item() >= 0
    assert g_loss_saturating(fake).item() <= 0


# ---- numerical stability ---------------------------------------------------------------------

def test_stable_at_extreme_logits():
    big = torch.tensor([100.0, -100.0, 1e4, -1e4], requires_grad=True)
    for loss in (d_loss_bce(big, big), g_loss_nonsaturating(big), g_loss_saturating(big)):
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, big)
        assert torch.isfinite(grad).all()
    # Perfect discriminator: loss ~ 0; totally fooled: loss ~ 100 per term.
    assert d_loss_bce(torch.tensor([100.0]), torch.tensor([-100.0])).item() == pytest.approx(0.0, abs=1e-30)
    assert d_loss_bce(torch.tensor([-100.0]), torch.tensor([100.0])).item() == pytest.approx(200.0, rel=1e-6)
    assert g_loss_nonsaturating(torch.tensor([-100.0])).item() == pytest.approx(100.0, rel=1e-6)
    assert g_loss_saturating(torch.tensor([100.0])).item() == pytest.approx(-100.0, rel=1e-6)


# ---- gradients -------------------------------------------------------------------------------

def test_gradients_with_respect_to_logits():
    fake = _logits(8).requires_grad_()
    n = fake.shape[0]
    (grad_ns,) = torch.autograd.grad(g_loss_nonsaturating(fake), fake)
    (grad_sat,) = torch.autograd.grad(g_loss_saturating(fake), fake)
    torch.testing.assert_close(grad_ns, (torch.sigmoid(fake.detach()) - 1) / n)
    torch.testing.assert_close(grad_sat, -torch.sigmoid(fake.detach()) / n)


def test_d_loss_gradients():
    real, fake = _logits(9, 8).requires_grad_(), _logits(10, 4).requires_grad_()
    grad_real, grad_fake = torch.autograd.grad(d_loss_bce(real, fake), (real, fake))
    torch.testing.assert_close(grad_real, (torch.sigmoid(real.detach()) - 1) / 8)
    torch.testing.assert_close(grad_fake, torch.sigmoid(fake.detach()) / 4)


# ---- input checks ----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [torch.zeros(4, 2), torch.zeros(2, 3, 1), torch.zeros(()), torch.zeros(0)])
def test_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, 1\)"):
        g_loss_nonsaturating(bad)
    with pytest.raises(ValueError, match="shape"):
        g_loss_saturating(bad)


def test_rejects_integer_and_non_tensor_inputs():
    with pytest.raises(ValueError, match="floating-point"):
        g_loss_nonsaturating(torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        g_loss_saturating([0.0, 1.0])


def test_d_loss_rejects_mixed_layouts():
    with pytest.raises(ValueError, match=r"real_logits and fake_logits.*\(4,\).*\(4, 1\)"):
        d_loss_bce(torch.zeros(4), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="fake_logits"):
        d_loss_bce(torch.zeros(4, 1), torch.zeros(4, 3))
