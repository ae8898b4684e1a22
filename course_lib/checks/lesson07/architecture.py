"""Checks 07.1-07.2: a U-Net decoder stage with its skip, the PatchGAN's receptive field and output size."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng
from course_lib.pix2pix import patch_layers
from course_lib.checks.lesson07.references import (
    reference_receptive_field, reference_patch_output_size, rethrow_with_hint,
)


# ----------------------------------------------------------------------------------------------
# 07.1 a U-Net decoder stage with its skip connection
# ----------------------------------------------------------------------------------------------

class _CountingModule(nn.Module):
    """Wraps the ``up`` module given to the learner and counts its calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(h)


def _stage_cases():
    """(name, h, skip, up) cases: a U-Net stage (c_up == c_skip), a plain upsampling, the innermost stage."""
    torch.manual_seed(case_seed(7))
    unet_stage = nn.Sequential(nn.ConvTranspose2d(6, 4, 4, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    with torch.no_grad():                                   # running statistics that are not the identity
        unet_stage[1].running_mean.uniform_(-0.2, 0.2)
        unet_stage[1].running_var.uniform_(0.5, 1.5)
    innermost = nn.Sequential(nn.ConvTranspose2d(3, 2, 4, 2, 1), nn.LeakyReLU(0.2))
    g = torch.Generator().manual_seed(case_seed(0))
    return [
        ("a U-Net stage, 4 channels up and 4 skipped", torch.randn(2, 6, 4, 4, generator=g),
         torch.randn(2, 4, 8, 8, generator=g), unet_stage.eval()),
        ("nearest-neighbour upsampling of 5 channels, 2 skipped", torch.randn(3, 5, 2, 2, generator=g),
         torch.randn(3, 2, 4, 4, generator=g), nn.Upsample(scale_factor=2, mode="nearest")),
        ("the innermost stage, 1x1 -> 2x2, batch of 1", torch.randn(1, 3, 1, 1, generator=g),
         torch.randn(1, 3, 2, 2, generator=g), innermost.eval()),
    ]


CAT_HINT = ("Upsample h with `up` FIRST, so that it has the skip's height and width, then join the two along the "
            "channel axis, dim=1: torch.cat needs every axis except the one it joins along to agree.")
ADD_HINT = ("Adding needs equal channel counts, and is not what a U-Net does: it CONCATENATES the skip along the "
            "channel axis, torch.cat([up(h), skip], dim=1).")
UP_HINT = "`up` expects h's channels: call up(h) on h alone, then concatenate the skip to its output."
AXES = {0: "the batch axis (dim 0)", 2: "the height axis (dim 2)", 3: "the width axis (dim 3)"}


@exercise("07.1", "a U-Net decoder stage with its skip connection")
@own_rng
def check_up_with_skip(up_with_skip) -> None:
    for name, h, skip, up in _stage_cases():
        B, c_skip, s, _ = skip.shape
        with torch.no_grad():
            u = up(h)                                        # (B, c_up, s, s)
        c_up = u.shape[1]
        counting = _CountingModule(up)
        h_g, skip_g = h.clone().requires_grad_(), skip.clone().requires_grad_()
        try:
            out = call(up_with_skip, h_g, skip_g, counting, what="up_with_skip")
        except Mistake as err:
            raise rethrow_with_hint(err, [("The size of tensor a", ADD_HINT), ("must match", CAT_HINT),
                                           ("channels", UP_HINT)]) from None
        out = expect_tensor(out, "up_with_skip")
        if counting.calls == 0:
            raise Mistake("you never called `up`: the decoder stage must upsample h with the module it is given, "
                          "u = up(h), (B, c_up, s, s), not with an interpolation or a layer of its own.")
        ref = torch.cat([u, skip], dim=1)
        if out.shape == u.shape and close(out, u + skip):
            raise Mistake("you ADDED the skip to the upsampled map (a ResNet-style residual): the U-Net CONCATENATES "
                          "it along the channel axis, torch.cat([up(h), skip], dim=1), so the next layer sees both "
                          f"maps side by side, c_up + c_skip channels ({name}: {c_up} + {c_skip} = {c_up + c_skip}).")
        if close(out, u):
            raise Mistake("the skip is ignored: you returned up(h) alone, a plain encoder-decoder. Append the "
                          "encoder's map along the channel axis: torch.cat([up(h), skip], dim=1).")
        if close(out, skip):
            raise Mistake("you returned the skip alone: the stage's output is the upsampled map AND the skip, "
                          "torch.cat([up(h), skip], dim=1).")
        if close(out, torch.cat([skip, u], dim=1)) and not close(out, ref):
            raise Mistake("the skip comes first: the course's U-Net (course_lib.pix2pix.UNet) puts the upsampled map "
                          "first, torch.cat([up(h), skip], dim=1). The shapes agree either way, but the next layer's "
                          "weights (and the shipped checkpoint) expect [upsampled, skip] in that order.")
        for dim, axis in AXES.items():
            if u.shape[1] == skip.shape[1] and close(out, torch.cat([u, skip], dim=dim)):
                raise Mistake(f"you concatenated along {axis}: the skip connection joins CHANNELS, dim=1, giving "
                              f"(B, c_up + c_skip, s, s) = {(B, c_up + c_skip, s, s)} for {name}.")
        expect_shape(out, (B, c_up + c_skip, s, s), "up_with_skip",
                     f"For {name}: (B, c_up + c_skip, s, s), the upsampled channels plus the skip's, at the skip's size.")
        if not close(out, ref, rtol=1e-5, atol=1e-6):
            raise Mistake(f"up_with_skip has the right shape but not the right values for {name}: the first c_up = "
                          f"{c_up} channels should be up(h), the last c_skip = {c_skip} the skip itself, unchanged.")
        if not out.requires_grad:
            raise Mistake("the output is cut off from h and the skip (.detach(), .data, numpy or torch.no_grad()): "
                          "G is trained through this stage, so gradients must flow back through both.")
        out.sum().backward()
        if skip_g.grad is None or not close(skip_g.grad, torch.ones_like(skip)):
            raise Mistake("no gradient reaches the skip: pass it to torch.cat as it is (no .detach()), so the "
                          "encoder also learns through the skip connection.")
        if h_g.grad is None:
            raise Mistake("no gradient reaches h: call up(h) on h itself, without .detach().")


# ----------------------------------------------------------------------------------------------
# 07.2 the PatchGAN's geometry: receptive field and output size
# ----------------------------------------------------------------------------------------------

def _as_int(value, name: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):   # numbers.Real: NumPy scalars too
        raise Mistake(f"{name} should return an int, but returned {type(value).__name__}.")
    if not isinstance(value, numbers.Integral):
        value = float(value)
        if not math.isfinite(value) or not value.is_integer():
            raise Mistake(f"{name} returned {value}, which is not a whole number of pixels: use integer floor "
                          "division, //, where a layer divides by its stride.")
    return int(value)


def _rf_candidates(layers):
    """(value, message) of wrong receptive fields a learner might compute for ``layers``."""
    forward = 1
    for k, s in layers:                                      # the recursion run from the input upwards
        forward = (forward - 1) * s + k
    no_strides = 1 + sum(k - 1 for k, _ in layers)
    own_stride, jump = 1, 1
    for k, s in layers:                                      # forward form, but the layer's own stride counted too
        jump *= s
        own_stride += (k - 1) * jump
    from_zero, no_minus_one = 0, 1
    for k, s in reversed(layers):
        from_zero = (from_zero - 1) * s + k
        no_minus_one = no_minus_one * s + k
    ref = reference_receptive_field(layers)
    off_by_one = "off by one: sanity-check your recursion on tiny stacks. No layers: a unit sees 1 pixel. One layer " \
                 "of kernel k: k pixels. Walking back, a window of r units is (r - 1) * stride + kernel units below."
    return [
        (forward, "you walked FORWARDS from the input (first layer first): the recursion r <- (r - 1) * stride + kernel "
                  "starts at ONE OUTPUT unit, r = 1, and goes back through the layers from the LAST to the first "
                  "(reversed(layers)); each layer's stride stretches the window of the layers above it."),
        (no_strides, "the strides are missing: you added up (kernel - 1) per layer, as if every stride were 1. A "
                     "stride-s layer spreads neighbouring units s pixels apart, so each layer's (kernel - 1) counts "
                     "times the PRODUCT of the strides of the layers below it."),
        (own_stride, "each layer's (kernel - 1) was multiplied by the product of the strides INCLUDING its own: only "
                     "the strides of the layers BEFORE it (closer to the input) stretch it."),
        (from_zero, off_by_one),
        (no_minus_one, off_by_one),
        (ref + 1, off_by_one),
        (ref - 1, off_by_one),
        (sum(k for k, _ in layers), "you added up the kernel sizes: the window grows by (kernel - 1) per layer, "
                                    "stretched by the strides below it; start from r = 1 and walk back."),
        (math.prod(k for k, _ in layers), "you multiplied the kernel sizes: windows overlap, they do not tile. Walk "
                                          "back with r <- (r - 1) * stride + kernel from r = 1."),
    ]


def _size_candidates(img_size, layers):
    """(value, message) of wrong output sizes for ``layers`` with padding 1 on every convolution."""
    def run(step):
        size = img_size
        for k, s in layers:
            size = step(size, k, s)
        return size

    return [
        (run(lambda n, k, s: (n - k) // s + 1), "the padding is missing: every convolution here pads 1 pixel on each "
                                                "side, so a layer maps n to (n + 2 * 1 - kernel) // stride + 1."),
        (run(lambda n, k, s: (n + 1 - k) // s + 1), "the padding counts once: padding 1 adds a pixel on EACH side, "
                                                    "n + 2 - kernel, not n + 1 - kernel."),
        (run(lambda n, k, s: (n + 2 - k) // s), "the +1 is missing: a layer has (n + 2 - kernel) // stride + 1 output "
                                                "positions (a kernel as wide as the padded input still fits once)."),
        (run(lambda n, k, s: -(-(n + 2 - k) // s) + 1), "you rounded up: a window that does not fit is dropped, so "
                                                         "use floor division, (n + 2 - kernel) // stride + 1."),
        (run(lambda n, k, s: n // s), "the kernels and the padding are missing: a layer maps n to "
                                      "(n + 2 * padding - kernel) // stride + 1, not n // stride."),
        (img_size - reference_receptive_field(layers) + 1,
         "you slid the whole receptive field over the image: the output size follows layer by layer, "
         "(n + 2 - kernel) // stride + 1, with the padding and the strides of each layer."),
    ]


RF_CASES = [patch_layers(3), patch_layers(1), patch_layers(0), [], [(4, 2)], [(3, 1)] * 3, [(7, 2), (3, 2)],
            [(4, 1), (4, 2)], [(5, 3), (3, 1), (1, 1), (2, 2)]]
SIZE_CASES = [(32, patch_layers(1)), (256, patch_layers(3)), (32, patch_layers(0)), (33, patch_layers(1)),
              (37, [(5, 3), (3, 2), (3, 1)]), (9, [(3, 1)]), (12, []), (64, patch_layers(2)), (31, [(4, 2), (4, 2)])]


def _random_stacks(n: int, seed: int) -> list[list[tuple[int, int]]]:
    g = torch.Generator().manual_seed(case_seed(seed))
    stacks = []
    for _ in range(n):
        depth = int(torch.randint(1, 7, (1,), generator=g))
        kernels = torch.tensor([1, 2, 3, 4, 5, 7])[torch.randint(0, 6, (depth,), generator=g)].tolist()
        strides = torch.randint(1, 4, (depth,), generator=g).tolist()
        stacks.append(list(zip(kernels, strides)))
    return stacks


def _fits(img_size: int, layers: list[tuple[int, int]]) -> bool:
    """Whether every layer's padded input is at least as wide as its kernel (a valid convolution)."""
    size = img_size
    for kernel, stride in layers:
        if size + 2 < kernel:
            return False
        size = (size + 2 - kernel) // stride + 1
    return True


def _diagnose(name: str, cases: list[tuple[str, int, int, list[tuple[int, str]]]], generic: str) -> None:
    """Raise the Mistake that explains the learner's answers, given (call, answer, expected, candidates) per case.

    A wrong formula can agree with another on some stacks (without strides, every stride-1 stack is
    right), so a message is chosen by the candidate that explains EVERY answer, if one does, else
    the first failing case's.
    """
    failing = [case for case in cases if case[1] != case[2]]
    if not failing:
        return
    shown, answer, expected, candidates = failing[0]
    for i, (_, message) in enumerate(candidates):
        if all(case[1] == case[3][i][0] for case in cases):
            raise Mistake(f"{shown} returned {answer}, expected {expected}: {message}")
    for wrong, message in candidates:
        if answer == wrong:
            raise Mistake(f"{shown} returned {answer}, expected {expected}: {message}")
    raise Mistake(f"{shown} returned {answer}, expected {expected}. {generic}")


@exercise("07.2", "the PatchGAN's receptive field and output size",
          forbid=("course_lib.pix2pix.receptive_field", "course_lib.pix2pix.patch_output_size"))
@own_rng
def check_patchgan_geometry(patch_receptive_field, patch_output_size) -> None:
    cases = []
    for layers in RF_CASES + _random_stacks(30, seed=0):
        out = _as_int(call(patch_receptive_field, list(layers), what="patch_receptive_field"), "patch_receptive_field")
        cases.append((f"patch_receptive_field({layers})", out, reference_receptive_field(layers), _rf_candidates(layers)))
    _diagnose("patch_receptive_field", cases, "Start from one output unit, r = 1, and walk back through "
                                              "reversed(layers) with r = (r - 1) * stride + kernel.")

    cases = []
    sizes = torch.randint(20, 300, (30,), generator=torch.Generator().manual_seed(case_seed(1))).tolist()
    for img_size, layers in SIZE_CASES + list(zip(sizes, _random_stacks(30, seed=2))):
        if not _fits(img_size, layers):
            continue                                           # too small an image for this stack: not asked
        out = _as_int(call(patch_output_size, img_size, list(layers), what="patch_output_size"), "patch_output_size")
        cases.append((f"patch_output_size({img_size}, {layers})", out, reference_patch_output_size(img_size, layers),
                      _size_candidates(img_size, layers)))
    _diagnose("patch_output_size", cases, "Apply each layer in turn: n = (n + 2 * 1 - kernel) // stride + 1 "
                                          "(padding 1 on every convolution).")


