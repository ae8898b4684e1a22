"""Graded checks for lesson 09 (style-based generation).

The checks pin the learner's code to ``course_lib.stylegan`` and ``course_lib.losses``: adaptive
instance normalisation (Huang & Belongie 2017; StyleGAN eq. 1, Karras et al. 2019), modulation and
weight demodulation (StyleGAN2 eq. 1 and 3, Karras et al. 2020), the truncation trick in W, the
minibatch standard deviation of ProGAN (Karras et al. 2018), the discriminator loss with the R1
penalty (Mescheder et al. 2018) and style mixing at a crossover layer. Every square root holds its
epsilon (1e-8) inside, as in the papers' code.

Each check compares with a reference on seeded cases, then on edge cases built so that a classic
mistake gives a clearly different number: a constant feature map (variance 0), a nearly constant
one (std 1e-5), a sample whose style is zero or tiny, a group of identical samples (a collapsed
generator), a nonlinear stand-in D on real and fake batches that it scores differently, and a
linear D whose R1 is known in closed form (||w||^2).

The classic mistakes they recognise: statistics over the wrong axes (layer, batch or whole-batch
normalisation in AdaIN; demodulation over the output channels, over the kernel only, over the whole
weight or with the unmodulated weight), the epsilon outside the square root or missing, the
unbiased variance, scale and bias swapped; truncation towards 0 (psi * w, truncating as if in Z)
or the wrong way round; minibatch groups of consecutive samples, one group for the whole batch, the
variance instead of the std, the average taken before the std, the feature prepended; R1 on fake
images (or on both), gamma without its 1/2, a sum over the batch, the gradient of D(x).mean() or of
the loss, the norm instead of its square, no ``create_graph`` (R1 cannot train D), sigmoid then
BCE (lost at saturated logits); style mixing
off by one (<= instead of <), with swapped sources, along the wrong axis, blended, or written into
ws_a in place; and, everywhere, arguments changed in place and results cut off from the graph.

The package: ``references`` (the reference implementations and the checks' helpers), ``styles`` (09.1-09.3)
and ``training`` (09.4-09.6).
"""

from __future__ import annotations

from course_lib.checks.lesson09.references import (
    EPS, reference_adain, reference_d_loss_r1, reference_minibatch_std, reference_mix_styles, reference_modulate,
    reference_r1_penalty, reference_truncate,
)
from course_lib.checks.lesson09.styles import check_adain, check_modulate, check_truncate
from course_lib.checks.lesson09.training import check_d_loss_r1, check_minibatch_std, check_mix_styles

__all__ = [
    "EPS", "EXERCISES", "HINTS", "check_adain", "check_d_loss_r1", "check_minibatch_std", "check_mix_styles",
    "check_modulate", "check_truncate", "reference_adain", "reference_d_loss_r1", "reference_minibatch_std",
    "reference_mix_styles", "reference_modulate", "reference_r1_penalty", "reference_truncate",
]

EXERCISES = [check_adain, check_modulate, check_truncate, check_minibatch_std, check_d_loss_r1, check_mix_styles]

HINTS = {
    "09.1": ("Statistics per sample and per feature map: average over H and W only (dims 2 and 3), with "
             "keepdim=True so that they are (B, C, 1, 1).",
             "Use the biased variance (unbiased=False, a division by H W) and put epsilon = 1e-8 inside the square "
             "root: sqrt(var + eps), not sqrt(var) + eps.",
             "scale and bias are (B, C): give them two trailing axes ([:, :, None, None]) before scaling the "
             "normalised maps and adding the bias."),
    "09.2": ("Bring both tensors to the shape (B, O, I, k, k): the weight gets a batch axis in front, and the "
             "styles (B, I) must line up with the input channels, dim 2.",
             "Index the styles so that I sits at dim 2 and the output and kernel axes have size 1 (None), then "
             "multiply. With demodulate=False that product is the answer.",
             "Demodulate: for each sample and output channel, sum the squares over dims (2, 3, 4) with "
             "keepdim=True, add 1e-8 inside the square root, and divide by it."),
    "09.3": ("Truncation pulls each code towards the average code w_avg, not towards 0: scale the offset w - w_avg "
             "by psi and add it back to w_avg.",
             "w_avg is (w_dim,): broadcasting lines it up with the last axis of w, whether w is (B, w_dim) or (B, "
             "num_ws, w_dim).",
             "Test yourself: psi = 1 gives w back, and psi = 0 gives w_avg for every sample."),
    "09.4": ("Group with a reshape of the batch to (G, M, C, H, W), G the smaller of group_size and B, M = B // G: "
             "sample i then sits in group i mod M, and axis 0 runs over a group's members.",
             "Standard deviation over axis 0: the biased variance (unbiased=False) plus 1e-8 inside the square "
             "root; then average over C, H and W for one number per group, (M,).",
             "Give the M numbers back to the B samples in the same order (sample i gets group i mod M: .repeat, not "
             ".repeat_interleave), make each a (1, H, W) map, and concatenate it after the C channels (dim 1)."),
    "09.5": ("Three terms: the mean of softplus(-D(real)), the mean of softplus(D(fake)), and gamma / 2 times the "
             "mean squared norm of D's gradient on the real images.",
             "Take a detached copy of the real batch that requires gradients, score it with D, and use those logits "
             "twice: in the loss, and summed in torch.autograd.grad with respect to that copy.",
             "Pass create_graph=True so the penalty can be backpropagated into D's weights. Square the gradient, "
             "sum over each image's C, H and W, average over the batch, multiply by gamma / 2."),
    "09.6": ("Layers below the crossover come from ws_a, the others from ws_b: split the layer axis (dim 1) at "
             "crossover.",
             "Slices keep the layer axis even when they are empty (crossover 0 or num_ws), so you need no special "
             "cases.",
             "Join the two slices with torch.cat along dim 1: it makes a new tensor and keeps both codes in the "
             "graph (no writes into ws_a, no .detach())."),
}
