"""Graded checks for lesson 07 (pix2pix).

The checks pin the learner's code to ``course_lib.pix2pix`` and ``course_lib.image_quality``
(Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"): a U-Net
decoder stage that upsamples and then concatenates the encoder's skip along the channel axis,
[upsampled, skip] (Ronneberger et al. 2015); the receptive field and the output grid of a
PatchGAN from its (kernel, stride) stack; the generator's loss, the non-saturating BCE over all
patch logits plus lambda_l1 times the mean absolute error; the conditional discriminator's loss,
0.5 * (BCE(D(x, y), 1) + BCE(D(x, G(x).detach()), 0)); and the PSNR of each image on [0, 1].

The classic mistakes they recognise: a skip added instead of concatenated, concatenated along the
batch or a spatial axis, put first, ignored, or joined before upsampling; a receptive field
computed forwards, without the strides' product or off by one, an output size without the
padding or the +1, with ceil or true division; an L2 term where L1 is meant, the saturating or
least-squares GAN term, lambda on the wrong term or hard-coded, sums instead of means, wrong
signs, y_real in the GAN term, log(sigmoid) that overflows; a discriminator that sees y without
its condition x, the pair in the wrong order, no detach (gradients reach G), no 0.5, swapped
labels, sigmoid then binary_cross_entropy (clamped at saturated logits); a PSNR on [-1, 1], over the whole batch, with 20 log10, ln or a peak of 255.

The package: ``references`` (the reference implementations and a helper), ``architecture`` (07.1-07.2) and
``losses`` (07.3-07.5).
"""

from __future__ import annotations

from course_lib.checks.lesson07.architecture import check_patchgan_geometry, check_up_with_skip
from course_lib.checks.lesson07.losses import check_d_loss, check_g_loss, check_psnr
from course_lib.checks.lesson07.references import (
    reference_d_loss, reference_g_loss, reference_patch_output_size, reference_psnr, reference_receptive_field,
    reference_up_with_skip,
)

__all__ = [
    "EXERCISES", "HINTS", "check_d_loss", "check_g_loss", "check_patchgan_geometry", "check_psnr",
    "check_up_with_skip", "reference_d_loss", "reference_g_loss", "reference_patch_output_size", "reference_psnr",
    "reference_receptive_field", "reference_up_with_skip",
]

EXERCISES = [check_up_with_skip, check_patchgan_geometry, check_g_loss, check_d_loss, check_psnr]

HINTS = {
    "07.1": ("Two steps: upsample h with the module you are given, then put the skip next to the result.",
             "Next to means concatenated along the channel axis (dim 1), not added: the output has c_up + c_skip "
             "channels.",
             "Order matters: torch.cat with the upsampled map first and the skip second, as course_lib.pix2pix.UNet "
             "does."),
    "07.2": ("Receptive field: start from one output unit, r = 1, and walk through the layers from the last to the "
             "first, growing r with each layer's kernel and stride.",
             "Each layer turns a window of r of its output units into r - 1 gaps of stride input pixels plus one "
             "kernel. Iterate over reversed(layers): the forward order is wrong as soon as the strides differ.",
             "Output size: go forward from img_size and apply (n + 2 - kernel) // stride + 1 layer by layer "
             "(padding 1 on each side, floor division)."),
    "07.3": ("Two terms: the GAN term asks D to call every patch of the fake pairs real; the L1 term pulls G(x) "
             "towards y pixel by pixel.",
             "GAN term: F.binary_cross_entropy_with_logits of fake_logits against ones of the same shape "
             "(torch.ones_like), a mean over all B x P x P logits.",
             "L1 term: the mean of |y_fake - y_real| over every pixel and channel of the batch, times lambda_l1. "
             "Add the two and keep the graph (no .detach(), no .item())."),
    "07.4": ("D never sees an output alone: pair it with the condition, torch.cat along dim 1 with x first, for the "
             "real and for the generated output.",
             "Detach y_fake before pairing it, so that D's loss sends no gradient into G.",
             "BCE with logits: the real pairs against ones, the fake pairs against zeros, each averaged over its "
             "patch logits; add them and halve the sum."),
    "07.5": ("Map both images to [0, 1] with (t + 1) / 2 first; then the peak is 1 and the PSNR is 10 log10(1 / "
             "MSE).",
             "One MSE per image: average the squared difference over channels and pixels (.flatten(1).mean(1)), "
             "shape (B,), not over the whole batch.",
             "torch.log10 works element-wise. Identical images have MSE 0: +inf is fine, and so is a cap; a large "
             "epsilon added to every MSE would change every value."),
}
