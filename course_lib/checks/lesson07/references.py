"""Lesson 07's references (what course_lib.pix2pix and course_lib.image_quality compute) and a helper."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import Mistake


# Reference implementations (what course_lib.pix2pix and course_lib.image_quality compute) -------


def reference_up_with_skip(h: torch.Tensor, skip: torch.Tensor, up: nn.Module) -> torch.Tensor:
    """One U-Net decoder stage: up(h) (B, c_up, s, s), then the skip (B, c_skip, s, s) appended -> (B, c_up + c_skip, s, s)."""
    return torch.cat([up(h), skip], dim=1)


def reference_receptive_field(layers: list[tuple[int, int]]) -> int:
    """Side of the input window one output unit of a stack of (kernel, stride) convolutions sees."""
    r = 1
    for kernel, stride in reversed(layers):   # walk back from one output pixel to the input
        r = (r - 1) * stride + kernel
    return r


def reference_patch_output_size(img_size: int, layers: list[tuple[int, int]]) -> int:
    """Side of the output grid of a stack of (kernel, stride) convolutions, each with padding 1."""
    size = img_size
    for kernel, stride in layers:
        size = (size + 2 - kernel) // stride + 1
    return size


def reference_g_loss(fake_logits: torch.Tensor, y_fake: torch.Tensor, y_real: torch.Tensor,
                     lambda_l1: float) -> torch.Tensor:
    """Non-saturating BCE of the patch logits against 1, plus lambda_l1 * mean |y_fake - y_real|; a scalar."""
    gan = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))  # mean over B and patches
    return gan + lambda_l1 * (y_fake - y_real).abs().mean()


def reference_d_loss(D: nn.Module, x: torch.Tensor, y_real: torch.Tensor, y_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (BCE(D([x, y_real]), 1) + BCE(D([x, y_fake.detach()]), 0)), pairs concatenated along channels."""
    real_logits = D(torch.cat([x, y_real], dim=1))             # (B, 1, P, P)
    fake_logits = D(torch.cat([x, y_fake.detach()], dim=1))    # no gradient to G
    return 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def reference_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image of a against b, (B, C, H, W) in [-1, 1] measured on [0, 1]; shape (B,)."""
    mse = (((a + 1) / 2 - (b + 1) / 2) ** 2).flatten(1).mean(1)   # (B,) on [0, 1], peak 1
    return 10 * torch.log10(1 / mse)


def rethrow_with_hint(err: Mistake, hints: list[tuple[str, str]]) -> Mistake:
    """The learner's crash, with a hint when the error text says what went wrong."""
    message = str(err).rstrip()
    for pattern, hint in hints:
        if pattern in message:
            return Mistake(f"{message}{'' if message.endswith('.') else '.'} {hint[0].upper()}{hint[1:]}")
    return err

