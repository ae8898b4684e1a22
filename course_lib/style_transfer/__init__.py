"""Neural style transfer (lesson 11): Gram matrices, texture synthesis, optimisation of pixels and AdaIN.

- ``images``: reading and writing PNG/JPEG, resizing, the luminance/chroma (YIQ) split;
- ``features``: feature networks (random multi-scale filters, a random VGG-shaped net, the course's digit
  classifier, torchvision's VGG-19 from a local weights file), each returning maps of named layers;
- ``losses``: the Gram matrix (normalisation stated), content, style and total-variation losses;
- ``gatys``: style transfer and texture synthesis by optimising pixels (L-BFGS or Adam, coarse to fine,
  luminance-only colour preservation);
- ``adain``: adaptive instance normalisation (lesson 09's ``stylegan.adain``), the alpha blend, its losses;
- ``model``: ``AdaINNet``: a fixed random encoder, AdaIN and a decoder;
- ``training``: the decoder's run (``python -m course_lib.train adain``): ``AdaINTrainConfig``, ``build_run``.

Importing the package has no side effects; it re-exports the adain family's names for ``course_lib.train``.
"""

from course_lib.style_transfer.adain import adaptive_instance_norm, blend, channel_statistics, statistics_loss
from course_lib.style_transfer.features import (FEATURES, ClassifierFeatures, FeatureNet, RandomMultiScale, RandomVGG,
                                                VGG19Features, build_features)
from course_lib.style_transfer.gatys import GatysConfig, Transfer, stylize
from course_lib.style_transfer.losses import content_loss, gram_matrix, style_loss, total_variation
from course_lib.style_transfer.model import AdaINConfig, AdaINNet, Decoder
from course_lib.style_transfer.training import (AdaINTrainConfig, adain_step, build_run, build_sampler, default_config,
                                                sample_arrays, transfer_metrics)
