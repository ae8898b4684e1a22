"""The CycleGAN family of lesson 08: unpaired translation between handwritten and printed digits.

- ``course_lib.cyclegan.model``: the ResNet generators, the pair, the losses, the image history pool.
- ``course_lib.cyclegan.training``: ``CycleGANTrainConfig``, the step function ``cyclegan_step``,
  evaluation and ``build_run`` (``python -m course_lib.train cyclegan``).
"""

from course_lib.cyclegan.model import (UPSAMPLES, CycleGAN, CycleGANConfig, ImagePool, ResidualBlock, ResnetGenerator,
                                       cycle_loss, discriminators, identity_loss, lsgan_d_loss, lsgan_g_loss, up_stage)
from course_lib.cyclegan.training import (CycleGANTrainConfig, TwoStreams, build_run, build_sampler, cyclegan_config,
                                          cyclegan_step, default_config, evaluate_cyclegan, sample_arrays)
