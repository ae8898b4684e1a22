"""Check 02.4: spherical interpolation (slerp) of latent vectors."""

from __future__ import annotations

import math

import torch

from course_lib import latent
from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng


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
    identical = [
        (torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 4.0, 0.0]]),
         "for two identical vectors omega = 0 and sin(omega) = 0, so the formula divides 0 by 0 and gives NaN. When "
         "sin(omega) is tiny the arc is a straight line: fall back to lerp there, e.g. "
         "torch.where(sin_omega.abs() < 1e-6, lerp, slerp)."),
        (torch.randn(16, 128, generator=g),  # identical random rows: round-off puts some cosines just above 1
         "for identical 128-dimensional rows your slerp gives NaN: in float32 their cosine <z0, z1> / (|z0| |z1|) "
         "rounds to slightly more than 1 for some rows, and arccos(1.0000001) is NaN (which the lerp fallback then "
         "passes on). Clamp the cosine to [-1, 1] before arccos."),
    ]
    for same, nan_message in identical:
        out = expect_tensor(call(slerp, same.clone(), same.clone(), 0.3), "slerp")
        if not torch.isfinite(out).all():
            raise Mistake(nan_message)
        if not close(out, same, atol=1e-4):
            raise Mistake(f"interpolating between a vector and itself should give the vector back, got {out[:2].tolist()}.")
