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
the loss, the norm instead of its square, no ``create_graph`` (R1 cannot train D); style mixing
off by one (<= instead of <), with swapped sources, along the wrong axis, blended, or written into
ws_a in place; and, everywhere, arguments changed in place and results cut off from the graph.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng

EPS = 1e-8  # the papers' epsilon, always inside the square root


# Reference implementations (what course_lib.stylegan and course_lib.losses compute) ------------


def reference_adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """AdaIN: scale * (x - mean) / sqrt(var + eps) + bias, statistics per sample and channel over H, W."""
    mu = x.mean(dim=(2, 3), keepdim=True)                                  # (B, C, 1, 1)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)                  # (B, C, 1, 1), divides by H W
    return scale[:, :, None, None] * (x - mu) / torch.sqrt(var + EPS) + bias[:, :, None, None]


def reference_modulate(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True) -> torch.Tensor:
    """(O, I, k, k) weight, (B, I) styles -> (B, O, I, k, k): s_i w_oikl, then / sqrt(sum_ikl + eps) per (b, o)."""
    w = weight[None] * styles[:, None, :, None, None]                      # (B, O, I, k, k)
    if demodulate:
        w = w / torch.sqrt(w.pow(2).sum(dim=(2, 3, 4), keepdim=True) + EPS)
    return w


def reference_truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick in W: w_avg + psi (w - w_avg), for w of shape (..., w_dim)."""
    return w_avg + psi * (w - w_avg)


def reference_minibatch_std(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 1, H, W); sample i is in group i mod (B / G), G = min(group_size, B)."""
    B, C, H, W = x.shape
    G = min(group_size, B)
    y = x.reshape(G, B // G, C, H, W)                                      # (G, M, C, H, W): sample g M + m
    std = torch.sqrt(y.var(dim=0, unbiased=False) + EPS)                   # (M, C, H, W): std over each group
    value = std.mean(dim=(1, 2, 3)).repeat(G)                              # (B,): sample i gets value[i mod M]
    return torch.cat([x, value[:, None, None, None].expand(B, 1, H, W)], dim=1)


def reference_r1_penalty(D: Callable[[torch.Tensor], torch.Tensor], x_real: torch.Tensor) -> torch.Tensor:
    """mean_i ||grad_x D(x_real_i)||^2, differentiable with respect to D's weights (no gamma / 2)."""
    x = x_real.detach().requires_grad_(True)                               # (B, C, H, W)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)        # (B, C, H, W): each sample's own
    return grad.pow(2).flatten(1).sum(dim=1).mean()


def reference_d_loss_r1(D: Callable[[torch.Tensor], torch.Tensor], x_real: torch.Tensor, x_fake: torch.Tensor,
                        gamma: float) -> torch.Tensor:
    """D's non-saturating loss plus (gamma / 2) R1 on the real batch: StyleGAN2's D loss on an R1 step."""
    adversarial = F.softplus(-D(x_real)).mean() + F.softplus(D(x_fake)).mean()   # -log sigmoid, -log(1 - sigmoid)
    return adversarial + gamma / 2 * reference_r1_penalty(D, x_real)


def reference_mix_styles(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
    """(B, num_ws, w_dim) each: layers < crossover from ws_a, the others from ws_b."""
    layer = torch.arange(ws_a.shape[1])                                    # (num_ws,)
    return torch.where((layer < crossover)[None, :, None], ws_a, ws_b)


# Helpers ---------------------------------------------------------------------------------------


def _randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=g)


def _call(fn: Callable, args: dict[str, Any], what: str, crash_hint: str = "",
          inplace_hints: dict[str, str] | None = None) -> Any:
    """Call the learner's ``fn(*args.values())``: a crash gets ``crash_hint``; an argument changed in place is a Mistake."""
    before = {name: value.detach().clone() for name, value in args.items() if isinstance(value, torch.Tensor)}
    try:
        out = call(fn, *args.values(), what=what)
    except Mistake as err:
        if crash_hint:
            raise Mistake(f"{str(err).rstrip('.')}. {crash_hint}") from None
        raise
    for name, value in before.items():
        if not torch.equal(args[name].detach(), value):
            hint = (inplace_hints or {}).get(name, "")
            raise Mistake(f"{what} changed its argument `{name}` in place (an in-place operation such as `{name} -= ...`, "
                          f"`{name}.mul_(...)` or an indexed assignment `{name}[...] = ...`), so the caller's tensor is "
                          f"modified. Compute a new tensor instead. {hint}".strip())
    return out


def _tensor_of_shape(out: Any, shape: tuple[int, ...], name: str, hint: str = "") -> torch.Tensor:
    out = expect_tensor(out, name)
    expect_shape(out, shape, name, hint)
    return out


def _matching(out: torch.Tensor, ref: torch.Tensor, candidates: list[tuple[torch.Tensor, str]],
              rtol: float = 1e-4, atol: float = 1e-6) -> str | None:
    """The message of the first wrong candidate that the learner's output equals (and the reference does not)."""
    for value, message in candidates:
        if close(out, value, rtol, atol) and not close(value, ref, rtol, atol):
            return message
    return None


def _largest_difference(out: torch.Tensor, ref: torch.Tensor) -> str:
    diff = (out.detach().double() - ref.detach().double()).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
    flat = int(diff.flatten().argmax())
    index = [int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)]
    return (f"the largest difference is at index {index}: yours {float(out.detach().flatten()[flat]):.6g}, "
            f"expected {float(ref.detach().flatten()[flat]):.6g}")


def _check_input_grads(out: torch.Tensor, ref: torch.Tensor, inputs: list[tuple[str, torch.Tensor]], name: str,
                       seed: int, hints: dict[str, str]) -> None:
    """Backpropagate the same random upstream gradient through the learner's output and the reference."""
    if not out.requires_grad:
        raise Mistake(f"{name}'s output is cut off from its inputs (.detach(), .item(), numpy or torch.no_grad()): it sits "
                      "inside a network that is trained by backpropagation, so keep every step in torch.")
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(case_seed(seed)))
    tensors = [t for _, t in inputs]
    got = torch.autograd.grad((out * upstream).sum(), tensors, allow_unused=True)
    want = torch.autograd.grad((ref * upstream).sum(), tensors)
    for (label, _), g_got, g_want in zip(inputs, got, want):
        if g_got is None or not close(g_got, g_want, rtol=1e-3, atol=1e-5):
            raise Mistake(f"the values of {name} are right, but the gradient reaching `{label}` is wrong. "
                          f"{hints.get(label, '')}".strip())


# ----------------------------------------------------------------------------------------------
# 09.1 AdaIN
# ----------------------------------------------------------------------------------------------

def _adain_case(kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (2, 3, 4, 5) with its own mean and spread per map, scale (2, 3) about 1, bias (2, 3).

    ``constant``: map (0, 1) is 0.5 everywhere (variance exactly 0); ``tiny``: map (1, 2) has std about
    1e-5 (variance 1e-10, far below eps = 1e-8: there the eps placement decides the output).
    """
    g = torch.Generator().manual_seed(case_seed(9))
    B, C, H, W = 2, 3, 4, 5
    x = 2 * _randn(g, B, C, 1, 1) + (0.5 + 2 * torch.rand(B, C, 1, 1, generator=g)) * _randn(g, B, C, H, W)
    scale, bias = 1 + 0.5 * _randn(g, B, C), 0.5 * _randn(g, B, C)
    if kind == "constant":
        x[0, 1] = 0.5
    elif kind == "tiny":
        x[1, 2] = 1e-5 * _randn(g, H, W)
    return x, scale, bias


def _normalise(x: torch.Tensor, dims: tuple[int, ...], unbiased: bool = False, eps: float = EPS, inside: bool = True,
               centre: bool = True) -> torch.Tensor:
    mu = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
    sigma = torch.sqrt(var + eps) if inside else torch.sqrt(var) + eps
    return ((x - mu) if centre else x) / sigma


def adain_candidates(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong AdaINs, each with the message that explains it."""
    s, b = scale[:, :, None, None], bias[:, :, None, None]
    n = _normalise(x, (2, 3))
    per_map = ("AdaIN normalises each feature map of each sample on its own: statistics over H and W, dim=(2, 3), "
               "shape (B, C, 1, 1).")
    return [
        (s * _normalise(x, (2, 3), inside=False) + b,
         "on a nearly constant feature map (std 1e-5) your output is 10 times too large: you added eps OUTSIDE the "
         "square root, sqrt(var) + eps. It belongs inside, sigma = sqrt(var + eps): sqrt(1e-10 + 1e-8) is about 1e-4, "
         "while sqrt(1e-10) + 1e-8 is about 1e-5. The two agree on ordinary maps, but outside the root eps does not "
         "stop flat regions (and their noise) from being blown up, and the gradient of sqrt is unbounded near 0."),
        (s * _normalise(x, (2, 3), eps=1e-5) + b,
         "you used eps = 1e-5 (the default of F.instance_norm and nn.InstanceNorm2d); StyleGAN uses 1e-8. On a nearly "
         "constant feature map (std 1e-5) the two give outputs 30 times apart. Pass eps=1e-8."),
        (s * _normalise(x, (2, 3), inside=False, eps=1e-5) + b,
         "you added eps = 1e-5 outside the square root: StyleGAN uses sqrt(var + 1e-8), with eps inside."),
        (s * _normalise(x, (2, 3), unbiased=True) + b,
         "you used the unbiased variance (it divides by H W - 1, torch's default for .var() and .std()). AdaIN "
         "normalises with each map's own statistics, dividing by H W: x.var(dim=(2, 3), unbiased=False)."),
        (s * _normalise(x, (1, 2, 3)) + b,
         f"you took one mean and variance per sample over (C, H, W): that is layer normalisation. {per_map}"),
        (s * _normalise(x, (0, 2, 3)) + b,
         "you took the statistics over (B, H, W), one pair per channel shared by the whole batch: that is batch "
         f"normalisation, and it lets one image's statistics leak into another's style. {per_map}"),
        (s * _normalise(x, (0, 1, 2, 3)) + b, f"you took one mean and variance over the whole batch. {per_map}"),
        (s * _normalise(x, (2,)) + b, f"you took the statistics over the height only (dim=2). {per_map}"),
        (s * _normalise(x, (3,)) + b, f"you took the statistics over the width only (dim=3). {per_map}"),
        (b * n + s, "scale and bias are swapped: AdaIN multiplies the normalised map by the style's scale y_s and "
                    "then adds its bias y_b."),
        (s * _normalise(x, (2, 3), centre=False) + b,
         "the mean is not subtracted: the normalised map is (x - mean) / sigma, zero mean and unit std, before the "
         "style's scale and bias are applied."),
        (s * (x - x.mean(dim=(2, 3), keepdim=True)) / (x.var(dim=(2, 3), unbiased=False, keepdim=True) + EPS) + b,
         "you divided by the variance: divide by the standard deviation, sqrt(var + eps)."),
        ((1 + s) * n + b, "you multiplied by 1 + scale. The generator's layers pass 1 + y_s to AdaIN "
                          "(course_lib.stylegan.StyleConv does), but adain itself takes the scale as given."),
        (s * n, "the style's bias y_b is missing: scale * normalised + bias[:, :, None, None]."),
        (n + b, "the style's scale y_s is missing: scale[:, :, None, None] * normalised + bias."),
        (n, "that is instance normalisation alone: the style is missing (multiply by the scale, add the bias)."),
        (s * x + b, "x is not normalised: subtract each map's mean and divide by its standard deviation first."),
    ]


ADAIN_CRASH_HINT = ("scale and bias are (B, C): one number per sample and channel. Index them as scale[:, :, None, None] "
                    "so they broadcast over H and W.")


@exercise("09.1", "AdaIN (adaptive instance normalisation)", forbid=("course_lib.stylegan.adain",))
@own_rng
def check_adain(adain) -> None:
    cases = [
        ("feature maps (2, 3, 4, 5)", "plain"),
        ("a batch whose map (0, 1) is constant (variance 0)", "constant"),
        ("a batch whose map (1, 2) is nearly constant (std 1e-5)", "tiny"),
    ]
    for label, kind in cases:
        x, scale, bias = _adain_case(kind)
        out = _call(adain, {"x": x, "scale": scale, "bias": bias}, "adain", ADAIN_CRASH_HINT)
        out = _tensor_of_shape(out, tuple(x.shape), "adain", "AdaIN returns maps of the same shape as x, (B, C, H, W).")
        if not torch.isfinite(out).all():
            if kind == "constant":
                raise Mistake("a constant feature map (variance 0) gives NaN: (x - mean) / sqrt(var) is 0 / 0 there. Add "
                              "eps = 1e-8 to the variance inside the square root, sqrt(var + eps); the map then comes "
                              "out as the style's bias.")
            raise Mistake(f"on {label}, adain returned NaN or Inf: is eps = 1e-8 inside the square root?")
        ref = reference_adain(x, scale, bias)
        if close(out, ref, rtol=1e-4, atol=1e-5):
            continue
        message = _matching(out, ref, adain_candidates(x, scale, bias), rtol=1e-4, atol=1e-5)
        if message:
            raise Mistake(message)
        if kind == "tiny":
            raise Mistake("on a nearly constant feature map (std 1e-5) your output differs from "
                          "scale * (x - mean) / sqrt(var + 1e-8) + bias: is eps = 1e-8 added to the (biased) variance "
                          f"inside the square root? ({_largest_difference(out, ref)}.)")
        raise Mistake(f"on {label}, adain differs from scale * (x - mean) / sqrt(var + eps) + bias with the mean and "
                      f"(biased) variance of each map over H and W: {_largest_difference(out, ref)}.")

    x, scale, bias = (t.requires_grad_(True) for t in _adain_case("plain"))
    out = _call(adain, {"x": x, "scale": scale, "bias": bias}, "adain", ADAIN_CRASH_HINT)
    _check_input_grads(out, reference_adain(x, scale, bias), [("x", x), ("scale", scale), ("bias", bias)], "adain", 1,
                       {"x": "Did you .detach() the mean or the standard deviation (or compute them under no_grad)? "
                             "The generator is trained through the statistics too."})


# ----------------------------------------------------------------------------------------------
# 09.2 modulation and demodulation
# ----------------------------------------------------------------------------------------------

def _modulate_case(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (O, I, k, k) = (4, 3, 3, 3) and styles (B, I) = (2, 3) about 1; edge cases add a third sample.

    ``zero``: the third sample's style is 0 (its modulated weight is 0: no eps gives 0 / 0). ``tiny``: its
    style is 1e-6 (sum of squares about 3e-11, below eps: there the eps placement decides the output).
    """
    g = torch.Generator().manual_seed(case_seed(4))
    weight = _randn(g, 4, 3, 3, 3)
    styles = 1 + 0.5 * _randn(g, 2, 3)
    if kind == "zero":
        styles = torch.cat([styles, torch.zeros(1, 3)])
    elif kind == "tiny":
        styles = torch.cat([styles, torch.full((1, 3), 1e-6)])
    return weight, styles


def _demodulated(w: torch.Tensor, dims: tuple[int, ...], eps: float = EPS, inside: bool = True, mean: bool = False,
                 root: bool = True) -> torch.Tensor:
    sq = w.pow(2).mean(dim=dims, keepdim=True) if mean else w.pow(2).sum(dim=dims, keepdim=True)
    norm = (torch.sqrt(sq + eps) if inside else torch.sqrt(sq) + eps) if root else sq + eps
    return w / norm


DEMOD_WHY = ("Demodulation rescales each OUTPUT channel o of each sample b to unit L2 norm over its inputs and kernel "
             "taps, a sum over dim=(2, 3, 4) of the (B, O, I, k, k) weights: then inputs with independent unit-variance "
             "entries give outputs of unit variance.")

DEMOD_AXES = [  # (dims over which the learner's weights have unit norm, what that means)
    ((1, 3, 4), "you normalised each INPUT channel (a sum over the output channels, dim 1, and the kernel)."),
    ((2,), "you summed over the input channels only (dim 2), one factor per kernel tap: sum over the kernel too."),
    ((3, 4), "you summed over the kernel only (dims 3, 4), one factor per (output, input) pair: sum over the input "
             "channels too."),
    ((1, 2, 3, 4), "you normalised each sample's whole weight at once (dims 1 to 4): each output channel needs its own "
                   "factor."),
    ((0, 2, 3, 4), "you summed over the batch as well (dim 0): each sample has its own styles, so its own factors."),
]


def modulate_candidates(weight: torch.Tensor, styles: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong (demodulated) weights, each with the message that explains it."""
    w = weight[None] * styles[:, None, :, None, None]                      # (B, O, I, k, k)
    return [
        (_demodulated(w, (2, 3, 4), inside=False),
         "for a sample with a tiny style (1e-6) your weights are more than 10 times too large: you added eps OUTSIDE "
         "the square root, sqrt(sum w'^2) + eps. StyleGAN2 (eq. 3) has it inside, w' / sqrt(sum w'^2 + eps): when the "
         "sum is below eps the factor must stay near 1 / sqrt(eps) instead of exploding."),
        *[(_demodulated(w, dims), f"{message} {DEMOD_WHY}") for dims, message in DEMOD_AXES],
        (w / torch.sqrt(weight[None].pow(2).sum(dim=(2, 3, 4), keepdim=True) + EPS),
         "you demodulated with the norm of the UNMODULATED weight: the factor must come from the modulated weights "
         "s_i w_oikl (it depends on the style), sum over i, k, l of (s_i w_oikl)^2."),
        (_demodulated(w, (2, 3, 4), mean=True),
         "you averaged the squares (a mean over I k k values): demodulation divides by the L2 norm, the square root "
         "of their SUM."),
        (_demodulated(w, (2, 3, 4), root=False),
         "you divided by the sum of squares itself: take its square root, w' / sqrt(sum w'^2 + eps)."),
        (w, "with demodulate=True you returned the modulated weights without demodulating them."),
        (_demodulated(weight[None].expand_as(w), (2, 3, 4)),
         "the styles are missing: modulation multiplies input channel i of the weight by the sample's style s_i before "
         "demodulating."),
    ]


MODULATE_CRASH_HINT = ("The (O, I, k, k) weight gets a batch axis, weight[None] is (1, O, I, k, k), and styles (B, I) "
                       "scale the INPUT channels (dim 2): styles[:, None, :, None, None].")


@exercise("09.2", "modulation and demodulation of a convolution weight", forbid=("course_lib.stylegan.modulate",))
@own_rng
def check_modulate(modulate) -> None:
    cases = [
        ("the weights (4, 3, 3, 3) and styles (2, 3)", "plain"),
        ("a batch whose third style is all zeros", "zero"),
        ("a batch whose third style is tiny (1e-6)", "tiny"),
    ]
    for label, kind in cases:
        weight, styles = _modulate_case(kind)
        B, (O, I, k, _) = styles.shape[0], weight.shape
        for demodulate in (True, False):
            args = {"weight": weight, "styles": styles, "demodulate": demodulate}
            name = f"modulate(weight, styles, demodulate={demodulate})"
            out = expect_tensor(_call(modulate, args, name, MODULATE_CRASH_HINT), name)
            if tuple(out.shape) == (B * O, I, k, k):
                raise Mistake(f"{name} returned shape {tuple(out.shape)}: return (B, O, I, k, k) = {(B, O, I, k, k)}. "
                              "Reshaping to (B * O, I, k, k) for the grouped convolution is modulated_conv2d's job.")
            if tuple(out.shape) == (B, I, O, k, k):
                raise Mistake(f"{name} returned shape {tuple(out.shape)}: the axes are (B, O, I, k, k), output "
                              "channels before input channels, as in the (O, I, k, k) weight.")
            expect_shape(out, (B, O, I, k, k), name, "One (O, I, k, k) weight per sample: (B, O, I, k, k).")
            if not torch.isfinite(out).all():
                if kind == "zero" and demodulate:
                    raise Mistake("a sample whose style is all zeros gives NaN: its modulated weight is 0, and 0 / sqrt(0) "
                                  "is 0 / 0. Add eps = 1e-8 inside the square root, w' / sqrt(sum w'^2 + eps).")
                raise Mistake(f"on {label}, {name} returned NaN or Inf: is eps = 1e-8 inside the square root?")
            ref = reference_modulate(weight, styles, demodulate)
            if close(out, ref, rtol=1e-4, atol=1e-6):
                continue
            if not demodulate:
                if close(out, reference_modulate(weight, styles, True), rtol=1e-4, atol=1e-6):
                    raise Mistake("with demodulate=False, return the modulated weights s_i w_oikl as they are (the "
                                  "toRGB layers do not demodulate): demodulate only when asked.")
                raise Mistake(f"{name} should be the modulated weights weight[None] * styles[:, None, :, None, None] "
                              f"(input channel i scaled by s_i): {_largest_difference(out, ref)}.")
            message = _matching(out, ref, modulate_candidates(weight, styles))
            if message:
                raise Mistake(message)
            norms = out.detach().pow(2).sum(dim=(2, 3, 4))                 # (B, O): should all be 1
            if not close(norms[:2], torch.ones_like(norms[:2]), rtol=1e-3, atol=1e-3):
                for dims, message in DEMOD_AXES:
                    unit = out.detach().pow(2).sum(dim=dims)
                    if close(unit, torch.ones_like(unit), rtol=1e-3, atol=1e-3):
                        raise Mistake(f"{message} {DEMOD_WHY}")
                raise Mistake(f"each output channel of each sample should have unit L2 norm after demodulation, but "
                              f"sum over (I, k, k) of your weights squared ranges from {norms.min():.4g} to "
                              f"{norms.max():.4g}. {DEMOD_WHY}")
            if kind == "tiny":
                raise Mistake("for a sample with a tiny style (1e-6) your demodulated weights differ from "
                              "w' / sqrt(sum w'^2 + 1e-8): is eps = 1e-8 inside the square root? "
                              f"({_largest_difference(out, ref)}.)")
            raise Mistake(f"on {label}, {name} differs from w' / sqrt(sum over (I, k, k) of w'^2 + eps) with "
                          f"w' = s_i w_oikl: {_largest_difference(out, ref)}.")

    weight, styles = (t.requires_grad_(True) for t in _modulate_case("plain"))
    out = _call(modulate, {"weight": weight, "styles": styles, "demodulate": True}, "modulate", MODULATE_CRASH_HINT)
    _check_input_grads(out, reference_modulate(weight, styles), [("weight", weight), ("styles", styles)], "modulate", 2,
                       {"styles": "Did you .detach() the demodulation factors? They depend on the style, and the "
                                  "mapping network learns through them.",
                        "weight": "Did you .detach() the demodulation factors? The weight is trained through them."})


# ----------------------------------------------------------------------------------------------
# 09.3 the truncation trick
# ----------------------------------------------------------------------------------------------

def truncate_candidates(w: torch.Tensor, w_avg: torch.Tensor, psi: float) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong truncations, each with the message that explains it."""
    batch_mean = w.mean(dim=0, keepdim=True)
    return [
        (psi * w, "you scaled w towards 0, psi * w: that is truncation in Z, where the average latent is 0 (z ~ N(0, I)). "
                  "In W the average is w_avg, which is NOT 0 (the mapping network's outputs have their own mean), so "
                  "psi * w lands in a region the generator never saw. Shrink the distance to the average instead: "
                  "w_avg + psi * (w - w_avg)."),
        (w_avg + (1 - psi) * (w - w_avg), "psi works the wrong way round: psi = 1 must give w back unchanged and psi = 0 "
                                          "the average w_avg, so w_avg + psi * (w - w_avg)."),
        (w_avg - psi * (w - w_avg), "you moved w to the other side of w_avg (the sign is flipped): "
                                    "w_avg + psi * (w - w_avg)."),
        (psi * (w - w_avg), "w_avg is not added back: psi * (w - w_avg) is the shrunk offset; the truncated code is "
                            "w_avg + psi * (w - w_avg)."),
        (w_avg + psi * w, "subtract w_avg before scaling: w_avg + psi * (w - w_avg)."),
        (batch_mean + psi * (w - batch_mean),
         "you pulled w towards the mean of the batch: use the tracked average w_avg (the mean over many mapped z's). "
         "A batch of one sample would not be truncated at all."),
        (w.clamp(-psi, psi), "you clipped w to [-psi, psi]: StyleGAN's truncation pulls w towards w_avg, "
                             "w_avg + psi * (w - w_avg), which keeps its direction from the average."),
    ]


TRUNCATE_INPLACE = {"w_avg": "In the generator, w_avg is the tracked average (a buffer): after this call every later "
                             "truncation would use a corrupted average."}


@exercise("09.3", "the truncation trick in W", forbid=("course_lib.stylegan.Generator.truncate",))
@own_rng
def check_truncate(truncate) -> None:
    g = torch.Generator().manual_seed(case_seed(3))
    w_avg = 0.8 + 0.3 * _randn(g, 6)                                       # (w_dim,), far from 0 as in W
    w = w_avg + _randn(g, 4, 6)                                            # (B, w_dim)
    ws = w_avg + _randn(g, 4, 8, 6)                                        # (B, num_ws, w_dim)
    cases = [(w, 0.7), (w, 0.0), (w, 1.0), (w, 1.5), (w, -0.5), (ws, 0.5)]
    for codes, psi in cases:
        shape = tuple(codes.shape)
        name = f"truncate(w, w_avg, psi={psi})"
        out = _call(truncate, {"w": codes, "w_avg": w_avg, "psi": psi}, name,
                    "w_avg (w_dim,) broadcasts against w of shape (B, w_dim) or (B, num_ws, w_dim) by itself: "
                    "w_avg + psi * (w - w_avg), no reshaping needed.", TRUNCATE_INPLACE)
        out = _tensor_of_shape(out, shape, name, "The truncated codes have the shape of w.")
        ref = reference_truncate(codes, w_avg, psi)
        if close(out, ref, rtol=1e-5, atol=1e-6):
            continue
        message = _matching(out, ref, truncate_candidates(codes, w_avg, psi), rtol=1e-5, atol=1e-6)
        if message:
            raise Mistake(f"with psi = {psi}: {message}")
        if psi == 1.0:
            raise Mistake("psi = 1 should give w back unchanged (no truncation): w_avg + 1 * (w - w_avg) = w.")
        if psi == 0.0:
            raise Mistake("psi = 0 should give w_avg for every sample: the average code, the 'mean image'.")
        if len(shape) == 3:
            raise Mistake(f"on per-layer codes ws of shape {shape}, truncate should give w_avg + psi * (ws - w_avg) "
                          f"for every layer: {_largest_difference(out, ref)}.")
        raise Mistake(f"with psi = {psi}, truncate should give w_avg + psi * (w - w_avg): {_largest_difference(out, ref)}.")


# ----------------------------------------------------------------------------------------------
# 09.4 minibatch standard deviation
# ----------------------------------------------------------------------------------------------

def _mbstd_case(B: int, collapsed: bool = False) -> torch.Tensor:
    """x (B, 3, 2, 3); each sample has its own mean and spread, so different groupings differ.

    ``collapsed``: the samples 0, M, 2M, ... of group 0 (M = B / 4) are identical, as from a generator that
    lost its diversity: their std is exactly 0.
    """
    g = torch.Generator().manual_seed(case_seed(6 + B))
    i = torch.arange(B, dtype=torch.float32)[:, None, None, None]
    x = 0.4 * i + (0.5 + 0.3 * i) * _randn(g, B, 3, 2, 3)
    if collapsed:
        x[0::B // 4] = x[0]
    return x


def _grouped(x: torch.Tensor, G: int, consecutive: bool = False) -> torch.Tensor:
    """(B, ...) -> (G, M, F): member g of group m; group m = {i : i mod M = m}, or {m G, ..., m G + G - 1}."""
    B = x.shape[0]
    flat = x.reshape(B, -1)
    return flat.reshape(B // G, G, -1).transpose(0, 1) if consecutive else flat.reshape(G, B // G, -1)


def _per_sample(values: torch.Tensor, G: int, consecutive: bool = False) -> torch.Tensor:
    """(M,) group values -> (B,): what each sample gets."""
    return values.repeat_interleave(G) if consecutive else values.repeat(G)


def minibatch_std_candidates(x: torch.Tensor, group_size: int) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong per-sample values of the appended feature map, (B,) each, with their messages."""
    B = x.shape[0]
    G = min(group_size, B)
    y = _grouped(x, G)                                                     # (G, M, F)
    var = y.var(dim=0, unbiased=False)                                     # (M, F)
    eps_msg = ("in a group of identical samples (a collapsed generator: exactly what this feature is there to show D) "
               "the std is 0. With eps inside, sqrt(0 + 1e-8) = 1e-4 and the square root keeps a finite slope; ")
    consecutive = _grouped(x, G, consecutive=True).var(dim=0, unbiased=False)
    return [
        (_per_sample(torch.sqrt(consecutive + EPS).mean(dim=1), G, True),
         f"your groups are runs of consecutive samples (sample i in group i // {G}). The course, like ProGAN's and "
         f"StyleGAN's code, puts sample i in group i mod (B / G): x.reshape(G, B // G, C, H, W) makes axis 0 the member "
         f"within a group and axis 1 the group (here B = {B}, G = {G}, so group 0 is samples "
         f"{list(range(0, B, B // G))})."),
        (torch.sqrt(x.reshape(B, -1).var(dim=0, unbiased=False) + EPS).mean().repeat(B),
         f"you took one std over the whole batch: with group_size = {group_size} and B = {B}, each group of {G} "
         f"samples gets its own value (G = min(group_size, B))."),
        (_per_sample(torch.sqrt(y.var(dim=0, unbiased=True) + EPS).mean(dim=1), G),
         "you used the unbiased std (dividing by G - 1, torch's default for .std() and .var()): ProGAN's feature is "
         "the population std of the group, the square root of the mean squared deviation (unbiased=False)."),
        (_per_sample((var + EPS).mean(dim=1), G),
         "you appended the variance: take its square root (with eps = 1e-8 inside), the std."),
        (_per_sample((torch.sqrt(var) + EPS).mean(dim=1), G),   # no eps at all gives the same (0 instead of 1e-8)
         f"{eps_msg}yours is about 0: eps is OUTSIDE the square root, sqrt(var) + eps, or missing. There the gradient "
         "of sqrt at 0 is infinite, so D's gradients become NaN as soon as a group collapses. Use sqrt(var + 1e-8)."),
        (_per_sample(torch.sqrt(var.mean(dim=1) + EPS), G),
         "you averaged the variances over features and pixels, then took one square root: average the standard "
         "deviations instead (the square root of each feature's variance first, then the mean over C, H and W)."),
        (_per_sample(torch.sqrt(y.mean(dim=2).var(dim=0, unbiased=False) + EPS), G),
         "you averaged each sample's features first and then took the std of those averages: take the std of every "
         "feature and pixel over the group first, then average the stds over C, H and W."),
        (torch.sqrt(x.reshape(B, -1).var(dim=1, unbiased=False) + EPS),
         "you took each sample's std over its own features: the std is over the SAMPLES of a group, feature by "
         "feature (how much the batch varies), then averaged over C, H and W."),
    ]


@exercise("09.4", "the minibatch standard deviation", forbid=("course_lib.stylegan.minibatch_std",))
@own_rng
def check_minibatch_std(minibatch_std) -> None:
    cases = [
        (_mbstd_case(8), 4, "a batch of 8 with group_size 4 (2 groups)"),
        (_mbstd_case(6), 2, "a batch of 6 with group_size 2 (3 groups)"),
        (_mbstd_case(2), 4, "a batch of 2 with group_size 4 (one group of 2: G = min(group_size, B))"),
        (_mbstd_case(8, collapsed=True), 4, "a batch of 8 whose first group holds 4 identical samples (std 0)"),
    ]
    for x, group_size, label in cases:
        B, C, H, W = x.shape
        G = min(group_size, B)
        name = f"minibatch_std(x, group_size={group_size})"
        hint = ("When the batch is smaller than group_size, the whole batch is one group: G = min(group_size, B)."
                if B < group_size else
                "Reshape to (G, B // G, C, H, W): axis 0 the member within a group, axis 1 the group.")
        out = expect_tensor(_call(minibatch_std, {"x": x, "group_size": group_size}, name, hint), name)
        if out.dim() == 4 and out.shape[0] == B and out.shape[2:] == (H, W):
            if out.shape[1] == 1:
                raise Mistake(f"{name} returned only the new feature map (B, 1, H, W): append it to x, "
                              "torch.cat([x, std_map], dim=1), so D sees its features and the statistic.")
            if out.shape[1] == 2 * C:
                raise Mistake(f"{name} appended {C} feature maps, one per channel: average the std over the channels "
                              "too (and over H and W), so that ONE feature map is appended.")
            if out.shape[1] == C:
                raise Mistake(f"{name} returned {C} channels, as many as x: append the std feature map as one more "
                              "channel, (B, C + 1, H, W).")
        expect_shape(out, (B, C + 1, H, W), name, "x with one feature map appended: (B, C + 1, H, W).")
        if not torch.equal(out[:, :C].detach(), x):
            if torch.equal(out[:, 1:].detach(), x):
                raise Mistake(f"{name} put the new feature map first: append it as the LAST channel, "
                              "torch.cat([x, std_map], dim=1) (D's next layer expects x's channels where they were).")
            raise Mistake(f"the first {C} channels of {name}'s output should be x itself, unchanged.")
        extra = out[:, C].detach()                                         # (B, H, W)
        if not torch.isfinite(extra).all():
            raise Mistake(f"on {label}, the appended feature map holds NaN or Inf: is eps = 1e-8 inside the square root?")
        if not close(extra, extra[:, :1, :1].expand_as(extra), rtol=1e-5, atol=1e-7):
            raise Mistake("your appended feature map varies across pixels: average the std over the channels AND the "
                          "pixels (C, H and W), to one number per group, and fill the new map with it.")
        values = extra[:, 0, 0]                                            # (B,)
        ref = reference_minibatch_std(x, group_size)[:, C, 0, 0]
        if close(values, ref, rtol=1e-4, atol=1e-6):
            continue
        message = _matching(values, ref, minibatch_std_candidates(x, group_size), rtol=1e-4, atol=1e-6)
        if message:
            raise Mistake(f"on {label}: {message}")
        raise Mistake(f"on {label}, the appended values (one per sample) are {[round(v, 5) for v in values.tolist()]}, "
                      f"but should be {[round(v, 5) for v in ref.tolist()]}: the std of each feature over the {G} samples "
                      f"of a group (sample i in group i mod {B // G}), sqrt(mean squared deviation + 1e-8), averaged "
                      "over C, H and W.")

    for collapsed in (False, True):
        x = _mbstd_case(8, collapsed).requires_grad_(True)
        out = _call(minibatch_std, {"x": x, "group_size": 4}, "minibatch_std")
        if collapsed and out.requires_grad:
            (grad,) = torch.autograd.grad(out[:, -1].sum(), x)
            if not torch.isfinite(grad).all():
                raise Mistake("with a collapsed group (identical samples) the gradient reaching x is NaN or Inf: the "
                              "slope of sqrt at 0 is infinite. Put eps inside the square root, sqrt(var + 1e-8).")
            continue
        _check_input_grads(out, reference_minibatch_std(x, 4), [("x", x)], "minibatch_std", 4,
                           {"x": "Did you .detach() the std (or compute it under no_grad)? D learns through this "
                                 "feature: that is how it learns to spot batches without variety."})


# ----------------------------------------------------------------------------------------------
# 09.5 the discriminator loss with the R1 penalty
# ----------------------------------------------------------------------------------------------

class SmallD(nn.Module):
    """A stand-in discriminator for (B, 1, 4, 4) images: conv 3x3, tanh, linear; logits (B,)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 1)
        g = torch.Generator().manual_seed(case_seed(seed))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.6 * torch.randn(p.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).flatten(1)).squeeze(1)   # (B, 1) -> (B,)


class LinearD(nn.Module):
    """D(x) = <w, x> + b: its gradient is w at every x, so R1 = ||w||^2 exactly."""

    def __init__(self, seed: int = 0, size: int = 16) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(case_seed(seed))
        self.w = nn.Parameter(0.3 * torch.randn(size, generator=g))
        self.b = nn.Parameter(torch.tensor(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b                              # (B,)


def _r1_batches(B: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and fake (B, 1, 4, 4) batches that the stand-in D scores (and differentiates) differently."""
    g = torch.Generator().manual_seed(case_seed(5))
    return 0.5 + 0.4 * _randn(g, B, 1, 4, 4), -0.4 + 1.2 * _randn(g, B, 1, 4, 4)


def _per_sample_grads(D: nn.Module, x: torch.Tensor, of: str = "logits") -> torch.Tensor:
    """(B, ...) gradients with respect to x of the logits' sum, of -log sigmoid(D(x)) summed, or of its mean."""
    x = x.detach().requires_grad_(True)
    logits = D(x)
    target = {"logits": logits.sum(), "loss": F.softplus(-logits).sum(), "mean loss": F.softplus(-logits).mean()}[of]
    (grad,) = torch.autograd.grad(target, x)
    return grad


def r1_candidates(D: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong R1 penalties, as the value that (loss - adversarial part) / (gamma / 2) would show."""
    B = x_real.shape[0]
    g_real, g_fake = _per_sample_grads(D, x_real), _per_sample_grads(D, x_fake)
    r1 = lambda grad: grad.pow(2).flatten(1).sum(dim=1).mean()            # noqa: E731
    r1_real, r1_fake = r1(g_real), r1(g_fake)
    norms = g_real.flatten(1).norm(dim=1)                                  # (B,)
    on_fakes = ("R1 penalises D's gradient on REAL images only (Mescheder et al. 2018): it keeps D flat around the data, "
                "so that once G matches the data D has nothing left to push on.")
    loss_grad = ("you took the gradient of the loss (softplus(-D(x))): R1 is the gradient of D's raw output, the logit, "
                 "torch.autograd.grad(D(x).sum(), x, create_graph=True).")
    return [
        (r1_fake, f"you computed R1 on the FAKE images. {on_fakes}"),
        (r1_real + r1_fake, f"you penalised the gradient on real AND fake images. {on_fakes}"),
        ((r1_real + r1_fake) / 2, f"you averaged the penalty over real and fake images. {on_fakes}"),
        (2 * r1_real, "the 1/2 is missing: the R1 term is (gamma / 2) * mean ||grad D(x_real)||^2."),
        (B * r1_real, "you summed ||grad||^2 over the batch: average it over the samples, .mean()."),
        (r1_real / B ** 2, "you differentiated D(x).mean(): that divides each sample's gradient by B (so R1 by B^2). "
                           "Differentiate D(x).sum(): each logit depends on its own image only, so the gradient of the "
                           "sum holds every sample's own gradient."),
        (r1_real / g_real[0].numel(), "you averaged the squared gradient over the pixels too: sum the squares over each "
                                      "image (flatten(1).sum(dim=1)), then average over the batch."),
        (norms.mean(), "you used the gradient's norm; R1 is its SQUARED norm, sum of the squares over each image."),
        (((norms - 1) ** 2).mean(), "that is WGAN-GP's penalty (||grad|| - 1)^2; R1 pushes the gradient on real images "
                                    "towards 0: ||grad||^2."),
        (r1(_per_sample_grads(D, x_real, "loss")), loss_grad),
        (r1(_per_sample_grads(D, x_real, "mean loss")), loss_grad),
        (r1_real.sqrt(), "you took the square root of the mean squared norm: R1 is mean ||grad||^2 itself."),
    ]


def adversarial_candidates(real: torch.Tensor, fake: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """Classic wrong non-saturating D losses (on logits), each with its message."""
    return [
        (F.softplus(real).mean() + F.softplus(-fake).mean(), "real and fake are swapped: D wants high logits on real "
                                                             "images, softplus(-D(x_real)), and low ones on fakes, "
                                                             "softplus(D(x_fake))."),
        ((F.softplus(-real).mean() + F.softplus(fake).mean()) / 2, "the two means are added, not averaged."),
        (F.softplus(-real).mean(), "the fake images' term softplus(D(x_fake)).mean() is missing."),
        (F.softplus(fake).mean(), "the real images' term softplus(-D(x_real)).mean() is missing."),
        (torch.zeros(()), "D's own loss is missing; the R1 term is added to it."),
    ]


R1_CRASH_HINT = ("x_real must require grad before D sees it, so that autograd can differentiate D(x) with respect to "
                 "it: x = x_real.detach().requires_grad_(True).")


def _d_loss(d_loss_r1, D: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor, gamma: float) -> torch.Tensor:
    name = f"d_loss_r1(D, x_real, x_fake, gamma={gamma})"
    try:
        out = _call(d_loss_r1, {"D": D, "x_real": x_real.clone(), "x_fake": x_fake.clone(), "gamma": gamma}, name)
    except Mistake as err:
        if "does not require grad" in str(err) or "does not have a grad_fn" in str(err):
            raise Mistake(f"{str(err).rstrip('.')}. {R1_CRASH_HINT}") from None
        raise
    if isinstance(out, float):
        raise Mistake(f"{name} returned a Python float: return the loss tensor (the training step calls .backward() on it).")
    out = expect_tensor(out, name)
    if out.numel() == 1 and out.dim() > 0:
        raise Mistake(f"{name} returned shape {tuple(out.shape)}: return a 0-dimensional tensor (the means are scalars).")
    expect_shape(out, (), name, "D's loss is one number: the batch means of its terms added up.")
    if any(p.grad is not None for p in D.parameters()):
        raise Mistake(f"{name} wrote gradients into D's parameters (their .grad): inside a loss, take the gradient with "
                      "torch.autograd.grad(D(x).sum(), x, create_graph=True), not .backward(), or the optimiser step "
                      "would count them twice.")
    return out


@exercise("09.5", "the discriminator loss with the R1 penalty", forbid=("course_lib.losses.r1_penalty",))
@own_rng
def check_d_loss_r1(d_loss_r1) -> None:
    D = SmallD()
    x_real, x_fake = _r1_batches()
    with torch.no_grad():
        real, fake = D(x_real), D(x_fake)
    adversarial = F.softplus(-real).mean() + F.softplus(fake).mean()

    out = _d_loss(d_loss_r1, D, x_real, x_fake, 0.0)
    if not close(out, adversarial, rtol=1e-5, atol=1e-6):
        message = _matching(out, adversarial, adversarial_candidates(real, fake), rtol=1e-5, atol=1e-6)
        raise Mistake(f"with gamma = 0 (no R1) your loss should be D's non-saturating loss softplus(-D(x_real)).mean() "
                      f"+ softplus(D(x_fake)).mean() = {adversarial.item():.5f}, but it is {out.item():.5f}"
                      + (f": {message}" if message else "."))

    r1_ref = reference_r1_penalty(D, x_real).detach()
    for gamma in (10.0, 0.5):
        out = _d_loss(d_loss_r1, D, x_real, x_fake, gamma)
        r1 = (out.detach() - adversarial) / (gamma / 2)                   # what the learner's R1 comes to
        if close(r1, r1_ref, rtol=1e-3, atol=1e-5):
            continue
        if close(r1 * gamma / 2, torch.zeros(()), atol=1e-6):
            raise Mistake(f"with gamma = {gamma} your loss equals the adversarial part alone: add "
                          "(gamma / 2) * mean ||grad D(x_real)||^2.")
        message = _matching(r1, r1_ref, r1_candidates(D, x_real, x_fake), rtol=1e-3, atol=1e-5)
        if message:
            raise Mistake(message)
        raise Mistake(f"with gamma = {gamma}, your loss minus the adversarial part is {(r1 * gamma / 2).item():.5f}, but "
                      f"(gamma / 2) * mean_i ||grad D(x_real_i)||^2 is {(r1_ref * gamma / 2).item():.5f}: the gradient "
                      "of D's logits with respect to the real images, its squared norm summed over each image, averaged "
                      "over the batch, times gamma / 2.")

    linear = LinearD()
    want = linear.w.detach().pow(2).sum()                                  # R1 of a linear D: ||w||^2
    with torch.no_grad():
        adversarial_linear = F.softplus(-linear(x_real)).mean() + F.softplus(linear(x_fake)).mean()
    got = (_d_loss(d_loss_r1, linear, x_real, x_fake, 2.0).detach() - adversarial_linear)
    if not close(got, want, rtol=1e-4, atol=1e-6):
        raise Mistake(f"for a linear D(x) = <w, x> + b the gradient is w at every image, so R1 = ||w||^2 = "
                      f"{want.item():.5f} and with gamma = 2 the R1 term is exactly that; yours gives {got.item():.5f}.")

    out = _d_loss(d_loss_r1, D, x_real, x_fake, 10.0)
    if not out.requires_grad:
        raise Mistake("your loss is cut off from D's weights (.detach(), .item(), torch.no_grad()): it is what D is "
                      "trained on, so keep it in the graph.")
    params = list(D.parameters())
    got = torch.autograd.grad(out, params, allow_unused=True)
    want = torch.autograd.grad(reference_d_loss_r1(D, x_real, x_fake, 10.0), params)
    if all(g is not None and close(g, w, rtol=1e-3, atol=1e-5) for g, w in zip(got, want)):
        return
    adversarial_only = torch.autograd.grad(F.softplus(-D(x_real)).mean() + F.softplus(D(x_fake)).mean(), params)
    if all(g is not None and close(g, a, rtol=1e-3, atol=1e-5) for g, a in zip(got, adversarial_only)):
        raise Mistake("the value is right, but the R1 term sends no gradient to D's weights, so it cannot regularise D. "
                      "Pass create_graph=True to torch.autograd.grad: then the gradient is itself part of the graph, "
                      "and ||grad||^2 can be backpropagated into D (a second-order, 'double' backward). Without it the "
                      "gradient is a constant (and don't .detach() it either).")
    raise Mistake("the value is right, but backpropagating your loss gives D's weights different gradients: keep the "
                  "R1 term in the graph (create_graph=True, nothing detached).")


# ----------------------------------------------------------------------------------------------
# 09.6 style mixing
# ----------------------------------------------------------------------------------------------

def _mix_case() -> tuple[torch.Tensor, torch.Tensor]:
    """ws_a and ws_b (B, num_ws, w_dim) = (3, 8, 5), different in every entry."""
    g = torch.Generator().manual_seed(case_seed(8))
    return _randn(g, 3, 8, 5), 5 + _randn(g, 3, 8, 5)


def _describe(layers: list[int]) -> str:
    if not layers:
        return "no layer"
    return f"layer {layers[0]}" if len(layers) == 1 else "layers " + ", ".join(str(layer) for layer in layers)


@exercise("09.6", "style mixing at a crossover layer", forbid=("course_lib.stylegan.mix_styles",))
@own_rng
def check_mix_styles(mix_styles) -> None:
    ws_a, ws_b = _mix_case()
    B, num_ws, w_dim = ws_a.shape
    for crossover in (1, 3, 6, 0, num_ws):          # 1 first: a split of the batch axis shows at once
        name = f"mix_styles(ws_a, ws_b, crossover={crossover})"
        out = _call(mix_styles, {"ws_a": ws_a, "ws_b": ws_b, "crossover": crossover}, name,
                    "ws_a and ws_b are (B, num_ws, w_dim): take the layers (dim 1), ws_a[:, :crossover] and "
                    "ws_b[:, crossover:], and join them along dim 1.",
                    {"ws_a": "Start from a copy, ws_a.clone(), or build the result with torch.cat or torch.where.",
                     "ws_b": "Start from a copy, ws_b.clone(), or build the result with torch.cat or torch.where."})
        out = _tensor_of_shape(out, (B, num_ws, w_dim), name, "The mixed codes have the shape of ws_a and ws_b.")
        ref = reference_mix_styles(ws_a, ws_b, crossover)
        if torch.equal(out.detach(), ref):
            continue
        from_a = (out.detach() == ws_a).all(dim=2)                        # (B, num_ws)
        from_b = (out.detach() == ws_b).all(dim=2)
        if close(out, (ws_a + ws_b) / 2):
            raise Mistake("you averaged the two codes: style mixing SWITCHES from ws_a to ws_b at the crossover layer, "
                          "each layer takes one of the two codes as it is.")
        if not (from_a | from_b).all():
            rows = torch.cat([ws_a, ws_b], dim=1)                          # (B, 2 num_ws, w_dim): every layer of both
            found = (out.detach()[:, :, None] == rows[:, None]).all(dim=3).any(dim=2)   # (B, num_ws)
            if found.all():
                raise Mistake(f"with crossover = {crossover} every layer of your result is a layer of ws_a or ws_b, but "
                              "some sit at the wrong index: layer l of the result must be layer l of its source. Keep "
                              "the order: torch.cat([ws_a[:, :crossover], ws_b[:, crossover:]], dim=1).")
            mixed_entries = (out.detach() == ws_a) | (out.detach() == ws_b)
            if mixed_entries.all():
                raise Mistake("some layers take part of their w from ws_a and part from ws_b: the crossover splits the "
                              "LAYERS (dim 1), each layer gets a whole w_dim vector from one source; did you slice the "
                              "last axis?")
            raise Mistake(f"with crossover = {crossover}, some layers of your result are neither ws_a's nor ws_b's: each "
                          "layer should be copied from one of them.")
        if not (from_a == from_a[:1]).all():
            raise Mistake("your result takes different layers from ws_a for different samples: crossover counts LAYERS "
                          "(dim 1), not samples (dim 0); every sample switches at the same layer.")
        layers_a = [layer for layer in range(num_ws) if from_a[0, layer] and not from_b[0, layer]]
        want = list(range(crossover))
        if layers_a == list(range(crossover + 1)):
            raise Mistake(f"off by one: with crossover = {crossover} you took layers {_describe(layers_a)} from ws_a. "
                          f"The layers BEFORE the crossover come from ws_a (layer < crossover: {_describe(want)}), the "
                          "crossover layer itself and the rest from ws_b; crossover = 0 then means all of ws_b, and "
                          "crossover = num_ws all of ws_a.")
        if layers_a == list(range(max(crossover - 1, 0))):
            raise Mistake(f"off by one: with crossover = {crossover} you took layers {_describe(layers_a)} from ws_a; it "
                          f"should be {_describe(want)} (layer < crossover).")
        if layers_a == list(range(crossover, num_ws)) or layers_a == list(range(crossover + 1, num_ws)):
            raise Mistake(f"the sources are swapped: with crossover = {crossover} the layers BEFORE it (the coarse styles) "
                          "come from ws_a and the rest (the fine styles) from ws_b.")
        if layers_a == list(range(num_ws - crossover)):
            raise Mistake(f"with crossover = {crossover} you took {_describe(layers_a)} from ws_a: crossover is "
                          "the index of the first layer taken from ws_b (layers < crossover from ws_a), not the number "
                          "of layers taken from ws_b.")
        raise Mistake(f"with crossover = {crossover}, ws_a should give {_describe(want)} and ws_b the others; yours "
                      f"took {_describe(layers_a)} from ws_a.")

    ws_a, ws_b = (t.requires_grad_(True) for t in _mix_case())
    out = _call(mix_styles, {"ws_a": ws_a, "ws_b": ws_b, "crossover": 3}, "mix_styles")
    _check_input_grads(out, reference_mix_styles(ws_a, ws_b, 3), [("ws_a", ws_a), ("ws_b", ws_b)], "mix_styles", 6,
                       {"ws_a": "Style mixing regularisation trains the mapping network through both codes: keep the "
                                "result in the graph (no torch.tensor(...) copies, no .detach()).",
                        "ws_b": "Style mixing regularisation trains the mapping network through both codes: keep the "
                                "result in the graph (no torch.tensor(...) copies, no .detach())."})


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
