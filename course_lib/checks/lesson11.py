"""Graded checks for lesson 11 (neural style transfer).

The checks pin the learner's code to ``course_lib.style_transfer``: the Gram matrix G = F F^T / (H W)
(Gatys et al. 2015), the style loss summed over layers with their weights, AdaIN (Huang & Belongie
2017), the total variation of an image, and the relative content loss taken at the network's
content layer (Gatys et al. 2016).

The classic mistakes they recognise: a Gram matrix without the 1 / (H W), divided by C H W as well,
of positions (F^T F) instead of channels, or of centred features (a covariance); a style loss without
the layer weights, with sums or norms where means of squares belong, or on the feature maps instead of
their Gram matrices; AdaIN with the roles of content and style swapped, the unbiased variance, the
statistics of the whole image instead of each channel, or no eps; a total variation of absolute
differences, in one direction only, summed, or wrapping round the border; a content loss at the wrong
layer, not relative, or on Gram matrices.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng

EPS = 1e-5  # AdaIN's eps (course_lib.style_transfer.adain.EPS)


# Reference implementations (what course_lib.style_transfer computes) ---------------------------

def reference_gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (H W) of feature maps (B, C, H, W) -> (B, C, C)."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def reference_style_loss(features: list[torch.Tensor], target_grams: list[torch.Tensor],
                         weights: list[float]) -> torch.Tensor:
    """sum_l w_l mean((G(f_l) - A_l)^2)."""
    return sum(w * (reference_gram_matrix(f) - a).pow(2).mean() for f, a, w in zip(features, target_grams, weights))


def reference_adain(content: torch.Tensor, style: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """sigma(y) (x - mu(x)) / sigma(x) + mu(y), per sample and channel; sigma = sqrt(biased var + eps)."""
    mu_x, mu_y = content.mean((2, 3), keepdim=True), style.mean((2, 3), keepdim=True)
    sd_x = (content.var((2, 3), unbiased=False, keepdim=True) + eps).sqrt()
    sd_y = (style.var((2, 3), unbiased=False, keepdim=True) + eps).sqrt()
    return sd_y * (content - mu_x) / sd_x + mu_y


def reference_total_variation(x: torch.Tensor) -> torch.Tensor:
    """mean of squared horizontal differences + mean of squared vertical differences."""
    return (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean() + (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()


def reference_content_term(net: nn.Module, x: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """mean((F_l(x) - F_l(c))^2) / mean(F_l(c)^2) at l = net.content_layer."""
    i = net.layers.index(net.content_layer)
    f_x, f_c = net(x)[i], net(content)[i]
    return (f_x - f_c).pow(2).mean() / f_c.pow(2).mean()


def _maps(seed: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(case_seed(seed))
    return torch.rand(shape, generator=g, dtype=dtype) * 2 - 0.5   # mostly positive, like ReLU maps, not centred


# ----------------------------------------------------------------------------------------------
# 11.1 the Gram matrix
# ----------------------------------------------------------------------------------------------

@exercise("11.1", "the Gram matrix and its normalisation", forbid=("course_lib.style_transfer.losses.gram_matrix",))
@own_rng
def check_gram_matrix(gram_matrix) -> None:
    f = _maps(0, (2, 3, 4, 5))                                       # B = 2, C = 3, H = 4, W = 5: all different
    out = expect_tensor(call(gram_matrix, f.clone()), "gram_matrix")
    if tuple(out.shape) == (2, 20, 20):
        raise Mistake("your matrix is (B, H W, H W): that is F^T F, products between POSITIONS. The Gram matrix "
                      "correlates CHANNELS: F F^T with F (C, H W), one C x C matrix per image.")
    if tuple(out.shape) in ((3, 3), (6, 6)):
        raise Mistake("one matrix for the whole batch: keep the batch axis and compute one (C, C) matrix per image, "
                      "(B, C, C) (reshape to (B, C, H W) and use batched @ with transpose(1, 2)).")
    expect_shape(out, (2, 3, 3), "gram_matrix", "(B, C, C): one C x C matrix per image.")
    ref = reference_gram_matrix(f)
    flat = f.reshape(2, 3, 20)
    centred = flat - flat.mean(2, keepdim=True)
    suspects = [
        (ref * 20, "not normalised: divide F F^T by the number of positions M = H W, so that the Gram matrix is a mean "
                   "over positions and a small exemplar compares with a large image."),
        (ref / 3, "you divided by C H W: the Gram matrix is the mean over POSITIONS, so divide by H W only."),
        (ref / 20, "you divided by (H W)^2: divide F F^T once by the number of positions H W."),
        (centred @ centred.transpose(1, 2) / 20, "you subtracted each channel's mean first: that is a covariance. "
                                                 "Gatys' Gram matrix uses the raw (uncentred) features."),
    ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("G[b, i, j] should be the mean over positions p of f[b, i, p] * f[b, j, p].")
    tiled = f.repeat(1, 1, 2, 2)
    if not close(call(gram_matrix, tiled), ref):
        raise Mistake("the same texture tiled 2 x 2 should have the same Gram matrix: normalise by that input's H W, "
                      "not a fixed number.")
    f_g = f.clone().requires_grad_()
    g_out = call(gram_matrix, f_g)
    if not g_out.requires_grad:
        raise Mistake("the result is cut off from f (.detach(), .data or numpy): synthesis needs its gradient.")


# ----------------------------------------------------------------------------------------------
# 11.2 the style loss over layers
# ----------------------------------------------------------------------------------------------

@exercise("11.2", "the style loss over layers", forbid=("course_lib.style_transfer.losses.style_loss",))
@own_rng
def check_style_loss(style_loss) -> None:
    features = [_maps(1, (1, 3, 6, 6)), _maps(2, (1, 5, 3, 3))]        # two layers, different widths
    targets = [reference_gram_matrix(_maps(3, (1, 3, 6, 6))), reference_gram_matrix(_maps(4, (1, 5, 3, 3)))]
    weights = [0.7, 2.0]
    out = expect_tensor(call(style_loss, [f.clone() for f in features], [a.clone() for a in targets], list(weights)),
                        "style_loss")
    expect_shape(out, (), "style_loss", "One number: the weighted sum over layers.")
    ref = reference_style_loss(features, targets, weights)
    grams = [reference_gram_matrix(f) for f in features]
    errors = [(g - a).pow(2) for g, a in zip(grams, targets)]
    suspects = [
        (sum(e.mean() for e in errors), "the layer weights are ignored: multiply layer l's error by weights[l]."),
        (sum(e.mean() for e in errors) / 2, "the layer weights are ignored (you averaged the layers): multiply layer "
                                            "l's error by weights[l] and add."),
        (sum(w * e.sum() for e, w in zip(errors, weights)), "you summed the squared errors: take their MEAN over the "
                                                           "C x C entries of each Gram matrix."),
        (sum(w * e.sum().sqrt() for e, w in zip(errors, weights)), "that is the Frobenius norm: the style loss uses "
                                                                  "the mean of the SQUARED differences, no root."),
        (sum(w * (g - a).abs().mean() for g, a, w in zip(grams, targets, weights)),
         "that is the mean absolute difference: square the differences of the Gram matrices."),
        (weights[-1] * errors[-1].mean(), "only the last layer counts: add every layer's weighted error."),
        (weights[0] * errors[0].mean(), "only the first layer counts: add every layer's weighted error."),
    ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("style_loss should be sum over layers of weights[l] * mean((gram(features[l]) - target_grams[l])^2).")
    same = call(style_loss, [f.clone() for f in features], grams, [1.0, 1.0])
    if not close(torch.as_tensor(same, dtype=torch.float64), torch.zeros((), dtype=torch.float64), atol=1e-10):
        raise Mistake("an image whose Gram matrices equal the targets must have zero style loss.")


# ----------------------------------------------------------------------------------------------
# 11.3 AdaIN
# ----------------------------------------------------------------------------------------------

@exercise("11.3", "adaptive instance normalisation (AdaIN)",
          forbid=("course_lib.style_transfer.adain.adaptive_instance_norm", "course_lib.stylegan.model.adain"))
@own_rng
def check_adain(adain) -> None:
    content = _maps(5, (2, 3, 4, 4)) * torch.tensor([1.0, 0.05, 3.0], dtype=torch.float64)[None, :, None, None]
    style = _maps(6, (2, 3, 5, 5)) * 2 + 1
    out = expect_tensor(call(adain, content.clone(), style.clone()), "adain")
    if tuple(out.shape) == tuple(style.shape):
        raise Mistake("the output has the style's shape: AdaIN keeps the CONTENT's maps (their layout) and gives them "
                      "the style's statistics, so adain(content, style) is (B, C, H, W) of the content.")
    expect_shape(out, tuple(content.shape), "adain", "the content's shape (B, C, H, W).")
    ref = reference_adain(content, style)

    def stats(x, unbiased=False, dims=(2, 3)):
        return x.mean(dims, keepdim=True), (x.var(dims, unbiased=unbiased, keepdim=True) + EPS).sqrt()

    (mu_x, sd_x), (mu_y, sd_y) = stats(content), stats(style)
    (mu_xu, sd_xu), (mu_yu, sd_yu) = stats(content, True), stats(style, True)
    (mu_xa, sd_xa), (mu_ya, sd_ya) = stats(content, dims=(1, 2, 3)), stats(style, dims=(1, 2, 3))
    (mu_xb, sd_xb), (mu_yb, sd_yb) = stats(content, dims=(0, 2, 3)), stats(style, dims=(0, 2, 3))
    no_eps = [(x.var((2, 3), unbiased=False, keepdim=True)).sqrt() for x in (content, style)]
    suspects = [
        (sd_x * (content - mu_x) / sd_x + mu_x, "the output has the content's own statistics: scale by the STYLE's "
                                                "standard deviation and shift by the STYLE's mean."),
        (sd_yu * (content - mu_xu) / sd_xu + mu_yu, "you used the unbiased variance (dividing by H W - 1): AdaIN uses "
                                                    "the plain variance over the H W positions, unbiased=False."),
        (sd_ya * (content - mu_xa) / sd_xa + mu_ya, "the statistics are over the whole image (all channels): AdaIN "
                                                    "takes a mean and std PER CHANNEL, over dims (2, 3) only."),
        (sd_yb * (content - mu_xb) / sd_xb + mu_yb, "the statistics mix the batch: each image has its own per-channel "
                                                    "mean and std, over dims (2, 3) only."),
        (mu_y * (content - mu_x) / sd_x + sd_y, "scale and shift are swapped: multiply by sigma(style), add mu(style)."),
        (no_eps[1] * (content - mu_x) / no_eps[0] + mu_y, "eps is missing: sigma = sqrt(variance + eps), so that a "
                                                          "flat channel does not divide by zero."),
    ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("adain should return sigma(style) * (content - mu(content)) / sigma(content) + mu(style), with "
                      "mu and sigma = sqrt(var + eps) per image and channel over (H, W).")
    flat = content.clone()
    flat[:, 0] = 0.3                                                  # a channel with zero variance
    out = expect_tensor(call(adain, flat, style.clone()), "adain")
    if not torch.isfinite(out).all():
        raise Mistake("a constant channel gives inf or nan: put eps inside the square root, sqrt(var + eps).")


# ----------------------------------------------------------------------------------------------
# 11.4 total variation
# ----------------------------------------------------------------------------------------------

@exercise("11.4", "total variation", forbid=("course_lib.style_transfer.losses.total_variation",))
@own_rng
def check_total_variation(total_variation) -> None:
    x = _maps(7, (2, 3, 5, 7))                                       # H != W, so across and down differ
    out = expect_tensor(call(total_variation, x.clone()), "total_variation")
    expect_shape(out, (), "total_variation", "One number for the batch.")
    ref = reference_total_variation(x)
    across, down = x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]
    suspects = [
        (across.abs().mean() + down.abs().mean(), "those are absolute differences (the L1 total variation): the "
                                                  "course's TV squares the differences of neighbouring pixels."),
        (across.pow(2).mean(), "only the differences across (along W) are there: add the differences down (along H)."),
        (down.pow(2).mean(), "only the differences down (along H) are there: add the differences across (along W)."),
        (across.pow(2).sum() + down.pow(2).sum(), "you summed: take the MEAN of each direction's squared differences, "
                                                 "so the value does not grow with the image size."),
        ((x.roll(-1, 3) - x).pow(2).mean() + (x.roll(-1, 2) - x).pow(2).mean(),
         "roll wraps round: the last column is compared with the first. Slice instead, x[..., 1:] - x[..., :-1]."),
        ((across.pow(2).mean() + down.pow(2).mean()) / 2, "you averaged the two directions: add them."),
    ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("total_variation should be mean((x[..., :, 1:] - x[..., :, :-1])^2) + "
                      "mean((x[..., 1:, :] - x[..., :-1, :])^2).")
    flat = torch.full((1, 3, 4, 4), 0.25, dtype=torch.float64)
    if not close(torch.as_tensor(call(total_variation, flat), dtype=torch.float64), torch.zeros((), dtype=torch.float64)):
        raise Mistake("a constant image must have zero total variation.")


# ----------------------------------------------------------------------------------------------
# 11.5 the content loss at the right layer
# ----------------------------------------------------------------------------------------------

class _ToyFeatures(nn.Module):
    """A fixed three-layer feature network shaped like course_lib's: layers, content_layer, a list of maps."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1),
                                    nn.Conv2d(6, 8, 3, padding=1)]).double()
        for conv in self.convs:
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64) * 0.4)
                conv.bias.copy_(torch.rand(conv.bias.shape, generator=g, dtype=torch.float64) * 0.2)
        self.layers = ("relu1", "relu2", "relu3")
        self.style_layers = ("relu1", "relu2", "relu3")
        self.content_layer = "relu2"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))
            out.append(x)
            if i < 2:
                x = nn.functional.avg_pool2d(x, 2)
        return out


@exercise("11.5", "a content loss at the right layer", forbid=("course_lib.style_transfer.gatys.Objective",))
@own_rng
def check_content_term(content_term) -> None:
    net = _ToyFeatures(case_seed(8))
    x, content = _maps(9, (1, 3, 8, 8)), _maps(10, (1, 3, 8, 8))
    out = expect_tensor(call(content_term, net, x.clone(), content.clone()), "content_term")
    expect_shape(out, (), "content_term", "One number.")
    ref = reference_content_term(net, x, content)
    fx, fc = net(x), net(content)
    suspects = []
    for i, name in enumerate(net.layers):
        if name != net.content_layer:
            suspects.append(((fx[i] - fc[i]).pow(2).mean() / fc[i].pow(2).mean(),
                             f"you took layer {name}: the content loss compares the maps at net.content_layer "
                             f"({net.content_layer!r}); find its index with net.layers.index(net.content_layer)."))
    i = net.layers.index(net.content_layer)
    suspects += [
        ((fx[i] - fc[i]).pow(2).mean(), "not relative: divide by the mean square of the CONTENT's features at that "
                                        "layer, so the weights mean the same for every network."),
        ((fx[i] - fc[i]).pow(2).mean() / fx[i].pow(2).mean(), "you divided by the mean square of x's features: divide "
                                                              "by the CONTENT image's, a fixed target."),
        ((reference_gram_matrix(fx[i]) - reference_gram_matrix(fc[i])).pow(2).mean()
         / reference_gram_matrix(fc[i]).pow(2).mean(),
         "you compared Gram matrices: that is a style loss. The content loss compares the feature maps themselves, "
         "position by position, which keeps the layout."),
        ((fx[i] - fc[i]).abs().mean() / fc[i].abs().mean(),
         "those are absolute differences: square them (and divide by the mean SQUARE of the content's features)."),
        ((x - content).pow(2).mean() / content.pow(2).mean(), "you compared pixels: compare the network's feature maps "
                                                              "at net.content_layer."),
    ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("content_term should be mean((F(x) - F(c))^2) / mean(F(c)^2) with F the maps of "
                      "net.content_layer.")
    net.content_layer = "relu3"
    if not close(call(content_term, net, x.clone(), content.clone()), reference_content_term(net, x, content)):
        raise Mistake("right for content_layer 'relu2' but not for 'relu3': read net.content_layer, not a fixed index.")
    x_g = x.clone().requires_grad_()
    value = call(content_term, net, x_g, content.clone())
    if not value.requires_grad:
        raise Mistake("the loss is cut off from x (.detach(), .item(), no_grad): the optimisation needs its gradient.")


EXERCISES = [check_gram_matrix, check_style_loss, check_adain, check_total_variation, check_content_term]

HINTS = {
    "11.1": ("Flatten the H x W positions into one axis, keeping the batch and the channels apart: (B, C, M).",
             "Multiplying the flattened maps by their own transpose (the last two axes swapped) gives one (C, C) "
             "matrix per image.",
             "The normalisation makes it a mean over positions: divide by the number of positions of this input."),
    "11.2": ("Each layer contributes one number: how far its Gram matrix is from that layer's target.",
             "Per layer, square the difference of the two C x C matrices and average the entries.",
             "Scale each layer's number by its entry in weights, then add the layers up."),
    "11.3": ("You need four statistics, each of shape (B, C, 1, 1): mean and standard deviation of the content's "
             "and of the style's maps, over the positions only.",
             "The standard deviation is the square root of the plain (biased) variance plus eps.",
             "Normalise the content's maps with their own statistics, then rescale and shift them with the style's."),
    "11.4": ("Differences of neighbours along the width: slice the last axis from 1 and from 0 up to the end minus one.",
             "Do the same along the height (the second-to-last axis); do not wrap round the border.",
             "Square each set of differences, average each set, and add the two averages."),
    "11.5": ("net(x) returns a list of maps in the order of net.layers; only one of them is the content layer.",
             "Find the position of net.content_layer in net.layers and take that entry for both images.",
             "Average the squared difference of the two maps and divide by the average square of the content's map."),
}
