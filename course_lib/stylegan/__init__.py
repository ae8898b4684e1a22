"""The StyleGAN family of lesson 09: a style-based generator and its discriminator, small.

- ``course_lib.stylegan.model``: mapping network, modulated convolution, AdaIN, noise inputs, the
  synthesis network, truncation and style mixing, the residual D with minibatch std.
- ``course_lib.stylegan.training``: ``StyleGANTrainConfig``, style mixing, ``stylegan_step`` with lazy
  R1 and ``build_run`` (``python -m course_lib.train stylegan``).
- ``course_lib.stylegan.analysis``: the truncation sweep, path lengths in Z and W, droplet peaks.
"""

from course_lib.stylegan.model import (NOISE_MODES, STYLE_MODES, Discriminator, DiscriminatorBlock, EqualConv2d,
                                       EqualLinear, Generator, MappingNetwork, NoiseInjection, StyleConv,
                                       StyleGANConfig, SynthesisNetwork, ToRGB, adain, minibatch_std, mix_styles,
                                       modulate, modulated_conv2d, modulated_conv2d_reference)
from course_lib.stylegan.training import (StyleGANTrainConfig, build_run, build_sampler, default_config, lazy_adam,
                                          sample_arrays, sample_ws, stylegan_config, stylegan_step)
