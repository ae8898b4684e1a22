"""course_lib.losses: analytic values, stability at extreme logits, gradients, penalties, input checks."""

import math

import pytest
import torch

from course_lib.losses import (
    d_loss_bce,
    d_loss_hinge,
    d_loss_wasserstein,
    g_loss_hinge,
    g_loss_nonsaturating,
    g_loss_saturating,
    g_loss_wasserstein,
    gradient_penalty,
    r1_penalty,
)

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


# ---- lesson 05: hinge and Wasserstein losses -------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (7, 1)])
def test_hinge_and_wasserstein_at_zero_scores(shape):
    zeros = torch.zeros(shape)
    assert d_loss_hinge(zeros, zeros).item() == pytest.approx(2.0)
    assert g_loss_hinge(zeros).item() == 0.0
    assert d_loss_wasserstein(zeros, zeros).item() == 0.0
    assert g_loss_wasserstein(zeros).item() == 0.0


def test_hinge_margins():
    # Beyond the margins (real >= 1, fake <= -1) the D loss and its gradient are zero.
    real = torch.tensor([1.0, 3.0], requires_grad=True)
    fake = torch.tensor([-1.0, -5.0], requires_grad=True)
    loss = d_loss_hinge(real, fake)
    assert loss.item() == 0.0
    assert all((g == 0).all() for g in torch.autograd.grad(loss, (real, fake)))
    # Inside: relu(1 - 0.5) + relu(1 + 0.5) = 2, and relu(1 + 2) + relu(1 - 0) averaged.
    assert d_loss_hinge(torch.tensor([0.5]), torch.tensor([0.5])).item() == pytest.approx(2.0)
    assert d_loss_hinge(torch.tensor([-2.0, 1.0]), torch.tensor([0.0, -3.0])).item() == pytest.approx(1.5 + 0.5)
    assert g_loss_hinge(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_wasserstein_signs():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([-1.0, 0.0, 1.0])
    assert d_loss_wasserstein(real, fake).item() == pytest.approx(0.0 - 3.0)  # critic ranks real higher: negative
    assert d_loss_wasserstein(fake, real).item() == pytest.approx(3.0)
    assert g_loss_wasserstein(fake).item() == pytest.approx(0.0)
    assert g_loss_wasserstein(real).item() == pytest.approx(-3.0)  # G's loss falls as the critic scores fakes higher
    with pytest.raises(ValueError, match=r"real_scores and fake_scores.*\(2,\).*\(2, 1\)"):
        d_loss_wasserstein(torch.zeros(2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="fake_scores"):
        d_loss_hinge(torch.zeros(2, 1), torch.zeros(2, 3))


# ---- lesson 05: gradient penalty and R1 ------------------------------------------------------

def _linear_critic(weight_norm: float, shape=(2, 3, 3), seed: int = 0):
    """critic(x) = <w, x> + 1 with ||w|| = weight_norm; its input gradient is w everywhere."""
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    w = weight_norm * w / w.norm()
    return w, lambda x: (x * w).flatten(1).sum(dim=1) + 1.0


def _images(seed: int, n: int = 6, shape=(2, 3, 3)) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("weight_norm, expected", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25), (3.0, 4.0)])
def test_gradient_penalty_of_a_linear_critic(weight_norm, expected):
    _, critic = _linear_critic(weight_norm)
    gp = gradient_penalty(critic, _images(1), _images(2))
    assert gp.shape == () and gp.dtype == torch.float32
    assert gp.item() == pytest.approx(expected, abs=1e-5)


def test_gradient_penalty_matches_an_independent_computation():
    """A non-linear critic: the same eps (same seed) and a per-sample norm computed by hand."""
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(18, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    x_real, x_fake = _images(3), _images(4)
    gp = gradient_penalty(critic, x_real, x_fake, generator=torch.Generator().manual_seed(5))
    eps = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(5))
    expected = 0.0
    for i in range(6):
        x_hat = (eps[i] * x_real[i] + (1 - eps[i]) * x_fake[i])[None].requires_grad_()
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
        expected += (torch.sqrt((grad ** 2).sum()) - 1) ** 2 / 6
    torch.testing.assert_close(gp, expected)
    # create_graph=True: the penalty backpropagates into the critic's weights.
    gp.backward()
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0


def test_gradient_penalty_gradient_and_detached_inputs():
    """d gp / d w = 2 (||w|| - 1) w / ||w||, which is w itself at ||w|| = 2; nothing reaches x_fake's producer."""
    w0, _ = _linear_critic(2.0)
    w = w0.clone().requires_grad_()
    x_fake = _images(6).requires_grad_()  # stands in for G's output
    gp = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), _images(7), x_fake)
    gp.backward()
    torch.testing.assert_close(w.grad, w0)
    assert x_fake.grad is None


def test_gradient_penalty_passes_labels_and_accepts_b1_scores():
    seen = {}

    def critic(x, labels):
        seen["labels"] = labels
        return x.flatten(1).sum(dim=1, keepdim=True) / math.sqrt(18)  # (B, 1), unit-norm gradient

    labels = torch.arange(6)
    assert gradient_penalty(critic, _images(8), _images(9), labels).item() == pytest.approx(0.0, abs=1e-6)
    assert seen["labels"] is labels


def test_penalties_run_in_float32_under_autocast():
    """On CPU, autocast would run the Linear in bf16; the penalties switch it off."""
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(18, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x_real, x_fake = _images(10), _images(11)
    gp = gradient_penalty(D, x_real, x_fake, generator=torch.Generator().manual_seed(0))
    r1 = r1_penalty(D, x_real)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert D(x_real).dtype == torch.bfloat16  # autocast is really on
        gp_amp = gradient_penalty(D, x_real.bfloat16(), x_fake.bfloat16(), generator=torch.Generator().manual_seed(0))
        r1_amp = r1_penalty(D, x_real)
    assert gp_amp.dtype == torch.float32 and r1_amp.dtype == torch.float32
    torch.testing.assert_close(r1_amp, r1)
    torch.testing.assert_close(gp_amp, gp, rtol=2e-2, atol=1e-4)  # inputs were rounded to bf16


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm():
    w0, D = _linear_critic(1.7)
    r1 = r1_penalty(D, _images(12))
    assert r1.item() == pytest.approx(1.7 ** 2, rel=1e-5)
    w = w0.clone().requires_grad_()
    r1_penalty(lambda x: (x * w).flatten(1).sum(1, keepdim=True), _images(13)).backward()
    torch.testing.assert_close(w.grad, 2 * w0)  # d ||w||^2 / dw


def test_r1_passes_labels_and_is_a_batch_mean():
    def D(x, labels):  # per-sample gradient norm^2 = (label + 1)^2 * 18
        return (x.flatten(1).sum(dim=1)) * (labels + 1).float()

    labels = torch.tensor([0, 1, 2])
    assert r1_penalty(D, _images(14, n=3), labels).item() == pytest.approx(18 * (1 + 4 + 9) / 3, rel=1e-6)


def test_penalty_input_checks():
    _, critic = _linear_critic(1.0)
    with pytest.raises(ValueError, match=r"x_real and x_fake must have the same shape.*\(6, 2, 3, 3\).*\(5, 2, 3, 3\)"):
        gradient_penalty(critic, _images(0), _images(1, n=5))
    with pytest.raises(ValueError, match=r"x_real must be a tensor of shape \(B, \.\.\.\)"):
        r1_penalty(critic, torch.zeros(5))
    with pytest.raises(ValueError, match=r"critic\(x_hat\) must have shape"):
        gradient_penalty(lambda x: x, _images(0), _images(1))
