"""Graded checks of lesson 11 (style transfer): the library and a learner's solution pass, a stub is
not attempted, and a bank of classic mistakes is caught, each with its own message."""

import pytest
import torch

from course_lib.checks import lesson11
from course_lib.style_transfer import adaptive_instance_norm, gram_matrix, style_loss, total_variation
from course_lib.style_transfer.gatys import GatysConfig, Objective


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ----- solutions, as a learner writes them ---------------------------------------------------

def solution_gram_matrix(f):
    b, c, h, w = f.shape
    flat = f.view(b, c, -1)
    return torch.bmm(flat, flat.permute(0, 2, 1)) / (h * w)


def solution_style_loss(features, target_grams, weights):
    total = 0.0
    for f, a, w in zip(features, target_grams, weights):
        total = total + w * ((solution_gram_matrix(f) - a) ** 2).mean()
    return total


def solution_adain(content, style, eps=1e-5):
    mu_c = content.mean(dim=(2, 3), keepdim=True)
    mu_s = style.mean(dim=(2, 3), keepdim=True)
    sd_c = torch.sqrt(((content - mu_c) ** 2).mean(dim=(2, 3), keepdim=True) + eps)
    sd_s = torch.sqrt(((style - mu_s) ** 2).mean(dim=(2, 3), keepdim=True) + eps)
    return (content - mu_c) / sd_c * sd_s + mu_s


def solution_total_variation(x):
    return ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).mean() + ((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).mean()


def solution_content_term(net, x, content):
    i = net.layers.index(net.content_layer)
    fx, fc = net(x)[i], net(content)[i]
    return ((fx - fc) ** 2).mean() / (fc ** 2).mean()


def library_content_term(net, x, content):
    objective = Objective(net, content, content, GatysConfig())
    features = net(x)
    return ((net.pick(features, [net.content_layer])[0] - objective.content) ** 2).mean() * objective.content_scale


REFERENCES = [
    (lesson11.check_gram_matrix, lesson11.reference_gram_matrix),
    (lesson11.check_gram_matrix, gram_matrix),
    (lesson11.check_gram_matrix, solution_gram_matrix),
    (lesson11.check_style_loss, lesson11.reference_style_loss),
    (lesson11.check_style_loss, style_loss),
    (lesson11.check_style_loss, solution_style_loss),
    (lesson11.check_adain, lesson11.reference_adain),
    (lesson11.check_adain, adaptive_instance_norm),
    (lesson11.check_adain, solution_adain),
    (lesson11.check_total_variation, lesson11.reference_total_variation),
    (lesson11.check_total_variation, total_variation),
    (lesson11.check_total_variation, solution_total_variation),
    (lesson11.check_content_term, lesson11.reference_content_term),
    (lesson11.check_content_term, solution_content_term),
]


@pytest.mark.parametrize("check, reference", REFERENCES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(REFERENCES)])
def test_reference_passes_and_stub_is_not_attempted(check, reference):
    assert check(reference).status == "passed", check(reference).message
    assert check(stub).status == "not_attempted"


def test_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson11.EXERCISES] == ["11.1", "11.2", "11.3", "11.4", "11.5"]


def test_library_content_loss_matches_the_reference():
    """Objective's relative content term is the exercise's content_term (the check's toy net is course_lib-shaped)."""
    net = lesson11._ToyFeatures(0)
    x, c = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    net.pick = lambda features, names: [features[net.layers.index(n)] for n in names]
    assert torch.allclose(library_content_term(net, x, c), lesson11.reference_content_term(net, x, c))


# ----- the bank of mistakes ------------------------------------------------------------------

def _flat(f):
    b, c, h, w = f.shape
    return f.reshape(b, c, h * w)


GRAM_MISTAKES = [
    (lambda f: _flat(f) @ _flat(f).transpose(1, 2), "not normalised"),
    (lambda f: _flat(f) @ _flat(f).transpose(1, 2) / f[0].numel(), "C H W"),
    (lambda f: _flat(f) @ _flat(f).transpose(1, 2) / (f.shape[2] * f.shape[3]) ** 2, "(H W)^2"),
    (lambda f: (lambda z: z @ z.transpose(1, 2) / z.shape[2])(_flat(f) - _flat(f).mean(2, keepdim=True)), "covariance"),
    (lambda f: _flat(f).transpose(1, 2) @ _flat(f) / (f.shape[2] * f.shape[3]), "F^T F"),
    (lambda f: f.transpose(0, 1).reshape(f.shape[1], -1) @ f.transpose(0, 1).reshape(f.shape[1], -1).T, "whole batch"),
    (lambda f: _flat(f) @ _flat(f).transpose(1, 2) / 20, "fixed number"),
    (lambda f: (_flat(f) @ _flat(f).transpose(1, 2) / (f.shape[2] * f.shape[3])).detach(), "cut off"),
]

STYLE_MISTAKES = [
    (lambda fs, As, ws: sum(((gram_matrix(f) - a) ** 2).mean() for f, a in zip(fs, As)), "weights are ignored"),
    (lambda fs, As, ws: sum(((gram_matrix(f) - a) ** 2).mean() for f, a in zip(fs, As)) / len(fs), "averaged the layers"),
    (lambda fs, As, ws: sum(w * ((gram_matrix(f) - a) ** 2).sum() for f, a, w in zip(fs, As, ws)), "summed"),
    (lambda fs, As, ws: sum(w * (gram_matrix(f) - a).norm() for f, a, w in zip(fs, As, ws)), "Frobenius"),
    (lambda fs, As, ws: sum(w * (gram_matrix(f) - a).abs().mean() for f, a, w in zip(fs, As, ws)), "absolute"),
    (lambda fs, As, ws: ws[-1] * ((gram_matrix(fs[-1]) - As[-1]) ** 2).mean(), "only the last layer"),
    (lambda fs, As, ws: ws[0] * ((gram_matrix(fs[0]) - As[0]) ** 2).mean(), "only the first layer"),
]


def _adain_with(content, style, dims=(2, 3), unbiased=False, eps=1e-5):
    mu_c, mu_s = content.mean(dims, keepdim=True), style.mean(dims, keepdim=True)
    sd_c = (content.var(dims, unbiased=unbiased, keepdim=True) + eps).sqrt()
    sd_s = (style.var(dims, unbiased=unbiased, keepdim=True) + eps).sqrt()
    return sd_s * (content - mu_c) / sd_c + mu_s


ADAIN_MISTAKES = [
    (lambda c, s: _adain_with(s, c), "style's shape"),
    (lambda c, s: _adain_with(c, c), "content's own statistics"),
    (lambda c, s: _adain_with(c, s, unbiased=True), "unbiased"),
    (lambda c, s: _adain_with(c, s, dims=(1, 2, 3)), "whole image"),
    (lambda c, s: _adain_with(c, s, dims=(0, 2, 3)), "mix the batch"),
    (lambda c, s: s.mean((2, 3), keepdim=True) * (c - c.mean((2, 3), keepdim=True))
     / (c.var((2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
     + (s.var((2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt(), "swapped"),
    (lambda c, s: _adain_with(c, s, eps=0.0), "eps is missing"),
]

TV_MISTAKES = [
    (lambda x: (x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean(), "absolute"),
    (lambda x: ((x[..., 1:] - x[..., :-1]) ** 2).mean(), "only the differences across"),
    (lambda x: ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean(), "only the differences down"),
    (lambda x: ((x[..., 1:] - x[..., :-1]) ** 2).sum() + ((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum(), "summed"),
    (lambda x: ((x.roll(-1, 3) - x) ** 2).mean() + ((x.roll(-1, 2) - x) ** 2).mean(), "wraps round"),
    (lambda x: lesson11.reference_total_variation(x) / 2, "averaged the two directions"),
]


def _at(i):
    def content_term(net, x, content):
        fx, fc = net(x)[i], net(content)[i]
        return ((fx - fc) ** 2).mean() / (fc ** 2).mean()
    return content_term


CONTENT_MISTAKES = [
    (_at(0), "you took layer relu1"),
    (_at(-1), "you took layer relu3"),
    (lambda net, x, c: ((net(x)[1] - net(c)[1]) ** 2).mean(), "not relative"),
    (lambda net, x, c: ((net(x)[1] - net(c)[1]) ** 2).mean() / (net(x)[1] ** 2).mean(), "x's features"),
    (lambda net, x, c: ((gram_matrix(net(x)[1]) - gram_matrix(net(c)[1])) ** 2).mean()
     / (gram_matrix(net(c)[1]) ** 2).mean(), "Gram matrices"),
    (lambda net, x, c: (net(x)[1] - net(c)[1]).abs().mean() / net(c)[1].abs().mean(), "absolute differences"),
    (lambda net, x, c: ((x - c) ** 2).mean() / (c ** 2).mean(), "compared pixels"),
    (lambda net, x, c: _at(net.layers.index(net.content_layer))(net, x, c).detach(), "cut off"),
]

MISTAKES = ([(lesson11.check_gram_matrix, fn, msg) for fn, msg in GRAM_MISTAKES]
            + [(lesson11.check_style_loss, fn, msg) for fn, msg in STYLE_MISTAKES]
            + [(lesson11.check_adain, fn, msg) for fn, msg in ADAIN_MISTAKES]
            + [(lesson11.check_total_variation, fn, msg) for fn, msg in TV_MISTAKES]
            + [(lesson11.check_content_term, fn, msg) for fn, msg in CONTENT_MISTAKES])


@pytest.mark.parametrize("check, wrong, message", MISTAKES, ids=[f"{c.__name__}-{m}" for c, _, m in MISTAKES])
def test_mistake_is_caught_with_its_message(check, wrong, message):
    result = check(wrong)
    assert result.status == "failed", result
    assert message in result.message, result.message
