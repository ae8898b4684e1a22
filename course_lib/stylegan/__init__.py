"""The StyleGAN family of lesson 09: a style-based generator and its discriminator, small.

- ``course_lib.stylegan.layers``: equalised layers, modulated convolution, AdaIN, noise inputs.
- ``course_lib.stylegan.model``: the config, mapping and synthesis networks, truncation and style
  mixing, the residual D with minibatch std.
- ``course_lib.stylegan.training``: ``StyleGANTrainConfig``, style mixing, ``stylegan_step`` with lazy
  R1 and ``build_run`` (``python -m course_lib.train stylegan``).
- ``course_lib.stylegan.analysis``: the truncation sweep, path lengths in Z and W, droplet peaks.
"""

from course_lib.stylegan.layers import (NOISE_MODES, STYLE_MODES, EqualConv2d, EqualLinear, NoiseInjection, StyleConv,
                                        ToRGB, adain, modulate, modulated_conv2d, modulated_conv2d_reference)
from course_lib.stylegan.model import (Discriminator, DiscriminatorBlock, Generator, MappingNetwork, StyleGANConfig,
                                       SynthesisNetwork, minibatch_std, mix_styles)
from course_lib.stylegan.training import (StyleGANTrainConfig, build_run, build_sampler, default_config, lazy_adam,
                                          sample_arrays, sample_ws, stylegan_config, stylegan_step)
