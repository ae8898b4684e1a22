"""Checks 07.3-07.5: the pix2pix generator and discriminator losses, PSNR."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng
from course_lib.pix2pix import PatchDiscriminator
from course_lib.checks.lesson07.references import (
    reference_g_loss, reference_d_loss, reference_psnr, rethrow_with_hint,
)


# ----------------------------------------------------------------------------------------------
# 07.3 the generator's loss
# ----------------------------------------------------------------------------------------------

G_TARGET_HINT = ("the GAN term compares D's patch logits (B, 1, P, P) with an all-ones target of the SAME shape, "
                 "torch.ones_like(fake_logits) (\"real\" for every patch); y_real belongs in the L1 term only.")


def _g_case(seed: int, B: int, C: int, S: int, P: int, scale: float = 2.0):
    g = torch.Generator().manual_seed(case_seed(seed))
    fake_logits = torch.randn(B, 1, P, P, generator=g) * scale
    y_fake = torch.tanh(torch.randn(B, C, S, S, generator=g))
    y_real = torch.tanh(torch.randn(B, C, S, S, generator=g))
    return fake_logits, y_fake, y_real


def _g_candidates(fake_logits, y_fake, y_real, lam):
    """(value, message) of G losses a learner might write instead of the reference."""
    gan = F.softplus(-fake_logits).mean()             # -log sigmoid(l) = BCE(l, 1)
    diff = y_fake - y_real
    l1, l2 = diff.abs().mean(), diff.pow(2).mean()
    l2_message = ("you used a squared error (L2) where pix2pix uses the L1 distance, mean |y_fake - y_real|: L2 "
                  "punishes large errors more and averages uncertain pixels into blur (Isola et al., Sec. 3.1).")
    sum_message = ("you SUMMED where pix2pix averages: both terms are means, the GAN term over every patch logit of "
                   "the batch, the L1 term over every pixel and channel (F.l1_loss's default, reduction='mean').")
    candidates = [
        (gan + lam * l2, l2_message),
        (gan + lam * 0.5 * l2, l2_message),
        (gan + lam * diff.pow(2).sum().sqrt(), l2_message),
        (gan + lam * diff.pow(2).mean().sqrt(), l2_message),
        (-F.softplus(fake_logits).mean() + lam * l1,
         "this is the SATURATING generator loss, mean log(1 - D(x, G(x))): its gradient vanishes exactly when D "
         "confidently rejects the fakes, early in training. Use the non-saturating -log D(x, G(x)), i.e. "
         "BCE-with-logits against ones."),
        (F.softplus(fake_logits).mean() + lam * l1,
         "the GAN term uses label 0 (D's loss on fakes): G wants D to call its outputs REAL, so the target is 1, "
         "F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))."),
        (-gan + lam * l1, "the GAN term has the wrong sign: -log D(x, G(x)) is a loss to MINIMISE, it is added as it is."),
        (gan - lam * l1, "the L1 term has the wrong sign: the distance to the target is a penalty, it is ADDED, "
                         "+ lambda_l1 * mean |y_fake - y_real|."),
        (-(gan + lam * l1), "the whole loss has the wrong sign: minimise BCE(fake_logits, 1) + lambda_l1 * L1."),
        (lam * gan + l1, "lambda_l1 multiplies the GAN term: it weights the L1 term, gan + lambda_l1 * L1 "
                         "(lambda_l1 = 100 in the paper, so L1 dominates and the GAN adds sharp detail)."),
        (gan + l1, "lambda_l1 is ignored: the L1 term is weighted, gan + lambda_l1 * mean |y_fake - y_real|."),
        (gan + 100 * l1, "lambda_l1 is hard-coded to 100: use the lambda_l1 argument."),
        (gan + lam * diff.abs().sum(), sum_message),
        (gan + lam * diff.abs().flatten(1).sum(1).mean(), sum_message),
        (F.softplus(-fake_logits).sum() + lam * l1, sum_message),
        (F.softplus(-fake_logits).flatten(1).sum(1).mean() + lam * l1, sum_message),
        ((fake_logits - 1).pow(2).mean() + lam * l1,
         "this is the least-squares (LSGAN) term, mean (D - 1)^2: pix2pix's D outputs logits for a BCE, so G's GAN "
         "term is BCE-with-logits against ones."),
        ((torch.sigmoid(fake_logits) - 1).pow(2).mean() + lam * l1,
         "this is a squared error on D's probabilities: G's GAN term is the BCE, -log D(x, G(x)), "
         "F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))."),
    ]
    if fake_logits.shape == y_real.shape:
        candidates += [
            (F.binary_cross_entropy_with_logits(fake_logits, y_real) + lam * l1, "y_real is in the GAN term: " + G_TARGET_HINT),
            (F.binary_cross_entropy_with_logits(fake_logits, (y_real + 1) / 2) + lam * l1, "y_real is in the GAN term: " + G_TARGET_HINT),
        ]
    return candidates


def _check_g_case(g_loss, fake_logits, y_fake, y_real, lam, name):
    ref = reference_g_loss(fake_logits, y_fake, y_real, lam)
    fl_g, yf_g = fake_logits.clone().requires_grad_(), y_fake.clone().requires_grad_()
    try:
        out = call(g_loss, fl_g, yf_g, y_real.clone(), lam, what="g_loss")
    except Mistake as err:
        raise rethrow_with_hint(err, [("Target size", G_TARGET_HINT), ("must match the size", G_TARGET_HINT)]) from None
    if isinstance(out, tuple):
        raise Mistake("g_loss should return ONE scalar tensor, the total gan + lambda_l1 * L1 (course_lib's "
                      "pix2pix_g_loss also returns the two terms for logging; here return only the total).")
    if isinstance(out, float):
        raise Mistake("return the loss tensor (the training step calls loss.backward() on it), not a float.")
    out = expect_tensor(out, "g_loss")
    if out.dim() > 0 and out.numel() == fake_logits.shape[0]:
        raise Mistake("you returned one loss per image, (B,): average over the batch too, so the loss is a scalar.")
    expect_shape(out, (), "g_loss", "Average each term with .mean().")
    if not torch.isfinite(out):
        raise Mistake("the loss is inf or NaN for a patch logit of -120 (D sure the output is fake, as early in "
                      "training): log(sigmoid(-120)) underflows to log(0). Work with logits: "
                      "F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits)).")
    for wrong, message in _g_candidates(fake_logits, y_fake, y_real, lam):
        if close(out, wrong, rtol=1e-5) and not close(wrong, ref, rtol=1e-5):
            raise Mistake(message)
    if not close(out, ref, rtol=1e-5):
        gan = F.softplus(-fake_logits).mean()
        if fake_logits.min() < -100 and close(out, ref - gan + F.softplus(-fake_logits).clamp(max=100).mean(), rtol=1e-5):
            raise Mistake("the GAN term is clipped for a patch logit of -120: F.binary_cross_entropy on sigmoid "
                          "probabilities clamps log(0) to -100. Work with logits: "
                          "F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits)).")
        raise Mistake(f"g_loss gives {out.item():.5f} where the reference gives {ref.item():.5f} ({name}): "
                      "BCE-with-logits(fake_logits, ones) averaged over all patches + lambda_l1 * mean |y_fake - y_real|.")
    if not out.requires_grad:
        raise Mistake("the loss is not connected to the logits and G's output: stay in torch (no .item(), numpy or math).")
    out.backward()
    if fl_g.grad is None or not close(fl_g.grad, (torch.sigmoid(fake_logits) - 1) / fake_logits.numel(), rtol=1e-4, atol=1e-7):
        raise Mistake("no gradient, or the wrong one, reaches D's logits: the GAN term must be computed from "
                      "fake_logits (D's verdict on (x, G(x))) without .detach().")
    if lam != 0 and (yf_g.grad is None or not yf_g.grad.abs().sum() > 0):
        raise Mistake("no gradient reaches y_fake through the L1 term: G learns from it, so do not .detach() y_fake.")


@exercise("07.3", "the pix2pix generator loss", forbid=("course_lib.pix2pix.pix2pix_g_loss",))
@own_rng
def check_g_loss(g_loss) -> None:
    fake_logits, y_fake, y_real = _g_case(0, B=2, C=3, S=8, P=6)
    _check_g_case(g_loss, fake_logits, y_fake, y_real, 7.5, "B = 2, 3-channel outputs, lambda_l1 = 7.5")
    fake_logits, y_fake, y_real = _g_case(1, B=3, C=1, S=5, P=5, scale=1.0)
    _check_g_case(g_loss, fake_logits, y_fake, y_real, 0.5, "B = 3, 1-channel outputs, lambda_l1 = 0.5")
    fake_logits, y_fake, y_real = _g_case(2, B=2, C=3, S=8, P=4)
    fake_logits[0, 0, 0, 0], fake_logits[1, 0, 2, 1] = -120.0, 60.0   # D certain: fake, and real
    _check_g_case(g_loss, fake_logits, y_fake, y_real, 100.0, "extreme logits -120 and 60, lambda_l1 = 100")
    fake_logits, y_fake, y_real = _g_case(3, B=1, C=3, S=4, P=3)
    _check_g_case(g_loss, fake_logits, y_fake, y_real, 0.0, "lambda_l1 = 0: the GAN term alone")


# ----------------------------------------------------------------------------------------------
# 07.4 the conditional discriminator's loss
# ----------------------------------------------------------------------------------------------

class _WatchedD(nn.Module):
    """Wraps the check's D: forwards to it, and says what is wrong when it receives the wrong input."""

    def __init__(self, inner: PatchDiscriminator, c_x: int, c_y: int, size: int) -> None:
        super().__init__()
        self.inner, self.c_x, self.c_y, self.size = inner, c_x, c_y, size

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        if not isinstance(pair, torch.Tensor) or pair.dim() != 4:
            raise Mistake(f"D was called on {type(pair).__name__} of shape {tuple(getattr(pair, 'shape', ()))}: give "
                          "it ONE tensor of image pairs, torch.cat([x, y], dim=1), shape (B, C_x + C_y, S, S).")
        c = pair.shape[1]
        want = self.c_x + self.c_y
        if c == self.c_y and c != want:
            raise Mistake(f"D received {c} channels, the output image alone: pix2pix's D is CONDITIONAL, it judges the "
                          f"pair (x, y), torch.cat([x, y], dim=1), C_x + C_y = {self.c_x} + {self.c_y} = {want} "
                          "channels. Without x it can only ask 'is this a realistic image?', not 'is it the right "
                          "output for THIS input?'.")
        if c == self.c_x and c != want:
            raise Mistake(f"D received {c} channels, the input x alone: it must see the pair, "
                          f"torch.cat([x, y], dim=1), {want} channels.")
        if c != want:
            raise Mistake(f"D received {c} channels, expected C_x + C_y = {want}: concatenate the input and the "
                          "output along the channel axis, torch.cat([x, y], dim=1).")
        if tuple(pair.shape[2:]) != (self.size, self.size):
            raise Mistake(f"D received images of size {tuple(pair.shape[2:])}, expected {(self.size, self.size)}: "
                          "concatenate along the channel axis, dim=1, not a spatial one.")
        return self.inner(pair)


def _d_case(seed: int, B: int, c_x: int, c_y: int, size: int):
    torch.manual_seed(case_seed(seed))
    D = PatchDiscriminator(c_x + c_y, base_channels=8, d_layers=1, norm="instance")  # per-image norm: batching-proof
    with torch.no_grad():
        D.net[-1].weight.mul_(3.0)                            # logits spread over a few units, not all near 0
    g = torch.Generator().manual_seed(case_seed(seed))
    x = torch.tanh(torch.randn(B, c_x, size, size, generator=g))
    y_real = torch.tanh(torch.randn(B, c_y, size, size, generator=g))
    w = torch.randn(B, c_y, size, size, generator=g)        # stands in for G's last layer
    return D, x, y_real, w


def _bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def _d_candidates(D, x, y_real, y_fake):
    with torch.no_grad():
        real, fake = D(torch.cat([x, y_real], 1)), D(torch.cat([x, y_fake], 1))
        real_yx, fake_yx = D(torch.cat([y_real, x], 1)), D(torch.cat([y_fake, x], 1))
    ref = 0.5 * (_bce(real, 1) + _bce(fake, 0))
    half_message = ("the factor 0.5 is missing: pix2pix halves D's loss, 0.5 * (BCE(real, 1) + BCE(fake, 0)), "
                    "\"to slow down the rate at which D learns relative to G\" (Isola et al., Sec. 3.3).")
    return ref, [
        (2 * ref, half_message),
        (0.5 * (_bce(real, 0) + _bce(fake, 1)), "real and fake labels are swapped: the real pair (x, y_real) is "
                                                 "labelled 1, the generated pair (x, y_fake) 0."),
        (-ref, "wrong sign: D's loss is a BCE, minimised and never negative."),
        (0.5 * (_bce(real_yx, 1) + _bce(fake_yx, 0)), "the pair is concatenated as (y, x): the course's D expects the "
                                                       "condition first, torch.cat([x, y], dim=1), as in "
                                                       "course_lib.pix2pix.pix2pix_step (and its trained weights)."),
        (0.5 * (F.softplus(-real).sum() + F.softplus(fake).sum()),
         "you summed over the patches: average the BCE over every patch logit (and the batch), as "
         "F.binary_cross_entropy_with_logits does by default."),
        (F.softplus(-real).sum() + F.softplus(fake).sum(), "you summed over the patches (and dropped the 0.5): "
                                                            "average the BCE over every patch logit."),
        (0.5 * (F.softplus(-real).flatten(1).sum(1).mean() + F.softplus(fake).flatten(1).sum(1).mean()),
         "you summed over the patches of each image: average the BCE over every patch logit."),
        (0.5 * _bce(real, 1), "the fake term is missing: 0.5 * (BCE(D(x, y_real), 1) + BCE(D(x, y_fake), 0))."),
        (0.5 * _bce(fake, 0), "the real term is missing: 0.5 * (BCE(D(x, y_real), 1) + BCE(D(x, y_fake), 0))."),
        (0.5 * (_bce(real, 1) + _bce(real, 0)), "the fake pair uses y_real: the second term scores (x, y_fake), the "
                                                 "generator's output, with label 0."),
        (0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean()),
         "this is the least-squares (LSGAN) loss: pix2pix's D is trained with the BCE on its logits."),
        (_bce(real, 1) + _bce(fake, 0), half_message),
    ]


def _check_d_case(d_loss, seed, B, c_x, c_y, size, name):
    D, x, y_real, w = _d_case(seed, B, c_x, c_y, size)
    ref_D = copy.deepcopy(D)
    y_fake_ref = torch.tanh(w)
    ref, candidates = _d_candidates(ref_D, x, y_real, y_fake_ref)
    ref_loss = reference_d_loss(ref_D, x, y_real, y_fake_ref)
    ref_loss.backward()

    w_g = w.clone().requires_grad_()                         # G's "weights": the fakes carry a graph back to them
    y_fake = torch.tanh(w_g)
    watched = _WatchedD(D, c_x, c_y, size)
    try:
        out = call(d_loss, watched, x.clone(), y_real.clone(), y_fake, what="d_loss")
    except Mistake as err:
        raise rethrow_with_hint(err, [("must match", "Concatenate each pair along the channel axis, "
                                                      "torch.cat([x, y], dim=1): x and y share B, H and W.")]) from None
    if isinstance(out, tuple):
        raise Mistake("d_loss should return ONE scalar tensor, 0.5 * (BCE(real, 1) + BCE(fake, 0)).")
    if isinstance(out, float):
        raise Mistake("return the loss tensor (the training step calls loss.backward() on it), not a float.")
    out = expect_tensor(out, "d_loss")
    expect_shape(out, (), "d_loss", "Average the BCE over every patch logit with the default reduction='mean'.")
    for wrong, message in candidates:
        if close(out, wrong, rtol=1e-5) and not close(wrong, ref, rtol=1e-5):
            raise Mistake(message)
    if not close(out, ref, rtol=1e-5):
        raise Mistake(f"d_loss gives {out.item():.5f} where the reference gives {ref.item():.5f} ({name}): "
                      "0.5 * (BCE(D(cat[x, y_real]), 1) + BCE(D(cat[x, y_fake.detach()]), 0)), means over the patches.")
    if not out.requires_grad:
        raise Mistake("the loss is not connected to D's parameters (torch.no_grad(), .item() or .detach() on the "
                      "loss?): D learns from it, so it must be back-propagated to D.")
    try:
        out.backward()
    except RuntimeError as err:
        raise Mistake(f"loss.backward() failed ({err}): d_loss should only compute the loss; do not call "
                      "backward() inside it.") from None
    if w_g.grad is not None and w_g.grad.abs().sum() > 0:
        raise Mistake("missing detach: D's loss sent gradients into the generator through y_fake. Score the fake "
                      "pair as D(torch.cat([x, y_fake.detach()], dim=1)), so the D update does not back-propagate "
                      "through G (and G's optimiser does not pick up D's gradients).")
    for (pname, p), q in zip(D.named_parameters(), ref_D.parameters()):
        if p.grad is None or not close(p.grad, q.grad, rtol=1e-4, atol=1e-6):
            raise Mistake("the loss has the right value but D's gradients are wrong: was one of D's verdicts computed "
                          "under torch.no_grad() or detached? Detach only y_fake (the generator's output); D must "
                          "learn from both the real and the fake pair.")


@exercise("07.4", "the conditional discriminator's loss", forbid=("course_lib.pix2pix.pix2pix_d_loss",))
@own_rng
def check_d_loss(d_loss) -> None:
    _check_d_case(d_loss, 0, B=2, c_x=1, c_y=3, size=16, name="colorize: grey x, colour y")
    _check_d_case(d_loss, 1, B=3, c_x=4, c_y=3, size=12, name="inpaint: 4-channel x (photo + mask), colour y")
    _check_d_case(d_loss, 2, B=1, c_x=1, c_y=1, size=16, name="edges2digits: 1 channel each, batch of 1")
    D, x, y_real, w = _d_case(3, 2, 1, 1, 16)
    with torch.no_grad():
        D.net[-1].bias.add_(40.0)                             # a D that calls every patch real, confidently
    want = reference_d_loss(D, x, y_real, torch.tanh(w))
    out = expect_tensor(call(d_loss, D, x, y_real, torch.tanh(w), what="d_loss"), "d_loss")
    if not close(out, want, rtol=1e-4):
        raise Mistake(f"with saturated patch logits (about +40) the loss should be {want.item():.2f}, yours is "
                      f"{float(out.detach()):.2f}: sigmoid(40) rounds to 1 and F.binary_cross_entropy clamps log 0 to "
                      "-100. Work with logits: F.binary_cross_entropy_with_logits.")


# ----------------------------------------------------------------------------------------------
# 07.5 PSNR
# ----------------------------------------------------------------------------------------------

def _psnr_case(seed: int, B: int, C: int, S: int):
    g = torch.Generator().manual_seed(case_seed(seed))
    b = torch.rand(B, C, S, S, generator=g) * 2 - 1
    levels = torch.linspace(0.05, 0.5, B).view(B, 1, 1, 1)                  # a different error per image
    a = (b + levels * torch.randn(B, C, S, S, generator=g)).clamp(-1, 1)
    return a, b


def _psnr_candidates(a, b):
    a01, b01 = (a + 1) / 2, (b + 1) / 2
    mse = (a01 - b01).pow(2).flatten(1).mean(1)                              # (B,)
    raw = (a - b).pow(2).flatten(1).mean(1)                                  # on [-1, 1]
    per_channel = 10 * torch.log10(1 / (a01 - b01).pow(2).flatten(2).mean(2))   # (B, C)
    return [
        (10 * torch.log10(1 / raw), "you measured the error on [-1, 1], where it is twice as large (MSE four times, "
                                    "-6.02 dB): map both images to [0, 1] with (t + 1) / 2 first (peak value 1)."),
        (20 * torch.log10(1 / mse), "20 log10 goes with the RMS error, 10 log10 with the MSE: PSNR = 10 log10(1 / MSE) "
                                    "= 20 log10(1 / RMSE)."),
        (10 * torch.log10(1 / mse.sqrt()), "you took 10 log10 of the RMS error: PSNR = 10 log10(1 / MSE), or "
                                           "20 log10(1 / RMSE)."),
        (10 * torch.log(1 / mse), "decibels use log10, not the natural log: PSNR = 10 * torch.log10(1 / MSE)."),
        (10 * torch.log10(mse), "wrong sign: PSNR = 10 log10(peak^2 / MSE) grows as the error shrinks."),
        (10 * torch.log10(255 ** 2 / mse), "the peak is 1 here: the images are measured on [0, 1], not on 0..255 "
                                           "bytes. PSNR = 10 log10(1 / MSE)."),
        (per_channel.mean(1), "you averaged per-channel PSNRs: take ONE MSE over every channel and pixel of an image, "
                              "then its PSNR."),
    ]


@exercise("07.5", "PSNR of each image", forbid=("course_lib.image_quality.psnr",))
@own_rng
def check_psnr(psnr) -> None:
    for seed, (B, C, S) in enumerate([(4, 3, 8), (3, 1, 6)]):
        a, b = _psnr_case(seed, B, C, S)
        out = expect_tensor(call(psnr, a.clone(), b.clone()), "psnr")
        if out.dim() == 0:
            raise Mistake("you returned one number for the whole batch: return one PSNR per image, shape (B,) "
                          "(the MSE averaged over each image's channels and pixels: .flatten(1).mean(1)).")
        if tuple(out.shape) == (B, C):
            raise Mistake("you returned one PSNR per channel, (B, C): average the squared error over every channel "
                          "and pixel of an image, .flatten(1).mean(1), for one PSNR per image, shape (B,).")
        expect_shape(out, (B,), "psnr", "One PSNR per image.")
        ref = reference_psnr(a, b)
        for wrong, message in _psnr_candidates(a, b):
            if close(out, wrong, rtol=1e-4) and not close(wrong, ref, rtol=1e-4):
                raise Mistake(message)
        if not close(out, ref, rtol=1e-4):
            raise Mistake(f"psnr gives {[round(v, 3) for v in out.tolist()]} dB where the reference gives "
                          f"{[round(v, 3) for v in ref.tolist()]}: 10 log10(1 / MSE), the MSE of each image on [0, 1].")
    black, white = -torch.ones(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    out = expect_tensor(call(psnr, black, white), "psnr")
    if not close(out, torch.zeros(2), atol=1e-5):
        raise Mistake(f"black against white (an error of 1 on [0, 1] everywhere) should be exactly 0 dB, got {out.tolist()}.")
    same = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(case_seed(5))) * 2 - 1
    out = expect_tensor(call(psnr, same, same.clone()), "psnr")
    if torch.isnan(out).any() or (out < 60).any():
        raise Mistake(f"identical images have MSE 0, so their PSNR is +inf (or a large cap such as 100 dB); got "
                      f"{out.tolist()}. If you guard the division, keep the guard tiny (an MSE of at least 1e-10).")

