"""Image editing with the course's StyleGAN (lesson 10): inversion, edit directions, restoration.

- ``inversion``: the codes in Z, W or W+ whose images are nearest to a target (StyleGAN2's projector);
- ``directions``: edit directions from labels (InterFaceGAN), PCA of W (GANSpace) or the weights (SeFa);
- ``attributes``: stroke thickness and slant measured from the pixels, the class from the classifier;
- ``restoration``: inpainting and super-resolution by inversion, and their classical baselines;
- ``encoder``: an encoder x -> W+ (pSp / e4e) and its training step;
- ``training``: the encoder's run (``python -m course_lib.train encoder``): ``EncoderTrainConfig``,
  ``build_run``, the ``Inverter`` (encoder + the generator it inverts) that the run ships.

Importing the package has no side effects; it re-exports the encoder family's names for ``course_lib.train``.
"""

from course_lib.editing.encoder import Encoder, EncoderConfig, delta_penalty, encode, encoder_step
from course_lib.editing.training import (EncoderTrainConfig, Inverter, InverterConfig, build_run, build_sampler,
                                         default_config, load_stylegan, reconstruction_metrics, sample_arrays)
