"""The pix2pix family of lesson 07: paired image-to-image translation.

- ``course_lib.pix2pix.model``: the U-Net G, the PatchGAN D and its receptive field, the losses.
- ``course_lib.pix2pix.training``: ``Pix2PixTrainConfig``, the step function ``pix2pix_step``,
  calibration, evaluation on held-out pairs and ``build_run`` (``python -m course_lib.train pix2pix``).
"""

from course_lib.pix2pix.model import (NORMS, RECONSTRUCTIONS, PatchDiscriminator, Pix2PixConfig, UNet,
                                      check_pair_images, init_weights_, least_squares_scale, norm_layer,
                                      patch_bce, patch_layers, patch_output_size, pix2pix_d_loss, pix2pix_g_loss,
                                      receptive_field)
from course_lib.pix2pix.training import (GRID_PAIRS, Pix2PixTrainConfig, build_run, build_sampler,
                                         calibrate_pix2pix, default_config, evaluate_pix2pix, evaluate_test_pairs,
                                         pix2pix_config, pix2pix_step, sample_arrays)
