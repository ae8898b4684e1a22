"""course_lib.vae: closed-form KL, reparameterisation, likelihoods, the IWAE bound against an exactly
solvable linear-Gaussian model, shapes for every config, overfitting one batch of real digits,
determinism and input errors. Tiny models (base_channels 8) so the file runs in seconds on 1 thread."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from course_lib import vae
from course_lib.data import mnist5k
from course_lib.vae import (VAE, VAEConfig, binarize, elbo, iwae_bound, iwae_log_px, kl_normal, log_likelihood,
                            log_normal, reparameterize, sample, vae_step)

TINY = VAEConfig(latent_dim=8, base_channels=8)
CONFIGS = {
    "bernoulli": TINY,
    "gaussian_learned": dataclasses.replace(TINY, likelihood="gaussian"),
    "gaussian_fixed": dataclasses.replace(TINY, likelihood="gaussian", x_logvar=-2.0),
    "conditional": dataclasses.replace(TINY, num_classes=10),
    "conditional_gaussian_rgb": dataclasses.replace(TINY, img_channels=3, num_classes=4, likelihood="gaussian"),
    "beta_rgb": dataclasses.replace(TINY, img_channels=3, beta=4.0),
}


def _labels(cfg: VAEConfig, n: int):
    return torch.arange(n) % cfg.num_classes if cfg.num_classes else None


def _images(cfg: VAEConfig, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, cfg.img_channels, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---- KL and reparameterisation ---------------------------------------------------------------

def test_kl_of_the_prior_itself_is_exactly_zero():
    assert torch.equal(kl_normal(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3))


def test_kl_matches_a_monte_carlo_estimate():
    """KL(q || p) = E_q[log q(z) - log p(z)]. With N draws the estimate's standard error is
    std / sqrt(N) (~0.006 nats here); 5 standard errors fail by chance with probability ~6e-7."""
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
    logvar = torch.tensor([[-1.0, 0.5, 0.0], [1.2, -2.0, 0.3]])
    exact = kl_normal(mu, logvar)                                           # (2,)
    assert (exact > 0).all()
    n = 100_000
    g = torch.Generator().manual_seed(0)
    z = reparameterize(mu.repeat(n, 1), logvar.repeat(n, 1), g).view(n, 2, 3)   # (N, 2, 3)
    log_ratio = log_normal(z, mu, logvar) - log_normal(z, torch.zeros(3), torch.zeros(3))   # (N, 2)
    se = log_ratio.std(dim=0) / math.sqrt(n)
    assert ((log_ratio.mean(dim=0) - exact).abs() < 5 * se).all(), (log_ratio.mean(0), exact, se)


def test_reparameterize_has_the_right_moments_and_gradients():
    n = 50_000
    mu = torch.tensor([0.5, -1.0, 2.0]).repeat(n, 1).requires_grad_()
    logvar = torch.tensor([-2.0, 1.5, 0.8]).repeat(n, 1).requires_grad_()
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    std = torch.exp(torch.tensor([-1.0, 0.75, 0.4]))
    # standard errors: std / sqrt(n) for the mean, std / sqrt(2n) for the std; allow 5 of them
    assert ((z.mean(0) - mu[0]).abs() < 5 * std / math.sqrt(n)).all()
    assert ((z.std(0) - std).abs() < 5 * std / math.sqrt(2 * n)).all()
    z.sum().backward()
    assert torch.equal(mu.grad, torch.ones_like(mu))                       # dz/dmu = 1
    assert torch.allclose(logvar.grad, 0.5 * (z - mu).detach(), atol=1e-6)   # dz/dlogvar = exp(logvar/2) eps / 2


def test_reparameterize_is_seeded_and_matches_the_formula():
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    z1 = reparameterize(mu, logvar, torch.Generator().manual_seed(7))
    z2 = reparameterize(mu, logvar, torch.Generator().manual_seed(7))
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(z1, z2) and torch.allclose(z1, mu + torch.exp(logvar / 2) * eps)
    assert reparameterize(mu.double(), logvar.double()).dtype == torch.float64


# ---- likelihoods and the ELBO ----------------------------------------------------------------

def test_log_likelihoods_are_sums_over_pixels_with_known_values():
    x = torch.tensor([[-1.0, 1.0, 0.0, 1.0]])                              # x01 = 0, 1, 0.5, 1
    # logits 0: every pixel has probability 1/2, so log p = 4 log(1/2) whatever x is
    assert torch.allclose(log_likelihood(x, torch.zeros(1, 4), "bernoulli"), torch.tensor([-4 * math.log(2)]))
    big = torch.tensor([[-30.0, 30.0, 0.0, 30.0]])                         # confident and right
    assert log_likelihood(x, big, "bernoulli").item() == pytest.approx(-math.log(2), abs=1e-6)
    # Gaussian at its mean: -D/2 log(2 pi sigma^2); one unit away adds -1/(2 sigma^2) per pixel
    assert log_likelihood(x, x, "gaussian", 0.0).item() == pytest.approx(-2 * math.log(2 * math.pi), abs=1e-5)
    assert log_likelihood(x, x + 1, "gaussian", math.log(0.25)).item() == pytest.approx(
        -2 * math.log(2 * math.pi * 0.25) - 4 * 2.0, abs=1e-4)
    assert log_likelihood(torch.zeros(5, 3, 4, 4), torch.zeros(5, 3, 4, 4), "bernoulli").shape == (5,)


def test_elbo_is_log_likelihood_minus_beta_kl():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 32, 32, generator=g) * 2 - 1
    out, mu, logvar = torch.randn(3, 1, 32, 32, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    value = elbo(x, out, mu, logvar, "bernoulli", beta=2.5)
    assert value.shape == (3,)
    assert torch.allclose(value, log_likelihood(x, out, "bernoulli") - 2.5 * kl_normal(mu, logvar))


def test_binarize_draws_bernoulli_pixels():
    x01 = torch.full((200, 100), 0.3)
    b = binarize(x01, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) == {0.0, 1.0} and b.dtype == torch.float32
    assert abs(b.mean().item() - 0.3) < 5 * math.sqrt(0.21 / b.numel())
    assert torch.equal(b, binarize(x01, torch.Generator().manual_seed(0)))
    assert torch.equal(binarize(torch.tensor([0.0, 1.0])), torch.tensor([0.0, 1.0]))


# ---- the IWAE bound on an exactly solvable model ---------------------------------------------

class LinearGaussian(nn.Module):
    """Probabilistic PCA, z ~ N(0, I_d), x = W z + b + N(0, sigma^2 I_D), with encode/decode/log_likelihood
    for iwae_log_px. log p(x) = log N(x; b, W W^T + sigma^2 I) in closed form, and the exact posterior is
    N(M^-1 W^T (x - b), sigma^2 M^-1) with M = W^T W + sigma^2 I (Tipping & Bishop 1999). W has orthogonal
    columns, so M and the posterior covariance are diagonal and a diagonal q can equal the posterior.
    ``q_shift`` and ``q_logvar_shift`` move q away from the posterior."""

    def __init__(self, D: int = 6, d: int = 2, sigma2: float = 0.3, q_shift: float = 0.0, q_logvar_shift: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        Q, _ = torch.linalg.qr(torch.randn(D, d, generator=g, dtype=torch.float64))
        self.W = Q * torch.tensor([2.0, 0.7], dtype=torch.float64)        # (D, d), orthogonal columns
        self.b = torch.randn(D, generator=g, dtype=torch.float64)
        self.sigma2, self.q_shift, self.q_logvar_shift = sigma2, q_shift, q_logvar_shift

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.sigma2 * torch.eye(len(self.b), dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def encode(self, x, labels=None):
        m = (self.W ** 2).sum(0) + self.sigma2                             # diag of M, (d,)
        mu = (x - self.b) @ self.W / m                                     # (B, d)
        logvar = torch.log(self.sigma2 / m).expand_as(mu)
        return mu + self.q_shift, logvar + self.q_logvar_shift

    def decode(self, z, labels=None):
        return z @ self.W.T + self.b                                       # (B, D)

    def log_likelihood(self, x, decoder_output):
        return log_likelihood(x, decoder_output, "gaussian", math.log(self.sigma2))


def _ppca_data(model: LinearGaussian, n: int = 4) -> torch.Tensor:
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return model.decode(z) + 0.5 * torch.randn(n, len(model.b), generator=torch.Generator().manual_seed(2), dtype=torch.float64)


@pytest.mark.parametrize("k", [1, 3, 50])
def test_iwae_with_the_exact_posterior_is_exactly_log_px(k):
    model = LinearGaussian()
    x = _ppca_data(model)
    estimate = iwae_log_px(model, x, k, generator=torch.Generator().manual_seed(k), batch=7)
    assert estimate.dtype == torch.float64
    assert torch.allclose(estimate, model.exact_log_px(x), atol=1e-9)       # every weight equals p(x)


def test_iwae_rises_with_k_and_stays_below_log_px():
    """A q that is too narrow and off-centre. Each estimate is averaged over R = 400 independent repeats
    of 4 points; the comparisons allow 3 standard errors of the difference."""
    model = LinearGaussian(q_shift=0.4, q_logvar_shift=-1.0)
    x = _ppca_data(model)
    exact = model.exact_log_px(x).mean().item()
    R, ks, g = 400, (1, 4, 16, 64), torch.Generator().manual_seed(0)
    runs = {k: iwae_log_px(model, x.repeat(R, 1), k, generator=g).view(R, 4).mean(1) for k in ks}   # (R,) each
    means = {k: runs[k].mean().item() for k in ks}
    se = {k: runs[k].std().item() / math.sqrt(R) for k in ks}
    # k = 1 is the ELBO: log p(x) - KL(q || posterior), in closed form for Gaussians
    mu_q, lv_q = model.encode(x)
    mu_p, lv_p = LinearGaussian().encode(x)
    kl_post = 0.5 * ((lv_p - lv_q) + (lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp() - 1).sum(1)
    assert means[1] == pytest.approx(exact - kl_post.mean().item(), abs=3 * se[1])
    for small, large in zip(ks, ks[1:]):
        assert means[large] > means[small] - 3 * math.hypot(se[small], se[large]), means
    for k in ks:
        assert means[k] < exact + 3 * se[k], (means, exact)
    assert exact - means[64] < 0.5 * (exact - means[1])                    # the gap (1.7 nats at k = 1) shrinks


def test_iwae_bound_is_a_stable_logsumexp():
    log_w = torch.tensor([[-1000.0, 0.0], [-1000.0 + math.log(3), 0.0]])  # (k=2, B=2)
    out = iwae_bound(log_w, torch.zeros(2, 2), torch.zeros(2, 2))
    assert torch.allclose(out, torch.tensor([-1000.0 + math.log(2), 0.0]))
    with pytest.raises(ValueError, match=r"\(k, B\)"):
        iwae_bound(torch.zeros(3), torch.zeros(3), torch.zeros(3))


def test_iwae_with_one_sample_is_the_models_elbo_with_the_same_noise():
    torch.manual_seed(0)
    model = VAE(CONFIGS["conditional"]).eval()
    x, labels = _images(model.cfg, 3), _labels(model.cfg, 3)
    one = iwae_log_px(model, x, 1, labels, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out, mu, logvar = model(x, labels, generator=torch.Generator().manual_seed(3))
        ref = elbo(x, out, mu, logvar, "bernoulli")
    # one-sample ELBO with the KL as a sample of log q - log p instead of in closed form: equal in expectation only
    assert one.shape == (3,) and torch.isfinite(one).all()
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    kl_sample = log_normal(z, mu, logvar) - log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    assert torch.allclose(one, ref + kl_normal(mu, logvar) - kl_sample, atol=1e-3)


# ---- models ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes_for_every_config(name):
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    model = VAE(cfg)
    x, labels = _images(cfg, 5), _labels(cfg, 5)
    out, mu, logvar = model(x, labels)
    assert out.shape == (5, cfg.img_channels, 32, 32) and mu.shape == logvar.shape == (5, cfg.latent_dim)
    assert model.decode(mu, labels).shape == out.shape
    assert elbo(x, out, mu, logvar, cfg.likelihood, cfg.beta).shape == (5,)
    assert iwae_log_px(model, x, 5, labels, batch=2).shape == (5,)
    images = sample(model, 6, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, cfg.img_channels, 32, 32) and images.abs().max() <= 1.0
    assert (model.x_logvar is None) == (cfg.likelihood == "bernoulli")
    learned = cfg.likelihood == "gaussian" and cfg.x_logvar is None
    assert any(p is model.x_logvar for p in model.parameters()) == learned


def test_default_config():
    cfg = VAEConfig()
    assert (cfg.latent_dim, cfg.base_channels, cfg.img_channels, cfg.likelihood, cfg.num_classes, cfg.beta) == \
        (16, 32, 1, "bernoulli", 0, 1.0)
    assert VAE(cfg)(torch.zeros(2, 1, 32, 32))[0].shape == (2, 1, 32, 32)


def test_conditional_vae_uses_the_labels_in_encoder_and_decoder():
    torch.manual_seed(0)
    model = VAE(CONFIGS["conditional"])
    x = _images(model.cfg, 2)
    mu_a, _ = model.encode(x, torch.tensor([0, 0]))
    mu_b, _ = model.encode(x, torch.tensor([3, 3]))
    assert not torch.allclose(mu_a, mu_b)
    z = torch.zeros(2, 8)
    assert not torch.allclose(model.decode(z, torch.tensor([0, 0])), model.decode(z, torch.tensor([3, 3])))
    assert model.encoder.blocks[0].in_channels == 1 + 10 and model.decoder.project.in_features == 8 + 10


def test_sample_maps_bernoulli_probabilities_to_the_image_range():
    torch.manual_seed(0)
    model = VAE(TINY)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(5))
    expected = torch.sigmoid(model.decode(z)) * 2 - 1
    assert torch.allclose(sample(model, 4, generator=torch.Generator().manual_seed(5)), expected)


@pytest.fixture(scope="module")
def digits16():
    data = mnist5k("train")
    return data.x[::250][:16], data.labels[::250][:16]                    # 16 digits, every class


@pytest.mark.parametrize("name", ["bernoulli", "conditional"])
def test_overfits_one_batch_of_real_digits(name, digits16):
    """150 Adam steps on 16 fixed digits: -ELBO falls from 600-700 nats (logits near 0 cost log 2 per
    pixel) to under a third, and the code is used (KL > 1 nat): not just one average digit."""
    x, labels = digits16
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    model = VAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    logs = [vae_step(model, opt, x, labels if cfg.num_classes else None, g) for _ in range(150)]
    assert logs[0]["loss"] > 500
    assert logs[-1]["loss"] < logs[0]["loss"] / 3, logs[-1]
    assert logs[-1]["kl"] > 1.0 and set(logs[-1]) == {"loss", "elbo", "recon", "kl"}


def test_gaussian_decoder_learns_its_variance(digits16):
    x, _ = digits16
    torch.manual_seed(0)
    model = VAE(CONFIGS["gaussian_learned"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    logs = [vae_step(model, opt, x, generator=torch.Generator().manual_seed(i)) for i in range(60)]
    assert model.x_logvar.item() < -0.1                                    # sigma shrinks below its start, 1
    assert logs[-1]["loss"] < 0.8 * logs[0]["loss"]


def test_beta_weights_only_the_kl():
    cfg = CONFIGS["bernoulli"]
    torch.manual_seed(0)
    model = VAE(cfg)
    x = _images(cfg, 4)
    logs = {}
    for beta in (1.0, 4.0):
        m = VAE(dataclasses.replace(cfg, beta=beta))
        m.load_state_dict(model.state_dict())
        logs[beta] = vae_step(m, torch.optim.SGD(m.parameters(), lr=0.0), x, generator=torch.Generator().manual_seed(1))
    assert logs[4.0]["recon"] == pytest.approx(logs[1.0]["recon"]) and logs[4.0]["elbo"] == pytest.approx(logs[1.0]["elbo"])
    assert logs[4.0]["loss"] == pytest.approx(logs[4.0]["recon"] + 4.0 * logs[4.0]["kl"], rel=1e-5)


def test_seeded_draws_leave_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    model = VAE(TINY)                                                     # parameter init does use the global RNG ...
    torch.manual_seed(5)
    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    reparameterize(mu, logvar, torch.Generator().manual_seed(0))         # ... but a seeded draw must not
    sample(model, 2, generator=torch.Generator().manual_seed(0))
    iwae_log_px(model, _images(TINY, 2), 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(2), expected)


# ---- input errors ----------------------------------------------------------------------------

def test_config_errors():
    with pytest.raises(ValueError, match="likelihood must be 'bernoulli' or 'gaussian', got 'poisson'"):
        VAEConfig(likelihood="poisson")
    with pytest.raises(ValueError, match="latent_dim must be an int >= 1, got 0"):
        VAEConfig(latent_dim=0)
    with pytest.raises(ValueError, match="img_size must be 32"):
        VAEConfig(img_size=28)
    with pytest.raises(ValueError, match="num_classes"):
        VAEConfig(num_classes=-2)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        VAEConfig(beta=-1.0)
    with pytest.raises(ValueError, match="x_logvar must be None.*likelihood='bernoulli'"):
        VAEConfig(x_logvar=-2.0)


def test_input_errors():
    model, cond = VAE(TINY), VAE(CONFIGS["conditional"])
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 32, 32\) with B >= 1, got \(2, 1, 28, 28\)"):
        model(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        model.decode(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="labels are required"):
        cond(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="labels must be None"):
        model(torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="mu and logvar must have the same shape"):
        kl_normal(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mu must be a float tensor"):
        reparameterize(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="x and decoder_output must have the same shape"):
        log_likelihood(torch.zeros(2, 1, 32, 32), torch.zeros(2, 1, 28, 28), "bernoulli")
    with pytest.raises(ValueError, match="likelihood must be"):
        log_likelihood(torch.zeros(2, 4), torch.zeros(2, 4), "laplace")
    with pytest.raises(ValueError, match="x_logvar must be a scalar"):
        log_likelihood(torch.zeros(2, 4), torch.zeros(2, 4), "gaussian", torch.zeros(4))
    with pytest.raises(ValueError, match="beta must be a number >= 0"):
        elbo(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2, 3), "bernoulli", beta=-1)
    with pytest.raises(ValueError, match="same batch size"):
        elbo(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(3, 3), torch.zeros(3, 3), "bernoulli")
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        iwae_log_px(model, torch.zeros(2, 1, 32, 32), 0)
    with pytest.raises(ValueError, match="batch must be an int >= 1"):
        iwae_log_px(model, torch.zeros(2, 1, 32, 32), 3, batch=0)
    with pytest.raises(ValueError, match="x01 must have values in"):
        binarize(torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        sample(model, 0)


def test_module_reads_top_down_and_cites_its_papers():
    doc = vae.model.__doc__  # the model file a learner reads after lesson 06
    for paper in ("Kingma & Welling 2014", "Rezende et al. 2014", "Burda et al. 2015", "Higgins et al. 2017",
                  "Sohn et al. 2015"):
        assert paper in doc
