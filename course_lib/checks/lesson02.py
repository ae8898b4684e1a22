"""Graded checks for lesson 02 (DCGAN).

Each check builds tiny seeded models or latent vectors, runs the learner's function next to the
reference in ``course_lib.gan``, ``course_lib.losses`` or ``course_lib.latent``, and names the
classic mistake when it recognises one: a Conv2d where G needs a transposed convolution, a bias
in front of batch norm, LeakyReLU in G, N(0, 1) instead of N(0, 0.02), batch-norm scales at 0, a
missing ``detach`` or ``zero_grad`` in the discriminator step, swapped labels, a straight line
where the latent walk needs an arc, 0 / 0 for identical latent vectors.

Every check runs on a fork of the global random state (``torch.random.fork_rng``) and seeds it
itself, so a check gives the same verdict every time and leaves the learner's notebook's random
numbers as they were.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib import gan, latent, losses
from course_lib.checks import (GradientWatch, Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor,
                               own_rng)




# ----------------------------------------------------------------------------------------------
# 02.1 an up-sampling block of G
# ----------------------------------------------------------------------------------------------

@exercise("02.1", "an up-sampling block of the generator", forbid=("course_lib.gan.up_block",))
@own_rng
def check_up_block(up_block) -> None:
    torch.manual_seed(case_seed(0))
    block = call(up_block, 6, 4)
    if not isinstance(block, nn.Module):
        raise Mistake(f"up_block should return an nn.Module (for example an nn.Sequential), got {type(block).__name__}.")
    x = torch.randn(3, 6, 5, 5, generator=torch.Generator().manual_seed(case_seed(1)))  # (B, in_channels, 5, 5)
    block.train()
    out = expect_tensor(call(block, x.clone(), what="your block"), "your block")
    size = "x".join(str(s) for s in out.shape[2:])
    conv_t = [m for m in block.modules() if isinstance(m, nn.ConvTranspose2d)]
    if not conv_t:
        if any(isinstance(m, nn.Conv2d) for m in block.modules()):
            raise Mistake(
                f"you used nn.Conv2d: with stride 2 a convolution HALVES the height and width (a 5x5 input came out "
                f"{size}). G has to grow its feature maps, which is what the transposed convolution does: "
                "nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)."
            )
        raise Mistake("no nn.ConvTranspose2d in your block: the block is ConvTranspose2d -> BatchNorm2d -> ReLU.")
    if len(conv_t) > 1:
        raise Mistake(f"your block has {len(conv_t)} transposed convolutions; one per block doubles H and W once.")
    conv = conv_t[0]
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    if out.dim() != 4 or tuple(out.shape[2:]) != (10, 10):
        raise Mistake(
            f"a 5x5 input should come out 10x10 (height and width doubled), yours came out {size}, from "
            f"kernel_size={k}, stride={s}, padding={p}. A transposed convolution gives (H - 1)·stride - 2·padding "
            "+ kernel_size: with kernel_size=4, stride=2, padding=1 that is exactly 2H."
        )
    if tuple(out.shape[:2]) != (3, 4):
        raise Mistake(f"up_block(6, 4) should output 4 channels: (B, 4, 10, 10). Yours gave shape {tuple(out.shape)}.")
    if (conv.kernel_size, conv.stride, conv.padding) != ((4, 4), (2, 2), (1, 1)):
        raise Mistake(
            f"the size is right, but DCGAN uses kernel_size=4, stride=2, padding=1 (yours: kernel_size={conv.kernel_size}, "
            f"stride={conv.stride}, padding={conv.padding}). With a kernel divisible by the stride every output pixel "
            "receives the same number of contributions; kernel 3 with stride 2 overlaps unevenly, which builds a "
            "checkerboard pattern into the layer (Odena et al. 2016). An even overlap does not rule checkerboards out "
            "(neighbouring pixels still use different taps), but it does not add one."
        )
    batch_norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if not batch_norms:
        raise Mistake(
            "no batch norm: DCGAN puts nn.BatchNorm2d(out_channels) after every transposed convolution of G except "
            "the output layer. It keeps each layer's activations at a healthy scale, so the deep generator trains."
        )
    if conv.bias is not None:
        raise Mistake(
            "your ConvTranspose2d has a bias (PyTorch's default), but the BatchNorm2d right after it subtracts each "
            "channel's batch mean, which removes any constant added per channel: the bias is cancelled and never "
            "does anything. Pass bias=False (batch norm's own shift plays that role)."
        )
    if any(isinstance(m, nn.LeakyReLU) for m in block.modules()):
        raise Mistake(
            "LeakyReLU is the discriminator's activation. The DCGAN recipe uses ReLU in G (with tanh on its output "
            "layer) and LeakyReLU(0.2) in D."
        )
    if (out < 0).any():
        raise Mistake(
            f"your block outputs negative values (min {out.min().item():.3g}): it should end with nn.ReLU(), in the "
            "order ConvTranspose2d -> BatchNorm2d -> ReLU."
        )
    ref = gan.up_block(6, 4).train()  # the library's block, given the learner's weights
    with torch.no_grad():
        ref[0].weight.copy_(conv.weight)
        ref[1].weight.copy_(batch_norms[0].weight)
        ref[1].bias.copy_(batch_norms[0].bias)
        expected = ref(x)
    if not close(out, expected, rtol=1e-4, atol=1e-5):
        raise Mistake("the layers are there, but the output differs from ConvTranspose2d -> BatchNorm2d -> ReLU applied "
                      "in this order; check the order and that nothing else is in the block.")


# ----------------------------------------------------------------------------------------------
# 02.2 DCGAN initialisation
# ----------------------------------------------------------------------------------------------

def _init_target() -> nn.Module:
    """Layers big enough for reliable statistics (32768 weights each, 512 batch-norm scales), every parameter 0.5."""
    module = nn.Sequential(
        nn.ConvTranspose2d(32, 64, 4, bias=False),                 # 32768 weights
        nn.BatchNorm2d(512),
        nn.Sequential(nn.Conv2d(64, 32, 4), nn.BatchNorm2d(512)),  # nested: 32768 weights, 32 biases
        nn.Linear(256, 128),                                       # 32768 weights, 128 biases (G's first layer)
    )
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.5)  # a value no initialiser produces, so a skipped layer is visible
    return module


def _check_normal_weight(w: torch.Tensor, kind: str) -> None:
    std, mean = w.std().item(), w.mean().item()
    if 0.8 < std < 1.2:
        raise Mistake(
            f"the {kind} weights have standard deviation {std:.3f}: nn.init.normal_(w) draws from N(0, 1) unless "
            "you pass std=0.02. With std 1 the activations grow layer after layer."
        )
    if 0.15 < std < 0.25:
        raise Mistake(f"the {kind} weights have standard deviation {std:.3f}, ten times too large: DCGAN uses N(0, 0.02).")
    if not 0.018 < std < 0.022:
        raise Mistake(f"the {kind} weights have standard deviation {std:.4f}; DCGAN draws them from N(0, 0.02).")
    if abs(mean) > 0.002:
        raise Mistake(f"the {kind} weights have mean {mean:.4f}; DCGAN draws them from N(0, 0.02), centred at 0.")


@exercise("02.2", "DCGAN weight initialisation",
          forbid=("course_lib.gan.dcgan_init_", "course_lib.pix2pix.init_weights_"))
@own_rng
def check_dcgan_init(dcgan_init_) -> None:
    module = _init_target()
    conv_t, bn, (conv, bn_nested), linear = module[0], module[1], module[2], module[3]
    torch.manual_seed(case_seed(0))
    returned = call(dcgan_init_, module)
    untouched = lambda t: bool((t == 0.5).all())  # noqa: E731
    if untouched(conv.weight) and not untouched(conv_t.weight):
        raise Mistake(
            "the layers nested inside a sub-module were not initialised: module.children() only lists the direct "
            "children. Loop over module.modules(), which visits every layer recursively (or use module.apply(fn))."
        )
    if untouched(conv_t.weight):
        raise Mistake(
            "the ConvTranspose2d layers were skipped: in PyTorch nn.ConvTranspose2d is NOT a subclass of nn.Conv2d, "
            "so isinstance(m, nn.Conv2d) is False for it. Test isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)); "
            "G is made of transposed convolutions."
        )
    for layer, kind in ((conv, "Conv2d"), (linear, "Linear")):
        if untouched(layer.weight):
            raise Mistake(f"the {kind} layers were skipped: initialise every Conv2d, ConvTranspose2d and Linear weight from N(0, 0.02).")
    for layer, kind in ((conv_t, "ConvTranspose2d"), (conv, "Conv2d"), (linear, "Linear")):
        _check_normal_weight(layer.weight.detach(), kind)
    for layer, kind in ((conv, "Conv2d"), (linear, "Linear")):
        if not bool((layer.bias == 0).all()):
            raise Mistake(f"the {kind} biases should start at 0 (nn.init.zeros_(m.bias) when m.bias is not None).")
    for layer in (bn, bn_nested):
        w, b = layer.weight.detach(), layer.bias.detach()
        if untouched(w):
            raise Mistake("the BatchNorm2d layers were skipped: batch-norm scales start at N(1, 0.02) and shifts at 0.")
        if bool((w == 0).all()):
            raise Mistake(
                "the batch-norm scales (weight) are all 0: every output of the layer is then its shift, the same for "
                "every input, and no gradient flows through it. DCGAN draws the scales from N(1, 0.02)."
            )
        if abs(w.mean().item()) < 0.1:
            raise Mistake(
                f"the batch-norm scales have mean {w.mean().item():.3f}: they multiply the normalised activations, so "
                "they start near 1 (identity), from N(1, 0.02), not N(0, 0.02) like the conv weights."
            )
        if bool((w == 1).all()):
            raise Mistake("the batch-norm scales are all exactly 1 (PyTorch's default); DCGAN draws them from N(1, 0.02).")
        if not (abs(w.mean().item() - 1) < 0.01 and 0.012 < w.std().item() < 0.028):
            raise Mistake(f"the batch-norm scales have mean {w.mean().item():.3f} and std {w.std().item():.3f}; "
                          "draw them from N(1, 0.02).")
        if not bool((b == 0).all()):
            raise Mistake("the batch-norm shifts (bias) should start at 0.")
    if returned is not module:
        raise Mistake(f"dcgan_init_ should return the module it was given (end with `return module`), so that "
                      f"`D = dcgan_init_(D)` works; it returned {type(returned).__name__}.")


# ----------------------------------------------------------------------------------------------
# 02.3 one discriminator step
# ----------------------------------------------------------------------------------------------

def reference_d_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, x_real: torch.Tensor, z: torch.Tensor) -> float:
    """One BCE update of D on a real batch and a detached fake batch; returns the loss before the update."""
    x_fake = G(z).detach()                               # (B, C, 32, 32), no gradient path into G
    loss = losses.d_loss_bce(D(x_real), D(x_fake))      # mean over real + mean over fake
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return loss.item()


def _variant_d_step(G, D, opt_D, x_real, z, variant: str) -> float:
    """The reference step with one classic mistake, to recognise it."""
    x_fake = G(z).detach()
    if variant == "one batch":
        logits = D(torch.cat([x_real, x_fake]))
        real_logits, fake_logits = logits[: len(x_real)], logits[len(x_real):]
    else:
        real_logits, fake_logits = D(x_real), D(x_fake)
    if variant == "swapped":
        real_logits, fake_logits = fake_logits, real_logits
    loss = losses.d_loss_bce(real_logits, fake_logits)
    if variant == "average":
        loss = loss / 2
    if variant != "no zero_grad":
        opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return loss.item()


def _dcgan_setup(seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case_seed(seed))
        cfg = gan.DCGANConfig(z_dim=8, base_channels=4)
        G, D = gan.Generator(cfg), gan.Discriminator(cfg)
    opt_D = torch.optim.SGD(D.parameters(), lr=1.0)
    g = torch.Generator().manual_seed(case_seed(seed + 1))
    x_real = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1  # (4, 1, 32, 32) in [-1, 1]
    z = torch.randn(4, cfg.z_dim, generator=g)               # (4, z_dim)
    return G, D, opt_D, x_real, z


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same_update(after: list[torch.Tensor], before: list[torch.Tensor], expected: list[torch.Tensor]) -> bool:
    """Whether the change of the parameters matches the expected change (relative to its size)."""
    got = torch.cat([(a - b).flatten() for a, b in zip(after, before)]).double()
    want = torch.cat([(e - b).flatten() for e, b in zip(expected, before)]).double()
    return bool((got - want).abs().max() <= 1e-3 * want.abs().max() + 1e-9)


def _d_after(steps: int, variant: str | None = None) -> tuple[list[torch.Tensor], float]:
    G, D, opt_D, x_real, z = _dcgan_setup()
    loss = 0.0
    for _ in range(steps):
        loss = reference_d_step(G, D, opt_D, x_real, z) if variant is None else _variant_d_step(G, D, opt_D, x_real, z, variant)
    return _params(D), loss


class _BatchSizes(nn.Module):
    """Wraps D and records the batch size of every call (real and fake batches must be scored separately)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.sizes = inner, []

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]) if isinstance(x, torch.Tensor) and x.dim() else -1)
        return self.inner(x, *args, **kwargs)


@exercise("02.3", "one discriminator step", forbid=("course_lib.gan_steps.gan_step",))
@own_rng
def check_d_step(d_step) -> None:
    G, D, opt_D, x_real, z = _dcgan_setup()
    G0, D0 = _params(G), _params(D)
    G_watched, D_counted = GradientWatch(G), _BatchSizes(D)   # G counts backward passes, D the batches it scores
    loss = call(d_step, G_watched, D_counted, opt_D, x_real.clone(), z.clone())
    batch_sizes = D_counted.sizes
    if isinstance(loss, torch.Tensor):
        raise Mistake("return the loss as a Python float (loss.item()), not a tensor: a stored tensor keeps the whole "
                      "graph of the step alive, and your loss history would fill the memory.")
    if not isinstance(loss, float):
        raise Mistake(f"d_step should return the loss as a Python float, got {type(loss).__name__}.")
    if not all(torch.equal(a, b) for a, b in zip(_params(G), G0)):
        raise Mistake("G's parameters changed: d_step updates D only (opt_D.step()); the generator's turn comes after.")
    if G_watched.backward_calls or any(p.grad is not None for p in G.parameters()):
        raise Mistake(
            "missing detach: the discriminator's loss sent gradients into G's parameters. Score D(x_fake.detach()) "
            "(or make the fakes under torch.no_grad()): the D step must not backpropagate through the generator."
        )
    if batch_sizes == [2 * len(x_real)]:
        raise Mistake(
            "you passed real and fake images through D as one concatenated batch. DCGAN scores them in two separate "
            "calls, D(x_real) and D(x_fake), so that batch norm normalises each batch with its own statistics."
        )
    D1 = _params(D)
    if all(torch.equal(a, b) for a, b in zip(D1, D0)):
        raise Mistake("D did not change: call opt_D.zero_grad(), loss.backward() and opt_D.step().")
    ref_params, ref_loss = _d_after(1)
    if not _same_update(D1, D0, ref_params):
        swapped, _ = _d_after(1, "swapped")
        if _same_update(D1, D0, swapped):
            raise Mistake("real and fake labels are swapped: real images get target 1 and fakes target 0, i.e. "
                          "d_loss_bce(D(x_real), D(x_fake)) with the real logits first.")
        average, _ = _d_after(1, "average")
        if _same_update(D1, D0, average):
            raise Mistake("you averaged the two terms; the course's convention SUMS the mean loss on the real batch "
                          "and the mean loss on the fake batch (2 log 2 when D outputs 1/2).")
        raise Mistake("D's update differs from one step on d_loss_bce(D(x_real), D(G(z).detach())).")
    if abs(loss - ref_loss) > 1e-5 * max(1.0, abs(ref_loss)):
        raise Mistake(f"the returned loss {loss:.6f} is not the BCE loss before the update ({ref_loss:.6f}).")
    call(d_step, G, D, opt_D, x_real.clone(), z.clone())  # a second step: stale gradients would show now
    ref_params2, _ = _d_after(2)
    if not _same_update(_params(D), D1, ref_params2):
        stale, _ = _d_after(2, "no zero_grad")
        if _same_update(_params(D), D1, stale):
            raise Mistake(
                "missing zero_grad: the first step was right, but in the second one the gradients of the first step "
                "were still in .grad and were added to the new ones. Call opt_D.zero_grad() before loss.backward()."
            )
        raise Mistake("the first step was right but a second call gave a different update; does d_step keep state between calls?")


# ----------------------------------------------------------------------------------------------
# 02.4 slerp
# ----------------------------------------------------------------------------------------------

def _slerp_unnormalised(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    omega = torch.arccos((z0 * z1).sum(-1, keepdim=True).clamp(-1, 1))  # the dot product of raw vectors
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _slerp_one_angle(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    omega = torch.arccos(((z0 * z1).sum() / (z0.norm() * z1.norm())).clamp(-1, 1))  # one angle for the batch
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


NAN_HINT = ("arccos of a number outside [-1, 1] is NaN: divide the dot product by both norms, "
            "<z0, z1> / (|z0| |z1|), and clamp it to [-1, 1] against round-off.")


@exercise("02.4", "spherical interpolation (slerp) of latent vectors",
          forbid=("course_lib.latent.slerp", "course_lib.latent.interpolation_path"))
@own_rng
def check_slerp(slerp) -> None:
    # vectors with norms below 1, where forgetting to normalise gives a wrong angle rather than NaN
    small0 = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.4, 0.3]])
    small1 = torch.tensor([[0.3, 0.3 * math.sqrt(3), 0.0], [0.2, 0.0, 0.6]])
    out = expect_tensor(call(slerp, small0.clone(), small1.clone(), 0.3), "slerp")
    expect_shape(out, (2, 3), "slerp", "One interpolated vector per row: the same shape as z0.")
    if not torch.isfinite(out).all():
        raise Mistake(f"slerp returned NaN or Inf for two ordinary vectors. {NAN_HINT}")
    if close(out, _slerp_unnormalised(small0, small1, 0.3)) and not close(out, latent.slerp(small0, small1, 0.3)):
        raise Mistake("the angle is computed without normalising: <z0, z1> is cos(omega) only for unit vectors. "
                      "Use cos(omega) = <z0, z1> / (|z0| |z1|).")

    g = torch.Generator().manual_seed(case_seed(4))
    z0, z1 = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)  # (B, D)
    for t, want, other, name in ((0.0, z0, z1, "z0"), (1.0, z1, z0, "z1")):
        out = expect_tensor(call(slerp, z0.clone(), z1.clone(), t), "slerp")
        expect_shape(out, (4, 16), "slerp", "One interpolated vector per row: the same shape as z0.")
        if not torch.isfinite(out).all():
            raise Mistake(f"slerp returned NaN or Inf at t = {t:g}. {NAN_HINT}")
        if close(out, other, atol=1e-5):
            raise Mistake(f"endpoints swapped: at t = {t:g} slerp must give {name}. The weights are "
                          "sin((1 - t) omega) / sin(omega) for z0 and sin(t omega) / sin(omega) for z1.")
        if not close(out, want, atol=1e-5):
            raise Mistake(f"at t = {t:g} slerp must return {name} exactly; check the weights sin((1 - t) omega) / sin(omega) "
                          "and sin(t omega) / sin(omega).")
    for t in (0.25, 0.5, 0.8):
        out = expect_tensor(call(slerp, z0.clone(), z1.clone(), t), "slerp")
        expect_shape(out, (4, 16), "slerp")
        if not torch.isfinite(out).all():
            raise Mistake(f"slerp returned NaN or Inf at t = {t:g}. {NAN_HINT}")
        ref = latent.slerp(z0, z1, t)
        if close(out, latent.lerp(z0, z1, t), atol=1e-5):
            mid_lerp, mid_slerp = latent.lerp(z0, z1, 0.5).norm(dim=1), latent.slerp(z0, z1, 0.5).norm(dim=1)
            ends = (z0.norm(dim=1) + z1.norm(dim=1)) / 2
            raise Mistake(
                f"this is the straight line (1 - t) z0 + t z1 (lerp). In 16 dimensions N(0, I) puts almost all samples "
                f"near norm sqrt(16) = 4 (these endpoints: {ends.mean().item():.2f} on average), but the midpoint of the "
                f"line has norm {mid_lerp.mean().item():.2f}: it cuts through the inside of the sphere, where G never saw "
                f"a z in training. The arc keeps the norm ({mid_slerp.mean().item():.2f} here): "
                "sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1."
            )
        if close(out, _slerp_one_angle(z0, z1, t), atol=1e-5) and not close(out, ref, atol=1e-5):
            raise Mistake("you computed one angle for the whole batch: each pair of rows has its own omega. Sum the "
                          "products over the last dimension only, (z0 * z1).sum(dim=-1, keepdim=True), and the same for the norms.")
        if not close(out, ref, rtol=1e-4, atol=1e-5):
            raise Mistake(f"at t = {t:g} your vectors differ from sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1 "
                          "with omega = arccos(<z0, z1> / (|z0| |z1|)) per row.")
    same = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 4.0, 0.0]])
    out = expect_tensor(call(slerp, same.clone(), same.clone(), 0.3), "slerp")
    if not torch.isfinite(out).all():
        raise Mistake(
            "for two identical vectors omega = 0 and sin(omega) = 0, so the formula divides 0 by 0 and gives NaN. "
            "When sin(omega) is tiny the arc is a straight line: fall back to lerp there, e.g. "
            "torch.where(sin_omega.abs() < 1e-6, lerp, slerp)."
        )
    if not close(out, same, atol=1e-5):
        raise Mistake(f"interpolating between a vector and itself should give the vector back, got {out.tolist()}.")


EXERCISES = [check_up_block, check_dcgan_init, check_d_step, check_slerp]

HINTS = {
    "02.1": ("Three layers in an nn.Sequential: a transposed convolution that doubles H and W, a batch norm over "
             "its output channels, a ReLU.",
             "A transposed convolution gives H_out = (H - 1) * stride - 2 * padding + kernel: kernel 4, stride 2 "
             "and padding 1 give 2H.",
             "Pass bias=False to nn.ConvTranspose2d (the batch norm right after removes any bias), and give "
             "nn.BatchNorm2d the number of output channels."),
    "02.2": ("Visit every submodule, nested ones too, with module.modules(), and decide by the layer's type with "
             "isinstance.",
             "Conv2d, ConvTranspose2d and Linear: weights from N(0, 0.02), biases 0 when the layer has one (its "
             "bias may be None). Batch norm: its scale (.weight) from N(1, 0.02), its shift (.bias) 0.",
             "nn.init.normal_(tensor, mean, std) and nn.init.zeros_(tensor) change the tensors in place. Return the "
             "module at the end."),
    "02.3": ("Make the fakes, cut them off from G, score the real and the fake batch with D, compute d_loss_bce, "
             "then zero_grad, backward and step with opt_D only.",
             "Detach the fakes before D sees them: D's backward must not reach G. Score the two batches in two "
             "separate calls of D, so that each gets its own batch-norm statistics.",
             "Clear D's gradients before the backward: a gradient left over from an earlier step is added to this "
             "one. Return the loss as a Python float with .item()."),
    "02.4": ("Work row by row: each row pair gets its own angle Omega, the arccos of the two rows' cosine "
             "similarity. Keep it of shape (B, 1) so that it broadcasts against (B, D).",
             "The cosine is the dot product (a sum over the last axis) divided by the product of the two norms. "
             "Clamp it to [-1, 1] before arccos: rounding can push the cosine of identical rows just above 1, where "
             "arccos gives nan.",
             "Compute both the arc formula and the straight line (1 - t) z0 + t z1, and take the line with "
             "torch.where where |sin Omega| is tiny (say below 1e-6)."),
}
