"""Graded checks for lesson 06 (variational autoencoders).

The checks pin the learner's code to ``course_lib.vae``: the reparameterisation
z = mu + exp(logvar / 2) * eps (Kingma & Welling 2014), the closed-form KL of a diagonal Gaussian
against N(0, I) summed over latent dimensions, the negative-ELBO loss of a Bernoulli decoder (sum
over pixels and latent dimensions, mean over the batch, beta on the KL only), and the
importance-weighted bound log (1/k) sum_i w_i computed with a logsumexp (Burda et al. 2015).

The classic mistakes they recognise: a z drawn with ``torch.normal`` (no gradient reaches mu),
exp(logvar) or logvar used as the standard deviation, sqrt(logvar), no noise, noise that ignores
the generator, is shared by the batch or by a sample's dimensions; a KL with the wrong sign, without the 1/2 or the -1,
averaged over latent dimensions, reversed, or fed sigma where log sigma^2 is expected; a loss
averaged over pixels, a squared error where the Bernoulli log-likelihood is meant, sigmoid then
``binary_cross_entropy`` (wrong at saturated logits), targets left in [-1, 1], the KL subtracted, beta on the reconstruction; an IWAE bound that averages the
log-weights (the ELBO), forgets log k, exponentiates directly, or leaves out p(z) and q(z|x).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng

# Reference implementations (what course_lib.vae computes) ---------------------------------------


def reference_reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) drawn with ``generator`` (on CPU), shape of mu."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    return mu + torch.exp(logvar / 2) * eps


def reference_kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample: 0.5 * sum over dims of mu^2 + exp(logvar) - 1 - logvar."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(dim=1)


def reference_vae_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                       beta: float) -> torch.Tensor:
    """Batch mean of -log p(x|z) + beta * KL, Bernoulli p(x|z) on x01 = (x + 1) / 2, sums over pixels."""
    x01 = (x + 1) / 2
    recon = F.binary_cross_entropy_with_logits(logits, x01, reduction="none").flatten(1).sum(dim=1)  # (B,)
    return (recon + beta * reference_kl_normal(mu, logvar)).mean()


def reference_iwae_bound(log_px_given_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    """log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) from (k, B) log terms, per input (B,), via logsumexp."""
    log_w = log_px_given_z + log_pz - log_qz                         # (k, B)
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


# ----------------------------------------------------------------------------------------------
# 06.1 the reparameterisation trick
# ----------------------------------------------------------------------------------------------

@exercise("06.1", "the reparameterisation trick", forbid=("course_lib.vae.reparameterize",))
@own_rng
def check_reparameterize(reparameterize) -> None:
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]])
    logvar = torch.tensor([[-2.0, 1.5, 0.8], [0.6, -1.2, 2.0]])   # no value where exp(logvar / 2) and |logvar| agree
    mu_g, logvar_g = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    z = expect_tensor(call(reparameterize, mu_g, logvar_g, torch.Generator().manual_seed(case_seed(0))), "reparameterize")
    expect_shape(z, (2, 3), "reparameterize", "One sample per entry of mu: the shape of mu, (B, D).")
    if not torch.isfinite(z).all():
        raise Mistake("z contains NaN: did you take torch.sqrt(logvar)? logvar is the LOG of the variance and is "
                      "often negative; the standard deviation is exp(logvar / 2).")
    if close(z, mu):
        raise Mistake("the noise is missing: z equals mu, the mean of q(z|x), not a sample from it. "
                      "Add exp(logvar / 2) * eps with eps = torch.randn(mu.shape, generator=generator).")
    if not z.requires_grad:
        raise Mistake("z is cut off from mu and logvar (.detach(), .sample(), numpy or torch.no_grad()): the whole "
                      "point of the trick is that z = mu + std * eps is a differentiable function of mu and logvar.")
    z.sum().backward()
    if mu_g.grad is None or not close(mu_g.grad, torch.ones_like(mu)):
        raise Mistake("no gradient reaches mu: torch.normal(mu, std) draws z with no path back to mu and logvar "
                      "(its gradient is zero). Write z = mu + exp(logvar / 2) * eps, so the randomness sits in eps "
                      "and z moves with mu and logvar.")
    torch.manual_seed(case_seed(123))                                        # a different global state for the second call
    again = call(reparameterize, mu, logvar, torch.Generator().manual_seed(case_seed(0)))
    if not torch.equal(z.detach(), torch.as_tensor(again)):
        raise Mistake("the same seeded generator gave two different z: your noise ignores the `generator` argument. "
                      "Draw eps = torch.randn(mu.shape, generator=generator), so seeded runs repeat exactly.")

    # The distribution: many rows with the same mu and logvar; z's mean and std per column.
    n = 20_000
    z = call(reparameterize, mu.repeat(n, 1), logvar.repeat(n, 1), torch.Generator().manual_seed(case_seed(1)))
    expect_shape(expect_tensor(z, "reparameterize"), (2 * n, 3), "reparameterize", "The shape of mu, (B, D).")
    z = z.detach().reshape(n, 2, 3)
    std = z.std(dim=0)                                            # (2, 3)
    if close(std, torch.zeros_like(std), atol=1e-6):
        raise Mistake("every row got the same noise: eps must have the full shape of mu, (B, D), one independent "
                      "draw per sample and dimension, not one vector shared by the batch.")
    eps = ((z - mu) / std).reshape(-1, 3)                         # the noise each entry got, standardised
    corr = torch.corrcoef(eps.T)[0, 1].item()
    if abs(corr) > 0.5:
        raise Mistake(f"the noise of one sample is the same in every latent dimension (correlation {corr:.2f} between "
                      "dimensions 0 and 1; it should be about 0): eps has shape (B, 1) or was drawn once per sample. "
                      "Draw one value per sample AND dimension, eps of shape mu.shape, (B, D).")
    candidates = [
        (torch.exp(logvar), "you used exp(logvar), the VARIANCE, as the standard deviation: std = exp(logvar / 2) "
                            "(the square root of exp(logvar))."),
        (logvar.abs(), "you used logvar itself as the standard deviation: it is the log of the variance, so "
                       "std = exp(logvar / 2)."),
        (torch.exp(-logvar / 2), "the sign in the exponent is flipped: std = exp(+logvar / 2)."),
    ]
    for wrong, message in candidates:
        if torch.allclose(std, wrong, rtol=0.05):
            raise Mistake(message)
    if not torch.allclose(std, torch.exp(logvar / 2), rtol=0.05):
        raise Mistake(f"the spread of z is wrong: for logvar = {[round(v, 3) for v in logvar[0].tolist()]} its standard deviation should be "
                      f"{[round(v, 3) for v in torch.exp(logvar[0] / 2).tolist()]}, got "
                      f"{[round(v, 3) for v in std[0].tolist()]}. Is eps standard normal (torch.randn, not torch.rand)?")
    if not torch.allclose(z.mean(dim=0), mu, atol=0.05 * std.max().item()):
        raise Mistake("z is not centred on mu: eps must have mean 0 (torch.randn, not torch.rand).")


# ----------------------------------------------------------------------------------------------
# 06.2 the KL divergence to the prior
# ----------------------------------------------------------------------------------------------

@exercise("06.2", "KL(q(z|x) || N(0, I)) in closed form", forbid=("course_lib.vae.kl_normal",))
@own_rng
def check_kl_normal(kl_normal) -> None:
    g = torch.Generator().manual_seed(case_seed(0))
    mu = torch.randn(4, 5, generator=g)
    logvar = torch.randn(4, 5, generator=g) * 1.5                  # positive and negative, never 0
    mu_g, logvar_g = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    out = expect_tensor(call(kl_normal, mu_g, logvar_g), "kl_normal")
    if out.dim() == 0:
        raise Mistake("you returned one number for the whole batch: return one KL per sample, shape (B,). The loss "
                      "averages over the batch later.")
    if tuple(out.shape) == (4, 5):
        raise Mistake("you returned one KL per latent dimension, (B, D): sum them, .sum(dim=1), to get the KL of "
                      "each sample, shape (B,).")
    expect_shape(out, (4,), "kl_normal", "One KL per sample.")
    if not torch.isfinite(out).all():
        raise Mistake("NaN: log of a negative number. logvar is ALREADY log sigma^2 and is often negative: the "
                      "formula's log sigma^2 is logvar itself and sigma^2 is exp(logvar); don't take log(logvar).")
    D = mu.shape[1]
    ref = reference_kl_normal(mu, logvar)
    var = logvar.exp()
    candidates = [
        (-ref, "wrong sign: a KL divergence is never negative. KL = 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)."),
        (ref / D, "you averaged over the latent dimensions: the KL of independent dimensions ADDS up, so sum over "
                  "them with .sum(dim=1)."),
        (2 * ref, "the factor 1/2 is missing: KL = 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)."),
        (ref + D / 2, "the -1 is missing: check that the KL of N(0, I) against itself (mu = 0, logvar = 0) is 0."),
        (0.5 * (mu ** 2 + logvar.exp().sqrt() - 1 - logvar).sum(1),
         "you used the standard deviation exp(logvar / 2) where the variance exp(logvar) belongs."),
        (0.5 * (mu ** 2 + logvar ** 2 - 1 - torch.log(logvar ** 2)).sum(1),
         "you treated logvar as sigma (squaring it, taking its log): logvar is log sigma^2 already, so sigma^2 = "
         "exp(logvar) and log sigma^2 = logvar."),
        (0.5 * (mu ** 2 + (2 * logvar).exp() - 1 - 2 * logvar).sum(1),
         "you treated logvar as log sigma: it is log sigma^2, the log of the VARIANCE, so sigma^2 = exp(logvar)."),
        (0.5 * (logvar + (1 + mu ** 2) / var - 1).sum(1),
         "this is the reversed divergence KL(N(0, I) || q). The ELBO needs KL(q(z|x) || p(z)): "
         "0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)."),
    ]
    for wrong, message in candidates:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake(f"kl_normal gives {[round(v, 4) for v in out.tolist()]} where the reference gives "
                      f"{[round(v, 4) for v in ref.tolist()]}: 0.5 * (mu^2 + exp(logvar) - 1 - logvar).sum(dim=1). "
                      "Check each of the four terms: mu squared (not |mu|), exp(logvar) as the variance, the -1, and "
                      "logvar itself (not its log or square).")
    if not out.requires_grad:
        raise Mistake("the KL is not connected to mu and logvar: stay in torch (no .item(), numpy or math).")
    zero = expect_tensor(call(kl_normal, torch.zeros(3, 2), torch.zeros(3, 2)), "kl_normal")
    if not close(zero, torch.zeros(3), atol=1e-7):
        raise Mistake(f"KL of N(0, I) against itself should be exactly 0, got {zero.tolist()}.")


# ----------------------------------------------------------------------------------------------
# 06.3 the negative-ELBO loss of a Bernoulli VAE
# ----------------------------------------------------------------------------------------------

def _squared_error_losses(x, logits, kl, beta):
    """Losses a learner might write with a squared error in place of the Bernoulli log-likelihood."""
    x01 = (x + 1) / 2
    pairs = [(torch.sigmoid(logits), x01), (2 * torch.sigmoid(logits) - 1, x), (logits, x), (logits, x01),
             (torch.tanh(logits), x)]
    for pred, target in pairs:
        sq = (pred - target).pow(2).flatten(1)                      # (B, P)
        for recon in (sq.sum(1), sq.mean(1), 0.5 * sq.sum(1)):
            for k in (kl, kl / 5):                                  # kl / D: KL averaged over the 5 latent dims
                yield (recon + beta * k).mean()
                yield recon.mean() + beta * k.sum()


@exercise("06.3", "the negative-ELBO loss", forbid=("course_lib.vae.elbo",))
@own_rng
def check_vae_loss(vae_loss) -> None:
    g = torch.Generator().manual_seed(case_seed(0))
    B, P, D, beta = 4, 6 * 6, 5, 2.5
    x = (torch.rand(B, 1, 6, 6, generator=g) > 0.6).float() * 2 - 1         # mostly background, like digits
    x[:, :, 2:4, 2:4] = 0.3                                                  # and some grey pixels
    logits = torch.randn(B, 1, 6, 6, generator=g) * 2
    mu, logvar = torch.randn(B, D, generator=g), torch.randn(B, D, generator=g)
    logits_g = logits.clone().requires_grad_()
    out = call(vae_loss, x.clone(), logits_g, mu.clone(), logvar.clone(), beta)
    if isinstance(out, float):
        raise Mistake("return the loss tensor (the caller calls loss.backward() on it), not a float.")
    out = expect_tensor(out, "vae_loss")
    if tuple(out.shape) == (B,):
        raise Mistake("you returned one loss per sample, (B,): take the mean over the batch so the loss is a scalar.")
    expect_shape(out, (), "vae_loss", "The batch mean of -log p(x|z) + beta * KL.")

    x01 = (x + 1) / 2
    bce = lambda target: F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)  # noqa: E731
    recon, kl = bce(x01), reference_kl_normal(mu, logvar)                   # (B,) each
    ref = reference_vae_loss(x, logits, mu, logvar, beta)
    candidates = [
        ((recon / P + beta * kl).mean(), "you averaged over the pixels (reduction='mean'?): log p(x|z) is a SUM over "
                                         "pixels. Averaging divides the reconstruction by the number of pixels, so the "
                                         "KL outweighs it and the VAE ignores z. Use reduction='none' and .flatten(1).sum(1)."),
        ((recon / P + beta * kl / D).mean(), "you averaged over the pixels and the latent dimensions: both terms are "
                                             "SUMS (over pixels, over latent dims), only the batch is averaged."),
        ((recon + beta * kl).sum(), "you summed over the batch: take the mean over the batch (sum over pixels and "
                                    "latent dims only), so the loss does not grow with the batch size."),
        ((recon - beta * kl).mean(), "the KL has the wrong sign: the loss is -ELBO = -log p(x|z) + beta * KL; the KL "
                                     "is a penalty, it is ADDED."),
        ((beta * recon + kl).mean(), "beta multiplies the reconstruction: beta-VAE weights the KL only, "
                                     "-log p(x|z) + beta * KL."),
        ((recon + kl).mean(), "beta is ignored: the KL is weighted by beta, -log p(x|z) + beta * KL."),
        ((bce(x) + beta * kl).mean(), "the targets are still in [-1, 1]: the Bernoulli likelihood is over "
                                      "x01 = (x + 1) / 2 in [0, 1]."),
        (-ref, "you returned the ELBO itself, which is maximised: the loss to minimise is its negative, "
               "-log p(x|z) + beta * KL."),
    ]
    for wrong, message in candidates:
        if close(out, wrong, rtol=1e-5) and not close(wrong, ref, rtol=1e-5):
            raise Mistake(message)
    if any(close(out, wrong, rtol=1e-5) for wrong in _squared_error_losses(x, logits, kl, beta)):
        raise Mistake("the reconstruction term is a squared error: that is a Gaussian log-likelihood, but this "
                      "decoder outputs Bernoulli logits. Use F.binary_cross_entropy_with_logits(logits, x01, "
                      "reduction='none') summed over pixels, with x01 = (x + 1) / 2.")
    if not close(out, ref, rtol=1e-5):
        raise Mistake(f"your loss {out.item():.4f} differs from the reference {ref.item():.4f}: the batch mean of "
                      "BCE-with-logits(logits, (x + 1) / 2) summed over pixels + beta * KL summed over latent dims. "
                      "The decoder gives logits: don't apply sigmoid or tanh to them first, and don't binarise the "
                      "targets (grey pixels keep their value in (0, 1)).")
    if not out.requires_grad:
        raise Mistake("the loss is not connected to the logits: stay in torch (no .item(), numpy or math).")
    out.backward()
    grad = (torch.sigmoid(logits) - x01) / B                                 # d loss / d logits for the reference
    if logits_g.grad is None or not close(logits_g.grad, grad, rtol=1e-4, atol=1e-6):
        raise Mistake("the gradient with respect to the logits is wrong: it should be (sigmoid(logits) - x01) / B.")
    # another batch size and beta: nothing may be hard-coded
    out = expect_tensor(call(vae_loss, x[:3], logits[:3], mu[:3], logvar[:3], 0.5), "vae_loss")
    if not close(out, reference_vae_loss(x[:3], logits[:3], mu[:3], logvar[:3], 0.5), rtol=1e-5):
        raise Mistake("correct for B = 4 and beta = 2.5 but not for B = 3 and beta = 0.5: is something hard-coded?")
    # a decoder that is confidently wrong: logits of -40 on white pixels and +40 on black ones
    sure = torch.where(x[:3] > 0, -40.0, 40.0).requires_grad_()
    out = expect_tensor(call(vae_loss, x[:3], sure, mu[:3], logvar[:3], 0.5), "vae_loss")
    want = reference_vae_loss(x[:3], sure.detach(), mu[:3], logvar[:3], 0.5)
    if not close(out, want, rtol=1e-4):
        raise Mistake(f"with saturated logits (+-40, each on the wrong side) the loss should be {want.item():.1f}, yours is "
                      f"{float(out.detach()):.1f}: sigmoid(40) rounds to 1, and F.binary_cross_entropy then clamps log 0 to -100. "
                      "Give the logits to F.binary_cross_entropy_with_logits, which never forms sigmoid(logits).")


# ----------------------------------------------------------------------------------------------
# 06.4 the importance-weighted bound
# ----------------------------------------------------------------------------------------------

def _log_terms(k: int, B: int, seed: int):
    """(k, B) log p(x|z), log p(z), log q(z|x) at realistic scales: log p(x|z) is hundreds of nats below 0."""
    g = torch.Generator().manual_seed(case_seed(seed))
    log_px = -800 + 3 * torch.randn(k, B, generator=g)
    log_pz = -4 + torch.randn(k, B, generator=g)
    log_qz = -2 + torch.randn(k, B, generator=g)
    return log_px, log_pz, log_qz


@exercise("06.4", "the importance-weighted bound", forbid=("course_lib.vae.iwae_bound", "course_lib.vae.iwae_log_px"))
@own_rng
def check_iwae_bound(iwae_bound) -> None:
    k, B = 6, 3
    log_px, log_pz, log_qz = _log_terms(k, B, seed=0)
    out = expect_tensor(call(iwae_bound, log_px.clone(), log_pz.clone(), log_qz.clone()), "iwae_bound")
    if tuple(out.shape) == (k,):
        raise Mistake(f"you got one number per SAMPLE, shape (k,) = ({k},): reduce over the k importance samples "
                      "(dim 0) and keep one estimate per input, shape (B,).")
    if out.dim() == 0:
        raise Mistake("you returned one number for the whole batch: return one estimate per input, shape (B,).")
    expect_shape(out, (B,), "iwae_bound", "One estimate of log p(x) per input.")
    if not torch.isfinite(out).all():
        raise Mistake("the result is -inf or NaN: exp(-800) underflows to 0 (log-weights are hundreds of nats below "
                      "zero), so log(mean(exp(log_w))) is log(0). Use torch.logsumexp(log_w, dim=0) - log(k).")
    log_w = log_px + log_pz - log_qz
    ref = reference_iwae_bound(log_px, log_pz, log_qz)
    lse = lambda t: torch.logsumexp(t, dim=0)                                 # noqa: E731
    candidates = [
        (log_w.mean(dim=0), "you averaged the log-weights: that is the ELBO (Jensen: mean of log w <= log of mean w), "
                            "and it does not improve with k. The bound is the log of the MEAN WEIGHT: "
                            "torch.logsumexp(log_w, dim=0) - log(k)."),
        (lse(log_w), "log k is missing: the estimate is the log of the MEAN of the k weights, logsumexp(log_w) - log(k)."),
        (lse(log_w) - math.log(B), "you divided by the batch size B; the mean is over the k importance samples: "
                                   "subtract log(k), k = log_w.shape[0]."),
        (lse(log_px) - math.log(k), "the prior and q(z|x) are missing: the importance weight is p(x, z) / q(z|x) = "
                                    "p(x|z) p(z) / q(z|x), so log w = log p(x|z) + log p(z) - log q(z|x)."),
        (lse(log_px + log_pz) - math.log(k), "log q(z|x) is missing: the samples come from q, so each weight is divided "
                                             "by q(z|x): log w = log p(x|z) + log p(z) - log q(z|x)."),
        (lse(log_px + log_pz + log_qz) - math.log(k), "log q(z|x) has the wrong sign: it is SUBTRACTED, "
                                                      "log w = log p(x|z) + log p(z) - log q(z|x)."),
        (log_w.max(dim=0).values, "you took the largest weight: the bound is the log of the MEAN weight, "
                                  "torch.logsumexp(log_w, dim=0) - log(k)."),
    ]
    for wrong, message in candidates:
        if close(out, wrong, rtol=1e-6, atol=1e-3) and not close(wrong, ref, rtol=1e-6, atol=1e-3):
            raise Mistake(message)
    if not close(out, ref, rtol=1e-6, atol=1e-3):
        raise Mistake(f"iwae_bound gives {[round(v, 3) for v in out.tolist()]} where the reference gives "
                      f"{[round(v, 3) for v in ref.tolist()]}: torch.logsumexp(log p(x|z) + log p(z) - log q(z|x), "
                      "dim=0) - log(k).")
    # k = 1 must be the one-sample ELBO estimate, and another shape must work
    one = expect_tensor(call(iwae_bound, log_px[:1], log_pz[:1], log_qz[:1]), "iwae_bound")
    if not close(one, log_w[0], rtol=1e-6, atol=1e-3):
        raise Mistake("with k = 1 the bound should equal the single log-weight log p(x|z) + log p(z) - log q(z|x): "
                      "subtract log(k) with k read from the shape (log_w.shape[0]), not a fixed number.")
    terms = _log_terms(10, 2, seed=1)
    other = expect_tensor(call(iwae_bound, *terms), "iwae_bound")
    if not close(other, reference_iwae_bound(*terms), rtol=1e-6, atol=1e-3):
        raise Mistake("correct for k = 6, B = 3 but not for k = 10, B = 2: is something hard-coded?")


EXERCISES = [check_reparameterize, check_kl_normal, check_vae_loss, check_iwae_bound]

HINTS = {
    "06.1": ("z = mu + sigma * eps, with eps standard normal noise of mu's shape: the noise holds all the "
             "randomness, so gradients reach mu and logvar.",
             "sigma is exp(logvar / 2): logvar is the log of the variance and often negative; exp(logvar) is the "
             "variance, and sqrt(logvar) is nan.",
             "Draw eps as the exercise says (torch.randn with the given generator and mu's dtype, on the CPU, then "
             "moved to mu's device), one value per entry (B, D): one value per sample would move every dimension "
             "together."),
    "06.2": ("Per dimension the KL is (mu^2 + sigma^2 - 1 - log sigma^2) / 2; a diagonal Gaussian's KL is the sum "
             "over its D dimensions, one number per sample.",
             "logvar already is log sigma^2: sigma^2 is logvar.exp(), and the last term is logvar itself.",
             "Sum over dim 1 (the latent dimensions), not over the batch: the result is (B,). mu = 0 and logvar = 0 "
             "must give 0."),
    "06.3": ("Map the images to the Bernoulli targets (x + 1) / 2 first: the decoder's logits are compared with "
             "those, not with x.",
             "The reconstruction term is the per-pixel BCE with logits (reduction='none'), summed over each image's "
             "channels and pixels: .flatten(1).sum(1) gives (B,). A mean over pixels divides it by 1,024.",
             "Add beta times the per-sample KL (summed over the latent dimensions, (B,)), then average over the "
             "batch. beta weights the KL only."),
    "06.4": ("Add the three log terms into the log-weights log w = log p(x|z) + log p(z) - log q(z|x), shape (k, "
             "B).",
             "The log of the mean of the w_i is a logsumexp over the k samples (dim 0) minus log k.",
             "Never exponentiate the log-weights: they are hundreds of nats below 0 and exp gives 0. "
             "torch.logsumexp is stable; read k from the shape and subtract math.log(k)."),
}
