"""Checks 09.1-09.3: AdaIN, modulation and demodulation, the truncation trick."""

from __future__ import annotations

import torch

from course_lib.checks import Mistake, case_seed, close, exercise, expect_shape, expect_tensor, own_rng
from course_lib.checks.lesson09.references import (
    EPS, reference_adain, reference_modulate, reference_truncate, randn, call_checked, tensor_of_shape, matching,
    largest_difference, check_input_grads,
)


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
    x = 2 * randn(g, B, C, 1, 1) + (0.5 + 2 * torch.rand(B, C, 1, 1, generator=g)) * randn(g, B, C, H, W)
    scale, bias = 1 + 0.5 * randn(g, B, C), 0.5 * randn(g, B, C)
    if kind == "constant":
        x[0, 1] = 0.5
    elif kind == "tiny":
        x[1, 2] = 1e-5 * randn(g, H, W)
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
        out = call_checked(adain, {"x": x, "scale": scale, "bias": bias}, "adain", ADAIN_CRASH_HINT)
        out = tensor_of_shape(out, tuple(x.shape), "adain", "AdaIN returns maps of the same shape as x, (B, C, H, W).")
        if not torch.isfinite(out).all():
            if kind == "constant":
                raise Mistake("a constant feature map (variance 0) gives NaN: (x - mean) / sqrt(var) is 0 / 0 there. Add "
                              "eps = 1e-8 to the variance inside the square root, sqrt(var + eps); the map then comes "
                              "out as the style's bias.")
            raise Mistake(f"on {label}, adain returned NaN or Inf: is eps = 1e-8 inside the square root?")
        ref = reference_adain(x, scale, bias)
        if close(out, ref, rtol=1e-4, atol=1e-5):
            continue
        message = matching(out, ref, adain_candidates(x, scale, bias), rtol=1e-4, atol=1e-5)
        if message:
            raise Mistake(message)
        if kind == "tiny":
            raise Mistake("on a nearly constant feature map (std 1e-5) your output differs from "
                          "scale * (x - mean) / sqrt(var + 1e-8) + bias: is eps = 1e-8 added to the (biased) variance "
                          f"inside the square root? ({largest_difference(out, ref)}.)")
        raise Mistake(f"on {label}, adain differs from scale * (x - mean) / sqrt(var + eps) + bias with the mean and "
                      f"(biased) variance of each map over H and W: {largest_difference(out, ref)}.")

    x, scale, bias = (t.requires_grad_(True) for t in _adain_case("plain"))
    out = call_checked(adain, {"x": x, "scale": scale, "bias": bias}, "adain", ADAIN_CRASH_HINT)
    check_input_grads(out, reference_adain(x, scale, bias), [("x", x), ("scale", scale), ("bias", bias)], "adain", 1,
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
    weight = randn(g, 4, 3, 3, 3)
    styles = 1 + 0.5 * randn(g, 2, 3)
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
            out = expect_tensor(call_checked(modulate, args, name, MODULATE_CRASH_HINT), name)
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
                              f"(input channel i scaled by s_i): {largest_difference(out, ref)}.")
            message = matching(out, ref, modulate_candidates(weight, styles))
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
                              f"({largest_difference(out, ref)}.)")
            raise Mistake(f"on {label}, {name} differs from w' / sqrt(sum over (I, k, k) of w'^2 + eps) with "
                          f"w' = s_i w_oikl: {largest_difference(out, ref)}.")

    weight, styles = (t.requires_grad_(True) for t in _modulate_case("plain"))
    out = call_checked(modulate, {"weight": weight, "styles": styles, "demodulate": True}, "modulate", MODULATE_CRASH_HINT)
    check_input_grads(out, reference_modulate(weight, styles), [("weight", weight), ("styles", styles)], "modulate", 2,
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
    w_avg = 0.8 + 0.3 * randn(g, 6)                                       # (w_dim,), far from 0 as in W
    w = w_avg + randn(g, 4, 6)                                            # (B, w_dim)
    ws = w_avg + randn(g, 4, 8, 6)                                        # (B, num_ws, w_dim)
    cases = [(w, 0.7), (w, 0.0), (w, 1.0), (w, 1.5), (w, -0.5), (ws, 0.5)]
    for codes, psi in cases:
        shape = tuple(codes.shape)
        name = f"truncate(w, w_avg, psi={psi})"
        out = call_checked(truncate, {"w": codes, "w_avg": w_avg, "psi": psi}, name,
                    "w_avg (w_dim,) broadcasts against w of shape (B, w_dim) or (B, num_ws, w_dim) by itself: "
                    "w_avg + psi * (w - w_avg), no reshaping needed.", TRUNCATE_INPLACE)
        out = tensor_of_shape(out, shape, name, "The truncated codes have the shape of w.")
        ref = reference_truncate(codes, w_avg, psi)
        if close(out, ref, rtol=1e-5, atol=1e-6):
            continue
        message = matching(out, ref, truncate_candidates(codes, w_avg, psi), rtol=1e-5, atol=1e-6)
        if message:
            raise Mistake(f"with psi = {psi}: {message}")
        if psi == 1.0:
            raise Mistake("psi = 1 should give w back unchanged (no truncation): w_avg + 1 * (w - w_avg) = w.")
        if psi == 0.0:
            raise Mistake("psi = 0 should give w_avg for every sample: the average code, the 'mean image'.")
        if len(shape) == 3:
            raise Mistake(f"on per-layer codes ws of shape {shape}, truncate should give w_avg + psi * (ws - w_avg) "
                          f"for every layer: {largest_difference(out, ref)}.")
        raise Mistake(f"with psi = {psi}, truncate should give w_avg + psi * (w - w_avg): {largest_difference(out, ref)}.")


