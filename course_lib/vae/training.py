"""Training the VAE family (vae, cvae): its run config, its step function, its test likelihood and its run.

``VAETrainConfig`` extends the shared ``RunConfig`` with the VAE's architecture, objective and Adam
settings; ``vae_step`` is one update of encoder and decoder on the loss -mean(ELBO_beta) of a batch;
``evaluate_likelihood`` gives metrics.json's -ELBO and -IWAE_k of test images in nats.
``build_run(cfg, device)`` puts it together for ``course_lib.train``: data, the VAE, Adam, the batch
sampler (dynamically binarised for the Bernoulli likelihood) and the step closure, seeded by ``cfg.seed``;
under ``torchrun`` the step gets the VAE in ``DistributedDataParallel`` and this rank's share of every
batch (``course_lib.run.distributed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from course_lib.data import ShuffledBatches, load_dataset
from course_lib.device import seed_everything
from course_lib.run import (Run, RunConfig, adam, architecture_of, autocast, check_ints, check_numbers, distributed,
                            check_images, fixed_noise, generated_arrays, make_config, sample_metrics, training_images)
from course_lib.training import TrainState
from course_lib.vae.model import LIKELIHOODS, VAE, VAEConfig, binarize, iwae_log_px, kl_normal


# ----------------------------------------------------------------------------------------------
# The run config
# ----------------------------------------------------------------------------------------------

@dataclass
class VAETrainConfig(RunConfig):
    """A run of vae or cvae (class-conditional: needs a labelled dataset) on 32x32 images."""

    model: str = "vae"                # vae or cvae
    latent_dim: int = 16              # size of z (VAEConfig.latent_dim)
    base_channels: int = 32           # W: network width (VAEConfig.base_channels)
    likelihood: str = "bernoulli"     # p(x|z): "bernoulli" (dynamically binarised images) or "gaussian" (grey)
    beta: float = 1.0                 # weight of the KL term (beta-VAE; 1 is the ELBO)
    lr_vae: float = 1e-3              # Adam learning rate of encoder and decoder
    beta1: float = 0.9                # Adam beta1 (Kingma & Ba 2015's default)
    beta2: float = 0.999              # Adam beta2
    eval_test_digits: int = 1000      # test images for test_neg_elbo and test_iwae in metrics.json (0: skip them)
    iwae_k: int = 100                 # importance samples per test image for test_iwae

    MODELS: ClassVar[dict[str, str]] = {
        "vae": "the variational autoencoder of lesson 06",
        "cvae": "the conditional VAE of lesson 06: encoder and decoder read the label"}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"likelihood": LIKELIHOODS}
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("lr_vae",)
    AUTO_BF16: ClassVar[dict[str, tuple[str, ...]]] = {"vae": ("cpu",), "cvae": ("cpu",)}  # measured: README, Benchmark
    RESUMABLE: ClassVar[tuple[str, ...]] = (*RunConfig.RESUMABLE, "iwae_k", "eval_test_digits")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, "latent_dim", "base_channels", "iwae_k")
        check_ints(self, "eval_test_digits", at_least=0)
        check_numbers(self, "beta1", "beta2", below_one=True)
        check_numbers(self, "beta")


def default_config(model: str = "vae", **overrides: Any) -> VAETrainConfig:
    """The recommended settings of ``model`` (vae or cvae), with ``overrides`` applied: Adam's own defaults
    (lr 1e-3, betas (0.9, 0.999); Kingma & Ba 2015), the ELBO (beta 1), a 16-d latent, Bernoulli pixels."""
    if model not in VAETrainConfig.MODELS:
        raise ValueError(f"model must be one of {tuple(VAETrainConfig.MODELS)}, got {model!r}")
    return make_config(VAETrainConfig, {"model": model}, overrides)


def vae_config(cfg: VAETrainConfig, img_channels: int) -> VAEConfig:
    """The architecture a run of ``cfg`` trains on images with ``img_channels`` channels."""
    return VAEConfig(latent_dim=cfg.latent_dim, img_channels=img_channels, base_channels=cfg.base_channels,
                     likelihood=cfg.likelihood, num_classes=10 if cfg.model == "cvae" else 0, beta=cfg.beta)


# ----------------------------------------------------------------------------------------------
# The step function and the test likelihood
# ----------------------------------------------------------------------------------------------

def vae_step(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, labels: torch.Tensor | None = None,
             generator: torch.Generator | None = None, amp: bool = False) -> dict[str, float]:
    """One optimiser step on the loss -mean(ELBO_beta) of a batch, with beta = ``model.cfg.beta``.

    Args:
        model, optimizer: the VAE and its optimiser (built by the caller).
        x: (B, C, 32, 32) batch in [-1, 1] (binarise it beforehand for Bernoulli nats).
        labels: (B,) int64 labels for a conditional VAE, else None.
        generator: optional ``torch.Generator`` for the reparameterisation noise.
        amp: bf16 autocast of the networks, CUDA or CPU (the likelihood and the KL are computed in float32).

    Returns:
        floats ``loss`` (-ELBO_beta), ``elbo`` (beta = 1), ``recon`` (-log p(x|z)), ``kl``, batch means in nats.
    """
    check_images(x, model.cfg)
    with autocast(amp, x.device):
        decoder_output, mu, logvar = model(x, labels, generator)
    log_px = model.log_likelihood(x, decoder_output)                               # (B,)
    kl = kl_normal(mu.float(), logvar.float())                                     # (B,)
    loss = -(log_px - model.cfg.beta * kl).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "elbo": (log_px - kl).mean().item(), "recon": -log_px.mean().item(),
            "kl": kl.mean().item()}


TEST_SEED = 0  # binarisation and z draws of the test likelihood: the same for every run, so runs compare


@torch.no_grad()
def evaluate_likelihood(model: VAE, dataset: str = "mnist5k", n_images: int = 1000, k: int = 100,
                        seed: int = TEST_SEED, batch_size: int = 100) -> dict[str, float | int | str]:
    """-ELBO and -IWAE_k of a dataset's test images, mean nats per image, in eval mode.

    Bernoulli likelihood: each test image is binarised once (the generator seeded with ``seed``),
    and both numbers are computed on the same binary images: exact nats, close to the literature's
    dynamically binarised MNIST (the 2-pixel frame of the 32x32 digits is always 0 and costs ~0 nats).
    Gaussian likelihood: densities of the grey images in [-1, 1], which are not comparable with
    binarised nats (a density can exceed 1, so these can even be negative). The ELBO uses beta = 1.

    Args:
        model: a ``VAE`` (conditional ones get the test labels).
        dataset: a built-in dataset of 32x32 images; its "test" split is used.
        n_images: how many test images, evenly spaced through the split (it is ordered by class).
        k: importance samples per image of the IWAE bound (``vae.iwae_log_px``), >= 1.
        seed: seeds the binarisation and every z draw, so the numbers are reproducible.
        batch_size: test images per forward pass (the IWAE decodes ~2,000 images at a time).

    Returns:
        ``test_neg_elbo`` (nats, one z per image), ``test_iwae`` (-IWAE_k in nats: an estimate of
        -log p(x) from above, below test_neg_elbo in expectation), ``test_images``, ``iwae_k`` and
        ``test_likelihood`` (what the numbers are).
    """
    test = load_dataset(dataset, "test")
    n = min(n_images, len(test))
    if n < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images!r}")
    index = torch.arange(n) * len(test) // n  # (n,) evenly spaced
    x_all, y_all = test.x[index], (test.labels[index] if model.cfg.num_classes else None)
    bernoulli = model.cfg.likelihood == "bernoulli"
    device = next(model.parameters()).device
    noise = torch.Generator().manual_seed(seed)
    neg_elbo, neg_iwae = [], []
    was_training = model.training
    model.eval()
    try:
        for i in range(0, n, batch_size):
            x = x_all[i:i + batch_size]                                      # (B, C, 32, 32)
            if bernoulli:
                x = 2 * binarize(((x + 1) / 2).clamp(0, 1), noise) - 1
            x = x.to(device)
            y = y_all[i:i + batch_size].to(device) if y_all is not None else None
            decoder_output, mu, logvar = model(x, y, noise)
            neg_elbo.append(-(model.log_likelihood(x, decoder_output) - kl_normal(mu, logvar)))  # (B,)
            neg_iwae.append(-iwae_log_px(model, x, k, y, generator=noise, batch=max(1, 2000 // len(x))))
    finally:
        model.train(was_training)
    what = ("bernoulli: nats of binarised test images" if bernoulli else
            "gaussian: densities of grey test images, not comparable with binarised nats")
    return {"test_neg_elbo": torch.cat(neg_elbo).mean().item(), "test_iwae": torch.cat(neg_iwae).mean().item(),
            "test_images": n, "iwae_k": k, "test_likelihood": what}


# ----------------------------------------------------------------------------------------------
# The run (course_lib.train builds a run of vae or cvae with this)
# ----------------------------------------------------------------------------------------------

def build_run(cfg: VAETrainConfig, device: torch.device | str = "cpu") -> Run:
    """Data, the VAE, Adam, batch sampler and step closure of a run, all seeded by ``cfg.seed``."""
    device = torch.device(device)
    amp = cfg.bf16(device)  # bf16 autocast of the forward passes (--precision), refused early where unsupported
    channels_last = cfg.use_channels_last(device)  # --channels-last; by default on with bf16
    conditional = cfg.model == "cvae"
    data = training_images(cfg, conditional)  # checked before anything is built
    generator = seed_everything(cfg.seed)  # seeds the initialisation too
    labels = data.labels if conditional else None
    batches = ShuffledBatches(data.x, labels, batch_size=cfg.batch_size,
                              generator=distributed.batch_generator(generator, cfg.seed), **distributed.shard())
    vae = VAE(vae_config(cfg, img_channels=data.x.shape[1])).to(device)
    if channels_last:
        vae = vae.to(memory_format=torch.channels_last)
    optimizers = {"vae": adam(vae, cfg.lr_vae, (cfg.beta1, cfg.beta2), fused=device.type == "cuda")}
    vae_train = distributed.wrap(vae)  # several processes: gradients averaged across them

    def step() -> dict[str, float]:
        batch = next(batches)
        x, y = batch if labels is not None else (batch, None)
        x, y = x.to(device, non_blocking=True), (y.to(device) if y is not None else None)
        if cfg.likelihood == "bernoulli":  # a fresh binary draw of every pixel each time a batch is used
            x = 2 * binarize(((x + 1) / 2).clamp(0, 1), generator) - 1   # [-1, 1] -> {0, 1} -> {-1, 1}
        return vae_step(vae_train, optimizers["vae"], x, y, generator=generator, amp=amp)

    def evaluate() -> dict[str, Any]:
        scores = sample_metrics(vae, cfg.eval_samples, cfg.seed)
        if cfg.eval_test_digits:
            scores.update(evaluate_likelihood(vae, cfg.dataset, cfg.eval_test_digits, k=cfg.iwae_k))
        return scores

    state = TrainState(models={"vae": vae}, optimizers=optimizers, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    fixed_z, fixed_labels = fixed_noise(cfg, cfg.latent_dim, conditional, device)
    return Run(cfg, state, step, vae, grid=lambda: vae.generate(fixed_z, fixed_labels), evaluate=evaluate,
               images_per_step=cfg.batch_size, fixed_z=fixed_z, fixed_labels=fixed_labels)


def build_sampler(architecture: dict[str, Any], where: str = "the weights file") -> VAE:
    """The (untrained) VAE that a run's generator.safetensors holds, from its architecture."""
    return VAE(architecture_of(VAEConfig, architecture, where))


def sample_arrays(model: VAE, train: dict[str, Any], n: int, *, seed: int = 0,
                  chunk: int = 500) -> Iterator[dict[str, torch.Tensor]]:
    """``python -m course_lib.sample``'s arrays: n decoded prior draws (``arr_0``), with balanced ``labels`` for a cVAE."""
    return generated_arrays(model, n, seed, chunk)
