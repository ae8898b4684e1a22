"""The graded checks: references pass, unattempted stubs say so, and a bank of classic mistakes is
caught, each with its own message."""

import math

import pytest
import torch
import torch.nn.functional as F

import numpy as np
import scipy.linalg

from course_lib import gan_math, losses, metrics
from course_lib.checks import CheckResult, MIME, lesson00, lesson01, lesson03
from course_lib.toy_gan import toy_gan_step


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


def learner_toy_step(G, D, opt_G, opt_D, x_real, z):
    """A correct step written as a learner would: the fakes made once, scored detached by D, then through D again."""
    return _toy_step_forgetting(G, D, opt_G, opt_D, x_real, z, None)


def zero_grad_last_step(model, optimizer, x, y):
    """A correct step that clears the gradients after the update instead of before the backward."""
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


# ----- references pass, stubs are "not attempted", every check has a result with a MIME bundle -----

REFERENCES = [
    (lesson00.check_to_model_range, lesson00.reference_to_model_range),
    (lesson00.check_to_pixels, lesson00.reference_to_pixels),
    (lesson00.check_training_step, lesson00.reference_training_step),
    (lesson00.check_training_step, zero_grad_last_step),
    (lesson01.check_d_loss, losses.d_loss_bce),
    (lesson01.check_g_loss, losses.g_loss_nonsaturating),
    (lesson01.check_optimal_discriminator, gan_math.optimal_discriminator),
    (lesson01.check_value_function, gan_math.value_function),
    (lesson01.check_js_divergence, gan_math.js_divergence),
    (lesson01.check_toy_step, toy_gan_step),
    (lesson01.check_toy_step, learner_toy_step),
    (lesson03.check_feature_stats, lambda x: tuple(torch.from_numpy(v) for v in (metrics.gaussian_stats(x).mu, metrics.gaussian_stats(x).sigma))),
    (lesson03.check_frechet_distance, metrics.frechet_distance),
    (lesson03.check_kth_neighbour_radii, metrics.kth_neighbour_radii),
    (lesson03.check_precision_recall, metrics.precision_recall),
    (lesson03.check_mmd2_unbiased, metrics.mmd2_unbiased),
    (lesson03.check_inception_score, lambda p: metrics.inception_score(p, splits=1)[0]),
]


@pytest.mark.parametrize("check, reference", REFERENCES, ids=[c.__name__ for c, _ in REFERENCES])
def test_reference_passes_and_stub_is_not_attempted(check, reference):
    result = check(reference)
    assert result.status == "passed", result.message
    assert check(stub).status == "not_attempted"
    bundle = result._repr_mimebundle_()
    assert bundle[MIME]["status"] == "passed" and "PASSED" in bundle["text/plain"]


def test_every_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson00.EXERCISES] == ["00.1", "00.2", "00.3"]
    assert [c.exercise_id for c in lesson01.EXERCISES] == [f"01.{i}" for i in range(1, 7)]
    assert [c.exercise_id for c in lesson03.EXERCISES] == [f"03.{i}" for i in range(1, 7)]


def test_a_crash_in_learner_code_is_a_failure_that_names_the_error():
    def crashes(real, fake):
        return real.foo()

    result = lesson01.check_d_loss(crashes)
    assert result.status == "failed" and "AttributeError" in result.message


def test_non_callable_is_explained():
    assert "expected a function" in lesson01.check_g_loss(3.0).message


# ----- the bank of classic mistakes -----


def saturating_g_loss(fake):
    return torch.log(1 - torch.sigmoid(fake)).mean()


def wrong_sign_g_loss(fake):
    return F.logsigmoid(fake).mean()


def unstable_d_loss(real, fake):
    return -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())


def summed_d_loss(real, fake):
    return F.softplus(-real).sum() + F.softplus(fake).sum()


def per_sample_g_loss(fake):
    return -F.logsigmoid(fake)  # shape (B,): no reduction


def swapped_d_loss(real, fake):
    return losses.d_loss_bce(fake, real)


def detached_d_loss(real, fake):
    return torch.tensor(losses.d_loss_bce(real, fake).item())


def missing_detach_step(G, D, opt_G, opt_D, x_real, z):
    x_fake = G(z)
    loss_D = losses.d_loss_bce(D(x_real), D(x_fake))  # no .detach(): gradients flow into G
    opt_D.zero_grad()
    loss_D.backward()
    opt_D.step()
    loss_G = losses.g_loss_nonsaturating(D(G(z)))
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    return {"d_loss": loss_D.item(), "g_loss": loss_G.item()}


def saturating_step(G, D, opt_G, opt_D, x_real, z):
    return toy_gan_step(G, D, opt_G, opt_D, x_real, z, g_loss="saturating")


def g_first_step(G, D, opt_G, opt_D, x_real, z):
    logs = {"d_loss": losses.d_loss_bce(D(x_real), D(G(z))).item()}
    lesson01._g_step_first(G, D, opt_G, opt_D, x_real, z)
    logs["g_loss"] = 0.0
    return logs


def sigmoid_bce_d_loss(real, fake):
    p_real, p_fake = torch.sigmoid(real), torch.sigmoid(fake)
    return F.binary_cross_entropy(p_real, torch.ones_like(p_real)) + F.binary_cross_entropy(p_fake, torch.zeros_like(p_fake))


def sigmoid_bce_g_loss(fake):
    p = torch.sigmoid(fake)
    return F.binary_cross_entropy(p, torch.ones_like(p))


def fake_label_one_d_loss(real, fake):
    return F.softplus(-real).mean() + F.softplus(-fake).mean()


def _toy_step_forgetting(G, D, opt_G, opt_D, x_real, z, forget):
    x_fake = G(z)
    loss_D = losses.d_loss_bce(D(x_real), D(x_fake.detach()))
    if forget != "D":
        opt_D.zero_grad()
    loss_D.backward()
    opt_D.step()
    loss_G = losses.g_loss_nonsaturating(D(x_fake))
    if forget != "G":
        opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    return {"d_loss": loss_D.item(), "g_loss": loss_G.item()}


def no_zero_grad_D_toy_step(G, D, opt_G, opt_D, x_real, z):
    return _toy_step_forgetting(G, D, opt_G, opt_D, x_real, z, "D")


def no_zero_grad_G_toy_step(G, D, opt_G, opt_D, x_real, z):
    return _toy_step_forgetting(G, D, opt_G, opt_D, x_real, z, "G")


def swapped_optimal_d(p_data, p_g):
    return p_g / (p_data + p_g)


def nan_optimal_d(p_data, p_g):
    return p_data / (p_data + p_g)


def bits_js(p, q, dx):
    return gan_math.js_divergence(p, q, dx) / math.log(2)


def kl_instead_of_js(p, q, dx):
    return gan_math.kl_divergence(p, q, dx)


def no_half_js(p, q, dx):
    return 2 * gan_math.js_divergence(p, q, dx)


def naive_log_value(d, p_data, p_g, dx):
    return (p_data * torch.log(d) + p_g * torch.log(1 - d)).sum() * dx


def no_dx_value(d, p_data, p_g, dx):
    return gan_math.value_function(d, p_data, p_g, dx) / dx


def integer_pixels(pixels):
    x = pixels.long() * 2 // 255 - 1  # integer arithmetic: only -1, 0 and 1 survive
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x[:, None]


def unit_range_pixels(pixels):
    return lesson00.reference_to_model_range(pixels) * 0.5 + 0.5


def channels_last(pixels):
    x = pixels.float() / 127.5 - 1
    return x[:, None] if x.dim() == 3 else x


def view_pixels(pixels):
    x = pixels.float() / 127.5 - 1
    return x[:, None] if x.dim() == 3 else x.view(x.shape[0], x.shape[3], x.shape[1], x.shape[2])


def swapped_hw_to_pixels(images):
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 3, 2, 1)


def reshaped_to_pixels(images):
    n, c, h, w = images.shape
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).reshape(n, h, w, c)


def truncating_to_pixels(images):
    return ((images.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1)


def unclamped_to_pixels(images):
    return ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def no_zero_grad_step(model, optimizer, x, y):
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    return loss.item()


def tensor_loss_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    return loss


# lesson 03: metrics


def _stats(x, ddof=1):
    centred = x - x.mean(0)
    return x.mean(0), centred.T @ centred / (len(x) - ddof)


def biased_cov_stats(x):
    return _stats(x, ddof=0)


def overall_mean_stats(x):
    centred = x - x.mean()
    return x.mean(0), centred.T @ centred / (len(x) - 1)


def summed_loss_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = ((model(x) - y) ** 2).sum()
    loss.backward()
    optimizer.step()
    return loss.item()


def uncentred_stats(x):
    return x.mean(0), x.T @ x / (len(x) - 1)


def nn_cov_stats(x):
    centred = x - x.mean(0)
    return x.mean(0), centred @ centred.T / (len(x) - 1)


def _fd(a, b, root=lambda m: scipy.linalg.sqrtm(m).real, ddof=1, mean_term=True):
    (mu_a, s_a), (mu_b, s_b) = _stats(a, ddof), _stats(b, ddof)
    cross = np.trace(root(s_a.numpy() @ s_b.numpy()))
    m = float(((mu_a - mu_b) ** 2).sum()) if mean_term else 0.0
    return m + float(torch.trace(s_a) + torch.trace(s_b)) - 2 * float(cross)


def biased_cov_fd(a, b):
    return _fd(a, b, ddof=0)


def no_sqrt_fd(a, b):
    return _fd(a, b, root=lambda m: m)


def elementwise_sqrt_fd(a, b):
    with np.errstate(invalid="ignore"):
        return _fd(a, b, root=np.sqrt)


def no_mean_fd(a, b):
    return _fd(a, b, mean_term=False)


def complex_fd(a, b):
    return complex(_fd(a, b), 1e-9)


def sqrt_of_fd(a, b):
    return math.sqrt(_fd(a, b))


def self_inclusive_radii(x, k):
    return torch.cdist(x, x).kthvalue(k, dim=1).values


def squared_radii(x, k):
    return metrics.kth_neighbour_radii(x, k) ** 2


def swapped_pr(real, fake, k=3):
    p, r = metrics.precision_recall(real, fake, k)
    return r, p


def self_inclusive_pr(real, fake, k=3):
    r_real, r_fake = self_inclusive_radii(real, k), self_inclusive_radii(fake, k)
    d = torch.cdist(fake, real)
    return float((d <= r_real).any(1).double().mean()), float((d.T <= r_fake).any(1).double().mean())


def fake_balls_pr(real, fake, k=3):
    r_fake = metrics.kth_neighbour_radii(fake, k)
    d = torch.cdist(fake, real)
    return float((d <= r_fake[:, None]).any(1).double().mean()), metrics.precision_recall(real, fake, k)[1]


def strict_ball_pr(real, fake, k=3):
    r_real, r_fake = metrics.kth_neighbour_radii(real, k), metrics.kth_neighbour_radii(fake, k)
    d = torch.cdist(fake, real)
    return float((d < r_real).any(1).double().mean()), float((d.T < r_fake).any(1).double().mean())


def _kernel(a, b, scale=True, degree=3):
    return (a @ b.T / (a.shape[1] if scale else 1) + 1) ** degree


def biased_mmd(x, y):
    return float(_kernel(x, x).mean() + _kernel(y, y).mean() - 2 * _kernel(x, y).mean())


def unscaled_kernel_mmd(x, y):
    off = lambda k: (k.sum() - k.diagonal().sum()) / (len(k) * (len(k) - 1))  # noqa: E731
    return float(off(_kernel(x, x, False)) + off(_kernel(y, y, False)) - 2 * _kernel(x, y, False).mean())


def m_squared_mmd(x, y):
    off = lambda k: (k.sum() - k.diagonal().sum()) / len(k) ** 2  # noqa: E731
    return float(off(_kernel(x, x)) + off(_kernel(y, y)) - 2 * _kernel(x, y).mean())


def no_exp_is(probs):
    marginal = probs.mean(0, keepdim=True)
    return float((torch.xlogy(probs, probs) - torch.xlogy(probs, marginal)).sum(1).mean())


def reversed_kl_is(probs):
    marginal = probs.mean(0, keepdim=True)
    return math.exp(float((marginal * (marginal.log() - probs.log())).sum(1).mean()))


def naive_log_is(probs):
    marginal = probs.mean(0, keepdim=True)
    return math.exp(float((probs * (probs.log() - marginal.log())).sum(1).mean()))


MISTAKES = [
    ("biased covariance", lesson03.check_feature_stats, biased_cov_stats, "divided by N"),
    ("uncentred covariance", lesson03.check_feature_stats, uncentred_stats, "CENTRED"),
    ("one overall mean", lesson03.check_feature_stats, overall_mean_stats, "x.mean(0)"),
    ("(N, N) covariance", lesson03.check_feature_stats, nn_cov_stats, "(N, N)"),
    ("FD biased covariance", lesson03.check_frechet_distance, biased_cov_fd, "normalisation"),
    ("FD without sqrtm", lesson03.check_frechet_distance, no_sqrt_fd, "missing matrix square root"),
    ("FD element-wise sqrt", lesson03.check_frechet_distance, elementwise_sqrt_fd, "MATRIX square root"),
    ("FD without mean term", lesson03.check_frechet_distance, no_mean_fd, "mean term is missing"),
    ("FD complex", lesson03.check_frechet_distance, complex_fd, "real part"),
    ("sqrt of FD", lesson03.check_frechet_distance, sqrt_of_fd, "SQUARED"),
    ("radius includes itself", lesson03.check_kth_neighbour_radii, self_inclusive_radii, "includes the point itself"),
    ("squared radii", lesson03.check_kth_neighbour_radii, squared_radii, "squared distances"),
    ("P/R swapped", lesson03.check_precision_recall, swapped_pr, "swapped"),
    ("P/R self-inclusive radii", lesson03.check_precision_recall, self_inclusive_pr, "include the point itself"),
    ("P/R wrong balls", lesson03.check_precision_recall, fake_balls_pr, "wrong balls"),
    ("P/R open balls", lesson03.check_precision_recall, strict_ball_pr, "d <= radius"),
    ("H and W swapped in 00.1", lesson00.check_to_model_range, lambda p: channels_last(p).permute(0, 3, 2, 1) if p.dim() == 4 else channels_last(p), "height and width are swapped"),
    ("epsilon in D*", lesson01.check_optimal_discriminator, lambda a, b: a / (a + b + 1e-12), "epsilon in the denominator"),
    ("biased MMD", lesson03.check_mmd2_unbiased, biased_mmd, "biased MMD"),
    ("kernel without /F", lesson03.check_mmd2_unbiased, unscaled_kernel_mmd, "divide the dot product"),
    ("MMD over m²", lesson03.check_mmd2_unbiased, m_squared_mmd, "m (m - 1)"),
    ("IS without exp", lesson03.check_inception_score, no_exp_is, "missing exp"),
    ("IS reversed KL", lesson03.check_inception_score, reversed_kl_is, "reversed KL"),
    ("IS 0 log 0", lesson03.check_inception_score, naive_log_is, "zero probabilities"),
    ("saturating loss", lesson01.check_g_loss, saturating_g_loss, "saturating loss"),
    ("wrong sign", lesson01.check_g_loss, wrong_sign_g_loss, "wrong sign"),
    ("missing detach", lesson01.check_toy_step, missing_detach_step, "missing detach"),
    ("log of a probability", lesson01.check_d_loss, unstable_d_loss, "unstable log"),
    ("wrong reduction", lesson01.check_d_loss, summed_d_loss, "wrong reduction"),
    ("wrong shape", lesson01.check_g_loss, per_sample_g_loss, "wrong shape"),
    ("swapped labels", lesson01.check_d_loss, swapped_d_loss, "swapped"),
    ("no gradient", lesson01.check_d_loss, detached_d_loss, "no gradient"),
    ("sigmoid then BCE in D", lesson01.check_d_loss, sigmoid_bce_d_loss, "unstable log"),
    ("sigmoid then BCE in G", lesson01.check_g_loss, sigmoid_bce_g_loss, "unstable log"),
    ("fakes labelled 1 in D", lesson01.check_d_loss, fake_label_one_d_loss, "fake term uses the label 1"),
    ("toy step without opt_D.zero_grad", lesson01.check_toy_step, no_zero_grad_D_toy_step, "missing opt_D.zero_grad()"),
    ("toy step without opt_G.zero_grad", lesson01.check_toy_step, no_zero_grad_G_toy_step, "missing opt_G.zero_grad()"),
    ("saturating G step", lesson01.check_toy_step, saturating_step, "saturating generator loss"),
    ("G before D", lesson01.check_toy_step, g_first_step, "order"),
    ("swapped D*", lesson01.check_optimal_discriminator, swapped_optimal_d, "p_g / (p_data + p_g)"),
    ("0/0 in D*", lesson01.check_optimal_discriminator, nan_optimal_d, "division by zero"),
    ("JS in bits", lesson01.check_js_divergence, bits_js, "log base 2"),
    ("KL for JS", lesson01.check_js_divergence, kl_instead_of_js, "this is KL"),
    ("JS without 1/2", lesson01.check_js_divergence, no_half_js, "missing factor 1/2"),
    ("0 log 0 in V", lesson01.check_value_function, naive_log_value, "0 · log 0"),
    ("V without dx", lesson01.check_value_function, no_dx_value, "without multiplying by dx"),
    ("integer pixels", lesson00.check_to_model_range, integer_pixels, "floating-point"),
    ("[0, 1] range", lesson00.check_to_model_range, unit_range_pixels, "[0, 1]"),
    ("channels last", lesson00.check_to_model_range, channels_last, "channels are still last"),
    (".view for .permute", lesson00.check_to_model_range, view_pixels, "wrong places"),
    ("H and W swapped", lesson00.check_to_pixels, swapped_hw_to_pixels, "height and width are swapped"),
    (".reshape for .permute", lesson00.check_to_pixels, reshaped_to_pixels, "wrong places"),
    ("truncation", lesson00.check_to_pixels, truncating_to_pixels, "truncate instead of rounding"),
    ("no clamp", lesson00.check_to_pixels, unclamped_to_pixels, "clamped"),
    ("no zero_grad", lesson00.check_training_step, no_zero_grad_step, "zero_grad"),
    ("summed loss", lesson00.check_training_step, summed_loss_step, "mean squared error"),
    ("tensor loss", lesson00.check_training_step, tensor_loss_step, "Python float"),
]


@pytest.mark.parametrize("name, check, wrong, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, wrong, expected):
    result = check(wrong)
    assert isinstance(result, CheckResult)
    assert result.status == "failed", f"{name} was not caught: {result.message}"
    if expected is not None:
        assert expected in result.message, result.message
