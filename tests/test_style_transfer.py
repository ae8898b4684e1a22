"""Style transfer (lesson 11): Gram identities, AdaIN statistics, losses, optimisers, feature nets, the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import stylize as cli
from course_lib import train
from course_lib.data.textures import TEXTURE_NAMES, texture_patches
from course_lib.stylegan import adain as stylegan_adain
from course_lib.style_transfer import (AdaINConfig, AdaINNet, ClassifierFeatures, GatysConfig, RandomMultiScale,
                                       RandomVGG, VGG19Features, adaptive_instance_norm, blend, channel_statistics,
                                       content_loss, gram_matrix, statistics_loss, style_loss, stylize,
                                       total_variation)
from course_lib.style_transfer.gatys import Objective
from course_lib.style_transfer.images import load_image, match_luminance, rgb_to_yiq, save_image, yiq_to_rgb


def tiny_net(channels: int = 3) -> RandomMultiScale:
    return RandomMultiScale(channels, kernel_sizes=(3, 5), channels=8, seed=0)


def random_images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---- the Gram matrix ----------------------------------------------------------------------------

def test_gram_matrix_of_constant_maps_is_the_outer_product_of_the_constants():
    c = torch.tensor([0.5, -2.0, 3.0])
    f = c.view(1, 3, 1, 1).expand(1, 3, 5, 7)                       # every channel constant
    assert torch.allclose(gram_matrix(f)[0], torch.outer(c, c))
    assert torch.equal(gram_matrix(torch.zeros(2, 4, 6, 6)), torch.zeros(2, 4, 4))


def test_gram_matrix_ignores_where_things_are():
    f = random_images(2, 4, 6, 5)
    permutation = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    shuffled = f.flatten(2)[:, :, permutation].view(2, 4, 6, 5)     # the same vectors at other positions
    assert torch.allclose(gram_matrix(f), gram_matrix(shuffled), atol=1e-6)


def test_gram_matrix_normalisation_is_the_mean_over_positions():
    f = random_images(1, 3, 4, 5)
    expected = sum(torch.outer(f[0, :, i, j], f[0, :, i, j]) for i in range(4) for j in range(5)) / 20
    assert torch.allclose(gram_matrix(f)[0], expected, atol=1e-6)
    tiled = torch.cat([f, f], dim=2)                                 # the texture twice: the same statistics
    assert torch.allclose(gram_matrix(tiled), gram_matrix(f), atol=1e-6)
    assert torch.allclose(gram_matrix(3 * f), 9 * gram_matrix(f), atol=1e-5)
    trace = torch.diagonal(gram_matrix(f), dim1=1, dim2=2).sum()
    assert torch.isclose(trace, f.pow(2).sum(dim=1).mean())           # the mean squared norm of the vectors


def test_gram_loss_is_an_mmd_with_the_squared_dot_product_kernel():
    """Li et al. 2017: ||G_x - G_y||_F^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y), k(a, b) = (a^T b)^2."""
    fx, fy = random_images(1, 4, 3, 3, seed=2), random_images(1, 4, 3, 3, seed=3)
    x, y = fx.flatten(2)[0].T, fy.flatten(2)[0].T                    # (M, C) feature vectors
    mmd = (x @ x.T).pow(2).mean() + (y @ y.T).pow(2).mean() - 2 * (x @ y.T).pow(2).mean()
    assert torch.isclose((gram_matrix(fx) - gram_matrix(fy)).pow(2).sum(), mmd, rtol=1e-4)


def test_gram_matrix_refuses_non_maps():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        gram_matrix(torch.zeros(3, 4))


# ---- losses -----------------------------------------------------------------------------------

def test_losses_are_zero_for_identical_inputs_and_positive_otherwise():
    a, b = random_images(2, 4, 6, 6, seed=0), random_images(2, 4, 6, 6, seed=1)
    assert content_loss(a, a) == 0 and content_loss(a, b) > 0
    grams = [gram_matrix(a), gram_matrix(a[:, :2])]
    assert style_loss([a, a[:, :2]], grams) == 0
    assert style_loss([b, b[:, :2]], grams) > 0
    assert statistics_loss([a], [a]) == 0 and statistics_loss([a], [b]) > 0
    assert torch.isclose(style_loss([b], [gram_matrix(a)], weights=[2.0]),
                         2 * (gram_matrix(b) - gram_matrix(a)).pow(2).mean())


def test_total_variation_of_a_constant_image_is_zero_and_of_a_ramp_is_its_slope_squared():
    assert total_variation(torch.full((1, 3, 5, 5), 0.3)) == 0
    ramp = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 4, 6) * 0.1   # +0.1 per column, constant down
    assert torch.isclose(total_variation(ramp), torch.tensor(0.01))
    with pytest.raises(ValueError, match="2 x 2"):
        total_variation(torch.zeros(1, 1, 1, 5))


# ---- AdaIN -------------------------------------------------------------------------------------

def test_adain_gives_the_content_the_style_statistics_exactly():
    content = random_images(2, 5, 8, 8, seed=0) * 3 + 1
    style = random_images(2, 5, 4, 6, seed=1) * 0.5 - 2
    out = adaptive_instance_norm(content, style, eps=0)                 # eps 0: the statistics exactly
    mu, sigma = channel_statistics(out, eps=0)
    mu_s, sigma_s = channel_statistics(style, eps=0)
    assert torch.allclose(mu, mu_s, atol=1e-5) and torch.allclose(sigma, sigma_s, rtol=1e-5)
    sigma_eps = channel_statistics(adaptive_instance_norm(content, style), eps=0)[1]   # default eps 1e-5:
    expected = channel_statistics(style)[1] * channel_statistics(content, eps=0)[1] \
        / channel_statistics(content)[1]                                  # sqrt(var_s + eps) std_c / sqrt(var_c + eps)
    assert torch.allclose(sigma_eps, expected, rtol=1e-5)
    # the structure is the content's: each map is an increasing affine function of the content's map
    assert torch.allclose(torch.corrcoef(torch.stack([out[0, 0].flatten(), content[0, 0].flatten()]))[0, 1],
                          torch.tensor(1.0), atol=1e-5)


def test_adain_is_lesson_09s_op_with_the_styles_statistics_as_scale_and_bias():
    content, style = random_images(3, 4, 5, 5, seed=0), random_images(1, 4, 7, 7, seed=1)
    mu, sigma = channel_statistics(style)
    expected = stylegan_adain(content, sigma.expand(3, -1), mu.expand(3, -1), eps=1e-5)
    assert torch.equal(adaptive_instance_norm(content, style), expected)  # one style for the whole batch
    with pytest.raises(ValueError, match="style"):
        adaptive_instance_norm(content, random_images(2, 4, 5, 5))


def test_alpha_blends_content_and_stylised_features():
    c, s = random_images(1, 2, 3, 3, seed=0), random_images(1, 2, 3, 3, seed=1)
    assert torch.equal(blend(c, s, 0.0), c) and torch.equal(blend(c, s, 1.0), s)
    assert torch.allclose(blend(c, s, 0.25), 0.75 * c + 0.25 * s)
    with pytest.raises(ValueError, match="alpha"):
        blend(c, s, 1.5)


def test_adain_net_keeps_any_image_size_and_freezes_its_encoder():
    net = AdaINNet(AdaINConfig(base_channels=8, encoder_layer="relu3_1")).eval()
    out = net(random_images(2, 3, 19, 26), random_images(1, 3, 13, 17))   # sides not multiples of 4
    assert out.shape == (2, 3, 19, 26) and out.abs().max() <= 1
    net.train()
    assert not net.encoder.training and net.decoder.training
    assert all(not p.requires_grad for p in net.encoder.parameters())
    with pytest.raises(ValueError, match="content must be images"):
        net(random_images(1, 3, 2, 2), random_images(1, 3, 8, 8))


# ---- colour -------------------------------------------------------------------------------------

def test_yiq_round_trip_and_luminance_matching():
    x = random_images(2, 3, 4, 4)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-5)
    grey = torch.full((1, 3, 2, 2), 0.2)
    yiq = rgb_to_yiq(grey)
    assert torch.allclose(yiq[:, 0], torch.tensor(0.2), atol=1e-5) and yiq[:, 1:].abs().max() < 1e-5
    style_y, content_y = random_images(1, 1, 5, 5, seed=1) * 0.2 - 0.5, random_images(1, 1, 6, 6, seed=2) * 0.4
    matched = match_luminance(style_y, content_y)
    assert torch.isclose(matched.mean(), content_y.mean(), atol=1e-5)
    assert torch.isclose(matched.std(unbiased=False), content_y.std(unbiased=False), rtol=1e-4)


# ---- optimisation of pixels ------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_both_optimisers_lower_the_loss(optimizer):
    content, style = random_images(1, 3, 16, 16, seed=0), random_images(1, 3, 16, 16, seed=1).sign() * 0.8
    result = stylize(tiny_net(), style, content, GatysConfig(steps=15, optimizer=optimizer, lr=0.05))
    losses = result.history["loss"]
    assert result.image.shape == (1, 3, 16, 16) and result.image.abs().max() <= 1
    assert losses[-1] < 0.5 * losses[0], losses


def test_texture_synthesis_matches_the_gram_matrices_from_noise():
    style = random_images(1, 1, 16, 16, seed=3)
    cfg = GatysConfig(steps=20, scales=2)
    result = stylize(tiny_net(1), style, None, cfg, size=(16, 24), generator=torch.Generator().manual_seed(0))
    assert result.image.shape == (1, 1, 16, 24)
    assert result.history["content"][-1] == 0                           # no content term
    final = Objective(tiny_net(1), style, None, cfg)(result.image)["style"]
    start = Objective(tiny_net(1), style, None, cfg)(torch.zeros(1, 1, 16, 24))["style"]
    assert final < 0.2 * start
    again = stylize(tiny_net(1), style, None, cfg, size=(16, 24), generator=torch.Generator().manual_seed(0))
    assert torch.equal(result.image, again.image)                       # seeded


def test_preserve_colour_keeps_the_contents_chroma():
    content = random_images(1, 3, 12, 12, seed=0) * 0.5
    style = random_images(1, 3, 12, 12, seed=1)
    result = stylize(tiny_net(), style, content, GatysConfig(steps=5, preserve_colour=True))
    changed, kept = rgb_to_yiq(result.image), rgb_to_yiq(content)
    assert torch.allclose(changed[:, 1:], kept[:, 1:], atol=1e-4)       # content at half range: nothing clamped
    assert not torch.allclose(changed[:, :1], kept[:, :1], atol=1e-3)
    with pytest.raises(ValueError, match="content image"):
        stylize(tiny_net(), style, None, GatysConfig(preserve_colour=True))


def test_too_small_images_are_refused_with_the_size_needed():
    with pytest.raises(ValueError, match="at least 16 pixels"):
        stylize(RandomVGG(3, base_channels=8, seed=0), random_images(1, 3, 12, 12), random_images(1, 3, 12, 12),
                GatysConfig(steps=1, scales=2))


# ---- feature networks ----------------------------------------------------------------------------

def test_random_networks_are_seeded_frozen_and_have_the_stated_scale():
    a, b, c = RandomVGG(3, 16, seed=0), RandomVGG(3, 16, seed=0), RandomVGG(3, 16, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.body[0].weight, c.body[0].weight)
    assert all(not p.requires_grad for p in a.parameters()) and not a.training
    weight = RandomVGG(3, 64, seed=0).body[5].weight                        # conv2_1: fan_in 64 * 9
    assert abs(float(weight.std()) - (2 / (64 * 9)) ** 0.5) < 0.05 * (2 / (64 * 9)) ** 0.5  # He: N(0, 2 / fan_in)
    maps = a(random_images(2, 3, 32, 32))
    assert [m.shape for m in maps] == [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4), (2, 128, 4, 4)]
    assert a.layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2") and a.min_size == 8
    multi = RandomMultiScale(1, kernel_sizes=(3, 7), channels=4)
    assert [m.shape for m in multi(random_images(1, 1, 9, 10))] == [(1, 4, 9, 10)] * 2 and multi.min_size == 4


def test_the_digit_classifier_gives_maps_of_grey_images_only():
    net = ClassifierFeatures()
    maps = net(random_images(2, 1, 32, 32))
    assert [m.shape[1:] for m in maps] == [(32, 32, 32), (64, 16, 16), (128, 8, 8)]
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(random_images(1, 3, 32, 32))


def test_vgg19_loads_from_a_local_file_and_matches_torchvision(tmp_path):
    import torchvision

    torch.manual_seed(0)
    vgg = torchvision.models.vgg19()                                    # random weights, VGG-19's shapes
    path = tmp_path / "vgg19.pth"
    torch.save(vgg.state_dict(), path)
    del vgg.classifier                                                  # 120M parameters we do not need
    net = VGG19Features(path, style_layers=("relu1_1", "relu2_1"), content_layer="relu2_1", pooling="max")
    x = random_images(1, 3, 16, 16)
    normalised = ((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = [vgg.features[:2](normalised), vgg.features[:7](normalised)]  # relu1_1, relu2_1
    for mine, theirs in zip(net(x), expected):
        assert torch.allclose(mine, theirs, atol=1e-5)
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="weights: .* not a VGG-19 state_dict: features.0.weight"):
        VGG19Features(tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError, match="weights: no file"):
        VGG19Features(tmp_path / "missing.pth")


# ---- texture data ---------------------------------------------------------------------------------

def test_texture_patches_are_seeded_rgb_crops_with_separate_splits():
    a = texture_patches("train", size=16, n=8, seed=0)
    b = texture_patches("train", size=16, n=8, seed=0)
    test = texture_patches("test", size=16, n=8, seed=0)
    assert a.x.shape == (8, 3, 16, 16) and a.x.abs().max() <= 1 and torch.equal(a.x, b.x)
    assert a.labels.tolist() == [0, 1, 2, 3] * 2 and a.classes == list(TEXTURE_NAMES)
    assert not torch.equal(a.x, test.x)
    grey = a.x[0]                                                        # brick, tinted: channels proportional
    assert not torch.allclose(grey[0], grey[1])
    with pytest.raises(ValueError, match="size"):
        texture_patches("test", size=65)


# ---- the command line -----------------------------------------------------------------------------

@pytest.fixture
def pictures(tmp_path):
    """A colour JPEG content (40x30), a colour PNG style and a grey PNG style, made from random blocks."""
    rng = np.random.default_rng(0)
    content = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((5, 5, 1))).astype(np.uint8)   # (30, 40, 3)
    style = np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((9, 9, 1))).astype(np.uint8)     # (36, 36, 3)
    Image.fromarray(content).save(tmp_path / "content.jpg")
    Image.fromarray(style).save(tmp_path / "style.png")
    Image.fromarray(style[..., 0]).save(tmp_path / "grey.png")
    return tmp_path


def run_cli(*words) -> int:
    return cli.main([str(w) for w in words])


def test_the_cli_stylizes_and_synthesises_textures(pictures, capsys):
    out = pictures / "out.png"
    assert run_cli("--content", pictures / "content.jpg", "--style", pictures / "style.png", "--out", out,
                   "--size", 32, "--steps", 3) == 0
    with Image.open(out) as image:
        assert image.size == (32, 24) and image.mode == "RGB"
    assert "wrote" in capsys.readouterr().err
    texture = pictures / "texture.jpg"
    assert run_cli("--style", pictures / "grey.png", "--out", texture, "--size", 32, "--steps", 3,
                   "--features", "multiscale", "--optimizer", "adam") == 0
    with Image.open(texture) as image:
        assert image.size == (32, 32) and image.mode == "L"              # grey in, grey out
    assert run_cli("--content", pictures / "content.jpg", "--style", pictures / "grey.png", "--out", out, "--force",
                   "--size", 32, "--steps", 2, "--scales", 2, "--preserve-colour", "--tv-weight", 1) == 0


def test_the_cli_runs_a_trained_adain_decoder(pictures, tmp_path, capsys):
    run = tmp_path / "adain"
    flags = ["--base-channels", "8", "--batch-size", "4", "--patches", "16", "--encoder-layer", "relu2_1"]
    assert train.main(["adain", "--out", str(run), "--steps", "2", "--eval-samples", "0", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "adain"
    out = pictures / "adain.png"
    assert run_cli("--content", pictures / "content.jpg", "--style", pictures / "style.png", "--out", out,
                   "--size", 40, "--method", "adain", "--decoder", run, "--alpha", 0.5) == 0
    with Image.open(out) as image:
        assert image.size == (40, 30) and image.mode == "RGB"
    capsys.readouterr()
    assert run_cli("--content", pictures / "content.jpg", "--style", pictures / "style.png", "--out", out, "--force",
                   "--method", "adain", "--decoder", tmp_path) == 2
    assert "--decoder" in capsys.readouterr().err


@pytest.mark.parametrize("words, message", [
    (["--content", "missing.png"], "--content: .*missing.png: no such file"),
    (["--content", "text.png"], "--content: .*text.png: not a readable image"),
    (["--size", "4"], "--size 4 is too small .* at least 8 pixels"),
    (["--features", "vgg19"], "--weights: --features vgg19 needs"),
    (["--features", "vgg19", "--weights", "missing.pth"], "--weights: no file"),
    (["--weights", "missing.pth"], "--weights: applies to --features vgg19 only"),
    (["--method", "adain", "--steps", "3"], "--steps: applies to --method gatys only"),
    (["--alpha", "0.5"], "--alpha: applies to --method adain only"),
    (["--method", "adain", "--alpha", "2"], "--alpha must be in"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--out", "out.gif"], "the suffix must be one of"),
    (["--out", "exists.png"], "exists; pass --force"),
])
def test_the_cli_refuses_bad_inputs_in_one_line_naming_the_argument(pictures, capsys, monkeypatch, words, message):
    monkeypatch.chdir(pictures)
    (pictures / "text.png").write_text("not an image")
    (pictures / "exists.png").write_bytes(b"keep me")
    args = {"--content": "content.jpg", "--style": "style.png", "--out": "out.png", "--size": "32",
            **dict(zip(words[::2], words[1::2]))}                          # every case is flag-value pairs
    assert cli.main([w for pair in args.items() for w in pair]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stylize: ")
    assert re.search(message, err), err
    assert (pictures / "exists.png").read_bytes() == b"keep me" and not (pictures / "out.png").exists()


def test_the_cli_says_how_to_train_a_decoder_when_there_is_none(pictures, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    assert run_cli("--content", pictures / "content.jpg", "--style", pictures / "style.png", "--out",
                   pictures / "o.png", "--method", "adain") == 2
    assert "python -m course_lib.train adain" in capsys.readouterr().err
    assert run_cli("--style", pictures / "style.png", "--out", pictures / "o.png", "--method", "adain") == 2
    assert "--content: --method adain needs a content image" in capsys.readouterr().err


def test_images_round_trip_through_png_and_keep_their_mode(tmp_path):
    x = random_images(1, 3, 5, 7)
    save_image(x, tmp_path / "x.png")
    y = load_image(tmp_path / "x.png")
    assert y.shape == (1, 3, 5, 7) and (y - x).abs().max() <= 1 / 127.5 + 1e-6
    save_image(x[:, :1], tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").shape == (1, 1, 5, 7)
    assert load_image(tmp_path / "x.png", size=14).shape == (1, 3, 10, 14)
