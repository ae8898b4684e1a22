"""Checks 09.4-09.6: the minibatch standard deviation, the discriminator loss with R1, style mixing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import Mistake, case_seed, close, exercise, expect_shape, expect_tensor, own_rng
from course_lib.checks.lesson09.references import (
    EPS, reference_minibatch_std, reference_r1_penalty, reference_d_loss_r1, reference_mix_styles, randn,
    call_checked, tensor_of_shape, matching, check_input_grads,
)


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
    x = 0.4 * i + (0.5 + 0.3 * i) * randn(g, B, 3, 2, 3)
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
        out = expect_tensor(call_checked(minibatch_std, {"x": x, "group_size": group_size}, name, hint), name)
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
        message = matching(values, ref, minibatch_std_candidates(x, group_size), rtol=1e-4, atol=1e-6)
        if message:
            raise Mistake(f"on {label}: {message}")
        raise Mistake(f"on {label}, the appended values (one per sample) are {[round(v, 5) for v in values.tolist()]}, "
                      f"but should be {[round(v, 5) for v in ref.tolist()]}: the std of each feature over the {G} samples "
                      f"of a group (sample i in group i mod {B // G}), sqrt(mean squared deviation + 1e-8), averaged "
                      "over C, H and W.")

    for collapsed in (False, True):
        x = _mbstd_case(8, collapsed).requires_grad_(True)
        out = call_checked(minibatch_std, {"x": x, "group_size": 4}, "minibatch_std")
        if collapsed and out.requires_grad:
            (grad,) = torch.autograd.grad(out[:, -1].sum(), x)
            if not torch.isfinite(grad).all():
                raise Mistake("with a collapsed group (identical samples) the gradient reaching x is NaN or Inf: the "
                              "slope of sqrt at 0 is infinite. Put eps inside the square root, sqrt(var + 1e-8).")
            continue
        check_input_grads(out, reference_minibatch_std(x, 4), [("x", x)], "minibatch_std", 4,
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
    return 0.5 + 0.4 * randn(g, B, 1, 4, 4), -0.4 + 1.2 * randn(g, B, 1, 4, 4)


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
        out = call_checked(d_loss_r1, {"D": D, "x_real": x_real.clone(), "x_fake": x_fake.clone(), "gamma": gamma}, name)
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
        message = matching(out, adversarial, adversarial_candidates(real, fake), rtol=1e-5, atol=1e-6)
        raise Mistake(f"with gamma = 0 (no R1) your loss should be D's non-saturating loss softplus(-D(x_real)).mean() "
                      f"+ softplus(D(x_fake)).mean() = {adversarial.item():.5f}, but it is {out.item():.5f}"
                      + (f": {message}" if message else "."))

    sure = SmallD().requires_grad_(False)
    sure.fc.bias.add_(40.0)  # calls everything real, confidently: sigmoid-then-BCE is off by about 60 there
    if not close(_d_loss(d_loss_r1, sure, x_real, x_fake, 0.0), reference_d_loss_r1(sure, x_real, x_fake, 0.0), rtol=1e-4):
        raise Mistake("with saturated logits (about +40) your loss is off: sigmoid(40) rounds to 1. Use softplus on logits.")
    r1_ref = reference_r1_penalty(D, x_real).detach()
    for gamma in (10.0, 0.5):
        out = _d_loss(d_loss_r1, D, x_real, x_fake, gamma)
        r1 = (out.detach() - adversarial) / (gamma / 2)                   # what the learner's R1 comes to
        if close(r1, r1_ref, rtol=1e-3, atol=1e-5):
            continue
        if close(r1 * gamma / 2, torch.zeros(()), atol=1e-6):
            raise Mistake(f"with gamma = {gamma} your loss equals the adversarial part alone: add "
                          "(gamma / 2) * mean ||grad D(x_real)||^2.")
        message = matching(r1, r1_ref, r1_candidates(D, x_real, x_fake), rtol=1e-3, atol=1e-5)
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
    return randn(g, 3, 8, 5), 5 + randn(g, 3, 8, 5)


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
        out = call_checked(mix_styles, {"ws_a": ws_a, "ws_b": ws_b, "crossover": crossover}, name,
                    "ws_a and ws_b are (B, num_ws, w_dim): take the layers (dim 1), ws_a[:, :crossover] and "
                    "ws_b[:, crossover:], and join them along dim 1.",
                    {"ws_a": "Start from a copy, ws_a.clone(), or build the result with torch.cat or torch.where.",
                     "ws_b": "Start from a copy, ws_b.clone(), or build the result with torch.cat or torch.where."})
        out = tensor_of_shape(out, (B, num_ws, w_dim), name, "The mixed codes have the shape of ws_a and ws_b.")
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
    out = call_checked(mix_styles, {"ws_a": ws_a, "ws_b": ws_b, "crossover": 3}, "mix_styles")
    check_input_grads(out, reference_mix_styles(ws_a, ws_b, 3), [("ws_a", ws_a), ("ws_b", ws_b)], "mix_styles", 6,
                       {"ws_a": "Style mixing regularisation trains the mapping network through both codes: keep the "
                                "result in the graph (no torch.tensor(...) copies, no .detach()).",
                        "ws_b": "Style mixing regularisation trains the mapping network through both codes: keep the "
                                "result in the graph (no torch.tensor(...) copies, no .detach())."})

