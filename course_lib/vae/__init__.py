"""The VAE family of lesson 06: vae and cvae (class-conditional).

- ``course_lib.vae.model``: encoder, decoder, ELBO, the importance-weighted bound, sampling.
- ``course_lib.vae.training``: ``VAETrainConfig``, the step function ``vae_step``, the test
  likelihood of metrics.json and ``build_run`` (what ``python -m course_lib.train vae`` runs).
"""

from course_lib.vae.model import (LIKELIHOODS, MIN_X_LOGVAR, VAE, Decoder, Encoder, VAEConfig, binarize, elbo,
                                  iwae_bound, iwae_log_px, kl_normal, log_likelihood, log_normal, reparameterize,
                                  sample)
from course_lib.vae.training import (TEST_SEED, VAETrainConfig, build_run, build_sampler, default_config,
                                     evaluate_likelihood, sample_arrays, vae_config, vae_step)
