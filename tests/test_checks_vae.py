"""Graded checks of lesson 06 (VAEs).

As in test_checks_gan.py: the library, the check module's references and a learner-style solution
pass every check, an unattempted stub is "not attempted", the references equal course_lib.vae, and
a bank of classic mistakes is caught, each with its own message.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import vae
from course_lib.checks import MIME, CheckResult, lesson06


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ==============================================================================================
# Solutions: what a learner writes in each exercise cell
# ==============================================================================================

def solution_reparameterize(mu, logvar, generator=None):
    std = torch.exp(0.5 * logvar)                         # sigma = exp(log sigma^2 / 2)
    eps = torch.randn(mu.shape, generator=generator)
    return mu + std * eps


def solution_kl_normal(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)   # Kingma & Welling, appendix B


def solution_vae_loss(x, logits, mu, logvar, beta):
    x01 = (x + 1) / 2
    recon = F.binary_cross_entropy_with_logits(logits, x01, reduction="sum") / x.shape[0]
    kl = solution_kl_normal(mu, logvar).mean()
    return recon + beta * kl


def solution_iwae_bound(log_px_given_z, log_pz, log_qz):
    log_w = log_px_given_z + log_pz - log_qz              # (k, B)
    k = log_w.shape[0]
    return torch.logsumexp(log_w, dim=0) - math.log(k)


def library_vae_loss(x, logits, mu, logvar, beta):
    return -vae.elbo(x, logits, mu, logvar, "bernoulli", beta).mean()


# ==============================================================================================
# References and solutions pass; stubs are "not attempted"
# ==============================================================================================

REFERENCES = [
    (lesson06.check_reparameterize, lesson06.reference_reparameterize),
    (lesson06.check_reparameterize, vae.reparameterize),
    (lesson06.check_reparameterize, solution_reparameterize),
    (lesson06.check_kl_normal, lesson06.reference_kl_normal),
    (lesson06.check_kl_normal, vae.kl_normal),
    (lesson06.check_kl_normal, solution_kl_normal),
    (lesson06.check_vae_loss, lesson06.reference_vae_loss),
    (lesson06.check_vae_loss, library_vae_loss),
    (lesson06.check_vae_loss, solution_vae_loss),
    (lesson06.check_iwae_bound, lesson06.reference_iwae_bound),
    (lesson06.check_iwae_bound, vae.iwae_bound),
    (lesson06.check_iwae_bound, solution_iwae_bound),
]


@pytest.mark.parametrize("check, reference", REFERENCES,
                         ids=[f"{c.__name__}-{r.__module__.split('.')[-1]}.{r.__name__}" for c, r in REFERENCES])
def test_reference_passes_and_stub_is_not_attempted(check, reference):
    result = check(reference)
    assert result.status == "passed", result.message
    assert check(stub).status == "not_attempted"
    bundle = result._repr_mimebundle_()
    assert bundle[MIME]["status"] == "passed" and "PASSED" in bundle["text/plain"]


def test_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson06.EXERCISES] == [f"06.{i}" for i in range(1, 5)]


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for check, solution in REFERENCES[2::3]:   # every check once, with the learner-style solution
        assert check(solution).passed
    assert torch.equal(torch.rand(3), expected)


# ----- the reference implementations written in the check module equal the library -----

def test_references_equal_the_library():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    assert torch.equal(lesson06.reference_reparameterize(mu, logvar, torch.Generator().manual_seed(3)),
                       vae.reparameterize(mu, logvar, torch.Generator().manual_seed(3)))
    assert torch.allclose(lesson06.reference_kl_normal(mu, logvar), vae.kl_normal(mu, logvar), atol=1e-6)

    x = torch.rand(5, 1, 32, 32, generator=g) * 2 - 1
    logits = torch.randn(5, 1, 32, 32, generator=g)
    assert torch.allclose(lesson06.reference_vae_loss(x, logits, mu, logvar, 3.0),
                          -vae.elbo(x, logits, mu, logvar, "bernoulli", beta=3.0).mean(), rtol=1e-6)

    terms = [torch.randn(7, 5, generator=g) * 50 for _ in range(3)]
    assert torch.allclose(lesson06.reference_iwae_bound(*terms), vae.iwae_bound(*terms), atol=1e-5)


def test_reference_iwae_bound_is_what_iwae_log_px_computes():
    """iwae_log_px's answer equals the reference applied to the same (k, B) log terms of a real VAE."""
    torch.manual_seed(0)
    model = vae.VAE(vae.VAEConfig(latent_dim=4, base_channels=4))
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    k = 5
    estimate = vae.iwae_log_px(model, x, k, generator=torch.Generator().manual_seed(2), batch=k)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = vae.reparameterize(mu.repeat(k, 1), logvar.repeat(k, 1), torch.Generator().manual_seed(2))   # (k * B, D)
        log_px = model.log_likelihood(x.repeat(k, 1, 1, 1), model.decode(z)).view(k, 3)
        log_pz = (-0.5 * (z ** 2 + math.log(2 * math.pi))).sum(1).view(k, 3)
        log_qz = torch.distributions.Normal(mu.repeat(k, 1), torch.exp(logvar.repeat(k, 1) / 2)).log_prob(z).sum(1).view(k, 3)
    assert torch.allclose(estimate, lesson06.reference_iwae_bound(log_px, log_pz, log_qz), atol=1e-3)


# ==============================================================================================
# The bank of classic mistakes
# ==============================================================================================

# ----- 06.1 reparameterize -----

def torch_normal_reparameterize(mu, logvar, generator=None):
    return torch.normal(mu, torch.exp(logvar / 2), generator=generator)


def distribution_sample_reparameterize(mu, logvar, generator=None):
    return torch.distributions.Normal(mu, torch.exp(logvar / 2)).sample()


def variance_as_std_reparameterize(mu, logvar, generator=None):
    return mu + torch.exp(logvar) * torch.randn(mu.shape, generator=generator)


def logvar_as_std_reparameterize(mu, logvar, generator=None):
    return mu + logvar * torch.randn(mu.shape, generator=generator)


def logvar_as_variance_reparameterize(mu, logvar, generator=None):
    return mu + torch.sqrt(logvar) * torch.randn(mu.shape, generator=generator)


def no_noise_reparameterize(mu, logvar, generator=None):
    return mu + 0 * logvar


def ignores_generator_reparameterize(mu, logvar, generator=None):
    return mu + torch.exp(logvar / 2) * torch.randn_like(mu)


def shared_noise_reparameterize(mu, logvar, generator=None):
    return mu + torch.exp(logvar / 2) * torch.randn(mu.shape[1], generator=generator)


def per_sample_noise_reparameterize(mu, logvar, generator=None):
    return mu + torch.exp(logvar / 2) * torch.randn(mu.shape[0], 1, generator=generator)  # one eps per sample


def uniform_noise_reparameterize(mu, logvar, generator=None):
    return mu + torch.exp(logvar / 2) * torch.rand(mu.shape, generator=generator)


def detached_reparameterize(mu, logvar, generator=None):
    return (mu + torch.exp(logvar / 2) * torch.randn(mu.shape, generator=generator)).detach()


def flipped_exponent_reparameterize(mu, logvar, generator=None):
    return mu + torch.exp(-logvar / 2) * torch.randn(mu.shape, generator=generator)


# ----- 06.2 kl_normal -----

def sign_flipped_kl(mu, logvar):
    return 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def sigma_for_logvar_kl(mu, logvar):
    sigma = logvar                                         # the argument treated as sigma
    return 0.5 * torch.sum(mu ** 2 + sigma ** 2 - 1 - torch.log(sigma ** 2), dim=1)


def variance_for_logvar_kl(mu, logvar):
    var = logvar                                           # the argument treated as the variance
    return 0.5 * torch.sum(mu ** 2 + var - 1 - torch.log(var), dim=1)


def std_for_variance_kl(mu, logvar):
    return 0.5 * torch.sum(mu ** 2 + torch.exp(logvar / 2) - 1 - logvar, dim=1)


def log_sigma_kl(mu, logvar):
    return 0.5 * torch.sum(mu ** 2 + torch.exp(2 * logvar) - 1 - 2 * logvar, dim=1)


def mean_over_dims_kl(mu, logvar):
    return 0.5 * torch.mean(mu ** 2 + logvar.exp() - 1 - logvar, dim=1)


def no_half_kl(mu, logvar):
    return torch.sum(mu ** 2 + logvar.exp() - 1 - logvar, dim=1)


def no_minus_one_kl(mu, logvar):
    return 0.5 * torch.sum(mu ** 2 + logvar.exp() - logvar, dim=1)


def reversed_kl(mu, logvar):
    return 0.5 * torch.sum(logvar + (1 + mu ** 2) / logvar.exp() - 1, dim=1)


def batch_mean_kl(mu, logvar):
    return solution_kl_normal(mu, logvar).mean()


def per_dimension_kl(mu, logvar):
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)


# ----- 06.3 vae_loss -----

def _kl(mu, logvar):
    return solution_kl_normal(mu, logvar)


def pixel_mean_loss(x, logits, mu, logvar, beta):
    return F.binary_cross_entropy_with_logits(logits, (x + 1) / 2) + beta * _kl(mu, logvar).mean()


def sigmoid_bce_loss(x, logits, mu, logvar, beta):
    recon = F.binary_cross_entropy(torch.sigmoid(logits), (x + 1) / 2, reduction="sum") / x.shape[0]
    return recon + beta * _kl(mu, logvar).mean()


def mse_loss(x, logits, mu, logvar, beta):
    recon = F.mse_loss(torch.sigmoid(logits), (x + 1) / 2, reduction="sum") / x.shape[0]
    return recon + beta * _kl(mu, logvar).mean()


def mse_on_logits_loss(x, logits, mu, logvar, beta):
    return F.mse_loss(logits, x, reduction="none").flatten(1).sum(1).mean() + beta * _kl(mu, logvar).mean()


def kl_subtracted_loss(x, logits, mu, logvar, beta):
    return solution_vae_loss(x, logits, mu, logvar, -beta)


def beta_on_recon_loss(x, logits, mu, logvar, beta):
    recon = F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="sum") / x.shape[0]
    return beta * recon + _kl(mu, logvar).mean()


def beta_ignored_loss(x, logits, mu, logvar, beta):
    return solution_vae_loss(x, logits, mu, logvar, 1.0)


def unmapped_targets_loss(x, logits, mu, logvar, beta):
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    return recon + beta * _kl(mu, logvar).mean()


def batch_sum_loss(x, logits, mu, logvar, beta):
    return solution_vae_loss(x, logits, mu, logvar, beta) * x.shape[0]


def elbo_not_loss(x, logits, mu, logvar, beta):
    return -solution_vae_loss(x, logits, mu, logvar, beta)


def per_sample_loss(x, logits, mu, logvar, beta):
    recon = F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="none").flatten(1).sum(1)
    return recon + beta * _kl(mu, logvar)


def float_loss(x, logits, mu, logvar, beta):
    return solution_vae_loss(x, logits, mu, logvar, beta).item()


# ----- 06.4 iwae_bound -----

def mean_log_weight_bound(log_px_given_z, log_pz, log_qz):
    return (log_px_given_z + log_pz - log_qz).mean(dim=0)


def no_log_k_bound(log_px_given_z, log_pz, log_qz):
    return torch.logsumexp(log_px_given_z + log_pz - log_qz, dim=0)


def likelihood_only_bound(log_px_given_z, log_pz, log_qz):
    return torch.logsumexp(log_px_given_z, dim=0) - math.log(log_px_given_z.shape[0])


def no_q_bound(log_px_given_z, log_pz, log_qz):
    return torch.logsumexp(log_px_given_z + log_pz, dim=0) - math.log(log_px_given_z.shape[0])


def plus_q_bound(log_px_given_z, log_pz, log_qz):
    return torch.logsumexp(log_px_given_z + log_pz + log_qz, dim=0) - math.log(log_px_given_z.shape[0])


def naive_exp_bound(log_px_given_z, log_pz, log_qz):
    return torch.log(torch.exp(log_px_given_z + log_pz - log_qz).mean(dim=0))


def wrong_dim_bound(log_px_given_z, log_pz, log_qz):
    return torch.logsumexp(log_px_given_z + log_pz - log_qz, dim=1) - math.log(log_px_given_z.shape[1])


def batch_size_bound(log_px_given_z, log_pz, log_qz):
    return torch.logsumexp(log_px_given_z + log_pz - log_qz, dim=0) - math.log(log_px_given_z.shape[1])


def max_weight_bound(log_px_given_z, log_pz, log_qz):
    return (log_px_given_z + log_pz - log_qz).max(dim=0).values


MISTAKES = [
    # 06.1
    ("torch.normal(mu, std)", lesson06.check_reparameterize, torch_normal_reparameterize, "no gradient reaches mu"),
    ("Normal(...).sample()", lesson06.check_reparameterize, distribution_sample_reparameterize, "cut off from mu and logvar"),
    ("exp(logvar) as std", lesson06.check_reparameterize, variance_as_std_reparameterize, "the VARIANCE, as the standard deviation"),
    ("logvar as std", lesson06.check_reparameterize, logvar_as_std_reparameterize, "logvar itself as the standard deviation"),
    ("sqrt(logvar) as std", lesson06.check_reparameterize, logvar_as_variance_reparameterize, "torch.sqrt(logvar)"),
    ("no noise", lesson06.check_reparameterize, no_noise_reparameterize, "the noise is missing"),
    ("randn_like without generator", lesson06.check_reparameterize, ignores_generator_reparameterize, "ignores the `generator`"),
    ("one eps for the batch", lesson06.check_reparameterize, shared_noise_reparameterize, "every row got the same noise"),
    ("one eps per sample", lesson06.check_reparameterize, per_sample_noise_reparameterize, "same in every latent dimension"),
    ("uniform eps", lesson06.check_reparameterize, uniform_noise_reparameterize, "torch.randn, not torch.rand"),
    ("detached z", lesson06.check_reparameterize, detached_reparameterize, "cut off from mu and logvar"),
    ("exp(-logvar / 2)", lesson06.check_reparameterize, flipped_exponent_reparameterize, "sign in the exponent"),
    # 06.2
    ("KL sign", lesson06.check_kl_normal, sign_flipped_kl, "wrong sign"),
    ("sigma where logvar is expected", lesson06.check_kl_normal, sigma_for_logvar_kl, "treated logvar as sigma"),
    ("variance where logvar is expected", lesson06.check_kl_normal, variance_for_logvar_kl, "log of a negative number"),
    ("std where the variance belongs", lesson06.check_kl_normal, std_for_variance_kl, "standard deviation exp(logvar / 2)"),
    ("logvar read as log sigma", lesson06.check_kl_normal, log_sigma_kl, "treated logvar as log sigma"),
    ("mean over latent dims", lesson06.check_kl_normal, mean_over_dims_kl, "averaged over the latent dimensions"),
    ("missing 1/2", lesson06.check_kl_normal, no_half_kl, "factor 1/2 is missing"),
    ("missing -1", lesson06.check_kl_normal, no_minus_one_kl, "the -1 is missing"),
    ("reversed KL", lesson06.check_kl_normal, reversed_kl, "reversed divergence"),
    ("KL averaged over the batch", lesson06.check_kl_normal, batch_mean_kl, "one number for the whole batch"),
    ("KL per dimension", lesson06.check_kl_normal, per_dimension_kl, "one KL per latent dimension"),
    # 06.3
    ("loss averaged over pixels", lesson06.check_vae_loss, pixel_mean_loss, "averaged over the pixels"),
    ("sigmoid then BCE", lesson06.check_vae_loss, sigmoid_bce_loss, "saturated logits"),
    ("MSE for Bernoulli", lesson06.check_vae_loss, mse_loss, "squared error"),
    ("MSE on logits", lesson06.check_vae_loss, mse_on_logits_loss, "squared error"),
    ("KL subtracted", lesson06.check_vae_loss, kl_subtracted_loss, "KL has the wrong sign"),
    ("beta on the reconstruction", lesson06.check_vae_loss, beta_on_recon_loss, "beta multiplies the reconstruction"),
    ("beta ignored", lesson06.check_vae_loss, beta_ignored_loss, "beta is ignored"),
    ("targets in [-1, 1]", lesson06.check_vae_loss, unmapped_targets_loss, "x01 = (x + 1) / 2"),
    ("summed over the batch", lesson06.check_vae_loss, batch_sum_loss, "summed over the batch"),
    ("ELBO instead of the loss", lesson06.check_vae_loss, elbo_not_loss, "returned the ELBO itself"),
    ("per-sample loss", lesson06.check_vae_loss, per_sample_loss, "one loss per sample"),
    ("loss as float", lesson06.check_vae_loss, float_loss, "not a float"),
    # 06.4
    ("mean of log-weights", lesson06.check_iwae_bound, mean_log_weight_bound, "that is the ELBO"),
    ("forgot log k", lesson06.check_iwae_bound, no_log_k_bound, "log k is missing"),
    ("p(x|z) only", lesson06.check_iwae_bound, likelihood_only_bound, "prior and q(z|x) are missing"),
    ("no q term", lesson06.check_iwae_bound, no_q_bound, "log q(z|x) is missing"),
    ("+ log q", lesson06.check_iwae_bound, plus_q_bound, "wrong sign"),
    ("exp then log", lesson06.check_iwae_bound, naive_exp_bound, "underflows"),
    ("logsumexp over the batch", lesson06.check_iwae_bound, wrong_dim_bound, "one number per SAMPLE"),
    ("divided by B", lesson06.check_iwae_bound, batch_size_bound, "divided by the batch size"),
    ("largest weight", lesson06.check_iwae_bound, max_weight_bound, "largest weight"),
]


@pytest.mark.parametrize("name, check, wrong, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, wrong, expected):
    result = check(wrong)
    assert isinstance(result, CheckResult)
    assert result.status == "failed", f"{name} was not caught: {result.message}"
    assert expected in result.message, result.message


def test_a_crashing_solution_fails_with_the_error_named():
    def crashes(mu, logvar, generator=None):
        return mu @ logvar                                 # (2, 3) @ (2, 3)

    result = lesson06.check_reparameterize(crashes)
    assert result.status == "failed" and "RuntimeError" in result.message
