"""Graded checks for lesson 08 (CycleGAN).

The checks pin the learner's code to ``course_lib.cyclegan`` (Zhu et al. 2017, "Unpaired
Image-to-Image Translation using Cycle-Consistent Adversarial Networks"): the cycle loss
``mean|G_BA(G_AB(a)) - a| + mean|G_AB(G_BA(b)) - b|`` in both directions, the identity loss
``mean|G_AB(b) - b| + mean|G_BA(a) - a|``, the least-squares GAN losses (Mao et al. 2017) with
CycleGAN's 0.5 on D, the history pool of generated images (Shrivastava et al. 2017), and the number
of inputs that touch each output of a transposed convolution, the cause of checkerboard artefacts
(Odena et al. 2016).

The generators in the loss checks are stand-ins: element-wise affine maps ``scale * x + shift``
with trainable scale and shift, chosen so that every classic mistake gives its own number. The
classic mistakes they recognise: a cycle in one direction only, L2 where L1 is meant, the
translation (not the reconstruction) compared with the input, a sum instead of a mean, the
generators swapped or one used twice, a detached translation; an identity loss that feeds a
generator its input domain, or has one term; BCE in place of least squares, swapped targets, the
missing 0.5, a G loss that minimises D(fake)^2; a pool that never (or always) hands back history,
returns the new image where the old one belongs, hands out memory it still holds, keeps G's graph,
forgets to store the new image on a swap, grows beyond its capacity, prefers old or new slots, or
ignores the generator; a transposed convolution counted with an ordinary convolution's formula.

The package: ``references`` (the reference implementations, stand-in generators and the checks' helpers),
``losses`` (08.1-08.3), ``pool`` (08.4) and ``overlap`` (08.5).
"""

from __future__ import annotations

from course_lib.checks.lesson08.losses import check_cycle_loss, check_identity_loss, check_lsgan_losses
from course_lib.checks.lesson08.overlap import check_transposed_conv_overlap
from course_lib.checks.lesson08.pool import check_image_pool
from course_lib.checks.lesson08.references import (
    ReferenceImagePool, reference_cycle_loss, reference_identity_loss, reference_lsgan_d_loss, reference_lsgan_g_loss,
    reference_transposed_conv_overlap,
)

__all__ = [
    "EXERCISES", "HINTS", "ReferenceImagePool", "check_cycle_loss", "check_identity_loss", "check_image_pool",
    "check_lsgan_losses", "check_transposed_conv_overlap", "reference_cycle_loss", "reference_identity_loss",
    "reference_lsgan_d_loss", "reference_lsgan_g_loss", "reference_transposed_conv_overlap",
]

EXERCISES = [check_cycle_loss, check_identity_loss, check_lsgan_losses, check_image_pool, check_transposed_conv_overlap]

HINTS = {
    "08.1": ("The loss compares each round trip with its input: A -> B -> A for x_a, and B -> A -> B for x_b.",
             "G_BA(G_AB(x_a)) reconstructs x_a, G_AB(G_BA(x_b)) reconstructs x_b. Compare each with its own input, "
             "not with the translation.",
             "L1, not squared: F.l1_loss averages |difference| over everything; add the two directions. Keep the "
             "translations in the graph: the cycle trains both generators."),
    "08.2": ("Feed each generator an image that is already in its output domain: G_AB (A -> B) gets x_b, G_BA gets "
             "x_a.",
             "Compare each output with the image it was fed, with an L1 mean (F.l1_loss), and add the two.",
             "No weight inside: the training step multiplies by lambda_id lambda_cyc."),
    "08.3": ("Least squares: regress D's raw scores onto targets, 1 for real and 0 for fake; G wants its fakes "
             "scored 1. No sigmoid, no log.",
             "D: the mean of (real - 1)^2 plus the mean of fake^2, each over its own scores (the batches may differ "
             "in size), then halved.",
             "G: the mean of (fake - 1)^2, without the 1/2."),
    "08.4": ("Handle capacity 0 first (return the batch, detached). Otherwise loop over the detached new images one "
             "at a time, collect the outputs in a list, and torch.stack it at the end.",
             "While the pool holds fewer than capacity images, store a .clone() of the new image and output the new "
             "image. Once it is full, flip the coin for every new image with torch.rand and the given generator.",
             "On heads draw the slot with torch.randint and the same generator, output the stored image of that "
             "slot, then put a clone of the new image in it. Draw the numbers in this order, so a seeded run "
             "repeats the reference."),
    "08.5": ("Count directly: start from zeros of the output's length, and for every input i and every kernel tap j "
             "add 1 to the output position that tap reaches.",
             "Input i's tap j lands on position i * stride - padding + j; the output has (n - 1) * stride - 2 * "
             "padding + kernel + output_padding positions.",
             "Skip the positions outside [0, L_out): the padding crops them. Return an int64 tensor "
             "(dtype=torch.long)."),
}
