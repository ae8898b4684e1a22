"""Graded checks of lesson 09 (style-based generation).

As in test_checks_cyclegan.py: the library, the check module's references and learner-style
solutions pass every check, an unattempted stub is "not attempted", the references equal
course_lib.stylegan and course_lib.losses, and a bank of classic mistakes is caught, each with its
own message. The wrong implementations are built by a few parametrised factories (one per
exercise), each switching one piece of a correct implementation.
"""

import functools
import itertools

import pytest
import torch
import torch.nn.functional as F

from course_lib import losses, stylegan
from course_lib.checks import MIME, close, lesson09
from course_lib.checks.lesson09 import styles as style_checks, training as training_checks


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ==============================================================================================
# Solutions: what a learner writes in each exercise cell
# ==============================================================================================

def solution_adain(x, scale, bias):
    return F.instance_norm(x, eps=1e-8) * scale[:, :, None, None] + bias[:, :, None, None]


def solution_adain_by_hand(x, scale, bias):
    mu = x.mean(dim=(2, 3), keepdim=True)
    sigma = torch.sqrt(((x - mu) ** 2).mean(dim=(2, 3), keepdim=True) + 1e-8)
    return scale.view(*scale.shape, 1, 1) * (x - mu) / sigma + bias.view(*bias.shape, 1, 1)


def solution_modulate(weight, styles, demodulate=True):
    w = weight.unsqueeze(0) * styles.view(styles.shape[0], 1, -1, 1, 1)
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
    return w


def solution_modulate_einsum(weight, styles, demodulate=True):
    w = torch.einsum("oikl,bi->boikl", weight, styles)
    if demodulate:
        w = w * torch.rsqrt(torch.einsum("boikl->bo", w ** 2) + 1e-8)[:, :, None, None, None]
    return w


def solution_truncate(w, w_avg, psi):
    return torch.lerp(w_avg, w, psi)


def solution_truncate_by_hand(w, w_avg, psi):
    return w_avg + psi * (w - w_avg)


def solution_minibatch_std(x, group_size):
    B, C, H, W = x.shape
    G = min(group_size, B)
    y = x.view(G, -1, C, H, W)                    # (G, M, C, H, W)
    y = y - y.mean(dim=0, keepdim=True)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()    # (M, C, H, W)
    y = y.mean(dim=[1, 2, 3])                     # (M,)
    y = y.view(-1, 1, 1, 1).repeat(G, 1, H, W)    # (B, 1, H, W)
    return torch.cat([x, y], dim=1)


def solution_d_loss_r1(D, x_real, x_fake, gamma):
    x_real = x_real.detach().requires_grad_(True)
    real_logits = D(x_real)
    loss = F.softplus(-real_logits).mean() + F.softplus(D(x_fake)).mean()
    (grad,) = torch.autograd.grad(real_logits.sum(), x_real, create_graph=True)
    return loss + gamma / 2 * grad.square().sum(dim=[1, 2, 3]).mean()


def solution_d_loss_r1_two_passes(D, x_real, x_fake, gamma):
    loss = (F.binary_cross_entropy_with_logits(D(x_real), torch.ones(len(x_real)))
            + F.binary_cross_entropy_with_logits(D(x_fake), torch.zeros(len(x_fake))))
    x = x_real.clone().requires_grad_()
    out = D(x)
    (grad,) = torch.autograd.grad(outputs=out, inputs=x, grad_outputs=torch.ones_like(out), create_graph=True)
    return loss + 0.5 * gamma * (grad ** 2).sum(dim=(1, 2, 3)).mean()


def solution_mix_styles(ws_a, ws_b, crossover):
    return torch.cat([ws_a[:, :crossover], ws_b[:, crossover:]], dim=1)


def solution_mix_styles_by_assignment(ws_a, ws_b, crossover):
    mixed = ws_b.clone()
    mixed[:, :crossover] = ws_a[:, :crossover]
    return mixed


@functools.lru_cache(maxsize=None)
def _tiny_generator(w_dim):
    return stylegan.Generator(stylegan.StyleGANConfig(z_dim=4, w_dim=w_dim, mapping_layers=1, base_channels=1,
                                                      max_channels=1))


def library_truncate(w, w_avg, psi):
    """Generator.truncate around a generator whose tracked w_avg is set to the given one."""
    G = _tiny_generator(w_avg.shape[0])
    G.w_avg.copy_(w_avg)
    return G.truncate(w, psi)


def library_d_loss_r1(D, x_real, x_fake, gamma):
    return losses.d_loss_bce(D(x_real), D(x_fake)) + 0.5 * gamma * losses.r1_penalty(D, x_real)


# ==============================================================================================
# References and solutions pass; stubs are "not attempted"
# ==============================================================================================

REFERENCES = [
    ("adain-reference", lesson09.check_adain, lesson09.reference_adain),
    ("adain-library", lesson09.check_adain, stylegan.adain),
    ("adain-solution", lesson09.check_adain, solution_adain),
    ("adain-by-hand", lesson09.check_adain, solution_adain_by_hand),
    ("modulate-reference", lesson09.check_modulate, lesson09.reference_modulate),
    ("modulate-library", lesson09.check_modulate, stylegan.modulate),
    ("modulate-solution", lesson09.check_modulate, solution_modulate),
    ("modulate-einsum", lesson09.check_modulate, solution_modulate_einsum),
    ("truncate-reference", lesson09.check_truncate, lesson09.reference_truncate),
    ("truncate-library", lesson09.check_truncate, library_truncate),
    ("truncate-solution", lesson09.check_truncate, solution_truncate),
    ("truncate-by-hand", lesson09.check_truncate, solution_truncate_by_hand),
    ("mbstd-reference", lesson09.check_minibatch_std, lesson09.reference_minibatch_std),
    ("mbstd-library", lesson09.check_minibatch_std, stylegan.minibatch_std),
    ("mbstd-solution", lesson09.check_minibatch_std, solution_minibatch_std),
    ("r1-reference", lesson09.check_d_loss_r1, lesson09.reference_d_loss_r1),
    ("r1-library", lesson09.check_d_loss_r1, library_d_loss_r1),
    ("r1-solution", lesson09.check_d_loss_r1, solution_d_loss_r1),
    ("r1-two-passes", lesson09.check_d_loss_r1, solution_d_loss_r1_two_passes),
    ("mix-reference", lesson09.check_mix_styles, lesson09.reference_mix_styles),
    ("mix-library", lesson09.check_mix_styles, stylegan.mix_styles),
    ("mix-solution", lesson09.check_mix_styles, solution_mix_styles),
    ("mix-by-assignment", lesson09.check_mix_styles, solution_mix_styles_by_assignment),
]


@pytest.mark.parametrize("name, check, fn", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_reference_passes_and_stub_is_not_attempted(name, check, fn):
    result = check(fn)
    assert result.status == "passed", result.message
    assert check(stub).status == "not_attempted"
    bundle = result._repr_mimebundle_()
    assert bundle[MIME]["status"] == "passed" and "PASSED" in bundle["text/plain"]


def test_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson09.EXERCISES] == [f"09.{i}" for i in range(1, 7)]


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for name, check, fn in REFERENCES:
        if name.endswith("-solution"):                      # every check once, with the learner-style solution
            assert check(fn).passed
    assert torch.equal(torch.rand(3), expected)


# ----- the reference implementations written in the check module equal the library -----

def test_references_equal_the_library():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 6, 7, generator=g) * 2 + 1
    scale, bias = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    assert torch.allclose(lesson09.reference_adain(x, scale, bias), stylegan.adain(x, scale, bias), atol=1e-6)
    x[1, 2] = 0.25                                                 # a constant map: both give the bias
    assert torch.allclose(lesson09.reference_adain(x, scale, bias), stylegan.adain(x, scale, bias), atol=1e-6)
    assert torch.allclose(lesson09.reference_adain(x, scale, bias)[1, 2], bias[1, 2].expand(6, 7))

    weight, styles = torch.randn(6, 4, 3, 3, generator=g), torch.randn(5, 4, generator=g)
    styles[4] = 1e-6                                               # below eps: the eps placement matters
    for demodulate in (True, False):
        assert torch.allclose(lesson09.reference_modulate(weight, styles, demodulate),
                              stylegan.modulate(weight, styles, demodulate), rtol=1e-5, atol=1e-7)

    w_avg, w = torch.randn(7, generator=g), torch.randn(4, 3, 7, generator=g)
    for psi in (0.0, 0.5, 1.0, 1.7):
        assert torch.allclose(lesson09.reference_truncate(w, w_avg, psi), library_truncate(w, w_avg, psi))

    for B, group_size in ((8, 4), (12, 4), (6, 2), (3, 4), (4, 1)):
        x = torch.randn(B, 3, 4, 4, generator=g)
        assert torch.allclose(lesson09.reference_minibatch_std(x, group_size), stylegan.minibatch_std(x, group_size),
                              atol=1e-6)

    ws_a, ws_b = torch.randn(2, 8, 3, generator=g), torch.randn(2, 8, 3, generator=g)
    for crossover in range(9):
        assert torch.equal(lesson09.reference_mix_styles(ws_a, ws_b, crossover), stylegan.mix_styles(ws_a, ws_b, crossover))


def test_reference_r1_equals_the_library_on_a_stylegan_discriminator():
    torch.manual_seed(0)
    D = stylegan.Discriminator(stylegan.StyleGANConfig(base_channels=2, max_channels=4))
    g = torch.Generator().manual_seed(1)
    x_real, x_fake = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1, torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
    ref = lesson09.reference_r1_penalty(D, x_real)
    assert torch.allclose(ref, losses.r1_penalty(D, x_real), rtol=1e-4)
    loss = lesson09.reference_d_loss_r1(D, x_real, x_fake, 10.0)
    assert torch.allclose(loss, library_d_loss_r1(D, x_real, x_fake, 10.0), rtol=1e-4)
    (grad,) = torch.autograd.grad(ref, [D.out.weight])             # R1 trains D: a double backward
    assert grad.abs().sum() > 0


def test_r1_of_a_linear_discriminator_is_the_squared_norm_of_its_weight():
    D = training_checks.LinearD()
    x = torch.randn(5, 1, 4, 4)
    assert torch.allclose(lesson09.reference_r1_penalty(D, x), D.w.detach().pow(2).sum())
    assert torch.allclose(losses.r1_penalty(D, x), D.w.detach().pow(2).sum())


def test_demodulated_weights_give_unit_variance_outputs():
    """StyleGAN2's claim behind eq. 3: i.i.d. unit-variance inputs give outputs of unit variance."""
    g = torch.Generator().manual_seed(2)
    weight, styles = torch.randn(8, 16, 3, 3, generator=g), torch.rand(2, 16, generator=g) * 3
    w = lesson09.reference_modulate(weight, styles)                # (2, 8, 16, 3, 3)
    assert torch.allclose(w.pow(2).sum(dim=(2, 3, 4)), torch.ones(2, 8), atol=1e-5)
    x = torch.randn(2, 16, 64, 64, generator=g)
    y = torch.cat([F.conv2d(x[b:b + 1], w[b]) for b in range(2)])  # no padding: every output sums 144 inputs
    assert abs(y.var().item() - 1) < 0.05
    assert torch.allclose(y, stylegan.modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1], atol=1e-4)


def test_eps_placement_matters_in_the_edge_cases():
    """The edge cases are built so that eps inside or outside the square root gives clearly different numbers."""
    x, scale, bias = style_checks._adain_case("tiny")
    inside, outside = style_checks._normalise(x, (2, 3)), style_checks._normalise(x, (2, 3), inside=False)
    ratio = (outside[1, 2].abs().mean() / inside[1, 2].abs().mean()).item()
    assert 8 < ratio < 12
    assert torch.allclose(inside[:1], outside[:1], atol=1e-5)      # ordinary maps: the same
    weight, styles = style_checks._modulate_case("tiny")
    w = weight[None] * styles[:, None, :, None, None]
    ratio = (style_checks._demodulated(w, (2, 3, 4), inside=False)[2].abs().mean()
             / style_checks._demodulated(w, (2, 3, 4))[2].abs().mean()).item()
    assert ratio > 10
    x = training_checks._mbstd_case(8, collapsed=True)
    assert torch.allclose(lesson09.reference_minibatch_std(x, 4)[0::2, -1], torch.full((4, 2, 3), 1e-4), rtol=1e-3)


# ----- every classic mistake gives its own number in the checks' decisive cases -----

def _assert_distinct(candidates, ref, rtol=1e-4, atol=1e-6):
    """Candidates that differ from the reference differ from each other (unless they share their message)."""
    live = [(v, m) for v, m in candidates if not close(v, ref, rtol, atol)]
    for (a, ma), (b, mb) in itertools.combinations(live, 2):
        assert ma == mb or not close(a, b, rtol, atol), (ma, mb)


def test_candidates_are_pairwise_distinct():
    x, scale, bias = style_checks._adain_case("tiny")
    _assert_distinct(style_checks.adain_candidates(x, scale, bias), lesson09.reference_adain(x, scale, bias), atol=1e-5)
    weight, styles = style_checks._modulate_case("tiny")
    _assert_distinct(style_checks.modulate_candidates(weight, styles), lesson09.reference_modulate(weight, styles))
    g = torch.Generator().manual_seed(3)
    w_avg = 0.8 + 0.3 * torch.randn(6, generator=g)
    w = w_avg + torch.randn(4, 6, generator=g)
    _assert_distinct(style_checks.truncate_candidates(w, w_avg, 0.7), lesson09.reference_truncate(w, w_avg, 0.7))
    x = training_checks._mbstd_case(8, collapsed=True)
    _assert_distinct(training_checks.minibatch_std_candidates(x, 4), lesson09.reference_minibatch_std(x, 4)[:, -1, 0, 0])
    D, (x_real, x_fake) = training_checks.SmallD(), training_checks._r1_batches()
    r1 = lesson09.reference_r1_penalty(D, x_real).detach()
    candidates = training_checks.r1_candidates(D, x_real, x_fake)
    _assert_distinct(candidates, r1, rtol=1e-3, atol=1e-5)
    assert all(not close(v, r1, rtol=1e-2) for v, _ in candidates)   # every one is decisive here


def test_r1_differs_clearly_on_real_and_fake_images():
    D, (x_real, x_fake) = training_checks.SmallD(), training_checks._r1_batches()
    real, fake = lesson09.reference_r1_penalty(D, x_real).item(), lesson09.reference_r1_penalty(D, x_fake).item()
    assert abs(real - fake) > 0.2 * max(real, fake), (real, fake)
    assert 0.1 < real < 20                                          # large enough to read next to the adversarial part


# ==============================================================================================
# The bank of classic mistakes, built by one factory per exercise
# ==============================================================================================

# ----- 09.1 adain -----

def wrong_adain(dims=(2, 3), unbiased=False, eps=1e-8, inside=True, centre=True, detach=False, power=0.5,
                combine=lambda n, s, b: s * n + b, index=lambda t: t[:, :, None, None], inplace=False):
    """A correct AdaIN with one piece switched."""
    def adain(x, scale, bias):
        mu = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
        if detach:
            mu, var = mu.detach(), var.detach()
        sigma = (var + eps) ** power if inside else var ** power + eps
        if inplace:
            x -= mu
            return combine(x / sigma, index(scale), index(bias))
        return combine(((x - mu) if centre else x) / sigma, index(scale), index(bias))
    return adain


def instance_norm_default_adain(x, scale, bias):
    return F.instance_norm(x) * scale[:, :, None, None] + bias[:, :, None, None]


check_adain = lesson09.check_adain
ADAIN_MISTAKES = [
    ("eps outside the sqrt", wrong_adain(inside=False), "OUTSIDE"),
    ("no eps", wrong_adain(eps=0.0), "constant feature map"),
    ("F.instance_norm's eps 1e-5", instance_norm_default_adain, "1e-5"),
    ("unbiased variance", wrong_adain(unbiased=True), "unbiased"),
    ("x.std() + eps", wrong_adain(unbiased=True, inside=False), "unbiased"),
    ("layer norm axes", wrong_adain(dims=(1, 2, 3)), "layer normalisation"),
    ("batch norm axes", wrong_adain(dims=(0, 2, 3)), "batch normalisation"),
    ("whole batch", wrong_adain(dims=(0, 1, 2, 3)), "whole batch"),
    ("height only", wrong_adain(dims=(2,)), "height only"),
    ("scale and bias swapped", wrong_adain(combine=lambda n, s, b: b * n + s), "swapped"),
    ("mean not subtracted", wrong_adain(centre=False), "mean is not subtracted"),
    ("divided by the variance", wrong_adain(power=1.0), "divided by the variance"),
    ("1 + scale", wrong_adain(combine=lambda n, s, b: (1 + s) * n + b), "1 + scale"),
    ("bias missing", wrong_adain(combine=lambda n, s, b: s * n), "bias y_b is missing"),
    ("style missing", wrong_adain(combine=lambda n, s, b: n), "instance normalisation alone"),
    ("detached statistics", wrong_adain(detach=True), "detach"),
    ("x changed in place", wrong_adain(inplace=True), "in place"),
    ("scale broadcast over the batch", wrong_adain(index=lambda t: t.reshape(-1, 1, 1, 1)), "scale[:, :, None, None]"),
]

# ----- 09.2 modulate -----


def wrong_modulate(dims=(2, 3, 4), eps=1e-8, inside=True, reduce="sum", root=True, unmodulated_norm=False,
                   when=lambda demodulate: demodulate, detach=False, use_styles=True, flatten=False, style_axis=2):
    """A correct modulation/demodulation with one piece switched."""
    def modulate(weight, styles, demodulate=True):
        shape = [styles.shape[0], 1, 1, 1, 1]
        shape[style_axis] = -1
        w = weight[None] * styles.reshape(shape) if use_styles else weight[None].repeat(styles.shape[0], 1, 1, 1, 1)
        if when(demodulate):
            source = weight[None] if unmodulated_norm else w
            sq = getattr(source.pow(2), reduce)(dim=dims, keepdim=True)
            factor = 1 / ((torch.sqrt(sq + eps) if inside else torch.sqrt(sq) + eps) if root else sq + eps)
            w = w * (factor.detach() if detach else factor)
        return w.reshape(-1, *w.shape[2:]) if flatten else w
    return modulate


check_modulate = lesson09.check_modulate
MODULATE_MISTAKES = [
    ("eps outside the sqrt", wrong_modulate(inside=False), "OUTSIDE"),
    ("no eps", wrong_modulate(eps=0.0), "all zeros gives NaN"),
    ("demodulated over O, k, k", wrong_modulate(dims=(1, 3, 4)), "INPUT channel"),
    ("demodulated over I only", wrong_modulate(dims=(2,)), "input channels only"),
    ("demodulated over the kernel only", wrong_modulate(dims=(3, 4)), "kernel only"),
    ("demodulated over the whole weight", wrong_modulate(dims=(1, 2, 3, 4)), "whole weight"),
    ("demodulated over the batch too", wrong_modulate(dims=(0, 2, 3, 4)), "batch as well"),
    ("norm of the unmodulated weight", wrong_modulate(unmodulated_norm=True), "UNMODULATED"),
    ("mean of the squares", wrong_modulate(reduce="mean"), "averaged the squares"),
    ("no square root", wrong_modulate(root=False), "sum of squares itself"),
    ("never demodulates", wrong_modulate(when=lambda demodulate: False), "without demodulating"),
    ("always demodulates", wrong_modulate(when=lambda demodulate: True), "demodulate only when asked"),
    ("styles ignored", wrong_modulate(use_styles=False), "styles are missing"),
    ("styles on the output channels", wrong_modulate(style_axis=1), "INPUT channels (dim 2)"),
    ("(B * O, I, k, k)", wrong_modulate(flatten=True), "modulated_conv2d's job"),
    ("detached demodulation", wrong_modulate(detach=True), "detach"),
]

# ----- 09.3 truncate -----


def inplace_w_avg_truncate(w, w_avg, psi):
    w_avg *= 1 - psi                               # (1 - psi) w_avg + psi w, written into the caller's w_avg
    return w_avg + psi * w


def inplace_w_truncate(w, w_avg, psi):
    w -= w_avg
    w *= psi
    return w + w_avg


check_truncate = lesson09.check_truncate
TRUNCATE_MISTAKES = [
    ("psi * w (truncation in Z)", lambda w, w_avg, psi: psi * w, "truncation in Z"),
    ("psi the wrong way round", lambda w, w_avg, psi: w_avg + (1 - psi) * (w - w_avg), "wrong way round"),
    ("lerp the wrong way round", lambda w, w_avg, psi: torch.lerp(w, w_avg, psi), "wrong way round"),
    ("w_avg not added back", lambda w, w_avg, psi: psi * (w - w_avg), "not added back"),
    ("w_avg + psi * w", lambda w, w_avg, psi: w_avg + psi * w, "subtract w_avg before"),
    ("sign flipped", lambda w, w_avg, psi: w_avg - psi * (w - w_avg), "other side"),
    ("batch mean", lambda w, w_avg, psi: w.mean(0) + psi * (w - w.mean(0)), "mean of the batch"),
    ("clipped", lambda w, w_avg, psi: w.clamp(-psi, psi), "clipped"),
    ("w_avg changed in place", inplace_w_avg_truncate, "corrupted average"),
    ("w changed in place", inplace_w_truncate, "in place"),
    ("w_avg repeated to (B, w_dim)", lambda w, w_avg, psi: w_avg.repeat(w.shape[0], 1) + psi * (w - w_avg), "broadcasts"),
    ("psi ignored", lambda w, w_avg, psi: w_avg + 0.7 * (w - w_avg), "psi = 0"),
]

# ----- 09.4 minibatch_std -----


def std_of_group(y, unbiased=False, eps=1e-8, inside=True, root=True):
    """(G, M, F) -> (M,): the std of each feature over the group, averaged over the features."""
    var = y.var(dim=0, unbiased=unbiased)
    return ((torch.sqrt(var + eps) if inside else torch.sqrt(var) + eps) if root else var + eps).mean(dim=1)


def wrong_minibatch_std(spread=std_of_group, consecutive=False, whole=False, cap=True, detach=False,
                        assemble=lambda x, std_map: torch.cat([x, std_map], dim=1)):
    """A correct minibatch std with one piece switched."""
    def minibatch_std(x, group_size):
        B, C, H, W = x.shape
        G = B if whole else (min(group_size, B) if cap else group_size)
        flat = x.reshape(B, -1)
        y = flat.reshape(B // G, G, -1).transpose(0, 1) if consecutive else flat.reshape(G, B // G, -1)
        values = spread(y)                                          # (M,)
        per_sample = values.repeat_interleave(G) if consecutive else values.repeat(G)
        if detach:
            per_sample = per_sample.detach()
        return assemble(x, per_sample[:, None, None, None].expand(B, 1, H, W))
    return minibatch_std


def own_std_minibatch_std(x, group_size):
    std = torch.sqrt(x.flatten(1).var(dim=1, unbiased=False) + 1e-8)   # each sample over its own features
    return torch.cat([x, std[:, None, None, None].expand(-1, 1, *x.shape[2:])], dim=1)


def per_channel_minibatch_std(x, group_size):
    B, C, H, W = x.shape
    G = min(group_size, B)
    std = torch.sqrt(x.reshape(G, -1, C, H, W).var(dim=0, unbiased=False) + 1e-8).mean(dim=(2, 3))   # (M, C)
    return torch.cat([x, std.repeat(G, 1)[:, :, None, None].expand(B, C, H, W)], dim=1)


def per_pixel_minibatch_std(x, group_size):
    B, C, H, W = x.shape
    G = min(group_size, B)
    std = torch.sqrt(x.reshape(G, -1, C, H, W).var(dim=0, unbiased=False) + 1e-8).mean(dim=1)       # (M, H, W)
    return torch.cat([x, std.repeat(G, 1, 1)[:, None]], dim=1)


check_mbstd = lesson09.check_minibatch_std
MBSTD_MISTAKES = [
    ("groups of consecutive samples", wrong_minibatch_std(consecutive=True), "consecutive samples"),
    ("one group for the whole batch", wrong_minibatch_std(whole=True), "whole batch"),
    ("group size not capped", wrong_minibatch_std(cap=False), "G = min(group_size, B)"),
    ("unbiased std", wrong_minibatch_std(functools.partial(std_of_group, unbiased=True)), "unbiased"),
    ("variance", wrong_minibatch_std(functools.partial(std_of_group, root=False)), "variance"),
    ("eps outside the sqrt", wrong_minibatch_std(functools.partial(std_of_group, inside=False)), "OUTSIDE"),
    ("no eps", wrong_minibatch_std(functools.partial(std_of_group, eps=0.0)), "sqrt(var) + eps, or missing"),
    ("sqrt of the mean variance", wrong_minibatch_std(lambda y: torch.sqrt(y.var(0, unbiased=False).mean(1) + 1e-8)),
     "averaged the variances"),
    ("features averaged first", wrong_minibatch_std(lambda y: torch.sqrt(y.mean(2).var(0, unbiased=False) + 1e-8)),
     "averaged each sample's features first"),
    ("each sample's own std", own_std_minibatch_std, "over its own features"),
    ("prepended", wrong_minibatch_std(assemble=lambda x, s: torch.cat([s, x], dim=1)), "LAST channel"),
    ("only the std map", wrong_minibatch_std(assemble=lambda x, s: s), "only the new feature map"),
    ("one map per channel", per_channel_minibatch_std, "one per channel"),
    ("a std per pixel", per_pixel_minibatch_std, "varies across pixels"),
    ("detached std", wrong_minibatch_std(detach=True), "detach"),
]

# ----- 09.5 d_loss_r1 -----


def squared_norms(grad):
    return grad.pow(2).flatten(1).sum(dim=1)                       # (B,)


def wrong_d_loss_r1(point=lambda x_real, x_fake: x_real, factor=0.5, reduce=lambda grad: squared_norms(grad).mean(),
                    target=lambda logits: logits.sum(), create_graph=True, adversarial=True, swapped=False,
                    finish=lambda loss: loss, requires_grad=True, backward=False):
    """StyleGAN2's D loss on an R1 step with one piece switched."""
    def d_loss_r1(D, x_real, x_fake, gamma):
        real, fake = D(x_real), D(x_fake)
        if swapped:
            real, fake = fake, real
        loss = F.softplus(-real).mean() + F.softplus(fake).mean() if adversarial else 0.0
        x = point(x_real, x_fake).detach()
        x = x.requires_grad_(True) if requires_grad else x
        if backward:
            target(D(x)).backward(create_graph=True)
            grad = x.grad
        else:
            (grad,) = torch.autograd.grad(target(D(x)), x, create_graph=create_graph)
        return finish(loss + factor * gamma * reduce(grad))
    return d_loss_r1


def sigmoid_bce_d_loss_r1(D, x_real, x_fake, gamma):
    """Sigmoid then binary_cross_entropy: right for moderate logits, clamped at saturated ones."""
    p_real, p_fake = torch.sigmoid(D(x_real)), torch.sigmoid(D(x_fake))
    loss = F.binary_cross_entropy(p_real, torch.ones_like(p_real)) + F.binary_cross_entropy(p_fake, torch.zeros_like(p_fake))
    x = x_real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return loss + gamma / 2 * squared_norms(grad).mean()


check_r1 = lesson09.check_d_loss_r1
R1_MISTAKES = [
    ("R1 on fake images", wrong_d_loss_r1(point=lambda r, f: f), "FAKE images"),
    ("R1 on real and fake images", wrong_d_loss_r1(point=lambda r, f: torch.cat([r, f])), "real and fake"),
    ("no create_graph", wrong_d_loss_r1(create_graph=False), "create_graph=True"),
    ("gamma without 1/2", wrong_d_loss_r1(factor=1.0), "1/2 is missing"),
    ("summed over the batch", wrong_d_loss_r1(reduce=lambda grad: squared_norms(grad).sum()), "over the batch"),
    ("gradient of D(x).mean()", wrong_d_loss_r1(target=lambda logits: logits.mean()), "D(x).mean()"),
    ("mean over the pixels", wrong_d_loss_r1(reduce=lambda grad: grad.pow(2).mean()), "over the pixels too"),
    ("norm, not squared", wrong_d_loss_r1(reduce=lambda grad: squared_norms(grad).sqrt().mean()), "SQUARED norm"),
    ("WGAN-GP penalty", wrong_d_loss_r1(reduce=lambda grad: ((squared_norms(grad).sqrt() - 1) ** 2).mean()), "WGAN-GP"),
    ("gradient of the loss", wrong_d_loss_r1(target=lambda logits: F.softplus(-logits).sum()), "gradient of the loss"),
    ("gradient of the mean loss", wrong_d_loss_r1(target=lambda logits: F.softplus(-logits).mean()),
     "gradient of the loss"),
    ("penalty detached", wrong_d_loss_r1(reduce=lambda grad: squared_norms(grad).mean().detach()), "create_graph=True"),
    ("x_real without requires_grad", wrong_d_loss_r1(requires_grad=False), "requires_grad_(True)"),
    (".backward() inside the loss", wrong_d_loss_r1(backward=True), ".grad"),
    ("adversarial part missing", wrong_d_loss_r1(adversarial=False), "own loss is missing"),
    ("real and fake swapped", wrong_d_loss_r1(swapped=True), "swapped"),
    ("returns a float", wrong_d_loss_r1(finish=lambda loss: loss.item()), "Python float"),
    ("loss detached", wrong_d_loss_r1(finish=lambda loss: loss.detach()), "cut off from D's weights"),
    ("sigmoid then BCE", sigmoid_bce_d_loss_r1, "saturated logits"),
]

# ----- 09.6 mix_styles -----


def layer_mask_mix(keep_a):
    """Layers l with keep_a(l, crossover, num_ws) from ws_a, the others from ws_b."""
    def mix_styles(ws_a, ws_b, crossover):
        layers = torch.arange(ws_a.shape[1])
        return torch.where(keep_a(layers, crossover, ws_a.shape[1])[None, :, None], ws_a, ws_b)
    return mix_styles


def inplace_mix(ws_a, ws_b, crossover):
    ws_a[:, crossover:] = ws_b[:, crossover:]
    return ws_a


check_mix = lesson09.check_mix_styles
MIX_MISTAKES = [
    ("<= crossover", layer_mask_mix(lambda l, c, n: l <= c), "off by one"),
    ("< crossover - 1", layer_mask_mix(lambda l, c, n: l < c - 1), "off by one"),
    ("swapped sources", layer_mask_mix(lambda l, c, n: l >= c), "swapped"),
    ("crossover counts ws_b's layers", layer_mask_mix(lambda l, c, n: l < n - c), "first layer taken from ws_b"),
    ("batch axis", lambda a, b, c: torch.cat([a[:c], b[c:]], dim=0), "not samples"),
    ("w_dim axis", lambda a, b, c: torch.cat([a[..., :c], b[..., c:]], dim=-1), "part from ws_b"),
    ("blended", lambda a, b, c: (a + b) / 2, "averaged the two codes"),
    ("layers out of order", lambda a, b, c: torch.cat([b[:, c:], a[:, :c]], dim=1), "wrong index"),
    ("written into ws_a", inplace_mix, "in place"),
    ("detached", lambda a, b, c: torch.cat([a[:, :c], b[:, c:]], dim=1).detach(), "cut off"),
    ("crossover ignored", lambda a, b, c: torch.cat([a[:, :4], b[:, 4:]], dim=1), "should give layer"),
]

MISTAKES = ([(name, check_adain, fn, msg) for name, fn, msg in ADAIN_MISTAKES]
            + [(name, check_modulate, fn, msg) for name, fn, msg in MODULATE_MISTAKES]
            + [(name, check_truncate, fn, msg) for name, fn, msg in TRUNCATE_MISTAKES]
            + [(name, check_mbstd, fn, msg) for name, fn, msg in MBSTD_MISTAKES]
            + [(name, check_r1, fn, msg) for name, fn, msg in R1_MISTAKES]
            + [(name, check_mix, fn, msg) for name, fn, msg in MIX_MISTAKES])


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")   # the .backward() mistake warns
@pytest.mark.parametrize("name, check, fn, expected", MISTAKES,
                         ids=[f"{m[1].exercise_id} {m[0]}" for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, fn, expected):
    result = check(fn)
    assert result.status == "failed", f"{name}: {result.status}: {result.message}"
    assert expected.lower() in result.message.lower(), f"{name}: {result.message}"
    assert "Traceback" not in result.message


def test_every_exercise_has_a_bank_of_mistakes():
    counts = {check.exercise_id: sum(1 for _, c, _, _ in MISTAKES if c is check) for check in lesson09.EXERCISES}
    assert all(n >= 6 for n in counts.values()), counts
