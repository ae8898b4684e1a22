"""Lesson 09's references (what course_lib.stylegan and course_lib.losses compute) and its checks' helpers."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from course_lib.checks import Mistake, call, case_seed, close, expect_shape, expect_tensor

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


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=g)


def call_checked(fn: Callable, args: dict[str, Any], what: str, crash_hint: str = "",
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


def tensor_of_shape(out: Any, shape: tuple[int, ...], name: str, hint: str = "") -> torch.Tensor:
    out = expect_tensor(out, name)
    expect_shape(out, shape, name, hint)
    return out


def matching(out: torch.Tensor, ref: torch.Tensor, candidates: list[tuple[torch.Tensor, str]],
              rtol: float = 1e-4, atol: float = 1e-6) -> str | None:
    """The message of the first wrong candidate that the learner's output equals (and the reference does not)."""
    for value, message in candidates:
        if close(out, value, rtol, atol) and not close(value, ref, rtol, atol):
            return message
    return None


def largest_difference(out: torch.Tensor, ref: torch.Tensor) -> str:
    diff = (out.detach().double() - ref.detach().double()).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
    flat = int(diff.flatten().argmax())
    index = [int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)]
    return (f"the largest difference is at index {index}: yours {float(out.detach().flatten()[flat]):.6g}, "
            f"expected {float(ref.detach().flatten()[flat]):.6g}")


def check_input_grads(out: torch.Tensor, ref: torch.Tensor, inputs: list[tuple[str, torch.Tensor]], name: str,
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

