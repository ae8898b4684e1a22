"""Graded checks for lesson 01 (GAN maths).

Each check runs the learner's function on seeded and edge cases, compares it with the reference
in ``course_lib.losses``, ``course_lib.gan_math`` or ``course_lib.toy_gan``, and names the classic
mistake when it recognises one: a saturating loss, a wrong sign or reduction, swapped labels, an
unstable ``log(sigmoid(.))``, a missing ``detach``, log base 2, a forgotten factor of 1/2.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from course_lib import gan_math, losses, toy_gan
from course_lib.checks import (GradientWatch, Mistake, call, case_seed, close, exercise, expect_finite, expect_shape,
                               expect_tensor)
from course_lib.toy_gan import ToyDiscriminator, ToyGANConfig, ToyGenerator

UNSTABLE_HINT = (
    "unstable log: computing log(sigmoid(logit)) or log(1 - sigmoid(logit)) turns into log(0) for large "
    "logits. Work with logits: F.logsigmoid(x) = log sigmoid(x), F.logsigmoid(-x) = log(1 - sigmoid(x)), "
    "or F.binary_cross_entropy_with_logits."
)


def _logits(seed: int, n: int) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(case_seed(seed))) * 3


def _expect_scalar_with_grad(out, name: str, logits: torch.Tensor) -> torch.Tensor:
    out = expect_tensor(out, name)
    expect_shape(out, (), name, "Average over the batch with .mean().")
    if not out.requires_grad:
        raise Mistake(
            f"no gradient: {name}'s result is not connected to the logits. Stay in torch "
            "(no .item(), .detach(), numpy or math.log) so that the loss can be back-propagated."
        )
    return out


@exercise("01.1", "discriminator loss from logits", forbid=("course_lib.losses.d_loss_bce",))
def check_d_loss(d_loss) -> None:
    real, fake = _logits(0, 16), _logits(1, 12)
    real_g, fake_g = real.clone().requires_grad_(), fake.clone().requires_grad_()
    out = _expect_scalar_with_grad(call(d_loss, real_g, fake_g), "d_loss", real_g)
    ref = losses.d_loss_bce(real, fake)
    per_real, per_fake = F.softplus(-real), F.softplus(fake)  # -log D(x), -log(1 - D(G(z))) per sample
    if close(out, -ref):
        raise Mistake("wrong sign: this loss is minimised, so it is the NEGATIVE of log D(x) + log(1 - D(G(z))). It is always >= 0.")
    if close(out, losses.d_loss_bce(fake, real)):
        raise Mistake("real and fake are swapped: real samples get label 1 (maximise log D(x)), fakes label 0 (maximise log(1 - D(G(z)))).")
    if close(out, per_real.sum() + per_fake.sum()):
        raise Mistake("wrong reduction: you summed over the batch. Take the mean of each term, so the loss does not grow with the batch size.")
    if close(out, torch.cat([per_real, per_fake]).mean()):
        raise Mistake("wrong reduction: the course's convention is mean over the real batch PLUS mean over the fake batch (2 log 2 when D outputs 1/2); you averaged them together.")
    if close(out, F.softplus(-real).mean() + F.softplus(-fake).mean()):
        raise Mistake("the fake term uses the label 1: fakes are labelled 0, so their term is -log(1 - D(x_fake)) = "
                      "softplus(fake_logit), not -log D(x_fake).")
    if not close(out, ref):
        raise Mistake(f"d_loss gives {out.item():.5f} where the reference gives {ref.item():.5f}. Is each term a mean "
                      "over its own batch (the batches have 16 and 12 samples), and do the logits go through sigmoid "
                      "(or logsigmoid) exactly once?")
    zero = call(d_loss, torch.zeros(4), torch.zeros(4))
    if not close(zero, 2 * math.log(2)):
        raise Mistake(f"at logits 0 (D = 1/2 everywhere) the loss should be 2 log 2 = 1.3863, got {float(zero):.4f}.")
    extreme = call(d_loss, torch.tensor([-200.0, 200.0]), torch.tensor([200.0, -200.0]))
    expect_finite(expect_tensor(extreme, "d_loss"), "d_loss at logits of ±200", UNSTABLE_HINT)
    if not close(extreme, losses.d_loss_bce(torch.tensor([-200.0, 200.0]), torch.tensor([200.0, -200.0])), rtol=1e-3):
        raise Mistake(f"at logits of ±200 the loss should be 200, got {float(extreme):.4g}. {UNSTABLE_HINT}")
    out.backward()
    if real_g.grad is None or not close(real_g.grad, torch.sigmoid(real) / len(real) - 1 / len(real), atol=1e-5):
        raise Mistake("the gradient with respect to the real logits is not (sigmoid(logit) - 1) / B; check the real term.")
    saturated = torch.tensor([40.0, 40.0], requires_grad=True)  # fakes that D wrongly calls real, confidently
    call(d_loss, torch.zeros(2), saturated).backward()
    if saturated.grad is None or not close(saturated.grad, torch.tensor([0.5, 0.5]), atol=1e-4):
        got = None if saturated.grad is None else saturated.grad.tolist()
        raise Mistake(f"at a fake logit of +40 the gradient should be sigmoid(40) / B = 0.5 per sample, yours is {got}: "
                      f"sigmoid(40) rounds to 1, so the loss and its slope are lost. {UNSTABLE_HINT}")


@exercise("01.2", "non-saturating generator loss", forbid=("course_lib.losses.g_loss_nonsaturating",))
def check_g_loss(g_loss) -> None:
    fake = _logits(2, 16)
    fake_g = fake.clone().requires_grad_()
    out = _expect_scalar_with_grad(call(g_loss, fake_g), "g_loss", fake_g)
    ref = losses.g_loss_nonsaturating(fake)
    saturating = losses.g_loss_saturating(fake)
    if close(out, saturating) or close(out, -saturating):
        raise Mistake(
            "this is the saturating loss log(1 - D(G(z))) (or its negative). When D confidently rejects the fakes, "
            "its gradient vanishes and G stops learning. Minimise -log D(G(z)) instead."
        )
    if close(out, -ref):
        raise Mistake("wrong sign: G wants D(G(z)) close to 1, so it minimises -log D(G(z)), which is >= 0.")
    if close(out, ref * len(fake)):
        raise Mistake("wrong reduction: you summed over the batch; take the mean.")
    if not close(out, ref):
        raise Mistake(f"g_loss gives {out.item():.5f} where -mean log sigmoid(logits) gives {ref.item():.5f}. The input "
                      "is logits: apply sigmoid (or logsigmoid) exactly once, and label the fakes 1 (G wants them called real).")
    zero = call(g_loss, torch.zeros(3))
    if not close(zero, math.log(2)):
        raise Mistake(f"at logit 0 (D = 1/2) the loss should be log 2 = 0.6931, got {float(zero):.4f}.")
    extreme = call(g_loss, torch.tensor([-200.0, 0.0]))
    expect_finite(expect_tensor(extreme, "g_loss"), "g_loss at a logit of -200", UNSTABLE_HINT)
    if not close(extreme, losses.g_loss_nonsaturating(torch.tensor([-200.0, 0.0])), rtol=1e-3):
        raise Mistake(f"at logits (-200, 0) the loss should be (200 + log 2) / 2 = 100.35, got {float(extreme):.4g}: "
                      f"sigmoid(-200) rounds to 0, and F.binary_cross_entropy clamps log 0 to -100. {UNSTABLE_HINT}")
    out.backward()
    if fake_g.grad is None or not close(fake_g.grad, (torch.sigmoid(fake) - 1) / len(fake), atol=1e-5):
        raise Mistake("the gradient with respect to the logits should be (sigmoid(logit) - 1) / B; check the sign and "
                      "that the loss is a mean over the batch.")
    saturated = torch.tensor([-40.0, -40.0], requires_grad=True)  # D confidently rejects both fakes
    call(g_loss, saturated).backward()
    if saturated.grad is None or not close(saturated.grad, torch.tensor([-0.5, -0.5]), atol=1e-4):
        got = None if saturated.grad is None else saturated.grad.tolist()
        raise Mistake(f"at a saturated logit of -40 the gradient should be (sigmoid(-40) - 1) / B = -0.5 per sample, "
                      f"yours is {got}: going through sigmoid first loses it (sigmoid(-40) is 4e-18, and its slope "
                      f"vanishes), exactly where G needs it most. {UNSTABLE_HINT}")


def _densities():
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    dx = (x[1] - x[0]).item()
    p_data = gan_math.gaussian_pdf(x, -1.0, 0.7)
    p_g = 0.6 * gan_math.gaussian_pdf(x, 1.5, 0.5) + 0.4 * gan_math.gaussian_pdf(x, -2.0, 1.0)
    return x, dx, p_data, p_g


@exercise("01.3", "the optimal discriminator", forbid=("course_lib.gan_math.optimal_discriminator",))
def check_optimal_discriminator(optimal_discriminator) -> None:
    x, dx, p_data, p_g = _densities()
    out = expect_tensor(call(optimal_discriminator, p_data.clone(), p_g.clone()), "optimal_discriminator")
    expect_shape(out, tuple(p_data.shape), "optimal_discriminator", "D* is evaluated point by point.")
    ref = gan_math.optimal_discriminator(p_data, p_g)
    if close(out, 1 - ref):
        raise Mistake("you returned p_g / (p_data + p_g): D* is the probability that x is REAL, p_data / (p_data + p_g).")
    if not close(out, ref):
        if close(out, p_data / (p_data + p_g + 1e-12), rtol=1e-2) or close(out, p_data / (p_data + p_g + 1e-8), rtol=1e-2):
            raise Mistake("a small epsilon in the denominator changes D* in the tails, where both densities are far "
                          "below it (D* there should still be p_data / (p_data + p_g)). Guard only the 0 / 0 points, "
                          "with torch.where.")
        raise Mistake("D*(x) should equal p_data(x) / (p_data(x) + p_g(x)) at every grid point; the densities are "
                      "used as they are (no log, no normalisation, no integral over x).")
    disjoint_data = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    disjoint_g = torch.tensor([0.0, 0.0, 0.5, 0.0], dtype=torch.float64)
    edge = expect_tensor(call(optimal_discriminator, disjoint_data, disjoint_g), "optimal_discriminator")
    if not torch.isfinite(edge).all():
        raise Mistake(
            "division by zero: where both densities are 0 your D* is NaN. D* does not matter there (V does not "
            "depend on it); define it as 1/2, e.g. with torch.where(total > 0, p_data / total, 0.5)."
        )
    if not close(edge, torch.tensor([1.0, 1.0, 0.0, 0.5], dtype=torch.float64)):
        raise Mistake(f"on disjoint supports D* should be 1 on the data, 0 on the fakes and 1/2 where both are 0; got {edge.tolist()}.")


@exercise("01.4", "the value function V(D, G) on a grid", forbid=("course_lib.gan_math.value_function",))
def check_value_function(value_function) -> None:
    x, dx, p_data, p_g = _densities()
    d = torch.sigmoid(torch.sin(x))  # an arbitrary discriminator
    out = expect_tensor(call(value_function, d, p_data, p_g, dx), "value_function")
    expect_shape(out, (), "value_function", "V is a single number: an integral over x.")
    ref = gan_math.value_function(d, p_data, p_g, dx)
    if close(out, ref / dx, rtol=1e-3):
        raise Mistake("you summed the integrand without multiplying by dx: a Riemann sum of f is sum(f) * dx.")
    if close(out, -ref):
        raise Mistake("wrong sign: V = ∫ p_data log D + p_g log(1 - D) dx, which is <= 0.")
    if not close(out, ref):
        raise Mistake(f"V gives {float(out):.5f} where ∫ p_data log D + p_g log(1 - D) dx gives {ref.item():.5f}. D is "
                      "already a probability (don't apply sigmoid), and the second term uses log(1 - D), weighted by p_g.")
    support = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    fake = torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=torch.float64)
    perfect = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    edge = expect_tensor(call(value_function, perfect, support, fake, 1.0), "value_function")
    if not torch.isfinite(edge).all():
        raise Mistake(
            "0 · log 0 must count as 0: where p_data = 0 the term p_data · log D vanishes even if D = 0. "
            "Use torch.xlogy(p, d) instead of p * torch.log(d)."
        )
    if not close(edge, torch.tensor(0.0, dtype=torch.float64)):
        raise Mistake(f"a perfect discriminator on disjoint supports has V = 0, got {float(edge):.4g}.")


@exercise("01.5", "Jensen-Shannon divergence, and V at D* = -log 4 + 2 JS",
          forbid=("course_lib.gan_math.js_divergence",))
def check_js_divergence(js_divergence) -> None:
    x, dx, p_data, p_g = _densities()
    out = expect_tensor(call(js_divergence, p_data.clone(), p_g.clone(), dx), "js_divergence")
    expect_shape(out, (), "js_divergence", "JS is a single number.")
    ref = gan_math.js_divergence(p_data, p_g, dx)
    kl = gan_math.kl_divergence(p_data, p_g, dx)
    if close(out, ref / math.log(2)):
        raise Mistake("you used log base 2 (bits). The course uses natural logs (nats), in which JS <= log 2 ≈ 0.693.")
    if close(out, 2 * ref):
        raise Mistake("missing factor 1/2: JS = ½ KL(p ‖ m) + ½ KL(q ‖ m) with m = (p + q) / 2.")
    if close(out, kl) or close(out, gan_math.kl_divergence(p_g, p_data, dx)):
        raise Mistake("this is KL(p ‖ q), not JS: compare each density with the mixture m = (p + q) / 2.")
    if not close(out, ref, rtol=1e-3):
        raise Mistake(f"JS gives {float(out):.5f} where the reference gives {ref.item():.5f}. Compare each density "
                      "with the mixture m = (p + q) / 2 (not with each other), and multiply each KL sum by dx.")
    swapped = call(js_divergence, p_g.clone(), p_data.clone(), dx)
    if not close(swapped, out, rtol=1e-3):
        raise Mistake("JS must be symmetric: js(p, q) = js(q, p). Yours is not; check both KL terms.")
    value = gan_math.value_function(gan_math.optimal_discriminator(p_data, p_g), p_data, p_g, dx)
    if not close(value, -math.log(4) + 2 * out, rtol=1e-3):
        raise Mistake(f"V(D*, G) = {value.item():.5f} should equal -log 4 + 2 JS = {-math.log(4) + 2 * float(out):.5f}.")
    disjoint = expect_tensor(call(js_divergence, torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64), 1.0), "js_divergence")
    if not torch.isfinite(disjoint).all():
        raise Mistake("0 · log 0 must count as 0: on disjoint supports your JS is NaN. Use torch.xlogy.")
    if not close(disjoint, torch.tensor(math.log(2))):
        raise Mistake(f"on disjoint supports JS = log 2 ≈ 0.6931, got {float(disjoint):.4f}.")
    same = call(js_divergence, p_data.clone(), p_data.clone(), dx)
    if not close(same, torch.tensor(0.0), atol=1e-8):
        raise Mistake(f"JS(p ‖ p) must be 0, got {float(same):.3g}.")


def _toy_setup(seed: int = 0):
    torch.manual_seed(case_seed(seed))
    cfg = ToyGANConfig(z_dim=4, hidden_dim=16, depth=2)
    G, D = ToyGenerator(cfg), ToyDiscriminator(cfg)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(case_seed(seed + 1))
    x_real = torch.randn(32, 2, generator=g) * 0.1 + torch.tensor([2.0, 0.0])
    z = torch.randn(32, cfg.z_dim, generator=g)
    return G, D, opt_G, opt_D, x_real, z


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


@exercise("01.6", "one training step of the 2-D toy GAN", forbid=("course_lib.toy_gan.toy_gan_step",))
def check_toy_step(toy_gan_step) -> None:
    G, D, opt_G, opt_D, x_real, z = _toy_setup()
    ref = copy.deepcopy((G, D, opt_G, opt_D))
    G0, D0 = copy.deepcopy(G), copy.deepcopy(D)
    watched = GradientWatch(G)  # counts the backward passes through G's output: the G step makes one
    logs = call(toy_gan_step, watched, D, opt_G, opt_D, x_real.clone(), z.clone())
    ref_G, ref_D, ref_opt_G, ref_opt_D = ref
    expected = toy_gan.toy_gan_step(ref_G, ref_D, ref_opt_G, ref_opt_D, x_real.clone(), z.clone())

    if not isinstance(logs, dict) or not {"d_loss", "g_loss"} <= set(logs):
        raise Mistake("return a dict with at least the keys 'd_loss' and 'g_loss'.")
    if not all(isinstance(logs[k], float) for k in ("d_loss", "g_loss")):
        raise Mistake("the logged losses should be Python floats (loss.item()), not tensors.")
    if watched.backward_calls > 1:
        raise Mistake(
            "missing detach: the discriminator's loss sent gradients into the generator. In the D step use "
            "D(x_fake.detach()), so the D update does not back-propagate through G."
        )
    if _same(D, D0):
        raise Mistake("D did not change: call opt_D.zero_grad(), d_loss.backward() and opt_D.step() in the D step.")
    if _same(G, G0):
        raise Mistake("G did not change: call opt_G.zero_grad(), g_loss.backward() and opt_G.step() in the G step.")
    if not _same(D, ref_D):
        raise Mistake("D's update differs from one Adam step on the BCE discriminator loss with the fakes detached. "
                      "Make the fakes from the given z (don't draw new noise), score x_real with label 1 and the fakes "
                      "with label 0, and step only opt_D here.")
    if abs(logs["d_loss"] - expected["d_loss"]) > 1e-4:
        raise Mistake(f"logged d_loss {logs['d_loss']:.5f} differs from the D loss before the update ({expected['d_loss']:.5f}): "
                      "log the value of the loss you back-propagated, not one recomputed after opt_D.step().")
    if not _same(G, ref_G):
        G2, D2, oG2, oD2, xr, zz = _toy_setup()
        toy_gan.toy_gan_step(G2, D2, oG2, oD2, xr, zz, g_loss="saturating")
        if _same(G, G2):
            raise Mistake("saturating generator loss: minimise -log D(G(z)), not log(1 - D(G(z))).")
        G3, D3, oG3, oD3, xr, zz = _toy_setup()
        _g_step_first(G3, D3, oG3, oD3, xr, zz)
        if _same(G, G3):
            raise Mistake("order: update D first, then G against the UPDATED D (compute D(x_fake) again after opt_D.step()).")
        raise Mistake("G's update differs from one Adam step on the non-saturating loss -mean log D(G(z)) through the "
                      "updated D. Use the given z, don't detach the fakes in G's loss, and call opt_G.step() (not opt_D's).")
    if abs(logs["g_loss"] - expected["g_loss"]) > 1e-4:
        raise Mistake(f"logged g_loss {logs['g_loss']:.5f} differs from the reference ({expected['g_loss']:.5f}): log "
                      "the G loss computed through the UPDATED D, before opt_G.step().")
    # A second step: gradients left in .grad by the first (G's backward also fills D's .grad) show now.
    call(toy_gan_step, G, D, opt_G, opt_D, x_real.clone(), z.clone())
    toy_gan.toy_gan_step(ref_G, ref_D, ref_opt_G, ref_opt_D, x_real.clone(), z.clone())
    if not _same(D, ref_D):
        raise Mistake("the first step was right, but in the second D's update differs: missing opt_D.zero_grad() before "
                      "d_loss.backward()? G's backward in the first step left gradients in D's .grad, and they were "
                      "added to the new ones.")
    if not _same(G, ref_G):
        raise Mistake("the first step was right, but in the second G's update differs: missing opt_G.zero_grad() before "
                      "g_loss.backward()? The first step's gradients were still in G's .grad and were added to the new ones.")


def _g_step_first(G, D, opt_G, opt_D, x_real, z) -> None:
    """The G update computed through D *before* D's update (a classic ordering slip)."""
    loss_G = losses.g_loss_nonsaturating(D(G(z)))
    opt_G.zero_grad()
    loss_G.backward()
    opt_D.zero_grad()
    loss_D = losses.d_loss_bce(D(x_real), D(G(z).detach()))
    loss_D.backward()
    opt_D.step()
    opt_G.step()


EXERCISES = [
    check_d_loss,
    check_g_loss,
    check_optimal_discriminator,
    check_value_function,
    check_js_divergence,
    check_toy_step,
]

HINTS = {
    "01.1": ("This is binary cross-entropy: the real logits against the label 1, the fake logits against the label "
             "0, each averaged over its own batch, then the two means added.",
             "Stay with logits, never go through sigmoid: sigmoid(-200) rounds to 0 and its log is -inf. log "
             "sigma(l) is -softplus(-l), and log(1 - sigma(l)) is -softplus(l).",
             "F.binary_cross_entropy_with_logits(logits, targets) computes one term stably; torch.ones_like and "
             "torch.zeros_like make the targets. Add the two terms, do not average them: at logit 0 the sum is 2 "
             "log 2."),
    "01.2": ("G wants D to call its fakes real: the loss is the BCE of the fake logits against the label 1, which "
             "is minus the mean of log sigma(l).",
             "F.logsigmoid(l) is log sigma(l) without underflow, even at l = -200 (where it is about -200, not "
             "-inf).",
             "Check the sign and the reduction: at logit 0 the loss is log 2 (about 0.693) whatever the batch size, "
             "and it grows as the logits become more negative."),
    "01.3": ("Point by point, D* is p_data divided by (p_data + p_g), and 1/2 where both densities are zero.",
             "A plain division gives nan (0 / 0) where both densities vanish, and torch.where evaluates both of its "
             "branches: make the denominator safe before dividing.",
             "Replace the zeros of the denominator with 1 (torch.where again) before dividing, then choose between "
             "the ratio and a tensor full of 0.5 (torch.full_like)."),
    "01.4": ("A Riemann sum: evaluate the integrand at every grid point, add the values up, multiply by dx.",
             "The integrand is p_data log D + p_g log(1 - D). Where a density is 0 and D is 0 or 1, torch.log gives "
             "0 * (-inf) = nan, but the convention is 0 log 0 = 0.",
             "torch.xlogy(a, b) computes a log b and returns 0 where a is 0: use it for both terms."),
    "01.5": ("Build the mixture m = (p + q) / 2 first; JS is half of KL(p || m) plus half of KL(q || m).",
             "On a grid, KL(a || b) is the sum of a log(a / b), times dx. Where a is 0 the term is 0, even where b "
             "is 0.",
             "Write a log(a / b) as xlogy(a, a) - xlogy(a, b), so that zeros of a give 0 and not nan. Natural logs "
             "(nats), not log2."),
    "01.6": ("Two updates in order: D on real samples and detached fakes, then G through the D you have just "
             "updated. Each update is zero_grad, backward, step with its own optimiser.",
             "Generate the fakes once. D's loss sees them detached; G's loss scores the same fakes, not detached, "
             "with a second call of D made after D's step.",
             "Clear each optimiser's gradients before its own backward (G's backward also fills D's .grad, which "
             "D's next zero_grad clears). Return both losses as Python floats with .item()."),
}
