"""Graded checks for lesson 00 (setup and tour): the [-1, 1] image convention and a training step."""

from __future__ import annotations

import copy

import torch
from torch import nn

from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor


# Reference implementations ----------------------------------------------------------------------


def reference_to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) in [0, 255] -> float32 (N, C, H, W) in [-1, 1]."""
    x = pixels.float() / 127.5 - 1.0
    if x.dim() == 3:
        return x.unsqueeze(1)
    return x.permute(0, 3, 1, 2).contiguous()


def reference_to_pixels(images: torch.Tensor) -> torch.Tensor:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C) in [0, 255], clamped and rounded."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def reference_training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One step of mean-squared-error regression; returns the loss before the update."""
    optimizer.zero_grad(set_to_none=True)
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    return loss.item()


# Checks -----------------------------------------------------------------------------------------


@exercise("00.1", "uint8 pixels to the model's [-1, 1] range")
def check_to_model_range(to_model_range) -> None:
    g = torch.Generator().manual_seed(case_seed(0))
    gray = torch.randint(0, 256, (4, 8, 8), generator=g, dtype=torch.uint8)
    gray[0, 0, 0], gray[0, 0, 1] = 0, 255
    rgb = torch.randint(0, 256, (2, 5, 6, 3), generator=g, dtype=torch.uint8)
    for pixels, shape in ((gray, (4, 1, 8, 8)), (rgb, (2, 3, 5, 6))):
        out = expect_tensor(call(to_model_range, pixels.clone()), "to_model_range")
        if not out.is_floating_point():
            raise Mistake(f"to_model_range returned dtype {out.dtype}; models need floating-point input. Convert with .float() before dividing.")
        if tuple(out.shape) == tuple(pixels.shape) and pixels.dim() == 4:
            raise Mistake("wrong shape: the channels are still last (N, H, W, C). PyTorch wants (N, C, H, W): use .permute(0, 3, 1, 2).")
        if pixels.dim() == 4 and tuple(out.shape) == (shape[0], shape[1], shape[3], shape[2]):
            raise Mistake(f"height and width are swapped: a (2, 5, 6, 3) batch should become (2, 3, 5, 6), yours is "
                          f"{tuple(out.shape)}. Only the channel axis moves: .permute(0, 3, 1, 2) keeps H before W.")
        expect_shape(out, shape, "to_model_range", "Grayscale (N, H, W) gains a channel axis: (N, 1, H, W).")
        ref = reference_to_model_range(pixels)
        if close(out, (ref + 1) / 2, atol=1e-3):
            raise Mistake("your values are in [0, 1]; the course's models use [-1, 1]. Divide by 127.5 and subtract 1.")
        if close(out, ref, atol=1e-4):
            continue
        lo, hi = out.min().item(), out.max().item()
        if pixels.dim() == 4 and close(out.flatten().sort().values, ref.flatten().sort().values, atol=1e-4):
            raise Mistake(
                "the values are right but sit in the wrong places: .view or .reshape to (N, C, H, W) keeps the numbers "
                "in memory order, so the channels of neighbouring pixels get mixed into one image plane. Move the "
                "channel axis with .permute(0, 3, 1, 2), which reorders the axes."
            )
        if lo < -1 - 1e-4 or hi > 1 + 1e-4:
            raise Mistake(f"values should run from -1 (pixel 0) to 1 (pixel 255); yours run from {lo:.3g} to {hi:.3g}. "
                          "Divide by 127.5, then subtract 1.")
        raise Mistake("the range is right but some values differ from pixels / 127.5 - 1: check the arithmetic (a "
                      "uint8 division or subtraction before .float() wraps around or rounds).")


@exercise("00.2", "[-1, 1] images back to uint8 pixels")
def check_to_pixels(to_pixels) -> None:
    g = torch.Generator().manual_seed(case_seed(1))
    images = torch.rand(3, 1, 4, 5, generator=g) * 2 - 1  # H != W, so swapped spatial axes show
    images[0, 0, 0, :4] = torch.tensor([-1.0, 1.0, 0.999, -0.9999])
    out = expect_tensor(call(to_pixels, images.clone()), "to_pixels")
    if out.dtype != torch.uint8:
        raise Mistake(f"to_pixels should return dtype torch.uint8, got {out.dtype}. Use .to(torch.uint8) at the end.")
    if tuple(out.shape) == (3, 5, 4, 1):
        raise Mistake("height and width are swapped: a (3, 1, 4, 5) batch came back (3, 5, 4, 1). Only the channel "
                      "axis moves: .permute(0, 2, 3, 1) keeps H before W (.permute(0, 3, 2, 1) also swaps them).")
    expect_shape(out, (3, 4, 5, 1), "to_pixels", "Pixels are stored channels-last: (N, H, W, C).")
    ref = reference_to_pixels(images)
    truncated = ((images.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1)
    if torch.equal(out, truncated) and not torch.equal(out, ref):
        raise Mistake("you truncate instead of rounding: 0.999 should become 255, not 254. Call .round() before the cast.")
    if not torch.equal(out, ref):
        if torch.equal(out.flatten().sort().values, ref.flatten().sort().values):
            raise Mistake("the pixel values are right but in the wrong places: .view or .reshape keeps memory order; "
                          "move the channel axis to the end with .permute(0, 2, 3, 1).")
        worst = (out.int() - ref.int()).abs().max().item()
        raise Mistake(f"some pixel values differ from round((x + 1) * 127.5) by up to {worst}: the map is x -> (x + 1) "
                      "* 127.5 (not x * 255 or x * 127.5 + 127), then .round(), then the uint8 cast.")
    rgb = torch.rand(2, 3, 2, 3, generator=g) * 2 - 1  # colour: a reshape no longer equals the permute
    out = expect_tensor(call(to_pixels, rgb.clone()), "to_pixels")
    expect_shape(out, (2, 2, 3, 3), "to_pixels", "A colour batch (N, 3, H, W) becomes (N, H, W, 3).")
    if not torch.equal(out, reference_to_pixels(rgb)):
        raise Mistake("right for grayscale but not for colour: the pixel values are in the wrong places. .view or "
                      ".reshape keeps memory order and mixes the channels; move the channel axis with .permute(0, 2, 3, 1).")
    overshoot = torch.tensor([[[[1.2, -1.3]]]])  # a generator's tanh never does this, but a VAE's decoder can
    out = expect_tensor(call(to_pixels, overshoot), "to_pixels").flatten().tolist()
    if out != [255, 0]:
        raise Mistake(f"values outside [-1, 1] must be clamped first: 1.2 -> 255 and -1.3 -> 0, but you gave {out} (uint8 wraps around).")


@exercise("00.3", "one training step")
def check_training_step(training_step) -> None:
    torch.manual_seed(case_seed(0))
    model = nn.Linear(3, 1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    ref_model = copy.deepcopy(model)
    initial = copy.deepcopy(model)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = call(training_step, model, opt, x, y)
    ref_loss = reference_training_step(ref_model, ref_opt, x, y)
    if isinstance(loss, torch.Tensor):
        raise Mistake("return the loss as a Python float (loss.item()), not a tensor: a tensor keeps the whole graph alive in your history list.")
    if not isinstance(loss, float):
        raise Mistake(f"training_step should return the loss as a float, got {type(loss).__name__}.")
    if abs(loss - ref_loss) > 1e-5:
        raise Mistake(f"the returned loss {loss:.5f} is not the mean squared error before the update ({ref_loss:.5f}): "
                      "compute it once, before optimizer.step(), and return that value (not a second forward pass after "
                      "the update, and not a sum over the elements).")
    if all(torch.equal(a, b) for a, b in zip(model.parameters(), initial.parameters())):
        raise Mistake("the weights did not change: call loss.backward() and then optimizer.step().")
    same = lambda: all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), ref_model.parameters()))  # noqa: E731
    if not same():
        raise Mistake("the weights after your step differ from one SGD step on the mean squared error: take the mean "
                      "over all elements of (model(x) - y) ** 2, and step once.")
    # A second step: gradients the first one left in .grad would be added to the new ones now.
    call(training_step, model, opt, x, y)
    reference_training_step(ref_model, ref_opt, x, y)
    if not same():
        raise Mistake(
            "the first step was right, but the second differs: without optimizer.zero_grad() before loss.backward(), "
            "the gradients left over from the previous step are added to this one."
        )


EXERCISES = [check_to_model_range, check_to_pixels, check_training_step]

HINTS = {
    "00.1": ("Two separate jobs: change the values (integers 0..255 to floats in [-1, 1]) and move the channel axis "
             "from last to second. Do the arithmetic in floating point: uint8 arithmetic wraps around.",
             "Dividing by 127.5 and subtracting 1 sends 0 to -1 and 255 to 1. A grayscale batch (N, H, W) has no "
             "channel axis: add one of size 1 at position 1.",
             "A colour batch (N, H, W, C) must be reordered, not reshaped: .permute takes the new order of the old "
             "axes (the old axis 3 moves to position 1). .view or .reshape keeps the numbers in memory order and "
             "mixes pixels of different channels."),
    "00.2": ("Undo 00.1 step by step: clamp to [-1, 1], map to [0, 255], round, cast to uint8, then move the "
             "channel axis to the end.",
             "Round before the cast: converting to uint8 truncates (254.9 becomes 254), and values outside [0, 255] "
             "wrap around, which is why the clamp comes first.",
             "The channel axis moves from position 1 to position 3 with .permute; H and W keep their order. A "
             "reshape would keep memory order and scramble the pixels."),
    "00.3": ("Four moves in a fixed order: clear the old gradients, compute the loss, back-propagate, update the "
             "weights.",
             "PyTorch adds new gradients to the ones already stored in .grad: without optimizer.zero_grad() first, "
             "each step also applies the gradients of the earlier steps.",
             "The loss is the mean over all elements of the squared difference between model(x) and y. Return it as "
             "a Python float with .item(): a stored tensor keeps its whole graph in memory."),
}
