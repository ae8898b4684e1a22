"""Graded checks for lesson 10 (image editing).

The checks pin the learner's code to ``course_lib.editing``: the W+ broadcast of one w to every layer,
the projector's learning-rate schedule (linear ramp-up, cosine ramp-down; Karras et al. 2020), the
signed distance of codes to a linear boundary (InterFaceGAN, Shen et al. 2020), SeFa's directions
(the top eigenvectors of A^T A; Shen & Zhou 2021), the masked distance of inpainting by inversion,
and e4e's penalty on the spread of the layers' codes (Tov et al. 2021).

The classic mistakes they recognise: a broadcast along the wrong axis or by copying the batch; a
ramp-down that is linear, a ramp-up that is missing, the two ramps swapped; a distance that is not
divided by ||n||, forgets the bias, or points the wrong way; eigenvectors of A A^T, in ascending
order, as columns, or of A itself; a masked distance that averages over every pixel, looks at the
hole instead of the known pixels, or returns one number for the batch; a delta penalty against the
mean code instead of the first, or that sums where it should average.
"""

from __future__ import annotations

import math

import torch

from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng


# Reference implementations (what course_lib.editing computes) -----------------------------------

def reference_broadcast_w(w: torch.Tensor, num_ws: int) -> torch.Tensor:
    """(B, w_dim) -> (B, num_ws, w_dim): the same w for every layer."""
    return w.unsqueeze(1).expand(-1, num_ws, -1)


def reference_projector_lr(step: int, steps: int, lr: float, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """lr * min(1, t / rampup) * (0.5 - 0.5 cos(pi min(1, (1 - t) / rampdown))), t = step / steps."""
    t = step / steps
    down = 0.5 - 0.5 * math.cos(math.pi * min(1.0, (1.0 - t) / rampdown))
    return lr * min(1.0, t / rampup) * down


def reference_boundary_distance(codes: torch.Tensor, coef: torch.Tensor, intercept: float) -> torch.Tensor:
    """Signed distance (N,) of codes (N, d) to the hyperplane coef . w + intercept = 0, positive on coef's side."""
    return (codes @ coef + intercept) / coef.norm()


def reference_sefa(A: torch.Tensor, k: int) -> torch.Tensor:
    """The top-k eigenvectors of A^T A as rows (k, d): the unit n maximising ||A n||, in order."""
    values, vectors = torch.linalg.eigh(A.T @ A)                  # ascending
    return vectors[:, torch.argsort(values, descending=True)[:k]].T


def reference_masked_distance(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over each image's known pixels (mask 1): (B,)."""
    se = ((x - y) ** 2 * mask).flatten(1).sum(dim=1)
    known = mask.expand_as(x).flatten(1).sum(dim=1)
    return se / known


def reference_delta_penalty(ws: torch.Tensor) -> torch.Tensor:
    """e4e: mean of (w_i - w_0)^2 over the layers i > 0 of W+ codes (B, num_ws, w_dim)."""
    return (ws[:, 1:] - ws[:, :1]).pow(2).mean()


# ----------------------------------------------------------------------------------------------
# 10.1 the W+ broadcast
# ----------------------------------------------------------------------------------------------

@exercise("10.1", "one w for every layer (the W+ broadcast)", forbid=("course_lib.stylegan.Generator.broadcast",))
@own_rng
def check_broadcast_w(broadcast_w) -> None:
    g = torch.Generator().manual_seed(case_seed(0))
    w = torch.randn(3, 5, generator=g)                            # B = 3, w_dim = 5, num_ws = 4: all different
    out = expect_tensor(call(broadcast_w, w.clone(), 4), "broadcast_w")
    if tuple(out.shape) == (3, 5, 4):
        raise Mistake("the layers went on the last axis: (B, w_dim, num_ws). The generator reads ws[:, i] for layer "
                      "i, so the layer axis is dim 1: w.unsqueeze(1).expand(-1, num_ws, -1), (B, num_ws, w_dim).")
    if tuple(out.shape) == (12, 5):
        raise Mistake("you stacked the copies along the batch axis, (B * num_ws, w_dim): keep one row per image and "
                      "add a layer axis, (B, num_ws, w_dim).")
    expect_shape(out, (3, 4, 5), "broadcast_w", "(B, num_ws, w_dim): one copy of each image's w per layer.")
    if close(out, w.repeat(4, 1).reshape(3, 4, 5)) and not close(out, reference_broadcast_w(w, 4)):
        raise Mistake("the codes are mixed up across images: w.repeat(num_ws, 1).reshape(B, num_ws, w_dim) interleaves "
                      "the batch. Add the axis first: w.unsqueeze(1).expand(-1, num_ws, -1).")
    if not close(out, reference_broadcast_w(w, 4)):
        raise Mistake("every layer of image b should hold that image's w: out[b, i] == w[b] for every layer i.")
    w_g = w.clone().requires_grad_()
    out = call(broadcast_w, w_g, 4)
    if not out.requires_grad:
        raise Mistake("the result is cut off from w (.detach(), .data or numpy): inversion optimises w through it.")
    (out * torch.arange(4.0)[None, :, None]).sum().backward()
    if w_g.grad is None or not close(w_g.grad, torch.full_like(w, 6.0)):
        raise Mistake("the gradient does not reach w once per layer: every layer's copy must come from the same w.")


# ----------------------------------------------------------------------------------------------
# 10.2 the projector's learning-rate schedule
# ----------------------------------------------------------------------------------------------

def _schedule(fn, steps: int, lr: float, rampup: float, rampdown: float) -> list[float]:
    out = []
    for s in range(steps):
        value = call(fn, s, steps, lr, rampup, rampdown)
        if isinstance(value, torch.Tensor):
            value = value.item()
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise Mistake(f"projector_lr should return a number, got {type(value).__name__}.")
        out.append(float(value))
    return out


@exercise("10.2", "the projector's learning-rate ramps", forbid=("course_lib.editing.inversion.learning_rate",))
def check_projector_lr(projector_lr) -> None:
    steps, lr, up, down = 200, 0.1, 0.05, 0.25
    got = _schedule(projector_lr, steps, lr, up, down)
    want = [reference_projector_lr(s, steps, lr, up, down) for s in range(steps)]
    if all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12) for a, b in zip(got, want)):
        other = _schedule(projector_lr, 100, 0.03, 0.1, 0.5)
        if not all(math.isclose(a, reference_projector_lr(s, 100, 0.03, 0.1, 0.5), rel_tol=1e-6, abs_tol=1e-12)
                   for s, a in enumerate(other)):
            raise Mistake("right for lr 0.1, rampup 0.05 and rampdown 0.25 but not for 0.03, 0.1 and 0.5: use the "
                          "arguments, not fixed numbers.")
        return
    linear = [lr * min(1.0, (s / steps) / up) * min(1.0, (1 - s / steps) / down) for s in range(steps)]
    if all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12) for a, b in zip(got, linear)):
        raise Mistake("the ramp-down is linear: the projector eases out along half a cosine, "
                      "0.5 - 0.5 cos(pi * min(1, (1 - t) / rampdown)), so the rate flattens before it reaches 0.")
    if got[0] > 0:
        raise Mistake(f"the rate at step 0 is {got[0]:.4g}: it should start at 0 and rise linearly over the first "
                      f"{up:.0%} of the steps (min(1, t / rampup)).")
    if got[-1] > 0.01 * lr and got[steps // 2] > 0.99 * lr:
        raise Mistake(f"the rate never comes down (step {steps - 1}: {got[-1]:.4g}): over the last {down:.0%} of the "
                      "steps it falls along the cosine to 0, so the code settles.")
    peak = max(range(steps), key=lambda s: got[s])
    if peak < steps * 0.5 and got[int(steps * 0.02)] >= 0.99 * lr:
        raise Mistake("the ramps look swapped: the rate should rise over the FIRST rampup share of the steps and fall "
                      "over the LAST rampdown share.")
    raise Mistake(f"at step {steps // 10} of {steps} the rate should be {want[steps // 10]:.5g}, got {got[steps // 10]:.5g}; "
                  "t = step / steps, rate = lr * min(1, t / rampup) * (0.5 - 0.5 cos(pi min(1, (1 - t) / rampdown))).")


# ----------------------------------------------------------------------------------------------
# 10.3 the signed distance to a linear boundary
# ----------------------------------------------------------------------------------------------

@exercise("10.3", "signed distance of codes to an SVM's boundary",
          forbid=("course_lib.editing.directions.linear_boundary",))
@own_rng
def check_boundary_distance(boundary_distance) -> None:
    g = torch.Generator().manual_seed(case_seed(1))
    codes = torch.randn(6, 4, generator=g, dtype=torch.float64)
    coef = torch.randn(4, generator=g, dtype=torch.float64) * 3          # |coef| far from 1
    intercept = 0.7
    out = expect_tensor(call(boundary_distance, codes.clone(), coef.clone(), intercept), "boundary_distance")
    expect_shape(out, (6,), "boundary_distance", "One signed distance per code, (N,).")
    ref = reference_boundary_distance(codes, coef, intercept)
    suspects = [
        (codes @ coef + intercept, "the distance is not divided by ||coef||: coef . w + b is the SVM's score, whose "
                                   "scale is arbitrary; the distance in W is (coef . w + b) / ||coef||."),
        ((codes @ coef) / coef.norm(), "the intercept is missing: the hyperplane is coef . w + b = 0, not through the "
                                       "origin; add b before dividing by ||coef||."),
        (-ref, "the sign is flipped: codes on coef's side (the class labelled 1) get positive distances."),
        ((codes @ coef + intercept) / coef.pow(2).sum(), "you divided by ||coef||^2: the distance divides by the norm."),
    ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("boundary_distance should be (codes @ coef + intercept) / coef.norm().")


# ----------------------------------------------------------------------------------------------
# 10.4 SeFa's directions
# ----------------------------------------------------------------------------------------------

@exercise("10.4", "SeFa: directions from the weights alone",
          forbid=("course_lib.editing.directions.sefa_of_matrix", "course_lib.editing.directions.sefa_directions"))
@own_rng
def check_sefa(sefa) -> None:
    g = torch.Generator().manual_seed(case_seed(2))
    U, _ = torch.linalg.qr(torch.randn(7, 7, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    s = torch.tensor([4.0, 2.5, 1.5, 0.5], dtype=torch.float64)
    A = U[:, :4] @ torch.diag(s) @ V.T                              # (7, 4): styles of 7 channels from w_dim = 4
    out = expect_tensor(call(sefa, A.clone(), 2), "sefa")
    if tuple(out.shape) == (7, 2) or tuple(out.shape) == (2, 7):
        raise Mistake("your directions have 7 entries, the number of style channels: those are eigenvectors of "
                      "A A^T. A direction moves w, so it lives in w's space: eigenvectors of A^T A, (k, w_dim).")
    if tuple(out.shape) == (4, 2):
        raise Mistake("the directions are columns: torch.linalg.eigh returns eigenvectors as COLUMNS; return one "
                      "direction per row, (k, w_dim): vectors[:, order].T.")
    expect_shape(out, (2, 4), "sefa", "(k, w_dim): one unit direction per row, the strongest first.")
    out = out.double()
    aligned = [abs(float(out[i] @ V[:, i])) for i in range(2)]
    if all(a > 1 - 1e-6 for a in aligned):
        if not torch.allclose(out.norm(dim=1), torch.ones(2, dtype=torch.float64), atol=1e-6):
            raise Mistake("the directions should have unit length.")
        return
    weakest = [abs(float(out[i] @ V[:, 3 - i])) for i in range(2)]
    if all(a > 1 - 1e-6 for a in weakest):
        raise Mistake("you took the WEAKEST directions: torch.linalg.eigh sorts eigenvalues in ascending order; "
                      "take the largest ones first (argsort(descending=True)).")
    svd_u = [abs(float(out[i] @ V[:, i])) for i in range(2)]
    raise Mistake(f"the directions should be the top eigenvectors of A^T A (the unit n that change the styles A n "
                  f"most); yours align with them to {min(svd_u):.3f}.")


# ----------------------------------------------------------------------------------------------
# 10.5 the masked distance of inpainting by inversion
# ----------------------------------------------------------------------------------------------

@exercise("10.5", "the distance on the known pixels (inpainting)",
          forbid=("course_lib.editing.restoration.restore",))
@own_rng
def check_masked_distance(masked_distance) -> None:
    g = torch.Generator().manual_seed(case_seed(3))
    x = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    y = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    mask = torch.ones(3, 1, 8, 8)
    mask[0, :, 2:5, 2:5] = 0                                        # holes of different sizes per image
    mask[1, :, 0:6, 1:7] = 0
    mask[2, :, 4:8, 4:8] = 0
    out = expect_tensor(call(masked_distance, x.clone(), y.clone(), mask.clone()), "masked_distance")
    if out.dim() == 0:
        raise Mistake("return one distance per image, (B,): the projector optimises every image's code on its own.")
    expect_shape(out, (3,), "masked_distance", "One distance per image, (B,).")
    ref = reference_masked_distance(x, y, mask)
    suspects = [
        (((x - y) ** 2 * mask).flatten(1).mean(dim=1),
         "you averaged over every pixel, the hole included: divide the summed squared error by the number of KNOWN "
         "pixels of each image (mask.sum()), or images with big holes count less."),
        (reference_masked_distance(x, y, 1 - mask),
         "you compared the HOLE: the mask is 1 where pixels are known; the hole's content is what G must invent."),
        (((x - y) ** 2).flatten(1).mean(dim=1), "the mask is ignored: only the known pixels can be compared."),
        (((x - y).abs() * mask).flatten(1).sum(dim=1) / mask.flatten(1).sum(dim=1),
         "that is the mean ABSOLUTE error; the projector here uses the squared error."),
    ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("masked_distance should be ((x - y)^2 * mask).sum per image / mask.sum per image.")
    x_g = x.clone().requires_grad_()
    call(masked_distance, x_g, y, mask).sum().backward()
    if x_g.grad is None or not close(x_g.grad * (1 - mask), torch.zeros_like(x)):
        raise Mistake("the hole's pixels receive a gradient: nothing there may pull the code (multiply by the mask).")


# ----------------------------------------------------------------------------------------------
# 10.6 e4e's delta penalty
# ----------------------------------------------------------------------------------------------

@exercise("10.6", "e4e's penalty on the spread of the layers' codes",
          forbid=("course_lib.editing.encoder.delta_penalty",))
@own_rng
def check_delta_penalty(delta_penalty) -> None:
    g = torch.Generator().manual_seed(case_seed(4))
    ws = torch.randn(3, 5, 4, generator=g)                           # B = 3, num_ws = 5, w_dim = 4
    out = expect_tensor(call(delta_penalty, ws.clone()), "delta_penalty")
    expect_shape(out, (), "delta_penalty", "One number: the penalty averaged over the batch, layers and dimensions.")
    ref = reference_delta_penalty(ws)
    suspects = [
        ((ws - ws.mean(dim=1, keepdim=True)).pow(2).mean(),
         "you measured the spread around the MEAN code; e4e measures each layer's offset from the first layer's "
         "code, w_i - w_0, because the first layer's w is the one the encoder treats as the base code."),
        ((ws[:, 1:] - ws[:, :1]).pow(2).sum(dim=(1, 2)).mean(),
         "you summed over layers and dimensions: average them (.mean()), so the weight does not depend on the size of W."),
        ((ws - ws[:, :1]).pow(2).mean(),
         "layer 0 is compared with itself: the mean runs over the layers i > 0 only, ws[:, 1:] - ws[:, :1]."),
        ((ws[:, 1:] - ws[:, :-1]).pow(2).mean(),
         "you penalised neighbouring layers (w_i - w_{i-1}); e4e compares every layer with the first, w_i - w_0."),
    ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("delta_penalty should be ((ws[:, 1:] - ws[:, :1]) ** 2).mean().")
    same = call(delta_penalty, ws[:, :1].expand(-1, 5, -1).clone())
    if not close(same, torch.tensor(0.0), atol=1e-7):
        raise Mistake("codes equal in every layer (a plain w) must cost nothing.")


EXERCISES = [check_broadcast_w, check_projector_lr, check_boundary_distance, check_sefa, check_masked_distance,
             check_delta_penalty]

HINTS = {
    "10.1": ("The generator reads layer i's code as ws[:, i], so the layer axis must sit between the batch and the "
             "code: (B, num_ws, w_dim).",
             "Add an axis of length 1 in the middle with unsqueeze, then stretch it to num_ws without copying memory.",
             "Tensor.expand takes -1 for the axes that keep their size."),
    "10.2": ("Start from the fraction of the run already done (the step over the number of steps; call it t): "
             "both ramps depend on t alone.",
             "The ramp-up is a straight line from 0 that reaches 1 at t = rampup and stays there (a min with 1). The "
             "ramp-down starts from (1 - t) / rampdown, also capped at 1.",
             "Pass the capped ramp-down value r through half a cosine, 0.5 - 0.5 cos(pi r), then multiply lr by both ramps."),
    "10.3": ("A hyperplane coef . w + b = 0 scores a point by coef . w + b; the score's scale depends on how long coef is.",
             "The distance to the plane is the score divided by the length of the normal vector.",
             "torch.linalg.vector_norm(coef) (or coef.norm()) is that length; the sign of the score tells the side."),
    "10.4": ("A direction n moves the styles by A n; you want the unit n that moves them most, ||A n|| largest.",
             "||A n||^2 = n^T (A^T A) n: its maximum over unit n is an eigenvector of the symmetric matrix A^T A, which "
             "is (w_dim, w_dim).",
             "torch.linalg.eigh returns eigenvalues in ascending order and eigenvectors as columns: sort, then transpose."),
    "10.5": ("Only the known pixels (mask == 1) say anything about the image; the hole must not pull the code.",
             "Multiply the squared error by the mask before summing over each image's pixels.",
             "Divide each image's sum by the number of its own known pixels (a sum of the mask per image), not by H x W."),
    "10.6": ("e4e compares every layer's code with the first layer's code, w_0.",
             "Slicing with ws[:, :1] keeps the layer axis, so it broadcasts against ws[:, 1:].",
             "Average the squared differences over the batch, the layers i > 0 and the code's dimensions: one number."),
}
