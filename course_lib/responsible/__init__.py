"""Responsible generation (lesson 12): detecting generated images, watermarking them, bias.

- ``spectrum``: the log power spectrum and its radial average; the up-sampling fingerprint;
- ``attacks``: JPEG, blur, resizing, noise and cropping, deterministic, and the ``STANDARD`` settings;
- ``detectors``: a logistic regression on the log spectrum and a small CNN, trained on real images
  against one generator's samples (with Wang et al.'s blur/JPEG augmentation), scored by AP and accuracy;
- ``watermarks``: LSB and DCT marks keyed by an integer, and the binomial test that decides;
- ``learned_watermark``: a HiDDeN-style encoder/decoder, a family of ``python -m course_lib.train watermark``;
- (the data-copying test C_T is a metric of the shared layer: ``course_lib.memorisation``);
- ``bias``: class shares of samples against the training data, a minority class, truncation;
- ``images``: the ``.npz`` files (uint8 NHWC ``arr_0``) that ``python -m course_lib.watermark`` and ``detect`` read.

Importing the package imports none of them and has no side effects; ``course_lib.train``'s family for the learned
watermark is the module ``learned_watermark`` itself.
"""
