"""The graded checks: references pass, unattempted stubs say so, and a bank of classic mistakes is
caught, each with its own message."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import gan_math, losses
from course_lib.checks import CheckResult, MIME, lesson00, lesson01
from course_lib.toy_gan import toy_gan_step


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ----- references pass, stubs are "not attempted", every check has a result with a MIME bundle -----

REFERENCES = [
    (lesson00.check_to_model_range, lesson00.reference_to_model_range),
    (lesson00.check_to_pixels, lesson00.reference_to_pixels),
    (lesson00.check_training_step, lesson00.reference_training_step),
    (lesson01.check_d_loss, losses.d_loss_bce),
    (lesson01.check_g_loss, losses.g_loss_nonsaturating),
    (lesson01.check_optimal_discriminator, gan_math.optimal_discriminator),
    (lesson01.check_value_function, gan_math.value_function),
    (lesson01.check_js_divergence, gan_math.js_divergence),
    (lesson01.check_toy_step, toy_gan_step),
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


MISTAKES = [
    ("saturating loss", lesson01.check_g_loss, saturating_g_loss, "saturating loss"),
    ("wrong sign", lesson01.check_g_loss, wrong_sign_g_loss, "wrong sign"),
    ("missing detach", lesson01.check_toy_step, missing_detach_step, "missing detach"),
    ("log of a probability", lesson01.check_d_loss, unstable_d_loss, "unstable log"),
    ("wrong reduction", lesson01.check_d_loss, summed_d_loss, "wrong reduction"),
    ("wrong shape", lesson01.check_g_loss, per_sample_g_loss, "wrong shape"),
    ("swapped labels", lesson01.check_d_loss, swapped_d_loss, "swapped"),
    ("no gradient", lesson01.check_d_loss, detached_d_loss, "no gradient"),
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
    ("truncation", lesson00.check_to_pixels, truncating_to_pixels, "truncate instead of rounding"),
    ("no clamp", lesson00.check_to_pixels, unclamped_to_pixels, "clamped"),
    ("no zero_grad", lesson00.check_training_step, no_zero_grad_step, "zero_grad"),
    ("tensor loss", lesson00.check_training_step, tensor_loss_step, "Python float"),
]


@pytest.mark.parametrize("name, check, wrong, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, wrong, expected):
    result = check(wrong)
    assert isinstance(result, CheckResult)
    assert result.status == "failed", f"{name} was not caught: {result.message}"
    if expected is not None:
        assert expected in result.message, result.message
