"""Graded checks of lesson 10 (image editing): the library and a learner's solution pass, a stub is
not attempted, and a bank of classic mistakes is caught, each with its own message."""

import math

import pytest
import torch

from course_lib.checks import CheckResult, lesson10
from course_lib.editing import directions, encoder, inversion


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ----- solutions, as a learner writes them ---------------------------------------------------

def solution_broadcast_w(w, num_ws):
    return w[:, None, :].repeat(1, num_ws, 1)


def solution_projector_lr(step, steps, lr, rampup, rampdown):
    t = step / steps
    up = min(1.0, t / rampup)
    down = 0.5 - 0.5 * math.cos(math.pi * min(1.0, (1 - t) / rampdown))
    return lr * up * down


def solution_boundary_distance(codes, coef, intercept):
    return (codes @ coef + intercept) / torch.linalg.vector_norm(coef)


def solution_sefa(A, k):
    _, _, vh = torch.linalg.svd(A, full_matrices=False)        # right singular vectors = eigenvectors of A^T A
    return vh[:k]


def solution_masked_distance(x, y, mask):
    return ((x - y) ** 2 * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3))


def solution_delta_penalty(ws):
    return ((ws[:, 1:] - ws[:, 0:1]) ** 2).mean()


def library_lr(step, steps, lr, rampup, rampdown):
    return inversion.learning_rate(inversion.ProjectorConfig(steps=steps, lr=lr, lr_rampup=rampup, lr_rampdown=rampdown),
                                   step)


REFERENCES = [
    (lesson10.check_broadcast_w, lesson10.reference_broadcast_w),
    (lesson10.check_broadcast_w, solution_broadcast_w),
    (lesson10.check_projector_lr, lesson10.reference_projector_lr),
    (lesson10.check_projector_lr, library_lr),
    (lesson10.check_projector_lr, solution_projector_lr),
    (lesson10.check_boundary_distance, lesson10.reference_boundary_distance),
    (lesson10.check_boundary_distance, solution_boundary_distance),
    (lesson10.check_sefa, lesson10.reference_sefa),
    (lesson10.check_sefa, lambda A, k: directions.sefa_of_matrix(A, k)[0]),
    (lesson10.check_sefa, solution_sefa),
    (lesson10.check_masked_distance, lesson10.reference_masked_distance),
    (lesson10.check_masked_distance, solution_masked_distance),
    (lesson10.check_delta_penalty, lesson10.reference_delta_penalty),
    (lesson10.check_delta_penalty, encoder.delta_penalty),
    (lesson10.check_delta_penalty, solution_delta_penalty),
]


@pytest.mark.parametrize("check, reference", REFERENCES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(REFERENCES)])
def test_reference_passes_and_stub_is_not_attempted(check, reference):
    assert check(reference).status == "passed", check(reference).message
    assert check(stub).status == "not_attempted"


def test_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson10.EXERCISES] == ["10.1", "10.2", "10.3", "10.4", "10.5", "10.6"]


# ----- the bank of mistakes ------------------------------------------------------------------

def layers_last(w, num_ws):
    return w[:, :, None].expand(-1, -1, num_ws)


def batch_stacked(w, num_ws):
    return w.repeat(num_ws, 1)


def interleaved(w, num_ws):
    return w.repeat(num_ws, 1).reshape(w.shape[0], num_ws, w.shape[1])


def detached_broadcast(w, num_ws):
    return w.detach().unsqueeze(1).expand(-1, num_ws, -1)


def linear_rampdown(step, steps, lr, rampup, rampdown):
    t = step / steps
    return lr * min(1.0, t / rampup) * min(1.0, (1 - t) / rampdown)


def no_rampup(step, steps, lr, rampup, rampdown):
    t = step / steps
    return lr * (0.5 - 0.5 * math.cos(math.pi * min(1.0, (1 - t) / rampdown)))


def no_rampdown(step, steps, lr, rampup, rampdown):
    return lr * min(1.0, step / steps / rampup)


def fixed_ramps(step, steps, lr, rampup, rampdown):
    return lesson10.reference_projector_lr(step, steps, lr, 0.05, 0.25)


def score_not_distance(codes, coef, intercept):
    return codes @ coef + intercept


def no_intercept(codes, coef, intercept):
    return codes @ coef / coef.norm()


def flipped_distance(codes, coef, intercept):
    return -(codes @ coef + intercept) / coef.norm()


def squared_norm(codes, coef, intercept):
    return (codes @ coef + intercept) / (coef @ coef)


def eig_of_aat(A, k):
    values, vectors = torch.linalg.eigh(A @ A.T)
    return vectors[:, values.argsort(descending=True)[:k]].T


def ascending(A, k):
    _, vectors = torch.linalg.eigh(A.T @ A)
    return vectors[:, :k].T


def as_columns(A, k):
    values, vectors = torch.linalg.eigh(A.T @ A)
    return vectors[:, values.argsort(descending=True)[:k]]


def mean_over_all_pixels(x, y, mask):
    return ((x - y) ** 2 * mask).flatten(1).mean(dim=1)


def compares_the_hole(x, y, mask):
    return lesson10.reference_masked_distance(x, y, 1 - mask)


def one_number(x, y, mask):
    return ((x - y) ** 2 * mask).sum() / mask.sum()


def mask_ignored(x, y, mask):
    return ((x - y) ** 2).flatten(1).mean(dim=1)


def absolute_error(x, y, mask):
    return ((x - y).abs() * mask).flatten(1).sum(dim=1) / mask.flatten(1).sum(dim=1)


def around_the_mean(ws):
    return (ws - ws.mean(dim=1, keepdim=True)).pow(2).mean()


def summed(ws):
    return (ws[:, 1:] - ws[:, :1]).pow(2).sum(dim=(1, 2)).mean()


def with_layer_zero(ws):
    return (ws - ws[:, :1]).pow(2).mean()


def neighbours(ws):
    return (ws[:, 1:] - ws[:, :-1]).pow(2).mean()


MISTAKES = [
    ("layers on the last axis", lesson10.check_broadcast_w, layers_last, "dim 1"),
    ("copies on the batch axis", lesson10.check_broadcast_w, batch_stacked, "batch axis"),
    ("interleaved batch", lesson10.check_broadcast_w, interleaved, "mixed up across images"),
    ("detached broadcast", lesson10.check_broadcast_w, detached_broadcast, "cut off from w"),
    ("linear ramp-down", lesson10.check_projector_lr, linear_rampdown, "cosine"),
    ("no ramp-up", lesson10.check_projector_lr, no_rampup, "start at 0"),
    ("no ramp-down", lesson10.check_projector_lr, no_rampdown, "never comes down"),
    ("hard-coded ramps", lesson10.check_projector_lr, fixed_ramps, "use the arguments"),
    ("score instead of distance", lesson10.check_boundary_distance, score_not_distance, "not divided by ||coef||"),
    ("no intercept", lesson10.check_boundary_distance, no_intercept, "intercept is missing"),
    ("flipped sign", lesson10.check_boundary_distance, flipped_distance, "sign is flipped"),
    ("squared norm", lesson10.check_boundary_distance, squared_norm, "||coef||^2"),
    ("eigenvectors of A A^T", lesson10.check_sefa, eig_of_aat, "A A^T"),
    ("ascending eigenvalues", lesson10.check_sefa, ascending, "WEAKEST"),
    ("columns", lesson10.check_sefa, as_columns, "COLUMNS"),
    ("mean over all pixels", lesson10.check_masked_distance, mean_over_all_pixels, "KNOWN"),
    ("the hole compared", lesson10.check_masked_distance, compares_the_hole, "HOLE"),
    ("one number", lesson10.check_masked_distance, one_number, "one distance per image"),
    ("mask ignored", lesson10.check_masked_distance, mask_ignored, "mask is ignored"),
    ("absolute error", lesson10.check_masked_distance, absolute_error, "ABSOLUTE"),
    ("spread around the mean", lesson10.check_delta_penalty, around_the_mean, "MEAN code"),
    ("summed penalty", lesson10.check_delta_penalty, summed, "summed"),
    ("layer zero included", lesson10.check_delta_penalty, with_layer_zero, "layer 0"),
    ("neighbouring layers", lesson10.check_delta_penalty, neighbours, "neighbouring"),
]


@pytest.mark.parametrize("name, check, wrong, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, wrong, expected):
    result = check(wrong)
    assert isinstance(result, CheckResult)
    assert result.status == "failed", f"{name} was not caught: {result.message}"
    assert expected in result.message, result.message
