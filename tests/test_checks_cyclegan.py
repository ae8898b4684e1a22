"""Graded checks of lesson 08 (CycleGAN).

As in test_checks_vae.py: the library, the check module's references and a learner-style solution
pass every check, an unattempted stub is "not attempted", the references equal course_lib.cyclegan
(for the history pool: the same statistics as the vectorised ``ImagePool``), and a bank of classic
mistakes is caught, each with its own message.
"""

import itertools
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import cyclegan
from course_lib.checks import MIME, CheckResult, lesson08
from course_lib.checks.lesson08 import losses as losses08, overlap as overlap08, pool as pool08
from course_lib.checks.lesson08 import references as references08


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ==============================================================================================
# Solutions: what a learner writes in each exercise cell
# ==============================================================================================

def solution_cycle_loss(G_AB, G_BA, x_a, x_b):
    rec_a = G_BA(G_AB(x_a))                               # A -> B -> A
    rec_b = G_AB(G_BA(x_b))                               # B -> A -> B
    return F.l1_loss(rec_a, x_a) + F.l1_loss(rec_b, x_b)


def solution_identity_loss(G_AB, G_BA, x_a, x_b):
    return F.l1_loss(G_AB(x_b), x_b) + F.l1_loss(G_BA(x_a), x_a)


def solution_lsgan_d_loss(real_scores, fake_scores):
    return 0.5 * (F.mse_loss(real_scores, torch.ones_like(real_scores))
                  + F.mse_loss(fake_scores, torch.zeros_like(fake_scores)))


def solution_lsgan_g_loss(fake_scores):
    return F.mse_loss(fake_scores, torch.ones_like(fake_scores))


class SolutionImagePool:
    def __init__(self, capacity):
        self.capacity = capacity
        self.images = []                                  # stored images, each (C, H, W)

    def query(self, images, generator=None):
        if self.capacity == 0:
            return images.detach()
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=generator).item() < 0.5:
                i = torch.randint(0, self.capacity, (1,), generator=generator).item()
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


def solution_transposed_conv_overlap(size, kernel, stride, padding=0, output_padding=0):
    length = (size - 1) * stride - 2 * padding + kernel + output_padding
    counts = torch.zeros(length, dtype=torch.long)
    for i in range(size):
        for j in range(kernel):
            o = i * stride + j - padding
            if 0 <= o < length:
                counts[o] += 1
    return counts


def library_cycle_loss(G_AB, G_BA, x_a, x_b):
    return cyclegan.cycle_loss(x_a, G_BA(G_AB(x_a)), x_b, G_AB(G_BA(x_b)))


class LibraryPool:
    """course_lib.cyclegan.ImagePool behind the exercise's interface (built at the first batch's image shape)."""

    def __init__(self, capacity):
        self.capacity, self.pool = capacity, None

    def query(self, images, generator=None):
        if self.pool is None:
            self.pool = cyclegan.ImagePool(self.capacity, tuple(images.shape[1:]))
        return self.pool(images, generator)

    @property
    def images(self):
        return [] if self.pool is None else list(self.pool.images[: int(self.pool.count)])


def library_transposed_conv_overlap(size, kernel, stride, padding=0, output_padding=0):
    """Count with a real nn.ConvTranspose1d: all-ones weights on an all-ones input."""
    conv = nn.ConvTranspose1d(1, 1, kernel, stride, padding, output_padding, bias=False)
    nn.init.ones_(conv.weight)
    with torch.no_grad():
        return conv(torch.ones(1, 1, size))[0, 0]       # float counts, as a learner may return them


# ==============================================================================================
# References and solutions pass; stubs are "not attempted"
# ==============================================================================================

REFERENCES = [
    ("cycle-reference", lesson08.check_cycle_loss, (lesson08.reference_cycle_loss,)),
    ("cycle-library", lesson08.check_cycle_loss, (library_cycle_loss,)),
    ("cycle-solution", lesson08.check_cycle_loss, (solution_cycle_loss,)),
    ("identity-reference", lesson08.check_identity_loss, (lesson08.reference_identity_loss,)),
    ("identity-library", lesson08.check_identity_loss, (cyclegan.identity_loss,)),
    ("identity-solution", lesson08.check_identity_loss, (solution_identity_loss,)),
    ("lsgan-reference", lesson08.check_lsgan_losses, (lesson08.reference_lsgan_d_loss, lesson08.reference_lsgan_g_loss)),
    ("lsgan-library", lesson08.check_lsgan_losses, (cyclegan.lsgan_d_loss, cyclegan.lsgan_g_loss)),
    ("lsgan-solution", lesson08.check_lsgan_losses, (solution_lsgan_d_loss, solution_lsgan_g_loss)),
    ("pool-reference", lesson08.check_image_pool, (lesson08.ReferenceImagePool,)),
    ("pool-library", lesson08.check_image_pool, (LibraryPool,)),
    ("pool-solution", lesson08.check_image_pool, (SolutionImagePool,)),
    ("overlap-reference", lesson08.check_transposed_conv_overlap, (lesson08.reference_transposed_conv_overlap,)),
    ("overlap-library", lesson08.check_transposed_conv_overlap, (library_transposed_conv_overlap,)),
    ("overlap-solution", lesson08.check_transposed_conv_overlap, (solution_transposed_conv_overlap,)),
]


@pytest.mark.parametrize("name, check, fns", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_reference_passes_and_stub_is_not_attempted(name, check, fns):
    result = check(*fns)
    assert result.status == "passed", result.message
    assert check(*(stub for _ in fns)).status == "not_attempted"
    bundle = result._repr_mimebundle_()
    assert bundle[MIME]["status"] == "passed" and "PASSED" in bundle["text/plain"]


def test_a_stub_pool_class_is_not_attempted():
    class StubPool:                                       # what the exercise notebook hands the learner
        def __init__(self, capacity):
            self.capacity = capacity
            self.images = []

        def query(self, images, generator=None):
            raise NotImplementedError("Exercise query: replace this line with your code")

    assert lesson08.check_image_pool(StubPool).status == "not_attempted"


def test_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson08.EXERCISES] == [f"08.{i}" for i in range(1, 6)]


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for _, check, fns in REFERENCES[2::3]:                # every check once, with the learner-style solution
        assert check(*fns).passed
    assert torch.equal(torch.rand(3), expected)


# ----- the reference implementations written in the check module equal the library -----

def test_reference_losses_equal_the_library():
    torch.manual_seed(0)
    pair = cyclegan.CycleGAN(cyclegan.CycleGANConfig(base_channels=4, n_blocks=1))
    g = torch.Generator().manual_seed(0)
    x_a, x_b = torch.rand(3, 1, 32, 32, generator=g) * 2 - 1, torch.rand(3, 1, 32, 32, generator=g) * 2 - 1
    G_AB, G_BA = pair.G_AB, pair.G_BA
    assert torch.allclose(lesson08.reference_cycle_loss(G_AB, G_BA, x_a, x_b), library_cycle_loss(G_AB, G_BA, x_a, x_b))
    assert torch.allclose(lesson08.reference_identity_loss(G_AB, G_BA, x_a, x_b),
                          cyclegan.identity_loss(G_AB, G_BA, x_a, x_b))
    real, fake = torch.randn(4, 1, 6, 6, generator=g), torch.randn(4, 1, 6, 6, generator=g)
    assert torch.allclose(lesson08.reference_lsgan_d_loss(real, fake), cyclegan.lsgan_d_loss(real, fake))
    assert torch.allclose(lesson08.reference_lsgan_g_loss(fake), cyclegan.lsgan_g_loss(fake))
    assert lesson08.reference_lsgan_d_loss(torch.ones(3), torch.zeros(3)) == 0


def _pool_statistics(pool, steps=1000, batch=8, seed=0):
    """Fraction of new images swapped once full, and the mean age (in images) of what was handed back."""
    g = torch.Generator().manual_seed(seed)
    next_id, swapped, after_full, ages = 1, 0, 0, []
    for _ in range(steps):
        ids = list(range(next_id, next_id + batch))
        next_id += batch
        out = pool.query(pool08._tagged(ids), g)
        for new, got in zip(ids, pool08._image_ids(out)):
            if new > pool.capacity:
                after_full += 1
                if got != new:
                    swapped += 1
                    ages.append(new - got)
    return swapped / after_full, sum(ages) / len(ages)


def test_reference_pool_has_the_statistics_of_the_library_pool():
    frac_ref, age_ref = _pool_statistics(lesson08.ReferenceImagePool(50))
    frac_lib, age_lib = _pool_statistics(LibraryPool(50))
    assert abs(frac_ref - 0.5) < 0.03 and abs(frac_lib - 0.5) < 0.03
    # a stored image survives each swap with probability 1 - 1/50: ~50 swaps, ~100 new images on average
    assert 80 < age_ref < 125 and 80 < age_lib < 125
    assert abs(age_ref - age_lib) / age_lib < 0.15


def test_reference_overlap_counts_make_the_up_stage_checkerboard():
    """The outer product of the 1-D counts is what CycleGAN's up_stage (k3 s2 p1 op1) adds up in 2-D."""
    up = cyclegan.up_stage(1, 1, "transpose", "batch")[0]
    nn.init.ones_(up.weight)
    with torch.no_grad():
        counts_2d = up(torch.ones(1, 1, 4, 4))[0, 0]       # (8, 8)
    counts = lesson08.reference_transposed_conv_overlap(4, 3, 2, 1, 1)
    assert counts.tolist() == [1, 2, 1, 2, 1, 2, 1, 1]
    assert torch.equal(counts_2d, torch.outer(counts, counts).float())
    for case in overlap08.OVERLAP_CASES:
        assert torch.equal(lesson08.reference_transposed_conv_overlap(*case), solution_transposed_conv_overlap(*case))


# ----- every classic mistake gives its own number in the checks' seeded cases -----

def _distinct(values, ref):
    values = [float(v) for v in values] + [float(ref)]
    for a, b in itertools.combinations(values, 2):
        assert abs(a - b) > 1e-3 * max(1.0, abs(a), abs(b)), values


def test_loss_candidates_are_pairwise_distinct():
    G_AB, G_BA = references08.Affine(0.5, 0.3), references08.Affine(1.5, -0.6)
    x_a, x_b = references08.random_images(0, (3, 1, 4, 4)), references08.random_images(1, (3, 1, 4, 4), -1.0, 0.6)
    with torch.no_grad():
        _distinct([v for v, _ in losses08.cycle_candidates(G_AB, G_BA, x_a, x_b)],
                  lesson08.reference_cycle_loss(G_AB, G_BA, x_a, x_b))
        _distinct([v for v, _ in losses08.identity_candidates(G_AB, G_BA, x_a, x_b)],
                  lesson08.reference_identity_loss(G_AB, G_BA, x_a, x_b))
    g = torch.Generator().manual_seed(0)
    real = 0.7 + 0.5 * torch.randn(4, 1, 3, 3, generator=g)
    fake = 0.2 + 0.5 * torch.randn(4, 1, 3, 3, generator=g)
    _distinct([v for v, _ in losses08.lsgan_d_candidates(real, fake)], lesson08.reference_lsgan_d_loss(real, fake))
    _distinct([v for v, _ in losses08.lsgan_g_candidates(fake)], lesson08.reference_lsgan_g_loss(fake))


# ==============================================================================================
# The bank of classic mistakes
# ==============================================================================================

l1, l2 = F.l1_loss, F.mse_loss

# ----- 08.1 cycle_loss -----

def a_cycle_only(G_AB, G_BA, x_a, x_b):
    return l1(G_BA(G_AB(x_a)), x_a)


def b_cycle_only(G_AB, G_BA, x_a, x_b):
    return l1(G_AB(G_BA(x_b)), x_b)


def l2_cycle(G_AB, G_BA, x_a, x_b):
    return l2(G_BA(G_AB(x_a)), x_a) + l2(G_AB(G_BA(x_b)), x_b)


def translation_cycle(G_AB, G_BA, x_a, x_b):
    return l1(G_AB(x_a), x_a) + l1(G_BA(x_b), x_b)


def sum_cycle(G_AB, G_BA, x_a, x_b):
    return l1(G_BA(G_AB(x_a)), x_a, reduction="sum") + l1(G_AB(G_BA(x_b)), x_b, reduction="sum")


def swapped_generators_cycle(G_AB, G_BA, x_a, x_b):
    return l1(G_AB(G_BA(x_a)), x_a) + l1(G_BA(G_AB(x_b)), x_b)


def same_generator_twice_cycle(G_AB, G_BA, x_a, x_b):
    return l1(G_AB(G_AB(x_a)), x_a) + l1(G_BA(G_BA(x_b)), x_b)


def detached_translation_cycle(G_AB, G_BA, x_a, x_b):
    return l1(G_BA(G_AB(x_a).detach()), x_a) + l1(G_AB(G_BA(x_b).detach()), x_b)


def averaged_directions_cycle(G_AB, G_BA, x_a, x_b):
    return torch.cat([G_BA(G_AB(x_a)) - x_a, G_AB(G_BA(x_b)) - x_b]).abs().mean()


def weighted_cycle(G_AB, G_BA, x_a, x_b):
    return 10.0 * solution_cycle_loss(G_AB, G_BA, x_a, x_b)


def norm_cycle(G_AB, G_BA, x_a, x_b):
    return torch.norm(G_BA(G_AB(x_a)) - x_a) + torch.norm(G_AB(G_BA(x_b)) - x_b)


def no_grad_cycle(G_AB, G_BA, x_a, x_b):
    with torch.no_grad():
        return solution_cycle_loss(G_AB, G_BA, x_a, x_b)


def float_cycle(G_AB, G_BA, x_a, x_b):
    return solution_cycle_loss(G_AB, G_BA, x_a, x_b).item()


# ----- 08.2 identity_loss -----

def input_domain_identity(G_AB, G_BA, x_a, x_b):
    return l1(G_AB(x_a), x_a) + l1(G_BA(x_b), x_b)


def ab_only_identity(G_AB, G_BA, x_a, x_b):
    return l1(G_AB(x_b), x_b)


def ba_only_identity(G_AB, G_BA, x_a, x_b):
    return l1(G_BA(x_a), x_a)


def l2_identity(G_AB, G_BA, x_a, x_b):
    return l2(G_AB(x_b), x_b) + l2(G_BA(x_a), x_a)


def sum_identity(G_AB, G_BA, x_a, x_b):
    return (G_AB(x_b) - x_b).abs().sum() + (G_BA(x_a) - x_a).abs().sum()


def cycle_as_identity(G_AB, G_BA, x_a, x_b):
    return solution_cycle_loss(G_AB, G_BA, x_a, x_b)


def halved_identity(G_AB, G_BA, x_a, x_b):
    return 0.5 * solution_identity_loss(G_AB, G_BA, x_a, x_b)


def detached_identity(G_AB, G_BA, x_a, x_b):
    return solution_identity_loss(G_AB, G_BA, x_a, x_b).detach()


# ----- 08.3 LSGAN losses -----

def bce_d_loss(real_scores, fake_scores):
    return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
            + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))


def swapped_targets_d_loss(real_scores, fake_scores):
    return 0.5 * (real_scores.pow(2).mean() + (fake_scores - 1).pow(2).mean())


def no_half_d_loss(real_scores, fake_scores):
    return (real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean()


def sigmoid_d_loss(real_scores, fake_scores):
    return solution_lsgan_d_loss(torch.sigmoid(real_scores), torch.sigmoid(fake_scores))


def minus_one_target_d_loss(real_scores, fake_scores):
    return 0.5 * ((real_scores - 1).pow(2).mean() + (fake_scores + 1).pow(2).mean())


def one_mean_d_loss(real_scores, fake_scores):
    return torch.cat([(real_scores - 1).pow(2).flatten(), fake_scores.pow(2).flatten()]).mean()


def fake_squared_g_loss(fake_scores):
    return fake_scores.pow(2).mean()


def halved_g_loss(fake_scores):
    return 0.5 * (fake_scores - 1).pow(2).mean()


def bce_g_loss(fake_scores):
    return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))


def sum_g_loss(fake_scores):
    return (fake_scores - 1).pow(2).sum()


def right_d(wrong_g):
    return lambda _: lesson08.check_lsgan_losses(solution_lsgan_d_loss, wrong_g)


def right_g(wrong_d):
    return lambda _: lesson08.check_lsgan_losses(wrong_d, solution_lsgan_g_loss)


# ----- 08.4 ImagePool -----

class _Pool:
    """Shared set-up of the wrong pools: a capacity, a list of stored images and a per-image loop.

    The loop is a correct pool's; a wrong pool either changes one of its hooks (the coin, the slot) or overrides
    ``query`` altogether.
    """

    def __init__(self, capacity):
        self.capacity = capacity
        self.images = []

    def swap(self, generator):
        return torch.rand((), generator=generator) < 0.5

    def slot(self, generator):
        return int(torch.randint(self.capacity, (), generator=generator))

    def query(self, images, generator=None):
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(image)
            elif self.swap(generator):
                i = self.slot(generator)
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


class NeverHistoryPool(_Pool):
    def query(self, images, generator=None):
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
        return images.detach().clone()


class AlwaysHistoryPool(_Pool):
    def swap(self, generator):
        return True                                        # no coin: every image goes through the history


class OverwritingPool(_Pool):
    """The old image is a tensor the swap overwrites in place: D gets the new image, the old one is lost."""

    def query(self, images, generator=None):
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                old = self.images[i]
                self.images[i].copy_(image)
                out.append(old)
            else:
                out.append(image)
        return torch.stack(out)


class PreallocatedViewPool:
    """A preallocated buffer whose slot (a view) is handed back after it was overwritten."""

    def __init__(self, capacity):
        self.capacity, self.count, self.buffer = capacity, 0, None

    @property
    def images(self):
        return [] if self.buffer is None else list(self.buffer[: self.count])

    def query(self, images, generator=None):
        if self.buffer is None:
            self.buffer = torch.zeros(self.capacity, *images.shape[1:])
        out = []
        for image in images.detach():
            if self.count < self.capacity:
                self.buffer[self.count] = image
                self.count += 1
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                old = self.buffer[i]                           # a view into the buffer...
                self.buffer[i] = image                         # ...now holding the new image
                out.append(old)
            else:
                out.append(image)
        return torch.stack(out)


class SharedMemoryPool(_Pool):
    """Stores rows of the very batch it returns."""

    def query(self, images, generator=None):
        out = images.detach().clone()
        for k in range(len(out)):
            if len(self.images) < self.capacity:
                self.images.append(out[k])                     # a view of the returned batch
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                old = self.images[i].clone()
                self.images[i] = out[k].clone()
                out[k] = old
        return out


class StoredViewPool(_Pool):
    """For a batch of one, hands back the stored tensor itself (a view), not a copy."""

    def query(self, images, generator=None):
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(self.images[-1])
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return out[0][None] if len(out) == 1 else torch.stack(out)


class InputViewPool(_Pool):
    """Stores views of the batch it was given (no copy)."""

    def query(self, images, generator=None):
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image)
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)


class UndetachedPool(_Pool):
    def query(self, images, generator=None):
        out = []
        for image in images:                                   # not detached: D's loss reaches G
            if len(self.images) < self.capacity:
                self.images.append(image.detach().clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                out.append(self.images[i])
                self.images[i] = image.detach().clone()
            else:
                out.append(image)
        return torch.stack(out)


class GraphKeepingPool(_Pool):
    def query(self, images, generator=None):
        out = []
        for image in images:
            if len(self.images) < self.capacity:
                self.images.append(image.clone())              # keeps G's graph alive
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out).detach()


class NoStorePool(_Pool):
    def query(self, images, generator=None):
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                out.append(self.images[i])                     # the new image is dropped
            else:
                out.append(image)
        return torch.stack(out)


class GrowingPool(_Pool):
    def query(self, images, generator=None):
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))
                out.append(self.images.pop(i))
                self.images.append(image.clone())
            else:
                self.images.append(image.clone())              # stored although it was returned
                out.append(image)
        return torch.stack(out)


class GlobalRandomPool(_Pool):
    def swap(self, generator):
        return torch.rand(()) < 0.5                        # the generator is ignored

    def slot(self, generator):
        return int(torch.randint(self.capacity, ()))


class PythonRandomPool(_Pool):
    def swap(self, generator):
        return random.random() < 0.5

    def slot(self, generator):
        return random.randrange(self.capacity)


class QueuePool(_Pool):
    def query(self, images, generator=None):
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                out.append(self.images.pop(0))                 # the oldest
                self.images.append(image.clone())
            else:
                out.append(image)
        return torch.stack(out)


class FirstSlotPool(_Pool):
    def slot(self, generator):
        return 0                                           # always slot 0


class HalfSlotsPool(_Pool):
    def slot(self, generator):
        return int(torch.randint(self.capacity // 2, (), generator=generator))


class UnfairCoinPool(_Pool):
    def swap(self, generator):
        return torch.rand((), generator=generator) < 0.25


class NoCapacityZeroPool(SolutionImagePool):
    def query(self, images, generator=None):
        out = []
        for image in images.detach():
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                i = int(torch.randint(self.capacity, (), generator=generator))   # fails for capacity 0
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


class ListPool(SolutionImagePool):
    def query(self, images, generator=None):
        return list(super().query(images, generator))


# ----- 08.5 transposed_conv_overlap -----

def conv_formula_overlap(size, kernel, stride, padding=0, output_padding=0):
    return torch.ones((size + 2 * padding - kernel) // stride + 1, dtype=torch.long)


def no_output_padding_overlap(size, kernel, stride, padding=0, output_padding=0):
    return solution_transposed_conv_overlap(size, kernel, stride, padding, 0)


def uncropped_overlap(size, kernel, stride, padding=0, output_padding=0):
    return solution_transposed_conv_overlap(size, kernel, stride, 0, output_padding)


def end_cropped_overlap(size, kernel, stride, padding=0, output_padding=0):
    full = solution_transposed_conv_overlap(size, kernel, stride, 0, output_padding)
    return full[: len(full) - 2 * padding]


def size_times_stride_overlap(size, kernel, stride, padding=0, output_padding=0):
    counts = torch.zeros(size * stride, dtype=torch.long)
    for i in range(size):
        for j in range(kernel):
            o = i * stride + j - padding
            if 0 <= o < len(counts):
                counts[o] += 1
    return counts


def stride_ignored_overlap(size, kernel, stride, padding=0, output_padding=0):
    return solution_transposed_conv_overlap(size, kernel, 1, padding, output_padding)


check_cycle, check_identity = lesson08.check_cycle_loss, lesson08.check_identity_loss
check_pool, check_overlap = lesson08.check_image_pool, lesson08.check_transposed_conv_overlap

MISTAKES = [
    # 08.1
    ("A cycle only", check_cycle, a_cycle_only, "only the A -> B -> A cycle"),
    ("B cycle only", check_cycle, b_cycle_only, "only the B -> A -> B cycle"),
    ("L2 cycle", check_cycle, l2_cycle, "squared error"),
    ("translation vs input", check_cycle, translation_cycle, "compared the TRANSLATION"),
    ("summed cycle", check_cycle, sum_cycle, "summed over pixels and images"),
    ("swapped generators", check_cycle, swapped_generators_cycle, "generators are swapped"),
    ("one generator twice", check_cycle, same_generator_twice_cycle, "same generator twice"),
    ("detached translation", check_cycle, detached_translation_cycle, "gradient reaching G_AB is wrong"),
    ("one mean over both", check_cycle, averaged_directions_cycle, "averaged the two directions"),
    ("times lambda_cycle", check_cycle, weighted_cycle, "lambda_cycle"),
    ("Euclidean norm", check_cycle, norm_cycle, "Euclidean norm"),
    ("under no_grad", check_cycle, no_grad_cycle, "cut off from the generators"),
    ("cycle as float", check_cycle, float_cycle, "Python float"),
    # 08.2
    ("G_AB(x_a)", check_identity, input_domain_identity, "INPUT domain"),
    ("G_AB term only", check_identity, ab_only_identity, "only G_AB's term"),
    ("G_BA term only", check_identity, ba_only_identity, "only G_BA's term"),
    ("L2 identity", check_identity, l2_identity, "squared error"),
    ("summed identity", check_identity, sum_identity, "summed over pixels and images"),
    ("cycle for identity", check_identity, cycle_as_identity, "that is the cycle loss"),
    ("halved identity", check_identity, halved_identity, "halved"),
    ("detached identity", check_identity, detached_identity, "cut off from the generators"),
    # 08.3
    ("BCE for D", right_g(bce_d_loss), None, "BCE"),
    ("swapped D targets", right_g(swapped_targets_d_loss), None, "targets are swapped"),
    ("D without 0.5", right_g(no_half_d_loss), None, "0.5 is missing"),
    ("sigmoid in D", right_g(sigmoid_d_loss), None, "sigmoid"),
    ("fake target -1", right_g(minus_one_target_d_loss), None, "fake target is -1"),
    ("one mean for D", right_g(one_mean_d_loss), None, "one mean over real and fake"),
    ("G minimises D(fake)^2", right_d(fake_squared_g_loss), None, "minimises D(fake)^2"),
    ("G with 0.5", right_d(halved_g_loss), None, "0.5 belongs to D's loss only"),
    ("BCE for G", right_d(bce_g_loss), None, "non-saturating"),
    ("summed G", right_d(sum_g_loss), None, "summed over the scores"),
    # 08.4
    ("never history", check_pool, NeverHistoryPool, "never hands back an older image"),
    ("always history", check_pool, AlwaysHistoryPool, "always hands back an older image"),
    ("old image overwritten (copy_)", check_pool, OverwritingPool, "returned the NEW image instead of the old one"),
    ("old image overwritten (buffer)", check_pool, PreallocatedViewPool, "returned the NEW image instead of the old one"),
    ("returned batch shares memory", check_pool, SharedMemoryPool, "share memory with the images you stored"),
    ("hands back the stored tensor", check_pool, StoredViewPool, "share memory with the images you stored"),
    ("stores views of the input", check_pool, InputViewPool, "stores views of the batch it was given"),
    ("returned not detached", check_pool, UndetachedPool, "still requires grad"),
    ("stored not detached", check_pool, GraphKeepingPool, "stores images that still require grad"),
    ("new image not stored on a swap", check_pool, NoStorePool, "did not store the new one"),
    ("grows beyond capacity", check_pool, GrowingPool, "grew beyond its capacity"),
    ("global RNG", check_pool, GlobalRandomPool, "same seeded generator"),
    ("python random", check_pool, PythonRandomPool, "same seeded generator"),
    ("queue", check_pool, QueuePool, "OLDEST"),
    ("always slot 0", check_pool, FirstSlotPool, "NEWEST"),
    ("half the slots", check_pool, HalfSlotsPool, "not chosen uniformly"),
    ("unfair coin", check_pool, UnfairCoinPool, "should be half of them"),
    ("capacity 0 crashes", check_pool, NoCapacityZeroPool, "with capacity 0"),
    ("returns a list", check_pool, ListPool, "Python list"),
    # 08.5
    ("ordinary conv formula", check_overlap, conv_formula_overlap, "ORDINARY convolution"),
    ("no output_padding", check_overlap, no_output_padding_overlap, "output_padding is missing"),
    ("padding not cropped", check_overlap, uncropped_overlap, "not cropped"),
    ("cropped at the end", check_overlap, end_cropped_overlap, "at the end only"),
    ("n * stride", check_overlap, size_times_stride_overlap, "n * stride"),
    ("stride ignored", check_overlap, stride_ignored_overlap, "stride is ignored"),
]


@pytest.mark.parametrize("name, check, wrong, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, wrong, expected):
    result = check(wrong)
    assert isinstance(result, CheckResult)
    assert result.status == "failed", f"{name} was not caught: {result.message}"
    assert expected in result.message, result.message


def test_a_crashing_solution_fails_with_the_error_named():
    def crashes(G_AB, G_BA, x_a, x_b):
        return G_AB(x_a) @ x_b                            # (3, 1, 4, 4) @ (3, 1, 4, 4) works; a scalar it is not

    result = lesson08.check_cycle_loss(crashes)
    assert result.status == "failed"

    def raises(G_AB, G_BA, x_a, x_b):
        return torch.cat([x_a, x_b], dim=5)

    result = lesson08.check_cycle_loss(raises)
    assert result.status == "failed" and "IndexError" in result.message
