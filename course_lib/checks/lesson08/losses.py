"""Checks 08.1-08.3: the cycle-consistency loss, the identity loss, the least-squares GAN losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import Mistake, call, case_seed, close, exercise, own_rng
from course_lib.checks.lesson08.references import (
    reference_cycle_loss, reference_identity_loss, reference_lsgan_d_loss, reference_lsgan_g_loss, Affine,
    random_images, expect_scalar, check_grads,
)


# ----------------------------------------------------------------------------------------------
# 08.1 the cycle-consistency loss
# ----------------------------------------------------------------------------------------------

def cycle_candidates(G_AB, G_BA, x_a, x_b) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong cycle losses, each with the message that explains it."""
    l1 = lambda p, t: (p - t).abs().mean()            # noqa: E731
    l2 = lambda p, t: (p - t).pow(2).mean()           # noqa: E731
    with torch.no_grad():
        fake_b, fake_a = G_AB(x_a), G_BA(x_b)
        rec_a, rec_b = G_BA(fake_b), G_AB(fake_a)
        ref = l1(rec_a, x_a) + l1(rec_b, x_b)
        return [
            (l1(rec_a, x_a), "only the A -> B -> A cycle is there: CycleGAN asks for the round trip in BOTH directions, "
                             "so add mean|G_AB(G_BA(x_b)) - x_b|. With one cycle, G_BA may throw away whatever G_AB "
                             "does not need (and vice versa)."),
            (l1(rec_b, x_b), "only the B -> A -> B cycle is there: CycleGAN asks for the round trip in BOTH directions, "
                             "so add mean|G_BA(G_AB(x_a)) - x_a|."),
            (l2(rec_a, x_a) + l2(rec_b, x_b), "you used a squared error (L2, F.mse_loss): the cycle loss is the L1 "
                                              "distance, mean |reconstruction - input| (F.l1_loss), which blurs less."),
            (l1(fake_b, x_a) + l1(fake_a, x_b), "you compared the TRANSLATION with the input, mean|G_AB(x_a) - x_a|: that "
                                                "asks the generators to change nothing. The cycle compares the "
                                                "RECONSTRUCTION G_BA(G_AB(x_a)) with x_a."),
            (l1(rec_a, fake_b) + l1(rec_b, fake_a), "you compared the reconstruction with the translation: the round trip "
                                                    "G_BA(G_AB(x_a)) must come back to the INPUT x_a."),
            ((rec_a - x_a).abs().sum() + (rec_b - x_b).abs().sum(),
             "you summed over pixels and images: take the mean, so the loss (and lambda_cycle) does not depend on the "
             "batch or image size."),
            ((rec_a - x_a).abs().flatten(1).sum(1).mean() + (rec_b - x_b).abs().flatten(1).sum(1).mean(),
             "you summed over the pixels of each image: take the mean over pixels too (F.l1_loss does both)."),
            ((rec_a - x_a).norm() + (rec_b - x_b).norm(),
             "you took the Euclidean norm ||rec - x||_2: the cycle loss is the MEAN ABSOLUTE error, "
             "(rec - x).abs().mean()."),
            (l1(G_AB(G_BA(x_a)), x_a) + l1(G_BA(G_AB(x_b)), x_b),
             "the generators are swapped: an A image goes to B with G_AB and comes back with G_BA, so the A cycle is "
             "G_BA(G_AB(x_a)), and the B cycle is G_AB(G_BA(x_b))."),
            (l1(G_AB(fake_b), x_a) + l1(G_BA(fake_a), x_b),
             "you applied the same generator twice: the round trip of x_a is G_BA(G_AB(x_a)), there and BACK."),
            (0.5 * ref, "you averaged the two directions (divided by 2, or one mean over both): the cycle loss is the SUM "
                        "of the two mean errors."),
            (10 * ref, "you multiplied by lambda_cycle = 10: return the plain loss; the caller (cyclegan_step) weights it."),
        ]


@exercise("08.1", "the cycle-consistency loss", forbid=("course_lib.cyclegan.cycle_loss",))
@own_rng
def check_cycle_loss(cycle_loss) -> None:
    G_AB, G_BA = Affine(0.5, 0.3), Affine(1.5, -0.6)          # round trips 0.75 x - 0.15 (A) and 0.75 x (B)
    x_a, x_b = random_images(0, (3, 1, 4, 4)), random_images(1, (3, 1, 4, 4), -1.0, 0.6)
    out = expect_scalar(call(cycle_loss, G_AB, G_BA, x_a.clone(), x_b.clone()), "cycle_loss")
    ref = reference_cycle_loss(G_AB, G_BA, x_a, x_b)
    for wrong, message in cycle_candidates(G_AB, G_BA, x_a, x_b):
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake(f"cycle_loss gives {out.item():.5f} where the reference gives {ref.item():.5f}: "
                      "mean|G_BA(G_AB(x_a)) - x_a| + mean|G_AB(G_BA(x_b)) - x_b|.")
    check_grads(out, reference_cycle_loss, G_AB, G_BA, x_a, x_b, "cycle_loss",
                 "Don't detach the translation: the cycle loss trains G_AB through G_BA(G_AB(x_a)) as well as G_BA.")

    # Analytic cases: generators that undo each other have zero cycle loss, however much they change an image.
    undo = call(cycle_loss, Affine(2.0, 1.0), Affine(0.5, -0.5), x_a.clone(), x_b.clone())
    if not close(expect_scalar(undo, "cycle_loss"), torch.tensor(0.0), atol=1e-6):
        raise Mistake(f"G_AB(x) = 2x + 1 and G_BA(x) = (x - 1) / 2 undo each other, so the cycle loss is 0, but yours "
                      f"is {float(undo):.4g}: compare the round trip G_BA(G_AB(x_a)) with x_a.")
    same = call(cycle_loss, nn.Identity(), nn.Identity(), x_a.clone(), x_b.clone())
    if not close(expect_scalar(same, "cycle_loss"), torch.tensor(0.0), atol=1e-7):
        raise Mistake(f"with generators that change nothing the cycle loss is 0, yours is {float(same):.4g}.")
    # Another shape, and batches of different sizes: nothing may be hard-coded.
    G_AB, G_BA = Affine(-0.8, 0.1), Affine(1.2, 0.4)
    x_a, x_b = random_images(2, (2, 3, 5, 5)), random_images(3, (5, 3, 5, 5))
    out = expect_scalar(call(cycle_loss, G_AB, G_BA, x_a.clone(), x_b.clone()), "cycle_loss")
    with torch.no_grad():
        ref = reference_cycle_loss(G_AB, G_BA, x_a, x_b)
        pooled = torch.cat([G_BA(G_AB(x_a)) - x_a, G_AB(G_BA(x_b)) - x_b]).abs().mean()
    if close(out, pooled):
        raise Mistake("you took one mean over the two batches together: with 2 A images and 5 B images that weights "
                      "B more. The cycle loss is the SUM of two means, one per direction.")
    if not close(out, ref):
        raise Mistake("correct for batches of 3 one-channel 4x4 images, but not for 2 A and 5 B images of shape "
                      "(3, 5, 5): is something hard-coded?")


# ----------------------------------------------------------------------------------------------
# 08.2 the identity loss
# ----------------------------------------------------------------------------------------------

def identity_candidates(G_AB, G_BA, x_a, x_b) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong identity losses, each with the message that explains it."""
    l1 = lambda p, t: (p - t).abs().mean()            # noqa: E731
    l2 = lambda p, t: (p - t).pow(2).mean()           # noqa: E731
    with torch.no_grad():
        same_b, same_a = G_AB(x_b), G_BA(x_a)         # each generator fed its OUTPUT domain
        fake_b, fake_a = G_AB(x_a), G_BA(x_b)         # the translations
        ref = l1(same_b, x_b) + l1(same_a, x_a)
        return [
            (l1(fake_b, x_a) + l1(fake_a, x_b),
             "you fed each generator its INPUT domain, G_AB(x_a): that asks G_AB not to translate at all. The identity "
             "loss feeds G_AB an image that is ALREADY in B, x_b, and asks it to leave it alone: mean|G_AB(x_b) - x_b|."),
            (l1(same_b, x_b), "only G_AB's term is there: add mean|G_BA(x_a) - x_a|, G_BA leaving an A image alone."),
            (l1(same_a, x_a), "only G_BA's term is there: add mean|G_AB(x_b) - x_b|, G_AB leaving a B image alone."),
            (l2(same_b, x_b) + l2(same_a, x_a), "you used a squared error (L2, F.mse_loss): the identity loss is the L1 "
                                                "distance, mean |G_AB(x_b) - x_b| (F.l1_loss)."),
            ((same_b - x_b).abs().sum() + (same_a - x_a).abs().sum(),
             "you summed over pixels and images: take the mean of each term."),
            ((same_b - x_b).abs().flatten(1).sum(1).mean() + (same_a - x_a).abs().flatten(1).sum(1).mean(),
             "you summed over the pixels of each image: take the mean over pixels too (F.l1_loss does both)."),
            (l1(same_b, x_a) + l1(same_a, x_b), "you compared G_AB(x_b) with x_a: a generator fed an image of its output "
                                                "domain should return THAT image, mean|G_AB(x_b) - x_b|."),
            (l1(G_BA(fake_b), x_a) + l1(G_AB(fake_a), x_b), "that is the cycle loss (there and back); the identity loss "
                                                             "is one step: mean|G_AB(x_b) - x_b| + mean|G_BA(x_a) - x_a|."),
            (0.5 * ref, "you halved the loss (averaged the two terms, or multiplied by lambda_identity = 0.5): return the "
                        "plain sum of the two means; the caller weights it."),
            (5 * ref, "you multiplied by the weight lambda_identity * lambda_cycle = 5: return the plain loss; the caller "
                      "weights it."),
        ]


@exercise("08.2", "the identity loss", forbid=("course_lib.cyclegan.identity_loss",))
@own_rng
def check_identity_loss(identity_loss) -> None:
    G_AB, G_BA = Affine(0.5, 0.3), Affine(1.5, -0.6)
    x_a, x_b = random_images(0, (3, 1, 4, 4)), random_images(1, (3, 1, 4, 4), -1.0, 0.6)
    out = expect_scalar(call(identity_loss, G_AB, G_BA, x_a.clone(), x_b.clone()), "identity_loss")
    ref = reference_identity_loss(G_AB, G_BA, x_a, x_b)
    for wrong, message in identity_candidates(G_AB, G_BA, x_a, x_b):
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake(f"identity_loss gives {out.item():.5f} where the reference gives {ref.item():.5f}: "
                      "mean|G_AB(x_b) - x_b| + mean|G_BA(x_a) - x_a|.")
    check_grads(out, reference_identity_loss, G_AB, G_BA, x_a, x_b, "identity_loss",
                 "Each term trains its own generator: mean|G_AB(x_b) - x_b| trains G_AB, mean|G_BA(x_a) - x_a| G_BA.")

    same = call(identity_loss, nn.Identity(), nn.Identity(), x_a.clone(), x_b.clone())
    if not close(expect_scalar(same, "identity_loss"), torch.tensor(0.0), atol=1e-7):
        raise Mistake(f"generators that change nothing have identity loss 0; yours is {float(same):.4g}.")
    G_AB, G_BA = Affine(-0.8, 0.1), Affine(1.2, 0.4)
    x_a, x_b = random_images(2, (2, 3, 5, 5)), random_images(3, (5, 3, 5, 5))
    out = expect_scalar(call(identity_loss, G_AB, G_BA, x_a.clone(), x_b.clone()), "identity_loss")
    with torch.no_grad():
        pooled = torch.cat([G_AB(x_b) - x_b, G_BA(x_a) - x_a]).abs().mean()
    if close(out, pooled):
        raise Mistake("you took one mean over the two batches together: with 2 A images and 5 B images that weights "
                      "B more. The identity loss is the SUM of two means, one per generator.")
    if not close(out, reference_identity_loss(G_AB, G_BA, x_a, x_b)):
        raise Mistake("correct for batches of 3 one-channel 4x4 images, but not for 2 A and 5 B images of shape "
                      "(3, 5, 5): is something hard-coded?")


# ----------------------------------------------------------------------------------------------
# 08.3 the least-squares GAN losses
# ----------------------------------------------------------------------------------------------

def lsgan_d_candidates(r: torch.Tensor, f: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong LSGAN D losses for real scores r and fake scores f."""
    m = lambda t: t.mean()                            # noqa: E731
    bce = m(F.softplus(-r)) + m(F.softplus(f))        # BCE with logits, targets 1 and 0
    ref = reference_lsgan_d_loss(r, f)
    return [
        (2 * ref, "the factor 0.5 is missing: CycleGAN's D loss is 0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2), so "
                  "D learns at half the generator's rate."),
        (0.5 * (m(r ** 2) + m((f - 1) ** 2)), "the targets are swapped: D wants REAL scores at 1, (D(real) - 1)^2, and "
                                              "FAKE scores at 0, D(fake)^2."),
        (m(r ** 2) + m((f - 1) ** 2), "the targets are swapped (and the 0.5 is missing): real scores go to 1, fake "
                                      "scores to 0: 0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2)."),
        (bce, "this is the BCE (cross-entropy) loss of the original GAN: LSGAN replaces it with squared errors on the "
              "raw scores, 0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2), no sigmoid and no log."),
        (0.5 * bce, "this is half the BCE loss: LSGAN uses squared errors on the raw scores, "
                    "0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2), no sigmoid and no log."),
        (0.5 * (m((torch.sigmoid(r) - 1) ** 2) + m(torch.sigmoid(f) ** 2)),
         "you applied a sigmoid to the scores: LSGAN's D outputs raw scores and the squared errors act on them directly."),
        (0.5 * (m((r - 1) ** 2) + m((f + 1) ** 2)), "the fake target is -1: that is another LSGAN variant; CycleGAN uses "
                                                    "the targets 1 (real) and 0 (fake): D(fake)^2."),
        (0.5 * m((r - 1) ** 2), "only the real term is there: add mean D(fake)^2, inside the 0.5 * (...)."),
        (0.5 * m(f ** 2), "only the fake term is there: add mean (D(real) - 1)^2, inside the 0.5 * (...)."),
        (0.5 * ((r - 1) ** 2).sum() + 0.5 * (f ** 2).sum(), "you summed over the scores: take the mean of each term, "
                                                            "over the batch and the patch grid."),
        (0.5 * (m((r - 1).abs()) + m(f.abs())), "you used absolute errors: LSGAN is LEAST SQUARES, "
                                                "0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2)."),
        (0.5 * (m((r - 1) ** 2) - m(f ** 2)), "the fake term has the wrong sign: D minimises BOTH squared errors, so "
                                              "0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2)."),
    ]


def lsgan_g_candidates(f: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong LSGAN G losses for fake scores f."""
    ref = reference_lsgan_g_loss(f)
    return [
        ((f ** 2).mean(), "your G loss minimises D(fake)^2, pushing the fakes' scores to 0, which is D's target for "
                          "FAKES. G wants D to score its fakes as real: mean (D(fake) - 1)^2."),
        (-(f ** 2).mean(), "your G maximises D's fake term (the minimax game): in LSGAN, G minimises its own squared "
                           "error to the REAL target, mean (D(fake) - 1)^2."),
        (-0.5 * (f ** 2).mean(), "your G maximises D's fake term (the minimax game): in LSGAN, G minimises its own "
                                 "squared error to the REAL target, mean (D(fake) - 1)^2."),
        (0.5 * ref, "the 0.5 belongs to D's loss only: G's loss is mean (D(fake) - 1)^2."),
        (F.softplus(-f).mean(), "this is the non-saturating BCE loss of the original GAN: LSGAN's G loss is "
                                "mean (D(fake) - 1)^2 on the raw scores."),
        (((f - 1) ** 2).sum(), "you summed over the scores: take the mean, over the batch and the patch grid."),
        ((f - 1).abs().mean(), "you used an absolute error: LSGAN is LEAST SQUARES, mean (D(fake) - 1)^2."),
        (((f + 1) ** 2).mean(), "the target is -1: G wants its fakes scored as REAL, and the real target is 1: "
                                "mean (D(fake) - 1)^2."),
    ]


@exercise("08.3", "the least-squares GAN losses",
          forbid=("course_lib.cyclegan.lsgan_d_loss", "course_lib.cyclegan.lsgan_g_loss"))
@own_rng
def check_lsgan_losses(lsgan_d_loss, lsgan_g_loss) -> None:
    g = torch.Generator().manual_seed(case_seed(0))
    real = 0.7 + 0.5 * torch.randn(4, 1, 3, 3, generator=g)       # patch grids of scores, as PatchGAN gives
    fake = 0.2 + 0.5 * torch.randn(4, 1, 3, 3, generator=g)
    real_g, fake_g = real.clone().requires_grad_(), fake.clone().requires_grad_()
    out = expect_scalar(call(lsgan_d_loss, real_g, fake_g), "lsgan_d_loss")
    ref = reference_lsgan_d_loss(real, fake)
    for wrong, message in lsgan_d_candidates(real, fake):
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake("lsgan_d_loss: " + message)
    if not close(out, ref):
        raise Mistake(f"lsgan_d_loss gives {out.item():.5f} where the reference gives {ref.item():.5f}: "
                      "0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2).")
    if not out.requires_grad:
        raise Mistake("lsgan_d_loss is cut off from the scores (.detach(), .item(), numpy): stay in torch so that "
                      "D can be trained with it.")
    out.backward()
    if fake_g.grad is None or not close(fake_g.grad, fake / fake.numel()):
        raise Mistake("the gradient of lsgan_d_loss with respect to the fake scores should be D(fake) / N.")
    perfect = expect_scalar(call(lsgan_d_loss, torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)), "lsgan_d_loss")
    if not close(perfect, torch.tensor(0.0), atol=1e-7):
        raise Mistake(f"a perfect D (real scores 1, fake scores 0) has LSGAN loss 0; yours gives {float(perfect):.4g}.")
    r2, f2 = real.flatten()[:24].view(6, 1, 2, 2), fake.flatten()[:12].view(3, 1, 2, 2)
    out = expect_scalar(call(lsgan_d_loss, r2, f2), "lsgan_d_loss")
    if close(out, torch.cat([(r2 - 1) ** 2, f2 ** 2]).mean()):
        raise Mistake("lsgan_d_loss takes one mean over real and fake scores together: with 6 real and 3 fake grids "
                      "that weights the real ones more. Average each term separately: "
                      "0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2).")
    if not close(out, reference_lsgan_d_loss(r2, f2)):
        raise Mistake("lsgan_d_loss is right for 4 real and 4 fake 3x3 grids but not for 6 real and 3 fake 2x2 grids: "
                      "is something hard-coded?")

    fake_g = fake.clone().requires_grad_()
    out = expect_scalar(call(lsgan_g_loss, fake_g), "lsgan_g_loss")
    ref = reference_lsgan_g_loss(fake)
    for wrong, message in lsgan_g_candidates(fake):
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake("lsgan_g_loss: " + message)
    if not close(out, ref):
        raise Mistake(f"lsgan_g_loss gives {out.item():.5f} where the reference gives {ref.item():.5f}: "
                      "mean (D(fake) - 1)^2.")
    if not out.requires_grad:
        raise Mistake("lsgan_g_loss is cut off from the scores (.detach(), .item(), numpy): the generator is trained "
                      "through it.")
    out.backward()
    if fake_g.grad is None or not close(fake_g.grad, 2 * (fake - 1) / fake.numel()):
        raise Mistake("the gradient of lsgan_g_loss with respect to the fake scores should be 2 (D(fake) - 1) / N.")
    fooled = expect_scalar(call(lsgan_g_loss, torch.ones(3, 1, 2, 2)), "lsgan_g_loss")
    if not close(fooled, torch.tensor(0.0), atol=1e-7):
        raise Mistake(f"when D scores every fake 1 (fully fooled), G's loss is 0; yours gives {float(fooled):.4g}.")

