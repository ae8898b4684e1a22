"""Check 08.5: how many inputs touch each output of a transposed convolution (the checkerboard)."""

from __future__ import annotations

import torch

from course_lib.checks import Mistake, call, exercise, expect_tensor, own_rng
from course_lib.checks.lesson08.references import reference_transposed_conv_overlap


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

