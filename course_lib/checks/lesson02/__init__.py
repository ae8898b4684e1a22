"""Graded checks for lesson 02 (DCGAN).

Each check builds tiny seeded models or latent vectors, runs the learner's function next to the
reference in ``course_lib.gan``, ``course_lib.losses`` or ``course_lib.latent``, and names the
classic mistake when it recognises one: a Conv2d where G needs a transposed convolution, a bias
in front of batch norm, LeakyReLU in G, N(0, 1) instead of N(0, 0.02), batch-norm scales at 0, a
missing ``detach`` or ``zero_grad`` in the discriminator step (seen on its second call), fakes made
with G in eval mode, swapped labels, a straight line where the latent walk needs an arc, 0 / 0 for
identical latent vectors and a cosine left unclamped (NaN for identical high-dimensional rows).

Every check runs on a fork of the global random state (``torch.random.fork_rng``) and seeds it
itself, so a check gives the same verdict every time and leaves the learner's notebook's random
numbers as they were.

The package: ``generator`` (02.1-02.2), ``training`` (02.3, with ``reference_d_step``) and
``latent_walk`` (02.4).
"""

from __future__ import annotations

from course_lib.checks.lesson02.generator import check_dcgan_init, check_up_block
from course_lib.checks.lesson02.latent_walk import NAN_HINT, check_slerp
from course_lib.checks.lesson02.training import check_d_step, reference_d_step

__all__ = ["EXERCISES", "HINTS", "NAN_HINT", "check_d_step", "check_dcgan_init", "check_slerp", "check_up_block",
           "reference_d_step"]

EXERCISES = [check_up_block, check_dcgan_init, check_d_step, check_slerp]

HINTS = {
    "02.1": ("Three layers in an nn.Sequential: a transposed convolution that doubles H and W, a batch norm over "
             "its output channels, a ReLU.",
             "A transposed convolution gives H_out = (H - 1) * stride - 2 * padding + kernel: kernel 4, stride 2 "
             "and padding 1 give 2H.",
             "Pass bias=False to nn.ConvTranspose2d (the batch norm right after removes any bias), and give "
             "nn.BatchNorm2d the number of output channels."),
    "02.2": ("Visit every submodule, nested ones too, with module.modules(), and decide by the layer's type with "
             "isinstance.",
             "Conv2d, ConvTranspose2d and Linear: weights from N(0, 0.02), biases 0 when the layer has one (its "
             "bias may be None). Batch norm: its scale (.weight) from N(1, 0.02), its shift (.bias) 0.",
             "nn.init.normal_(tensor, mean, std) and nn.init.zeros_(tensor) change the tensors in place. Return the "
             "module at the end."),
    "02.3": ("Make the fakes, cut them off from G, score the real and the fake batch with D, compute d_loss_bce, "
             "then zero_grad, backward and step with opt_D only.",
             "Detach the fakes before D sees them: D's backward must not reach G. Score the two batches in two "
             "separate calls of D, so that each gets its own batch-norm statistics.",
             "Clear D's gradients before the backward: a gradient left over from an earlier step is added to this "
             "one. Return the loss as a Python float with .item()."),
    "02.4": ("Work row by row: each row pair gets its own angle Omega, the arccos of the two rows' cosine "
             "similarity. Keep it of shape (B, 1) so that it broadcasts against (B, D).",
             "The cosine is the dot product (a sum over the last axis) divided by the product of the two norms. "
             "Clamp it to [-1, 1] before arccos: rounding can push the cosine of identical rows just above 1, where "
             "arccos gives nan.",
             "Compute both the arc formula and the straight line (1 - t) z0 + t z1, and take the line with "
             "torch.where where |sin Omega| is tiny (say below 1e-6)."),
}
