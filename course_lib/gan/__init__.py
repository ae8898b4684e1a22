"""The DCGAN family of lessons 02, 04 and 05: dcgan, cgan (class-conditional) and wgan_gp.

- ``course_lib.gan.model``: G, D, conditional batch norm, the DCGAN initialisation, sampling.
- ``course_lib.gan.training``: ``GANTrainConfig``, the step functions ``gan_step`` and
  ``wgan_gp_step``, and ``build_run`` (what ``python -m course_lib.train dcgan`` runs).
"""

from course_lib.gan.model import (CONDITIONINGS, ConditionalBatchNorm2d, DCGANConfig, Discriminator, Generator,
                                  balanced_labels, check_images, check_labels, dcgan_init_, down_block, sample,
                                  sample_z, up_block, zero_init_)
from course_lib.gan.training import (LOSSES, PRESETS, GANTrainConfig, build_run, build_sampler, dcgan_config,
                                     default_config, gan_step, sample_arrays, wgan_gp_step)
