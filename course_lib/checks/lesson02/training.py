"""Check 02.3: one discriminator step (with its reference and the classic mistakes it recognises)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from course_lib import gan, losses
from course_lib.checks import GradientWatch, Mistake, call, case_seed, exercise, own_rng


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
    if variant == "G eval":
        G.eval()
    x_fake = G(z).detach()
    G.train()
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
        g_eval, _ = _d_after(1, "G eval")
        if _same_update(D1, D0, g_eval):
            raise Mistake("your fakes were made with G in eval mode (G.eval()): its batch norms then use running "
                          "statistics, not the batch's, so D trains on other fakes than the ones G makes in training. "
                          "G must be in train mode; torch.no_grad() or .detach() is enough to keep D's step out of G.")
        raise Mistake("D's update differs from one step on d_loss_bce(D(x_real), D(G(z).detach())). Likely causes: "
                      "fresh noise instead of the given z, G or D switched to eval mode, or an extra term in the loss.")
    if abs(loss - ref_loss) > 1e-5 * max(1.0, abs(ref_loss)):
        raise Mistake(f"the returned loss {loss:.6f} is not the BCE loss before the update ({ref_loss:.6f}): return "
                      "loss.item() of the loss you back-propagated, not one recomputed after opt_D.step().")
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
    G, D, opt_D, x_real, z = _dcgan_setup()
    with torch.no_grad():
        D.head.bias.fill_(40.0)  # a D that calls everything real, confidently: logits about +40
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    want = reference_d_step(G_ref, D_ref, torch.optim.SGD(D_ref.parameters(), lr=1.0), x_real, z)
    loss = call(d_step, G, D, opt_D, x_real.clone(), z.clone())
    if not math.isclose(loss, want, rel_tol=1e-4):
        raise Mistake(f"with saturated logits (about +40 for every image) the loss should be {want:.2f}, yours is "
                      f"{loss:.2f}: sigmoid(40) rounds to 1 and binary_cross_entropy clamps log 0 to -100. Work with "
                      "logits: d_loss_bce, or F.binary_cross_entropy_with_logits.")
