"""Graded checks of lesson 07 (pix2pix).

As in test_checks_vae.py: the check module's references, the library and a learner-style solution
pass every check, an unattempted stub is "not attempted", the references equal course_lib.pix2pix
and course_lib.image_quality, and a bank of classic mistakes is caught, each with its own message.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import image_quality, pix2pix
from course_lib.checks import MIME, CheckResult, lesson07
from course_lib.checks.lesson07 import architecture as architecture07


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ==============================================================================================
# Solutions: what a learner writes in each exercise cell
# ==============================================================================================

def solution_up_with_skip(h, skip, up):
    u = up(h)                                             # (B, c_up, s, s)
    return torch.cat((u, skip), 1)                        # (B, c_up + c_skip, s, s)


def solution_receptive_field(layers):
    jump, rf = 1, 1                                       # the forward form: (k - 1) times the strides below
    for k, s in layers:
        rf += (k - 1) * jump
        jump *= s
    return rf


def solution_output_size(img_size, layers):
    n = img_size
    for k, s in layers:
        n = math.floor((n + 2 * 1 - k) / s) + 1
    return n


def solution_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    gan = -F.logsigmoid(fake_logits).mean()               # -log D(x, G(x))
    return gan + lambda_l1 * F.l1_loss(y_fake, y_real)


def solution_d_loss(D, x, y_real, y_fake):
    real = D(torch.cat([x, y_real], dim=1))
    fake = D(torch.cat([x, y_fake.detach()], dim=1))
    logits = torch.cat([real, fake])                      # one BCE over both batches: the same mean
    labels = torch.cat([torch.ones_like(real), torch.zeros_like(fake)])
    return F.binary_cross_entropy_with_logits(logits, labels)


def solution_psnr(a, b):
    mse = F.mse_loss(a, b, reduction="none").mean(dim=(1, 2, 3)) / 4   # on [-1, 1] the error is twice as large
    return 10 * torch.log10(1 / mse)


def library_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return pix2pix.pix2pix_g_loss(fake_logits, y_fake, y_real, lambda_l1)[0]


def library_d_loss(D, x, y_real, y_fake):
    return pix2pix.pix2pix_d_loss(D(torch.cat([x, y_real], 1)), D(torch.cat([x, y_fake.detach()], 1)))


def library_output_size(img_size, layers):
    d_layers = len(layers) - 2
    assert layers == pix2pix.patch_layers(d_layers)
    return pix2pix.patch_output_size(img_size, d_layers)


# ==============================================================================================
# References and solutions pass; stubs are "not attempted"
# ==============================================================================================

REFERENCES = [
    (lesson07.check_up_with_skip, (lesson07.reference_up_with_skip,)),
    (lesson07.check_up_with_skip, (solution_up_with_skip,)),
    (lesson07.check_patchgan_geometry, (lesson07.reference_receptive_field, lesson07.reference_patch_output_size)),
    (lesson07.check_patchgan_geometry, (pix2pix.receptive_field, lesson07.reference_patch_output_size)),
    (lesson07.check_patchgan_geometry, (solution_receptive_field, solution_output_size)),
    (lesson07.check_g_loss, (lesson07.reference_g_loss,)),
    (lesson07.check_g_loss, (library_g_loss,)),
    (lesson07.check_g_loss, (solution_g_loss,)),
    (lesson07.check_d_loss, (lesson07.reference_d_loss,)),
    (lesson07.check_d_loss, (library_d_loss,)),
    (lesson07.check_d_loss, (solution_d_loss,)),
    (lesson07.check_psnr, (lesson07.reference_psnr,)),
    (lesson07.check_psnr, (image_quality.psnr,)),
    (lesson07.check_psnr, (solution_psnr,)),
]
SOLUTIONS = [REFERENCES[i] for i in (1, 4, 7, 10, 13)]   # each check once, with the learner-style solution


@pytest.mark.parametrize("check, functions", REFERENCES,
                         ids=[f"{c.__name__}-{fs[0].__module__.split('.')[-1]}.{fs[0].__name__}" for c, fs in REFERENCES])
def test_reference_passes_and_stub_is_not_attempted(check, functions):
    result = check(*functions)
    assert result.status == "passed", result.message
    assert check(*[stub] * len(functions)).status == "not_attempted"
    bundle = result._repr_mimebundle_()
    assert bundle[MIME]["status"] == "passed" and "PASSED" in bundle["text/plain"]


def test_geometry_is_not_attempted_until_both_functions_are_written():
    assert lesson07.check_patchgan_geometry(solution_receptive_field, stub).status == "not_attempted"
    assert lesson07.check_patchgan_geometry(stub, solution_output_size).status == "not_attempted"


def test_numpy_ints_and_a_guarded_psnr_are_accepted():
    import numpy as np

    def numpy_receptive_field(layers):
        return np.int64(solution_receptive_field(layers))

    def float_output_size(img_size, layers):
        return float(solution_output_size(img_size, layers))

    def guarded_psnr(a, b):
        return 10 * torch.log10(1 / (((a - b) / 2) ** 2).flatten(1).mean(1).clamp_min(1e-10))

    assert lesson07.check_patchgan_geometry(numpy_receptive_field, float_output_size).passed
    assert lesson07.check_psnr(guarded_psnr).passed


def test_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson07.EXERCISES] == [f"07.{i}" for i in range(1, 6)]
    assert SOLUTIONS == [(c, fs) for c, fs in REFERENCES if fs[0].__name__.startswith("solution")]


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for check, functions in SOLUTIONS:
        assert check(*functions).passed
    assert torch.equal(torch.rand(3), expected)


# ----- the reference implementations written in the check module equal the library -----

def test_reference_up_with_skip_is_the_unet_decoder():
    """The U-Net's forward pass, rebuilt from its stages with the reference stage, equals UNet.forward."""
    torch.manual_seed(0)
    G = pix2pix.init_weights_(pix2pix.UNet(pix2pix.Pix2PixConfig(in_channels=4, out_channels=3, base_channels=4))).eval()
    x = torch.rand(2, 4, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    skips, h = [], x
    for stage in G.down:
        h = stage(h)
        skips.append(h)
    skips.pop()
    for stage in G.up:
        h = lesson07.reference_up_with_skip(h, skips.pop(), stage)
    with torch.no_grad():
        assert torch.allclose(G.to_image(h), G(x), atol=1e-6)


@pytest.mark.parametrize("d_layers", range(6))
def test_reference_geometry_equals_the_library_and_the_real_discriminator(d_layers):
    layers = pix2pix.patch_layers(d_layers)
    assert lesson07.reference_receptive_field(layers) == pix2pix.receptive_field(layers)
    D = pix2pix.PatchDiscriminator(4, base_channels=2, d_layers=d_layers)
    assert D.receptive_field == lesson07.reference_receptive_field(layers)
    for size in (32, 64, 100, 256):
        if not architecture07._fits(size, layers):                # e.g. 32x32 shrinks to nothing with d_layers = 4
            with pytest.raises(ValueError, match="too small"):
                pix2pix.patch_output_size(size, d_layers)
            continue
        p = lesson07.reference_patch_output_size(size, layers)
        assert p == pix2pix.patch_output_size(size, d_layers)
        if size <= 100:
            with torch.no_grad():
                assert D(torch.zeros(1, 4, size, size)).shape == (1, 1, p, p)


def test_the_papers_patchgan():
    layers = pix2pix.patch_layers(3)
    assert lesson07.reference_receptive_field(layers) == 70
    assert lesson07.reference_patch_output_size(256, layers) == 30     # the 30x30 grid of logits on 256x256 images


def test_reference_receptive_field_matches_a_gradient_footprint():
    """The input pixels that move the centre logit of a real PatchGAN span exactly the receptive field."""
    torch.manual_seed(0)
    D = pix2pix.PatchDiscriminator(1, base_channels=4, d_layers=2, norm="batch").eval()   # eval BN: per pixel
    x = torch.randn(1, 1, 64, 64, requires_grad=True)
    logits = D(x)
    P = logits.shape[-1]
    logits[0, 0, P // 2, P // 2].backward()
    rows = (x.grad[0, 0].abs() > 0).any(1).nonzero()
    assert rows.max() - rows.min() + 1 == lesson07.reference_receptive_field(pix2pix.patch_layers(2))


def test_reference_losses_equal_the_library():
    g = torch.Generator().manual_seed(0)
    fake_logits = torch.randn(3, 1, 5, 5, generator=g) * 3
    y_fake, y_real = torch.tanh(torch.randn(2, 3, 3, 8, 8, generator=g))
    for lam in (0.0, 1.0, 100.0):
        total, gan, l1 = pix2pix.pix2pix_g_loss(fake_logits, y_fake, y_real, lam)
        assert torch.allclose(lesson07.reference_g_loss(fake_logits, y_fake, y_real, lam), total, rtol=1e-6)
    torch.manual_seed(1)
    D = pix2pix.PatchDiscriminator(6, base_channels=4, d_layers=1)
    x = torch.tanh(torch.randn(3, 3, 8, 8, generator=g))
    with torch.no_grad():
        ref = lesson07.reference_d_loss(D, x, y_real, y_fake)
        lib = pix2pix.pix2pix_d_loss(D(torch.cat([x, y_real], 1)), D(torch.cat([x, y_fake], 1)))
    assert torch.allclose(ref, lib, rtol=1e-6)


def test_reference_psnr_equals_the_library():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 5, 3, 16, 16, generator=g) * 2 - 1
    assert torch.allclose(lesson07.reference_psnr(a, b).double(), image_quality.psnr(a, b), rtol=1e-5)


# ==============================================================================================
# The bank of classic mistakes
# ==============================================================================================

# ----- 07.1 up_with_skip -----

def added_skip(h, skip, up):
    return up(h) + skip


def ignored_skip(h, skip, up):
    return up(h)


def skip_first(h, skip, up):
    return torch.cat([skip, up(h)], dim=1)


def batch_axis_cat(h, skip, up):
    return torch.cat([up(h), skip], dim=0)


def width_axis_cat(h, skip, up):
    return torch.cat([up(h), skip], dim=-1)


def cat_before_up(h, skip, up):
    return up(torch.cat([h, skip], dim=1))


def up_on_skip(h, skip, up):
    return torch.cat([up(skip), h], dim=1)


def own_upsampling(h, skip, up):
    return torch.cat([F.interpolate(h, scale_factor=2), skip], dim=1)


def detached_skip(h, skip, up):
    return torch.cat([up(h), skip.detach()], dim=1)


def skip_alone(h, skip, up):
    return skip


# ----- 07.2 receptive field and output size -----

def forward_receptive_field(layers):
    r = 1
    for k, s in layers:                                    # input first: the wrong direction
        r = (r - 1) * s + k
    return r


def strideless_receptive_field(layers):
    return 1 + sum(k - 1 for k, _ in layers)


def from_zero_receptive_field(layers):
    r = 0
    for k, s in reversed(layers):
        r = (r - 1) * s + k
    return r


def own_stride_receptive_field(layers):
    jump, rf = 1, 1
    for k, s in layers:
        jump *= s
        rf += (k - 1) * jump
    return rf


def kernel_product_receptive_field(layers):
    return math.prod(k for k, _ in layers)


def unpadded_output_size(img_size, layers):
    n = img_size
    for k, s in layers:
        n = (n - k) // s + 1
    return n


def no_plus_one_output_size(img_size, layers):
    n = img_size
    for k, s in layers:
        n = (n + 2 - k) // s
    return n


def ceil_output_size(img_size, layers):
    n = img_size
    for k, s in layers:
        n = math.ceil((n + 2 - k) / s) + 1
    return n


def true_division_output_size(img_size, layers):
    n = img_size
    for k, s in layers:
        n = (n + 2 - k) / s + 1
    return n


def stride_only_output_size(img_size, layers):
    return img_size // math.prod(s for _, s in layers)


# ----- 07.3 g_loss -----

def l2_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return -F.logsigmoid(fake_logits).mean() + lambda_l1 * F.mse_loss(y_fake, y_real)


def saturating_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return -F.softplus(fake_logits).mean() + lambda_l1 * F.l1_loss(y_fake, y_real)   # mean log(1 - D)


def fake_label_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)) + lambda_l1 * F.l1_loss(y_fake, y_real)


def swapped_lambda_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return lambda_l1 * -F.logsigmoid(fake_logits).mean() + F.l1_loss(y_fake, y_real)


def summed_l1_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return -F.logsigmoid(fake_logits).mean() + lambda_l1 * F.l1_loss(y_fake, y_real, reduction="sum")


def summed_gan_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return -F.logsigmoid(fake_logits).sum() + lambda_l1 * F.l1_loss(y_fake, y_real)


def subtracted_l1_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return -F.logsigmoid(fake_logits).mean() - lambda_l1 * F.l1_loss(y_fake, y_real)


def negated_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return F.logsigmoid(fake_logits).mean() - lambda_l1 * F.l1_loss(y_fake, y_real)


def y_real_target_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return F.binary_cross_entropy_with_logits(fake_logits, y_real) + lambda_l1 * F.l1_loss(y_fake, y_real)


def ones_like_y_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(y_real)) + lambda_l1 * F.l1_loss(y_fake, y_real)


def unstable_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return -torch.log(torch.sigmoid(fake_logits)).mean() + lambda_l1 * F.l1_loss(y_fake, y_real)


def probability_bce_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    p = torch.sigmoid(fake_logits)
    return F.binary_cross_entropy(p, torch.ones_like(p)) + lambda_l1 * F.l1_loss(y_fake, y_real)


def hard_coded_lambda_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return -F.logsigmoid(fake_logits).mean() + 100 * F.l1_loss(y_fake, y_real)


def lsgan_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return (fake_logits - 1).pow(2).mean() + lambda_l1 * F.l1_loss(y_fake, y_real)


def tuple_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return pix2pix.pix2pix_g_loss(fake_logits, y_fake, y_real, lambda_l1)


def detached_fake_g_loss(fake_logits, y_fake, y_real, lambda_l1):
    return -F.logsigmoid(fake_logits).mean() + lambda_l1 * F.l1_loss(y_fake.detach(), y_real)


# ----- 07.4 d_loss -----

def _bce(logits, label):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(label)))


def unconditional_d_loss(D, x, y_real, y_fake):
    return 0.5 * (_bce(D(y_real), 1) + _bce(D(y_fake.detach()), 0))


def undetached_d_loss(D, x, y_real, y_fake):
    return 0.5 * (_bce(D(torch.cat([x, y_real], 1)), 1) + _bce(D(torch.cat([x, y_fake], 1)), 0))


def sigmoid_bce_d_loss(D, x, y_real, y_fake):
    real = torch.sigmoid(D(torch.cat([x, y_real], 1)))
    fake = torch.sigmoid(D(torch.cat([x, y_fake.detach()], 1)))
    return 0.5 * (F.binary_cross_entropy(real, torch.ones_like(real)) + F.binary_cross_entropy(fake, torch.zeros_like(fake)))


def no_half_d_loss(D, x, y_real, y_fake):
    return _bce(D(torch.cat([x, y_real], 1)), 1) + _bce(D(torch.cat([x, y_fake.detach()], 1)), 0)


def swapped_labels_d_loss(D, x, y_real, y_fake):
    return 0.5 * (_bce(D(torch.cat([x, y_real], 1)), 0) + _bce(D(torch.cat([x, y_fake.detach()], 1)), 1))


def reversed_pair_d_loss(D, x, y_real, y_fake):
    return 0.5 * (_bce(D(torch.cat([y_real, x], 1)), 1) + _bce(D(torch.cat([y_fake.detach(), x], 1)), 0))


def no_grad_fake_d_loss(D, x, y_real, y_fake):
    with torch.no_grad():
        fake = D(torch.cat([x, y_fake], 1))
    return 0.5 * (_bce(D(torch.cat([x, y_real], 1)), 1) + _bce(fake, 0))


def batch_axis_d_loss(D, x, y_real, y_fake):
    return 0.5 * (_bce(D(torch.cat([x, y_real], 0)), 1) + _bce(D(torch.cat([x, y_fake.detach()], 0)), 0))


def real_twice_d_loss(D, x, y_real, y_fake):
    return 0.5 * (_bce(D(torch.cat([x, y_real], 1)), 1) + _bce(D(torch.cat([x, y_real], 1)), 0))


def summed_d_loss(D, x, y_real, y_fake):
    real, fake = D(torch.cat([x, y_real], 1)), D(torch.cat([x, y_fake.detach()], 1))
    return 0.5 * (F.softplus(-real).sum() + F.softplus(fake).sum())


# ----- 07.5 psnr -----

def unscaled_psnr(a, b):
    return 10 * torch.log10(1 / (a - b).pow(2).flatten(1).mean(1))


def batch_psnr(a, b):
    return 10 * torch.log10(1 / (((a - b) / 2) ** 2).mean())


def twenty_log_psnr(a, b):
    return 20 * torch.log10(1 / (((a - b) / 2) ** 2).flatten(1).mean(1))


def natural_log_psnr(a, b):
    return 10 * torch.log(1 / (((a - b) / 2) ** 2).flatten(1).mean(1))


def byte_peak_psnr(a, b):
    return 10 * torch.log10(255 ** 2 / (((a - b) / 2) ** 2).flatten(1).mean(1))


def big_epsilon_psnr(a, b):
    return 10 * torch.log10(1 / ((((a - b) / 2) ** 2).flatten(1).mean(1) + 1e-4))


def per_channel_psnr(a, b):
    return 10 * torch.log10(1 / (((a - b) / 2) ** 2).flatten(2).mean(2))


def averaged_channel_psnr(a, b):
    return per_channel_psnr(a, b).mean(1)


MISTAKES = [
    # 07.1
    ("skip added", lesson07.check_up_with_skip, (added_skip,), "you ADDED the skip"),
    ("skip ignored", lesson07.check_up_with_skip, (ignored_skip,), "the skip is ignored"),
    ("skip first", lesson07.check_up_with_skip, (skip_first,), "the skip comes first"),
    ("cat on the batch axis", lesson07.check_up_with_skip, (batch_axis_cat,), "the batch axis"),
    ("cat on the width axis", lesson07.check_up_with_skip, (width_axis_cat,), "the width axis"),
    ("cat before up", lesson07.check_up_with_skip, (cat_before_up,), "Upsample h with `up` FIRST"),
    ("up applied to the skip", lesson07.check_up_with_skip, (up_on_skip,), "call up(h) on h alone"),
    ("own upsampling", lesson07.check_up_with_skip, (own_upsampling,), "you never called `up`"),
    ("skip detached", lesson07.check_up_with_skip, (detached_skip,), "no gradient reaches the skip"),
    ("skip alone", lesson07.check_up_with_skip, (skip_alone,), "you never called `up`"),
    # 07.2
    ("receptive field forwards", lesson07.check_patchgan_geometry, (forward_receptive_field, solution_output_size), "walked FORWARDS"),
    ("receptive field without strides", lesson07.check_patchgan_geometry, (strideless_receptive_field, solution_output_size), "strides are missing"),
    ("receptive field from 0", lesson07.check_patchgan_geometry, (from_zero_receptive_field, solution_output_size), "off by one"),
    ("own stride counted", lesson07.check_patchgan_geometry, (own_stride_receptive_field, solution_output_size), "INCLUDING its own"),
    ("kernel product", lesson07.check_patchgan_geometry, (kernel_product_receptive_field, solution_output_size), "multiplied the kernel sizes"),
    ("output size without padding", lesson07.check_patchgan_geometry, (solution_receptive_field, unpadded_output_size), "padding is missing"),
    ("output size without +1", lesson07.check_patchgan_geometry, (solution_receptive_field, no_plus_one_output_size), "the +1 is missing"),
    ("output size with ceil", lesson07.check_patchgan_geometry, (solution_receptive_field, ceil_output_size), "rounded up"),
    ("output size with /", lesson07.check_patchgan_geometry, (solution_receptive_field, true_division_output_size), "floor"),
    ("output size by strides only", lesson07.check_patchgan_geometry, (solution_receptive_field, stride_only_output_size), "not n // stride"),
    # 07.3
    ("L2 for L1", lesson07.check_g_loss, (l2_g_loss,), "squared error (L2)"),
    ("saturating", lesson07.check_g_loss, (saturating_g_loss,), "SATURATING"),
    ("label 0 for G", lesson07.check_g_loss, (fake_label_g_loss,), "uses label 0"),
    ("lambda on the GAN term", lesson07.check_g_loss, (swapped_lambda_g_loss,), "lambda_l1 multiplies the GAN term"),
    ("L1 summed", lesson07.check_g_loss, (summed_l1_g_loss,), "you SUMMED"),
    ("GAN term summed", lesson07.check_g_loss, (summed_gan_g_loss,), "you SUMMED"),
    ("L1 subtracted", lesson07.check_g_loss, (subtracted_l1_g_loss,), "L1 term has the wrong sign"),
    ("whole loss negated", lesson07.check_g_loss, (negated_g_loss,), "whole loss has the wrong sign"),
    ("y_real as the GAN target", lesson07.check_g_loss, (y_real_target_g_loss,), "y_real belongs in the L1 term only"),
    ("ones_like(y_real)", lesson07.check_g_loss, (ones_like_y_g_loss,), "torch.ones_like(fake_logits)"),
    ("log(sigmoid)", lesson07.check_g_loss, (unstable_g_loss,), "underflows"),
    ("BCE on probabilities", lesson07.check_g_loss, (probability_bce_g_loss,), "clamps log(0) to -100"),
    ("lambda = 100 hard-coded", lesson07.check_g_loss, (hard_coded_lambda_g_loss,), "hard-coded to 100"),
    ("LSGAN term", lesson07.check_g_loss, (lsgan_g_loss,), "least-squares"),
    ("returns the library's tuple", lesson07.check_g_loss, (tuple_g_loss,), "ONE scalar tensor"),
    ("y_fake detached", lesson07.check_g_loss, (detached_fake_g_loss,), "no gradient reaches y_fake"),
    # 07.4
    ("unconditional D", lesson07.check_d_loss, (unconditional_d_loss,), "the output image alone"),
    ("missing detach", lesson07.check_d_loss, (undetached_d_loss,), "missing detach"),
    ("missing 0.5", lesson07.check_d_loss, (no_half_d_loss,), "factor 0.5 is missing"),
    ("swapped labels", lesson07.check_d_loss, (swapped_labels_d_loss,), "labels are swapped"),
    ("pair as (y, x)", lesson07.check_d_loss, (reversed_pair_d_loss,), "concatenated as (y, x)"),
    ("fake scored under no_grad", lesson07.check_d_loss, (no_grad_fake_d_loss,), "D's gradients are wrong"),
    ("pair on the batch axis", lesson07.check_d_loss, (batch_axis_d_loss,), "torch.cat([x, y], dim=1)"),
    ("real pair twice", lesson07.check_d_loss, (real_twice_d_loss,), "the fake pair uses y_real"),
    ("summed over patches", lesson07.check_d_loss, (summed_d_loss,), "summed over the patches"),
    ("sigmoid then BCE", lesson07.check_d_loss, (sigmoid_bce_d_loss,), "saturated patch logits"),
    # 07.5
    ("PSNR on [-1, 1]", lesson07.check_psnr, (unscaled_psnr,), "map both images to [0, 1]"),
    ("one PSNR for the batch", lesson07.check_psnr, (batch_psnr,), "one number for the whole batch"),
    ("20 log10 of the MSE", lesson07.check_psnr, (twenty_log_psnr,), "20 log10 goes with the RMS error"),
    ("natural log", lesson07.check_psnr, (natural_log_psnr,), "log10, not the natural log"),
    ("peak 255", lesson07.check_psnr, (byte_peak_psnr,), "not on 0..255"),
    ("PSNR with a large epsilon", lesson07.check_psnr, (big_epsilon_psnr,), "psnr gives"),
    ("PSNR per channel", lesson07.check_psnr, (per_channel_psnr,), "one PSNR per channel"),
    ("mean of channel PSNRs", lesson07.check_psnr, (averaged_channel_psnr,), "averaged per-channel PSNRs"),
]


@pytest.mark.parametrize("name, check, functions, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, functions, expected):
    result = check(*functions)
    assert isinstance(result, CheckResult)
    assert result.status == "failed", f"{name} was not caught: {result.message}"
    assert expected in result.message, result.message


def test_a_crashing_solution_fails_with_the_error_named():
    def crashes(fake_logits, y_fake, y_real, lambda_l1):
        return fake_logits @ y_fake

    result = lesson07.check_g_loss(crashes)
    assert result.status == "failed" and "RuntimeError" in result.message


def test_a_non_function_is_reported():
    result = lesson07.check_up_with_skip(3)
    assert result.status == "failed" and "expected a function" in result.message
