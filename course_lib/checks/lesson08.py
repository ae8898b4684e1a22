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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import (Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng,
                               poke_)

# Reference implementations (what course_lib.cyclegan computes) ---------------------------------


def reference_cycle_loss(G_AB: nn.Module, G_BA: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency in both directions: mean|G_BA(G_AB(x_a)) - x_a| + mean|G_AB(G_BA(x_b)) - x_b|."""
    return (G_BA(G_AB(x_a)) - x_a).abs().mean() + (G_AB(G_BA(x_b)) - x_b).abs().mean()


def reference_identity_loss(G_AB: nn.Module, G_BA: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """Each generator fed its OUTPUT domain leaves it alone: mean|G_AB(x_b) - x_b| + mean|G_BA(x_a) - x_a|."""
    return (G_AB(x_b) - x_b).abs().mean() + (G_BA(x_a) - x_a).abs().mean()


def reference_lsgan_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares D loss, CycleGAN's: 0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2); scores of any shape."""
    return 0.5 * ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean())


def reference_lsgan_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares G loss: mean (D(fake) - 1)^2 (G wants its fakes scored as real, 1)."""
    return (fake_scores - 1).pow(2).mean()


class ReferenceImagePool:
    """The history pool one image at a time; ``course_lib.cyclegan.ImagePool`` does the same per batch.

    While fewer than ``capacity`` images are stored, each new image is stored (a detached copy) and
    returned. Once full, each new image is, with probability 1/2, swapped with a stored image chosen
    uniformly at random (the old one is returned, the new one takes its slot), else returned as it is.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.images: list[torch.Tensor] = []          # the stored images, each (C, H, W)

    def query(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, H, W) new images -> (B, C, H, W) detached batch for D, each new or from the history."""
        out = []
        for image in images.detach():                  # (C, H, W) each
            if len(self.images) < self.capacity:       # not full: store a copy, return the image
                self.images.append(image.clone())
                out.append(image)
            elif self.capacity and torch.rand((), generator=generator) < 0.5:
                slot = int(torch.randint(self.capacity, (), generator=generator))
                out.append(self.images[slot])          # D sees the old image...
                self.images[slot] = image.clone()      # ...and the new one takes its slot
            else:
                out.append(image)
        return torch.stack(out)                        # a new tensor: no memory shared with the pool


def reference_transposed_conv_overlap(size: int, kernel: int, stride: int, padding: int = 0,
                                      output_padding: int = 0) -> torch.Tensor:
    """How many inputs touch each output of a 1-D transposed convolution; (L_out,) int64.

    L_out = (size - 1) * stride - 2 * padding + kernel + output_padding. Input i adds its kernel to the
    outputs i * stride - padding + j, j = 0..kernel-1; padding crops the full output at both ends.
    """
    ones = torch.ones(1, 1, size, dtype=torch.float64)
    counts = F.conv_transpose1d(ones, torch.ones(1, 1, kernel, dtype=torch.float64), stride=stride,
                                padding=padding, output_padding=output_padding)   # (1, 1, L_out)
    return counts[0, 0].round().long()


# Stand-in generators for the loss checks ---------------------------------------------------------


class Affine(nn.Module):
    """A stand-in generator x -> scale * x + shift (trainable scalars): cheap, and easy to reason about."""

    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.shift = nn.Parameter(torch.tensor(float(shift)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.shift


def _images(seed: int, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(case_seed(seed))
    return low + (high - low) * torch.rand(shape, generator=g)


def _scalar(out, name: str) -> torch.Tensor:
    if isinstance(out, float):
        raise Mistake(f"{name} returned a Python float: return the loss tensor (the caller calls .backward() on it).")
    out = expect_tensor(out, name)
    if out.dim() > 0 and out.numel() > 1:
        raise Mistake(f"{name} returned shape {tuple(out.shape)}: return one number, the mean over all images and "
                      "pixels (a 0-dimensional tensor).")
    expect_shape(out, (), name, "The mean over all images and pixels.")
    return out


def _params(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def _check_grads(out: torch.Tensor, ref_fn, G_AB: Affine, G_BA: Affine, x_a, x_b, name: str, hint: str) -> None:
    """The learner's loss must send the reference's gradient to both generators' scale and shift."""
    if not out.requires_grad:
        raise Mistake(f"{name} is cut off from the generators (.detach(), .item(), torch.no_grad()): the loss trains "
                      "both generators, so keep it in the graph.")
    params = _params(G_AB, G_BA)
    got = torch.autograd.grad(out, params, allow_unused=True)
    want = torch.autograd.grad(ref_fn(G_AB, G_BA, x_a, x_b), params)
    for label, g_got, g_want in zip(("G_AB", "G_AB", "G_BA", "G_BA"), got, want):
        if g_got is None or not close(g_got, g_want, rtol=1e-4, atol=1e-6):
            raise Mistake(f"the value of {name} is right, but the gradient reaching {label} is wrong. {hint}")


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
    x_a, x_b = _images(0, (3, 1, 4, 4)), _images(1, (3, 1, 4, 4), -1.0, 0.6)
    out = _scalar(call(cycle_loss, G_AB, G_BA, x_a.clone(), x_b.clone()), "cycle_loss")
    ref = reference_cycle_loss(G_AB, G_BA, x_a, x_b)
    for wrong, message in cycle_candidates(G_AB, G_BA, x_a, x_b):
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake(f"cycle_loss gives {out.item():.5f} where the reference gives {ref.item():.5f}: "
                      "mean|G_BA(G_AB(x_a)) - x_a| + mean|G_AB(G_BA(x_b)) - x_b|.")
    _check_grads(out, reference_cycle_loss, G_AB, G_BA, x_a, x_b, "cycle_loss",
                 "Don't detach the translation: the cycle loss trains G_AB through G_BA(G_AB(x_a)) as well as G_BA.")

    # Analytic cases: generators that undo each other have zero cycle loss, however much they change an image.
    undo = call(cycle_loss, Affine(2.0, 1.0), Affine(0.5, -0.5), x_a.clone(), x_b.clone())
    if not close(_scalar(undo, "cycle_loss"), torch.tensor(0.0), atol=1e-6):
        raise Mistake(f"G_AB(x) = 2x + 1 and G_BA(x) = (x - 1) / 2 undo each other, so the cycle loss is 0, but yours "
                      f"is {float(undo):.4g}: compare the round trip G_BA(G_AB(x_a)) with x_a.")
    same = call(cycle_loss, nn.Identity(), nn.Identity(), x_a.clone(), x_b.clone())
    if not close(_scalar(same, "cycle_loss"), torch.tensor(0.0), atol=1e-7):
        raise Mistake(f"with generators that change nothing the cycle loss is 0, yours is {float(same):.4g}.")
    # Another shape, and batches of different sizes: nothing may be hard-coded.
    G_AB, G_BA = Affine(-0.8, 0.1), Affine(1.2, 0.4)
    x_a, x_b = _images(2, (2, 3, 5, 5)), _images(3, (5, 3, 5, 5))
    out = _scalar(call(cycle_loss, G_AB, G_BA, x_a.clone(), x_b.clone()), "cycle_loss")
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
    x_a, x_b = _images(0, (3, 1, 4, 4)), _images(1, (3, 1, 4, 4), -1.0, 0.6)
    out = _scalar(call(identity_loss, G_AB, G_BA, x_a.clone(), x_b.clone()), "identity_loss")
    ref = reference_identity_loss(G_AB, G_BA, x_a, x_b)
    for wrong, message in identity_candidates(G_AB, G_BA, x_a, x_b):
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake(f"identity_loss gives {out.item():.5f} where the reference gives {ref.item():.5f}: "
                      "mean|G_AB(x_b) - x_b| + mean|G_BA(x_a) - x_a|.")
    _check_grads(out, reference_identity_loss, G_AB, G_BA, x_a, x_b, "identity_loss",
                 "Each term trains its own generator: mean|G_AB(x_b) - x_b| trains G_AB, mean|G_BA(x_a) - x_a| G_BA.")

    same = call(identity_loss, nn.Identity(), nn.Identity(), x_a.clone(), x_b.clone())
    if not close(_scalar(same, "identity_loss"), torch.tensor(0.0), atol=1e-7):
        raise Mistake(f"generators that change nothing have identity loss 0; yours is {float(same):.4g}.")
    G_AB, G_BA = Affine(-0.8, 0.1), Affine(1.2, 0.4)
    x_a, x_b = _images(2, (2, 3, 5, 5)), _images(3, (5, 3, 5, 5))
    out = _scalar(call(identity_loss, G_AB, G_BA, x_a.clone(), x_b.clone()), "identity_loss")
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
    out = _scalar(call(lsgan_d_loss, real_g, fake_g), "lsgan_d_loss")
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
    perfect = _scalar(call(lsgan_d_loss, torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)), "lsgan_d_loss")
    if not close(perfect, torch.tensor(0.0), atol=1e-7):
        raise Mistake(f"a perfect D (real scores 1, fake scores 0) has LSGAN loss 0; yours gives {float(perfect):.4g}.")
    r2, f2 = real.flatten()[:24].view(6, 1, 2, 2), fake.flatten()[:12].view(3, 1, 2, 2)
    out = _scalar(call(lsgan_d_loss, r2, f2), "lsgan_d_loss")
    if close(out, torch.cat([(r2 - 1) ** 2, f2 ** 2]).mean()):
        raise Mistake("lsgan_d_loss takes one mean over real and fake scores together: with 6 real and 3 fake grids "
                      "that weights the real ones more. Average each term separately: "
                      "0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2).")
    if not close(out, reference_lsgan_d_loss(r2, f2)):
        raise Mistake("lsgan_d_loss is right for 4 real and 4 fake 3x3 grids but not for 6 real and 3 fake 2x2 grids: "
                      "is something hard-coded?")

    fake_g = fake.clone().requires_grad_()
    out = _scalar(call(lsgan_g_loss, fake_g), "lsgan_g_loss")
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
    fooled = _scalar(call(lsgan_g_loss, torch.ones(3, 1, 2, 2)), "lsgan_g_loss")
    if not close(fooled, torch.tensor(0.0), atol=1e-7):
        raise Mistake(f"when D scores every fake 1 (fully fooled), G's loss is 0; yours gives {float(fooled):.4g}.")


# ----------------------------------------------------------------------------------------------
# 08.4 the image history pool
# ----------------------------------------------------------------------------------------------

_IMAGE_SHAPE = (1, 2, 3)                                              # (C, H, W): tiny, non-square
_PATTERN = torch.arange(6, dtype=torch.float32).view(_IMAGE_SHAPE) / 8  # in every image, so mixed pixels show


def _tagged(ids: list[int]) -> torch.Tensor:
    """(B, C, H, W) images whose content names them: image k is k + a fixed pattern (exact in float32)."""
    return torch.tensor(ids, dtype=torch.float32)[:, None, None, None] + _PATTERN


def _image_ids(images: torch.Tensor) -> list[int | None]:
    """The names of (N, C, H, W) images made by ``_tagged`` (None for an image that is none of them)."""
    if images.dim() != 4 or tuple(images.shape[1:]) != _IMAGE_SHAPE:
        return [None] * len(images)
    x = images.detach().float()
    k = torch.nan_to_num(x[:, 0, 0, 0].round(), nan=0.0, posinf=0.0, neginf=0.0)              # (N,)
    ok = (k >= 1) & (x == k[:, None, None, None] + _PATTERN).flatten(1).all(dim=1)             # (N,)
    return [int(v) if good else None for v, good in zip(k.tolist(), ok.tolist())]


def _image_id(image: torch.Tensor) -> int | None:
    """The name of one (C, H, W) image made by ``_tagged``, or None."""
    return _image_ids(image[None])[0]


def _stored(pool) -> list[torch.Tensor]:
    if not hasattr(pool, "images"):
        raise Mistake("the pool has no attribute `images`: keep the stored images in the list self.images "
                      "(as __init__ sets it up), one (C, H, W) tensor per stored image.")
    try:
        images = list(pool.images)
    except TypeError:
        raise Mistake(f"self.images should be a list of (C, H, W) tensors, not {type(pool.images).__name__}.") from None
    for image in images:
        if not isinstance(image, torch.Tensor):
            raise Mistake(f"self.images should hold tensors, one per stored image, but holds a {type(image).__name__}.")
    return images


def _ids_of(images: list[torch.Tensor]) -> list[int | None]:
    if not images:
        return []
    if all(tuple(image.shape) == _IMAGE_SHAPE for image in images):
        return _image_ids(torch.stack([image.detach() for image in images]))
    return [_image_id(image) if image.dim() == 3 else None for image in images]


def _stored_ids(pool) -> list[int | None]:
    return _ids_of(_stored(pool))


class _PoolRun:
    """Feed a learner's pool batches of named images and follow what it must hold after every call.

    Whatever order the learner draws its random numbers in, a correct pool's output tells exactly what
    happened: a row that comes back as itself was not swapped, a row that comes back as an older image
    swapped with it. So the pool's content after each call is known, and compared with ``pool.images``.
    """

    def __init__(self, pool, capacity: int, poke: bool = True) -> None:
        self.pool, self.capacity, self.poke = pool, capacity, poke
        self.inserted: dict[int, int] = {}           # id of each image that should be stored -> time it went in
        self.next_id, self.clock = 1, 0
        self.after_full = self.swaps = 0             # images handled once full; of which swapped
        self.ranks = [0] * capacity                  # age rank of the image handed back (0 = oldest stored)

    def query(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        ids = list(range(self.next_id, self.next_id + batch))
        self.next_id += batch
        w = torch.ones((), requires_grad=True)
        fakes = _tagged(ids) * w                     # attached to a graph, like G's output
        out = call(self.pool.query, fakes, generator, what="ImagePool.query")
        if isinstance(out, (list, tuple)):
            raise Mistake("query returned a Python list: return ONE tensor of shape (B, C, H, W), e.g. torch.stack(out).")
        out = expect_tensor(out, "ImagePool.query")
        expect_shape(out, (batch, *_IMAGE_SHAPE), "ImagePool.query", "One image for D per new image, in the same order.")
        if out.requires_grad:
            raise Mistake("the batch you return still requires grad, attached to G's graph: D's loss would then "
                          "backpropagate into the generator through the pool. Detach the images first "
                          "(images = images.detach()).")
        got = _image_ids(out)
        for row, (new, old) in enumerate(zip(ids, got)):
            self._follow(row, new, old)
        stored = self._check_stored(ids, got)
        if self.poke:
            self._poke(out, fakes, stored)
        return out

    def _follow(self, row: int, new: int, old: int | None) -> None:
        if old is None:
            raise Mistake(f"row {row} of the batch you returned is not one of the images given to the pool (its "
                          "pixels match none of them exactly): return each image unchanged, the new one or a stored one.")
        if len(self.inserted) < self.capacity:
            if old != new:
                raise Mistake(f"while the pool is not full yet (it held {len(self.inserted)} of {self.capacity} "
                              "images), each new image must be stored AND returned as it is; row "
                              f"{row} came back as another image.")
            self.inserted[new] = self.clock
        else:
            self.after_full += 1
            if old in self.inserted:
                rank = sorted(self.inserted.values()).index(self.inserted[old])
                self.ranks[rank] += 1
                self.swaps += 1
                del self.inserted[old]
                self.inserted[new] = self.clock
            elif old != new:
                if old > new:
                    raise Mistake(f"row {row} came back as the image of a LATER row of the same batch: keep the "
                                  "batch's order, one output row per input row.")
                raise Mistake(f"row {row} came back as an older image that is no longer in the pool (it was handed "
                              "back before, or was never stored). On a swap, the old image leaves the pool and the new "
                              "one takes its slot.")
        self.clock += 1

    def _check_stored(self, ids: list[int], got: list[int | None]) -> list[int | None]:
        images = _stored(self.pool)
        if any(image.requires_grad for image in images):
            raise Mistake("the pool stores images that still require grad: each keeps G's whole computation graph "
                          "alive (memory grows with every step, and a later backward may go through old graphs). "
                          "Store a detached copy: image.detach().clone().")
        stored = _ids_of(images)
        if None in stored:
            raise Mistake("the pool holds an image that is none of the images it was given (modified, or a placeholder "
                          "like zeros): store exact copies of the new images.")
        if len(stored) > self.capacity:
            raise Mistake(f"the pool grew beyond its capacity: it holds {len(stored)} images, capacity "
                          f"{self.capacity}. Once it is full, a new image only enters by taking the slot of the image "
                          "you hand back.")
        if sorted(stored) == sorted(self.inserted):
            return stored
        for new, old in zip(ids, got):
            if old != new and old in stored and new not in stored:
                raise Mistake("you handed back an old image but did not store the new one in its place: on a swap, "
                              "the new image must take the old one's slot (self.images[slot] = the new image), so the "
                              "pool keeps changing.")
        lost = set(self.inserted) - set(stored) - set(ids)
        sneaked = [new for new, old in zip(ids, got) if old == new and new in stored and new not in self.inserted]
        if lost and sneaked:
            raise Mistake("a new image went into the pool, but you returned the NEW image instead of the old one, and "
                          "the old image was lost. This happens when the old image is a view that the swap "
                          "overwrites (self.images[i].copy_(image), or a slot of a preallocated tensor): take the old "
                          "image out first, old = self.images[i], then put a copy of the new one in its place, "
                          "self.images[i] = image.clone().")
        if len(stored) < len(self.inserted):
            raise Mistake(f"the pool holds {len(stored)} images where it should hold {len(self.inserted)}: while it is "
                          "not full, store every new image; once full, replace (don't remove) the one you hand back.")
        raise Mistake(f"after this call the pool should hold the images {sorted(self.inserted)} but holds "
                      f"{sorted(stored)}: store new images while not full; on a swap, the new image takes the slot "
                      "of the old one you return; otherwise the pool is unchanged.")

    def _poke(self, out: torch.Tensor, fakes: torch.Tensor, stored: list[int | None]) -> None:
        """Change the returned batch, then the input batch, in place: the pool's history must not move."""
        try:
            poke_(out, 1000.0)
        except RuntimeError:                         # an expanded or otherwise read-only view: nothing to poke
            return
        if _stored_ids(self.pool) != stored:
            raise Mistake("the images you returned share memory with the images you stored: when D's code changes its "
                          "batch in place, the pool's history changes too. Store copies (image.detach().clone()) and "
                          "return a new tensor (torch.stack(out)).")
        poke_(fakes, 1000.0)
        if _stored_ids(self.pool) != stored:
            raise Mistake("the pool stores views of the batch it was given, not copies: when that tensor is reused or "
                          "changed, the history changes with it. Store image.detach().clone().")


def _make_pool(ImagePool, capacity: int):
    return call(ImagePool, capacity, what=f"ImagePool({capacity})")


@exercise("08.4", "the image history pool", forbid=("course_lib.cyclegan.ImagePool",))
@own_rng
def check_image_pool(ImagePool) -> None:
    # 1. Follow every call: fill, then swaps; batches of several sizes, one straddling the end of the fill.
    capacity, sizes = 10, [3, 4, 1, 4, 2]
    run = _PoolRun(_make_pool(ImagePool, capacity), capacity)
    g = torch.Generator().manual_seed(case_seed(0))
    for step in range(100):
        run.query(sizes[step % len(sizes)], g)

    # 2. The statistics: a fair coin once full, and the stored image handed back chosen uniformly. One image
    # per call, so that a per-image loop and a vectorised pool (which swaps distinct slots within a batch)
    # follow the same law exactly.
    capacity = 5
    run = _PoolRun(_make_pool(ImagePool, capacity), capacity, poke=False)
    g = torch.Generator().manual_seed(case_seed(1))
    for step in range(500):
        run.query(1, g)
    frac = run.swaps / run.after_full
    if frac < 0.05:
        raise Mistake("once full, your pool never hands back an older image: with probability 1/2 it should return a "
                      "stored image (chosen at random) and keep the new one in its place; that is the whole point of "
                      "the history.")
    if frac > 0.95:
        raise Mistake("once full, your pool always hands back an older image: flip a fair coin per image, "
                      "torch.rand((), generator=generator) < 0.5, and return the new image itself on the other half.")
    if not 0.4 <= frac <= 0.6:
        raise Mistake(f"once full, your pool handed back an older image for {frac:.0%} of the new images: it should "
                      "be half of them (a fair coin, torch.rand(...) < 0.5).")
    share = [r / run.swaps for r in run.ranks]                       # expected 1 / capacity each
    if share[0] > 0.8:
        raise Mistake("the image you hand back is nearly always the OLDEST stored one (a queue): pick the slot "
                      "uniformly at random, torch.randint(capacity, (), generator=generator).")
    if share[-1] > 0.8:
        raise Mistake("the image you hand back is nearly always the NEWEST stored one (the same slot every time?): "
                      "pick the slot uniformly at random, torch.randint(capacity, (), generator=generator).")
    if min(share) < 0.3 / capacity or max(share) > 2.5 / capacity:
        raise Mistake("the stored image you hand back is not chosen uniformly: some slots are picked far more often "
                      f"than others (shares by age, oldest first: {[round(s, 2) for s in share]}). Use "
                      "torch.randint(capacity, (), generator=generator).")

    # 3. Same seeded generator, same batches: the same output, whatever the global random state.
    outputs = []
    for global_seed in (1, 2):
        pool, g = _make_pool(ImagePool, 4), torch.Generator().manual_seed(case_seed(5))
        torch.manual_seed(case_seed(global_seed))
        outputs.append(torch.cat([call(pool.query, _tagged(list(range(4 * i + 1, 4 * i + 5))), g,
                                       what="ImagePool.query") for i in range(8)]))
    if not torch.equal(outputs[0], outputs[1]):
        raise Mistake("two runs with the same seeded generator gave different batches: draw the coin flips and the "
                      "slots from the `generator` argument (torch.rand(..., generator=generator), torch.randint(..., "
                      "generator=generator)), not from random.random() or torch's global generator.")

    # 4. Capacity 0 switches the pool off: the batch comes back unchanged (and detached).
    pool = _make_pool(ImagePool, 0)
    fakes = _tagged([1, 2, 3]) * torch.ones((), requires_grad=True)
    try:
        out = call(pool.query, fakes, torch.Generator().manual_seed(case_seed(0)), what="ImagePool.query")
    except Mistake as err:
        raise Mistake(f"with capacity 0 (the pool switched off): {err} Return the batch as it is (detached) when "
                      "the capacity is 0.") from None
    out = expect_tensor(out, "ImagePool.query")
    if tuple(out.shape) != tuple(fakes.shape) or not torch.equal(out.detach(), fakes.detach()):
        raise Mistake("with capacity 0 (the pool switched off) the batch should come back unchanged.")
    if out.requires_grad:
        raise Mistake("with capacity 0 the batch should come back detached (images.detach()).")
    if _stored(pool):
        raise Mistake("with capacity 0 the pool should store nothing.")


# ----------------------------------------------------------------------------------------------
# 08.5 checkerboards: how many inputs touch each output of a transposed convolution
# ----------------------------------------------------------------------------------------------

OVERLAP_CASES = [  # (size, kernel, stride, padding, output_padding); the first is CycleGAN's up_stage
    (4, 3, 2, 1, 1), (5, 4, 2, 1, 0), (6, 3, 1, 1, 0), (3, 5, 3, 2, 1), (4, 2, 2, 0, 0), (5, 3, 2, 0, 1), (3, 7, 2, 3, 1),
]


def _full_counts(size: int, kernel: int, stride: int, output_padding: int) -> torch.Tensor:
    """Counts over the uncropped output (size - 1) * stride + kernel, then output_padding zeros."""
    full = torch.zeros((size - 1) * stride + kernel + output_padding, dtype=torch.long)
    for i in range(size):
        full[i * stride: i * stride + kernel] += 1
    return full


@exercise("08.5", "checkerboards: overlaps of a transposed convolution")
@own_rng
def check_transposed_conv_overlap(transposed_conv_overlap) -> None:
    for n, k, s, p, op in OVERLAP_CASES:
        args = f"size={n}, kernel={k}, stride={s}, padding={p}, output_padding={op}"
        out = expect_tensor(call(transposed_conv_overlap, n, k, s, p, op), "transposed_conv_overlap")
        if out.dim() != 1:
            raise Mistake(f"for {args} you returned shape {tuple(out.shape)}: return a 1-D tensor, one count per "
                          "output position.")
        if out.is_floating_point():
            if not torch.equal(out, out.round()):
                raise Mistake(f"for {args} some counts are not whole numbers: count how many inputs touch each output.")
            out = out.round()
        out = out.long()
        L = (n - 1) * s - 2 * p + k + op
        lengths = [
            ((n + 2 * p - k) // s + 1, "that is the output size of an ORDINARY convolution, (n + 2p - k) // s + 1; a "
                                       "transposed convolution goes the other way: (n - 1) * stride - 2 * padding + "
                                       "kernel + output_padding."),
            (L - op, "output_padding is missing: it adds output_padding positions at the end of the output, "
                     "(n - 1) * stride - 2 * padding + kernel + output_padding."),
            ((n - 1) * s + k + op, "the padding is not cropped: in a transposed convolution `padding` REMOVES that many "
                                   "positions from each end of the full output, (n - 1) * stride + kernel."),
            ((n - 1) * s + k, "the padding is not cropped and output_padding is missing: the output has "
                              "(n - 1) * stride - 2 * padding + kernel + output_padding positions."),
            ((n - 1) * s + 2 * p + k + op, "padding is added where it should be removed: a transposed convolution's "
                                           "padding crops the output, (n - 1) * stride - 2 * padding + kernel + "
                                           "output_padding."),
            (n * s, "n * stride is the output size only for special settings such as CycleGAN's (kernel 3, stride 2, "
                    "padding 1, output_padding 1); in general it is (n - 1) * stride - 2 * padding + kernel + "
                    "output_padding."),
            (n + k - 1 - 2 * p + op, "the stride is ignored: the inputs land `stride` positions apart, so the output "
                                     "has (n - 1) * stride - 2 * padding + kernel + output_padding positions."),
        ]
        if len(out) != L:
            for length, message in lengths:
                if len(out) == length and length != L:
                    raise Mistake(f"for {args} you returned {len(out)} counts, but the output has {L} positions: {message}")
            raise Mistake(f"for {args} you returned {len(out)} counts, but the output has {L} positions: "
                          "(n - 1) * stride - 2 * padding + kernel + output_padding.")
        ref = reference_transposed_conv_overlap(n, k, s, p, op)
        full = _full_counts(n, k, s, op)
        values = [
            (full[:L], "you cropped the padding at the end only: the full output loses `padding` positions at EACH "
                       "end, so output position o is full position o + padding."),
            (full[2 * p: 2 * p + L], "you cropped 2 * padding at the start: the full output loses `padding` positions "
                                     "at EACH end, so output position o is full position o + padding."),
        ]
        if not torch.equal(out, ref):
            for wrong, message in values:
                if len(wrong) == L and torch.equal(out, wrong):
                    raise Mistake(f"for {args}: {message}")
            where = (out != ref).nonzero()[:, 0].tolist()
            raise Mistake(f"for {args} the counts are {out.tolist()}, but should be {ref.tolist()} (they differ at "
                          f"positions {where}). Input i touches the outputs i * stride - padding + j, j = 0 .. kernel - 1, "
                          "that fall inside the output.")


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
