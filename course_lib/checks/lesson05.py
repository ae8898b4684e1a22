"""Graded checks for lesson 05 (Wasserstein GANs, gradient penalty and Lipschitz constraints).

Each check runs the learner's function on small seeded cases and analytic ones (a linear critic
with a unit-norm weight has gradient penalty 0), compares with ``course_lib.losses`` and
``course_lib.lipschitz``, and names the classic mistake when it recognises one: a flipped critic
loss, BCE on raw scores, a gradient norm over the whole batch, ||grad||² without the -1, a penalty
that cannot train the critic (no ``create_graph``), clipped gradients instead of weights, biases
left unclipped, ``W`` where the power iteration needs ``W^T``, a conv weight reshaped the wrong
way, a hinge without its relu.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import lipschitz, losses
from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng




def _scores(seed: int, n: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(case_seed(seed))) * scale + 0.3 * seed


def _scalar_loss(out, name: str) -> torch.Tensor:
    out = expect_tensor(out, name)
    expect_shape(out, (), name, "Average over the batch with .mean().")
    if not out.requires_grad:
        raise Mistake(f"no gradient: {name}'s result is not connected to the scores. Stay in torch (no .item(), "
                      ".detach() or numpy), so that the loss can be backpropagated.")
    return out


# ----------------------------------------------------------------------------------------------
# 05.1 the Wasserstein critic loss
# ----------------------------------------------------------------------------------------------

@exercise("05.1", "the Wasserstein critic loss", forbid=("course_lib.losses.d_loss_wasserstein",))
@own_rng
def check_critic_loss(critic_loss) -> None:
    real, fake = _scores(1, 8), _scores(2, 8)
    real_g, fake_g = real.clone().requires_grad_(), fake.clone().requires_grad_()
    out = _scalar_loss(call(critic_loss, real_g, fake_g), "critic_loss")
    ref = losses.d_loss_wasserstein(real, fake)
    if close(out, -ref):
        raise Mistake(
            "wrong sign: the critic MINIMISES mean D(x_fake) - mean D(x_real), i.e. it maximises mean D(x_real) - "
            "mean D(x_fake), its estimate of the Wasserstein distance. Real scores should go up, fake scores down."
        )
    if close(out, losses.d_loss_bce(real, fake)) or close(out, losses.d_loss_bce(real, fake) / 2):
        raise Mistake("this is the BCE loss. A Wasserstein critic outputs raw scores, not probabilities: no sigmoid "
                      "and no log, just mean(fake_scores) - mean(real_scores).")
    if close(out, fake.sum() - real.sum()):
        raise Mistake("wrong reduction: you summed over the batch; take the mean of each batch, so the loss does not grow with B.")
    if not close(out, ref):
        raise Mistake(f"critic_loss gives {out.item():.5f} where mean(fake) - mean(real) gives {ref.item():.5f}. The "
                      "scores are used raw: no sigmoid, log, softplus, clamp or abs, and no margin.")
    same = call(critic_loss, real.clone(), real.clone())
    if not close(same, torch.tensor(0.0), atol=1e-6):
        raise Mistake(f"when real and fake scores are equal the loss is 0, got {float(same):.4g}.")
    out.backward()
    if real_g.grad is None or not close(real_g.grad, torch.full_like(real, -1 / len(real))):
        raise Mistake("the gradient with respect to each real score should be -1 / B.")


# ----------------------------------------------------------------------------------------------
# 05.2 the gradient penalty
# ----------------------------------------------------------------------------------------------

def reference_gradient_penalty(critic: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's mean_i (||grad critic(x_hat_i)||_2 - 1)^2 with x_hat = eps x_real + (1 - eps) x_fake.

    ``course_lib.losses.gradient_penalty`` computes the same with eps drawn inside; here eps (B, 1, 1, 1)
    is given so the result can be compared.
    """
    x_hat = (eps * x_real + (1 - eps) * x_fake).detach().requires_grad_(True)  # (B, C, H, W)
    scores = critic(x_hat)                                                      # (B,) or (B, 1)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)       # (B, C, H, W)
    norms = grad.flatten(1).norm(2, dim=1)                                      # (B,)
    return ((norms - 1) ** 2).mean()


def _grad_at(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return grad


def _gp_variants(critic: nn.Module, x_real, x_fake, eps) -> dict[str, float]:
    x_hat = eps * x_real + (1 - eps) * x_fake
    grad = _grad_at(critic, x_hat)
    norms = grad.flatten(1).norm(dim=1)
    return {
        "whole batch": float((grad.norm() - 1) ** 2),
        "squared norm": float((norms ** 2).mean()),
        "squared norm minus one": float(((norms ** 2 - 1) ** 2).mean()),
        "at real": float(((_grad_at(critic, x_real).flatten(1).norm(dim=1) - 1) ** 2).mean()),
        "at fake": float(((_grad_at(critic, x_fake).flatten(1).norm(dim=1) - 1) ** 2).mean()),
        "sum": float(((norms - 1) ** 2).sum()),
    }


GP_MESSAGES = {
    "whole batch": "the norm was taken over the whole batch: the penalty asks EACH sample's gradient to have norm 1. "
                   "Flatten per sample and take the norm over dim 1: grad.flatten(1).norm(2, dim=1), shape (B,).",
    "squared norm": "this is the mean SQUARED gradient norm, ||grad||² (the R1 / zero-centred penalty). WGAN-GP pushes "
                    "the norm towards 1, the slope of an optimal 1-Lipschitz critic: (||grad||_2 - 1)².",
    "squared norm minus one": "you used the squared norm inside: (||grad||² - 1)². The penalty is (||grad||_2 - 1)² with "
                              "the norm itself (square root of the sum of squares), e.g. grad.flatten(1).norm(2, dim=1).",
    "at real": "the gradient was taken at the real samples. WGAN-GP evaluates it at random interpolates "
               "x_hat = eps x_real + (1 - eps) x_fake, on the lines between real and fake points.",
    "at fake": "the gradient was taken at the fake samples. WGAN-GP evaluates it at random interpolates "
               "x_hat = eps x_real + (1 - eps) x_fake, on the lines between real and fake points.",
    "sum": "wrong reduction: you summed the per-sample penalties; take their mean over the batch.",
}

REQUIRES_GRAD_HINT = ("x_hat must require gradients before the critic sees it: "
                      "x_hat = (eps * x_real + (1 - eps) * x_fake).requires_grad_(True).")


def _call_gp(gradient_penalty, critic, x_real, x_fake, eps):
    try:
        return call(gradient_penalty, critic, x_real.clone(), x_fake.clone(), eps.clone())
    except Mistake as err:
        if "does not require grad" in str(err):
            raise Mistake(f"{str(err).rstrip('.')}. {REQUIRES_GRAD_HINT}") from None
        raise


def _linear_critic(norm: float) -> nn.Module:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with torch.no_grad():
        w = torch.randn(1, 12, generator=torch.Generator().manual_seed(case_seed(7)))
        critic[1].weight.copy_(w / w.norm() * norm)
        critic[1].bias.fill_(0.3)
    return critic


@exercise("05.2", "the WGAN-GP gradient penalty", forbid=("course_lib.losses.gradient_penalty",))
@own_rng
def check_gradient_penalty(gradient_penalty) -> None:
    g = torch.Generator().manual_seed(case_seed(3))
    torch.manual_seed(case_seed(3))
    critic = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 3 * 4, 1))
    x_real = torch.randn(5, 1, 3, 4, generator=g)   # B = 5, H = 3, W = 4: every axis has its own length
    x_fake = torch.randn(5, 1, 3, 4, generator=g)
    eps = torch.rand(5, 1, 1, 1, generator=g)
    out = expect_tensor(_call_gp(gradient_penalty, critic, x_real, x_fake, eps), "gradient_penalty")
    expect_shape(out, (), "gradient_penalty", "Average the per-sample penalties over the batch.")
    accepted = [reference_gradient_penalty(critic, x_real, x_fake, e) for e in (eps, 1 - eps)]
    # (1 - eps) on the other side is the same penalty in distribution, since eps ~ U[0, 1]: accept both.
    match = next((ref for ref in accepted if close(out, ref, rtol=1e-4, atol=1e-6)), None)
    if match is None:
        for name, value in _gp_variants(critic, x_real, x_fake, eps).items():
            if math.isclose(float(out.detach()), value, rel_tol=1e-4, abs_tol=1e-6):
                raise Mistake(GP_MESSAGES[name])
        again = expect_tensor(_call_gp(gradient_penalty, critic, x_real, x_fake, eps), "gradient_penalty")
        if not close(again, out):
            raise Mistake("two calls with the same inputs gave different penalties: you draw your own random eps. "
                          "Use the eps you are given (one value per sample, shape (B, 1, 1, 1)): "
                          "x_hat = eps * x_real + (1 - eps) * x_fake.")
        raise Mistake(f"gradient_penalty gives {float(out.detach()):.6f} where mean_i (||grad critic(x_hat_i)||_2 - 1)² gives "
                      f"{accepted[0].item():.6f}. Is lambda left out (the caller multiplies by it), and the gradient taken "
                      "of critic(x_hat).sum() with respect to x_hat itself?")
    for norm, want in ((1.0, 0.0), (2.0, 1.0), (0.5, 0.25)):
        value = expect_tensor(_call_gp(gradient_penalty, _linear_critic(norm), x_real, x_fake, eps), "gradient_penalty")
        if not close(value, torch.tensor(want), atol=1e-5):
            raise Mistake(f"a linear critic w·x + b with ||w|| = {norm:g} has the same gradient w at every x, so its "
                          f"penalty is ({norm:g} - 1)² = {want:g}; yours gives {float(value):.4g}.")
    if not out.requires_grad:
        raise Mistake(
            "the penalty has no gradient with respect to the critic's weights, so it cannot train the critic. "
            "torch.autograd.grad(..., create_graph=True) keeps the graph of the gradient itself: without it the "
            "gradient is a constant and the penalty cannot be backpropagated (a double backward)."
        )
    grads = lambda: [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in critic.parameters()]  # noqa: E731
    critic.zero_grad()
    out.backward()
    mine = grads()
    critic.zero_grad()
    match.backward()
    if not all(close(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(mine, grads())):
        raise Mistake("the value is right, but backpropagating your penalty gives the critic different gradients; "
                      "don't detach the gradient or the norms, and use create_graph=True.")


# ----------------------------------------------------------------------------------------------
# 05.3 weight clipping
# ----------------------------------------------------------------------------------------------

def _clip_target() -> nn.Module:
    g = torch.Generator().manual_seed(case_seed(5))
    module = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.05 if name.endswith("weight") else 0.2))
            p.grad = torch.randn(p.shape, generator=g)           # stale gradients, which clipping must not touch
        module[1].running_mean.fill_(2.0)                        # buffers, not parameters: never clipped
        module[1].running_var.fill_(5.0)
    return module


@exercise("05.3", "WGAN weight clipping", forbid=("course_lib.lipschitz.clip_weights_",))
@own_rng
def check_clip_weights(clip_weights_) -> None:
    c = 0.03
    module = _clip_target()
    before = copy.deepcopy(module)
    old_grads = {k: p.grad.clone() for k, p in module.named_parameters()}
    try:
        returned = call(clip_weights_, module, c)
    except Mistake as err:
        if "leaf Variable" not in str(err):
            raise
        raise Mistake(f"{str(err).rstrip('.')}. Modify parameters in place under `with torch.no_grad():` (p.clamp_(-c, c)), so autograd "
                      "does not record the clipping.") from None
    params = dict(module.named_parameters())
    old = dict(before.named_parameters())
    unchanged = all(torch.equal(params[k], old[k]) for k in params)
    grads_changed = any(params[k].grad is None or not torch.equal(params[k].grad, old_grads[k]) for k in params)
    if unchanged and grads_changed:
        raise Mistake("you clipped the GRADIENTS (like clip_grad_value_). WGAN clips the WEIGHTS: after each critic "
                      "update every parameter is clamped into [-c, c].")
    if unchanged and isinstance(returned, nn.Module) and returned is not module:
        raise Mistake("the module you were given is unchanged and you returned a new one. Clip in place (the trailing "
                      "underscore says so): the optimiser holds references to the critic's own parameters, so a "
                      "clipped copy is never trained.")
    expected = lipschitz.clip_weights_(copy.deepcopy(before), c)
    ref = dict(expected.named_parameters())
    biases_left = all(torch.equal(params[k], old[k]) for k in params if k.endswith("bias"))
    weights_ok = all(torch.equal(params[k], ref[k]) for k in params if k.endswith("weight"))
    if weights_ok and biases_left and not all(torch.equal(old[k], ref[k]) for k in params if k.endswith("bias")):
        raise Mistake("the biases were not clipped. Arjovsky et al. clip EVERY parameter of the critic "
                      "(for p in critic.parameters()), biases and batch-norm parameters included.")
    worst = max(params[k].abs().max().item() for k in params)
    if worst > c + 1e-7:
        raise Mistake(f"some parameters are still outside [-{c}, {c}] (largest magnitude {worst:.3g}); "
                      "clamp every one: p.clamp_(-c, c).")
    if not all(torch.equal(params[k], ref[k]) for k in params):
        raise Mistake("values already inside [-c, c] must stay as they are: clamp each entry (p.clamp_(-c, c)); "
                      "don't rescale the whole tensor.")
    if not (torch.equal(module[1].running_mean, before[1].running_mean) and torch.equal(module[1].running_var, before[1].running_var)):
        raise Mistake("the batch-norm running statistics (buffers) changed: clip module.parameters() only, not the "
                      "state_dict(), which also holds the buffers.")
    if grads_changed:
        raise Mistake("the gradients changed; weight clipping touches the parameters only.")
    if returned is not module:
        raise Mistake(f"clip_weights_ should return the module it was given (end with `return module`), got "
                      f"{type(returned).__name__}.")


# ----------------------------------------------------------------------------------------------
# 05.4 power iteration
# ----------------------------------------------------------------------------------------------

def _unpack_power(out, name: str = "power_iteration") -> tuple[float, torch.Tensor, torch.Tensor]:
    if not isinstance(out, tuple) or len(out) != 3:
        raise Mistake(f"{name} should return a tuple (sigma, u, v), got {type(out).__name__}.")
    sigma, u, v = out
    if isinstance(sigma, torch.Tensor):
        if sigma.numel() != 1:
            raise Mistake(f"sigma should be one number, got a tensor of shape {tuple(sigma.shape)}.")
        sigma = sigma.item()
    u, v = expect_tensor(u, "u (the second output)"), expect_tensor(v, "v (the third output)")
    return float(sigma), u.detach(), v.detach()


def _transposed_by_mistake(W: torch.Tensor, u: torch.Tensor) -> float:
    v = F.normalize(W @ u, dim=0)       # W instead of W^T
    u = F.normalize(W @ v, dim=0)
    return float(u @ W @ v)


@exercise("05.4", "power iteration for the spectral norm",
          forbid=("course_lib.lipschitz.power_iteration", "course_lib.lipschitz.spectral_norm_exact"))
@own_rng
def check_power_iteration(power_iteration) -> None:
    g = torch.Generator().manual_seed(case_seed(2))
    W = torch.randn(4, 4, generator=g)                   # square, not symmetric: W and W^T differ
    u0 = F.normalize(torch.randn(4, generator=g), dim=0)
    sigma, u, v = _unpack_power(call(power_iteration, W.clone(), u0.clone(), 1))
    ref_sigma, ref_u, ref_v = lipschitz.power_iteration(W, u0, 1)
    if tuple(u.shape) != (4,) or tuple(v.shape) != (4,):
        raise Mistake(f"for a (4, 4) weight u and v should have shapes (4,) and (4,), got {tuple(u.shape)} and {tuple(v.shape)}.")
    if abs(u.norm().item() - 1) > 1e-4 or abs(v.norm().item() - 1) > 1e-4:
        raise Mistake(
            f"u and v should be unit vectors, but |u| = {u.norm().item():.4g} and |v| = {v.norm().item():.4g}. Normalise "
            "after each multiplication (F.normalize(W.T @ u, dim=0)): without it they grow or shrink by about sigma per "
            "step, and u^T W v is no longer the singular value."
        )
    if math.isclose(sigma, _transposed_by_mistake(W, u0), rel_tol=1e-4) and not math.isclose(sigma, ref_sigma.item(), rel_tol=1e-4):
        raise Mistake("the v update uses W where it needs the transpose: v lives in the input space, so "
                      "v = normalize(W^T u), then u = normalize(W v).")
    if not (close(u, ref_u) and close(v, ref_v)):
        raise Mistake("u and v differ from one step of v = normalize(W^T u), u = normalize(W v) (v first, from the given "
                      "u). With n_iters = 1 the loop runs once; start from the given u (not a new random one), and "
                      "compute v before u.")
    if not math.isclose(sigma, ref_sigma.item(), rel_tol=1e-4):
        raise Mistake(f"sigma should be u^T W v with the updated u and v ({ref_sigma.item():.5f}), got {sigma:.5f}.")

    exact = lipschitz.spectral_norm_exact(W).item()
    many, _, _ = _unpack_power(call(power_iteration, W.clone(), u0.clone(), 200))
    if not math.isclose(many, exact, rel_tol=1e-3):
        raise Mistake(f"after 200 iterations sigma should reach the largest singular value {exact:.5f} "
                      f"(torch.linalg.matrix_norm(W, ord=2)), got {many:.5f}. Does n_iters control the loop?")

    conv = torch.randn(3, 2, 2, 2, generator=g)          # (out, in, kh, kw): W is (3, 8)
    u_conv = F.normalize(torch.randn(3, generator=g), dim=0)
    try:
        out = call(power_iteration, conv.clone(), u_conv.clone(), 3)
    except Mistake as err:
        raise Mistake(
            f"on a conv weight of shape (3, 2, 2, 2) your function failed ({err}). Reshape it to a matrix with one row "
            "per OUTPUT channel: W = weight.reshape(weight.shape[0], -1), shape (3, 8); u has one entry per row (3), "
            "v one per column (8)."
        ) from None
    sigma, u, v = _unpack_power(out)
    ref_sigma, ref_u, ref_v = lipschitz.power_iteration(conv, u_conv, 3)
    if tuple(u.shape) != (3,) or tuple(v.shape) != (8,):
        raise Mistake(f"for a conv weight (3, 2, 2, 2), W = weight.reshape(3, -1) is (3, 8): u should be (3,) and v (8,), "
                      f"got {tuple(u.shape)} and {tuple(v.shape)}.")
    if not (math.isclose(sigma, ref_sigma.item(), rel_tol=1e-4) and close(u, ref_u) and close(v, ref_v)):
        raise Mistake("on a conv weight the result differs from the reference: W = weight.reshape(weight.shape[0], -1), "
                      "one row per output channel.")


# ----------------------------------------------------------------------------------------------
# 05.5 the hinge loss of the discriminator
# ----------------------------------------------------------------------------------------------

@exercise("05.5", "the hinge discriminator loss", forbid=("course_lib.losses.d_loss_hinge",))
@own_rng
def check_hinge_d_loss(hinge_d_loss) -> None:
    real, fake = _scores(3, 8), _scores(4, 8)
    real_g, fake_g = real.clone().requires_grad_(), fake.clone().requires_grad_()
    out = _scalar_loss(call(hinge_d_loss, real_g, fake_g), "hinge_d_loss")
    ref = losses.d_loss_hinge(real, fake)
    variants = {
        "no relu": ((1 - real).mean() + (1 + fake).mean(),
                    "the relu is missing: (1 - D(x)).mean() + (1 + D(G(z))).mean() is linear, so D keeps pushing scores "
                    "apart forever. The hinge stops at the margin: F.relu(1 - real).mean() + F.relu(1 + fake).mean()."),
        "zero margin": (F.relu(-real).mean() + F.relu(fake).mean(),
                        "the margins are missing: real scores are pushed above +1, F.relu(1 - real), and fake scores "
                        "below -1, F.relu(1 + fake); a margin of 0 gives no push once the sign is right."),
        "swapped": (F.relu(1 + real).mean() + F.relu(1 - fake).mean(),
                    "real and fake are swapped: D wants REAL scores above +1, relu(1 - D(x)), and FAKE scores below -1, "
                    "relu(1 + D(G(z)))."),
        "fake sign": (F.relu(1 - real).mean() + F.relu(1 - fake).mean(),
                      "the fake term has the wrong sign: fakes are pushed below -1, so their term is F.relu(1 + fake)."),
        "sum": (F.relu(1 - real).sum() + F.relu(1 + fake).sum(),
                "wrong reduction: you summed over the batch; take the mean of each term."),
        "wasserstein": (fake.mean() - real.mean(), "this is the Wasserstein critic loss; the hinge adds margins and relu: "
                                                   "F.relu(1 - real).mean() + F.relu(1 + fake).mean()."),
    }
    for value, message in variants.values():
        if close(out, value) and not close(value, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake(f"hinge_d_loss gives {out.item():.5f} where mean relu(1 - real) + mean relu(1 + fake) gives {ref.item():.5f}. "
                      "The margin is 1 on both sides, each relu is averaged over its own batch, and the two means are "
                      "added (not averaged).")
    zero = call(hinge_d_loss, torch.zeros(4), torch.zeros(4))
    if not close(zero, torch.tensor(2.0)):
        raise Mistake(f"at all-zero scores each term is relu(1) = 1, so the loss is 2; got {float(zero):.4g}.")
    out.backward()
    want = torch.where(real < 1, -1.0 / len(real), 0.0)
    if real_g.grad is None or not close(real_g.grad, want):
        raise Mistake("the gradient with respect to a real score should be -1/B below the margin (+1) and 0 above it.")


EXERCISES = [check_critic_loss, check_gradient_penalty, check_clip_weights, check_power_iteration, check_hinge_d_loss]

HINTS = {
    "05.1": ("The critic maximises mean D(x) - mean D(G(z)); a loss is minimised, so flip the sign.",
             "Raw scores only: no sigmoid, no log, no softplus. Average each batch on its own (the sizes may "
             "differ).",
             "Return the scalar tensor, not .item(): it must stay connected to the scores."),
    "05.2": ("Mix first, with the given eps (one value per sample): x_hat = eps x_real + (1 - eps) x_fake. Drawing "
             "your own eps gives other points than the check's.",
             "x_hat must require gradients before the critic sees it (.requires_grad_(True)); take the gradient of "
             "the summed scores with torch.autograd.grad and create_graph=True, so the penalty can be "
             "backpropagated.",
             "One norm per sample: flatten each sample's gradient (.flatten(1)) and take the 2-norm over dim 1, "
             "shape (B,); then the mean of (norm - 1) squared, without lambda."),
    "05.3": ("Every tensor of module.parameters(), weights and biases, goes into [-c, c]; buffers such as "
             "batch-norm running statistics are not parameters and stay as they are.",
             "Change the tensors in place with Tensor.clamp_ (with the underscore): p = p.clamp(...) only rebinds a "
             "name.",
             "Do it inside a torch.no_grad() block: autograd refuses in-place changes to leaf tensors that require "
             "gradients. Return the module."),
    "05.4": ("Flatten the weight to a matrix with one row per output channel (a reshape to (out, -1)); u lives in "
             "the output space, v in the input space.",
             "Each iteration: v from W^T u, normalised, then u from W v, normalised. v comes first, from the given "
             "u.",
             "F.normalize(vector, dim=0) divides by the 2-norm. After the loop sigma is u^T W v, a 0-d tensor; "
             "return sigma, u and v in that order."),
    "05.5": ("Two one-sided penalties: a real score below +1 pays 1 - D(x), a fake score above -1 pays 1 + D(G(z)); "
             "beyond the margins nothing is paid.",
             "max(0, t) is F.relu(t). Average each term over its own batch, then add the two means.",
             "Test yourself: all-zero scores give 2; a real score of 3 and a fake score of -3 give 0."),
}
