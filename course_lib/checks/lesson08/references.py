"""Lesson 08's references (what course_lib.cyclegan computes), stand-in generators and its checks' helpers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import Mistake, case_seed, close, expect_shape, expect_tensor


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


def random_images(seed: int, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(case_seed(seed))
    return low + (high - low) * torch.rand(shape, generator=g)


def expect_scalar(out, name: str) -> torch.Tensor:
    if isinstance(out, float):
        raise Mistake(f"{name} returned a Python float: return the loss tensor (the caller calls .backward() on it).")
    out = expect_tensor(out, name)
    if out.dim() > 0 and out.numel() > 1:
        raise Mistake(f"{name} returned shape {tuple(out.shape)}: return one number, the mean over all images and "
                      "pixels (a 0-dimensional tensor).")
    expect_shape(out, (), name, "The mean over all images and pixels.")
    return out


def parameters_of(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def check_grads(out: torch.Tensor, ref_fn, G_AB: Affine, G_BA: Affine, x_a, x_b, name: str, hint: str) -> None:
    """The learner's loss must send the reference's gradient to both generators' scale and shift."""
    if not out.requires_grad:
        raise Mistake(f"{name} is cut off from the generators (.detach(), .item(), torch.no_grad()): the loss trains "
                      "both generators, so keep it in the graph.")
    params = parameters_of(G_AB, G_BA)
    got = torch.autograd.grad(out, params, allow_unused=True)
    want = torch.autograd.grad(ref_fn(G_AB, G_BA, x_a, x_b), params)
    for label, g_got, g_want in zip(("G_AB", "G_AB", "G_BA", "G_BA"), got, want):
        if g_got is None or not close(g_got, g_want, rtol=1e-4, atol=1e-6):
            raise Mistake(f"the value of {name} is right, but the gradient reaching {label} is wrong. {hint}")

