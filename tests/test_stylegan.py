"""The StyleGAN of course_lib: modulated convolution paths, demodulation's unit variance, AdaIN, shapes,
style mixing, truncation, minibatch std, lazy R1, overfitting, determinism, the CLIs. Tiny models on 1 thread."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from course_lib import sample, train
from course_lib.data import load_dataset
from course_lib.ema import ema_copy, ema_update_
from course_lib.losses import d_loss_bce, r1_penalty
from course_lib.stylegan import (
    Discriminator,
    Generator,
    StyleGANConfig,
    adain,
    minibatch_std,
    mix_styles,
    modulate,
    modulated_conv2d,
    modulated_conv2d_reference,
)
from course_lib.stylegan_analysis import feature_peaks, path_length
from course_lib.stylegan_train import lazy_adam, sample_ws, stylegan_step

TINY = StyleGANConfig(z_dim=8, w_dim=8, base_channels=4, max_channels=8)


def _models(cfg=TINY, seed=0):
    torch.manual_seed(seed)
    return Generator(cfg), Discriminator(cfg)


# ---- modulated convolution -------------------------------------------------------------------

@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("kernel", [1, 3])
def test_fast_paths_equal_the_per_sample_reference(demodulate, kernel):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 9, 9, generator=g)
    weight = torch.randn(7, 6, kernel, kernel, generator=g)
    styles = torch.randn(5, 6, generator=g)
    reference = modulated_conv2d_reference(x, weight, styles, demodulate)
    assert reference.shape == (5, 7, 9, 9)
    for fused in (True, False):
        torch.testing.assert_close(modulated_conv2d(x, weight, styles, demodulate, fused=fused), reference,
                                   rtol=1e-5, atol=1e-5)


def test_reference_is_an_ordinary_convolution_per_sample():
    """Sample b of the reference equals conv2d with weight * s_b (and 1 / norm), computed by hand."""
    g = torch.Generator().manual_seed(1)
    x, weight, styles = torch.randn(2, 3, 5, 5, generator=g), torch.randn(4, 3, 3, 3, generator=g), torch.rand(2, 3, generator=g) + 0.5
    w1 = weight * styles[1][None, :, None, None]
    w1 = w1 / w1.pow(2).sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
    expected = torch.nn.functional.conv2d(x[1:2], w1, padding=1)
    torch.testing.assert_close(modulated_conv2d_reference(x, weight, styles)[1:2], expected)


def test_demodulated_weights_have_unit_norm_per_output_channel():
    g = torch.Generator().manual_seed(2)
    w = modulate(torch.randn(6, 4, 3, 3, generator=g), torch.randn(3, 4, generator=g) * 5)
    assert w.shape == (3, 6, 4, 3, 3)
    torch.testing.assert_close(w.pow(2).sum(dim=(2, 3, 4)), torch.ones(3, 6))


def test_demodulated_outputs_have_unit_expected_variance():
    """i.i.d. unit-variance inputs through a demodulated conv give unit-variance outputs, whatever the styles."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 16, 40, 40, generator=g)
    weight = torch.randn(12, 16, 3, 3, generator=g)
    styles = torch.exp(torch.randn(8, 16, generator=g))     # scales spread over an order of magnitude
    y = modulated_conv2d(x, weight, styles, demodulate=True)[:, :, 1:-1, 1:-1]  # interior: no zero padding
    assert y.var(dim=(0, 2, 3)).sub(1).abs().max() < 0.08
    plain = modulated_conv2d(x, weight, styles, demodulate=False)[:, :, 1:-1, 1:-1]
    assert plain.var().item() > 10  # without demodulation the styles' scale comes through


def test_modulated_conv_rejects_mismatched_styles():
    with pytest.raises(ValueError, match="styles"):
        modulated_conv2d(torch.randn(2, 3, 4, 4), torch.randn(5, 3, 3, 3), torch.randn(2, 4))


# ---- AdaIN, minibatch std, mixing --------------------------------------------------------------

def test_adain_gives_each_map_the_style_mean_and_std():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, 8, 8, generator=g) * 7 + 2
    scale, bias = torch.rand(3, 5, generator=g) + 0.5, torch.randn(3, 5, generator=g)
    y = adain(x, scale, bias)
    torch.testing.assert_close(y.mean(dim=(2, 3)), bias, atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(2, 3), unbiased=False), scale, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="scale"):
        adain(x, scale[:, :4], bias)


def test_minibatch_std_by_hand():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 3, 2, 2, generator=g)
    y = minibatch_std(x, group_size=4)
    assert y.shape == (8, 4, 2, 2)
    torch.testing.assert_close(y[:, :3], x)
    for m in range(2):  # groups {0, 2, 4, 6} and {1, 3, 5, 7}: sample i is in group i mod 2
        members = x[m::2]
        expected = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(y[m::2, 3], expected.expand(4, 2, 2))
    same = minibatch_std(x[:1].repeat(4, 1, 1, 1), group_size=4)  # a collapsed batch: no spread at all
    assert same[:, 3].max().item() == pytest.approx(1e-4, rel=1e-3)
    assert minibatch_std(x[:3], group_size=4).shape == (3, 4, 2, 2)  # a smaller batch is one group
    with pytest.raises(ValueError, match="divisible"):
        minibatch_std(x[:6], group_size=4)


def test_mix_styles_per_sample_crossover():
    a, b = torch.zeros(3, 8, 2), torch.ones(3, 8, 2)
    mixed = mix_styles(a, b, torch.tensor([0, 3, 8]))
    assert mixed[0].eq(1).all() and mixed[2].eq(0).all()
    assert mixed[1, :3].eq(0).all() and mixed[1, 3:].eq(1).all()
    assert mix_styles(a, b, 5)[:, :5].eq(0).all()


def test_sample_ws_mixes_the_requested_fraction():
    G, _ = _models()
    ws, w1 = sample_ws(G, 400, mixing_prob=0.5, generator=torch.Generator().manual_seed(0))
    assert ws.shape == (400, G.num_ws, 8) and w1.shape == (400, 8)
    differs = (ws != w1[:, None, :]).any(dim=2)          # (B, num_ws): layers not from w1
    mixed = differs.any(dim=1)
    assert 0.4 < mixed.float().mean().item() < 0.6
    assert not differs[:, 0].any()                       # the first layer always keeps w1
    first = differs.float().argmax(dim=1)[mixed]         # crossover of the mixed samples
    assert differs[mixed].float().sum(dim=1).eq(G.num_ws - first).all()  # w2 from the crossover on
    ws0, _ = sample_ws(G, 50, mixing_prob=0.0, generator=torch.Generator().manual_seed(0))
    assert (ws0 == ws0[:, :1]).all()


# ---- the networks ----------------------------------------------------------------------------

@pytest.mark.parametrize("style_mode", ["demod", "adain"])
def test_shapes_and_eval_clamp(style_mode):
    cfg = StyleGANConfig(z_dim=8, w_dim=8, base_channels=4, max_channels=8, style_mode=style_mode, img_channels=3)
    G, D = _models(cfg)
    z = torch.randn(4, 8)
    assert G.mapping(z).shape == (4, 8) and G.num_ws == 8
    x = G(z)
    assert x.shape == (4, 3, 32, 32) and D(x).shape == (4,)
    rgb, features = G.synthesis(G.broadcast(G.mapping(z)), return_features=True)
    assert [f.shape[-1] for f in features] == [4, 8, 8, 16, 16, 32, 32]
    G.eval()
    assert G(z * 50).abs().max() <= 1
    with pytest.raises(ValueError, match="z must be"):
        G(torch.randn(4, 9))
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(4, 7, 8))
    with pytest.raises(ValueError, match="style_mode"):
        StyleGANConfig(style_mode="adan")


def test_channels_double_per_halving_up_to_the_cap():
    cfg = StyleGANConfig(base_channels=16, max_channels=48)
    assert [cfg.channels(r) for r in (32, 16, 8, 4)] == [16, 32, 48, 48]


def test_truncation_pulls_w_to_the_tracked_average():
    G, _ = _models()
    G.eval()
    target = torch.randn(8)
    for _ in range(2000):
        G.update_w_avg(target[None], beta=0.99)
    torch.testing.assert_close(G.w_avg, target, atol=1e-5, rtol=0)
    w = torch.randn(5, 8)
    torch.testing.assert_close(G.truncate(w, 1.0), w)
    torch.testing.assert_close(G.truncate(w, 0.0), target.expand(5, 8))
    torch.testing.assert_close(G.truncate(w, 0.5), (w + target) / 2)
    z = torch.randn(6, 8)
    images = G(z, truncation_psi=0.0, noise_mode="const")  # every z becomes the average image
    assert (images - images[:1]).abs().max() < 1e-6


def test_noise_inputs_change_details_only_once_their_strength_is_learned():
    G, _ = _models()
    G.eval()
    z = torch.randn(2, 8)
    torch.manual_seed(0)
    a = G(z)
    assert torch.equal(a, G(z, noise_mode="none"))  # strengths start at 0
    for layer in G.synthesis.convs:
        layer.noise.strength.data.fill_(0.5)
    assert not torch.allclose(G(z), G(z))             # fresh noise each call
    assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))


def test_ema_copy_carries_w_avg():
    G, _ = _models()
    G_ema = ema_copy(G)
    G.update_w_avg(torch.ones(3, 8), beta=0.0)
    ema_update_(G_ema, G, 0.9)
    assert torch.equal(G_ema.w_avg, torch.ones(8))


# ---- losses and the step ---------------------------------------------------------------------

def test_r1_uses_the_module_inside_a_compile_wrapper():
    w = torch.randn(1, 1, 32, 32)

    class Linear(torch.nn.Module):
        def forward(self, x):
            return (x * w).flatten(1).sum(1)

    class Wrapper:  # what torch.compile returns keeps the module as _orig_mod
        _orig_mod = Linear()

        def __call__(self, x):
            raise AssertionError("R1 must not differentiate twice through the compiled wrapper")

    assert r1_penalty(Wrapper(), torch.randn(3, 1, 32, 32)).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


def _step_setup(seed=0):
    G, D = _models(seed=seed)
    opt_G, opt_D = lazy_adam(G, 2e-3, (0.0, 0.99)), lazy_adam(D, 2e-3, (0.0, 0.99), reg_every=4)
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(9)) * 2 - 1
    return G, D, opt_G, opt_D, x


def test_lazy_adam_compensates_the_regularisation_steps():
    G, _ = _models()
    group = lazy_adam(G, 2e-3, (0.0, 0.99), reg_every=16).param_groups[0]
    c = 16 / 17
    assert group["lr"] == pytest.approx(2e-3 * c) and group["betas"][1] == pytest.approx(0.99 ** c)


def test_r1_runs_only_on_regularisation_steps_and_changes_d():
    logs = []
    for step in range(4):
        G, D, opt_G, opt_D, x = _step_setup()
        logs.append(stylegan_step(G, D, opt_G, opt_D, x, step=step, r1_every=4, r1_gamma=1.0,
                                  generator=torch.Generator().manual_seed(0)))
    assert "r1" in logs[0] and all("r1" not in entry for entry in logs[1:])
    assert logs[0]["r1"] > 0 and math.isfinite(logs[0]["d_loss"])
    assert logs[0]["d_loss"] > logs[1]["d_loss"]  # the same batch and fakes: only the penalty differs
    G, D, opt_G, opt_D, x = _step_setup()
    w_avg = G.w_avg.clone()
    stylegan_step(G, D, opt_G, opt_D, x, step=1, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(G.w_avg, w_avg)  # the step tracks the average w


def test_step_uses_a_given_synthesis_callable():
    """What a compiled G.synthesis plugs into: both the D and the G update call it."""
    G, D, opt_G, opt_D, x = _step_setup()
    calls = []

    def synthesis(ws):
        calls.append(ws.shape)
        return G.synthesis(ws)

    stylegan_step(G, D, opt_G, opt_D, x, step=1, generator=torch.Generator().manual_seed(0), synthesis=synthesis)
    assert calls == [(4, G.num_ws, 8)] * 2


def test_bad_step_arguments_are_explained():
    G, D, opt_G, opt_D, x = _step_setup()
    with pytest.raises(ValueError, match="r1_every"):
        stylegan_step(G, D, opt_G, opt_D, x, step=0, r1_every=0)
    with pytest.raises(ValueError, match="mixing_prob"):
        stylegan_step(G, D, opt_G, opt_D, x, step=1, mixing_prob=1.5)


def test_discriminator_separates_a_fixed_real_batch_from_fixed_fakes():
    G, D = _models()
    x_real = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        x_fake = G(torch.randn(8, 8))
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    for step in range(100):
        real, fake = D(x_real), D(x_fake)
        loss = d_loss_bce(real, fake)
        if step == 0:
            assert loss.item() == pytest.approx(2 * math.log(2), abs=0.3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert real.min() > fake.max() and loss.item() < 0.1


def test_generator_fits_a_fixed_batch():
    """G regresses 4 digits (0, 1, 2, 3) from 4 fixed z (overfit one batch), well below their mean image's error."""
    data = load_dataset("mnist5k", "train")
    target = data.x[[0, 500, 1000, 1500]]                  # mnist5k is sorted by class: one digit of each of 0..3
    assert data.labels[[0, 500, 1000, 1500]].tolist() == [0, 1, 2, 3]
    mean_image_error = (target - target.mean(dim=0)).pow(2).mean().item()
    G, _ = _models(StyleGANConfig(z_dim=8, w_dim=8, base_channels=8, max_channels=16))
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.0, 0.99))
    for step in range(200):
        loss = (G(z, noise_mode="const") - target).pow(2).mean()
        if step == 0:
            assert loss.item() > mean_image_error
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * mean_image_error


# ---- analysis --------------------------------------------------------------------------------

def test_feature_peaks_find_a_planted_spike():
    G, _ = _models()
    flat = feature_peaks(G, n=8)
    assert len(flat) == 7
    layer = G.synthesis.convs[6]
    layer.bias.data.fill_(-10.0)  # leaky ReLU of a large negative map: nearly flat ...
    layer.noise.strength.data.fill_(1.0)
    layer.noise.const_noise.zero_()
    layer.noise.const_noise[..., 5, 5] = 1000.0  # ... except one spot
    assert feature_peaks(G, n=8)[6] > 10 * flat[6]


def test_path_length_is_zero_for_a_constant_generator_and_positive_otherwise():
    G, _ = _models()
    for p in G.mapping.parameters():
        p.data.zero_()  # every z maps to the same w
    assert path_length(G, "z", n=20)["mean"] == pytest.approx(0.0, abs=1e-6)
    G, _ = _models()
    assert path_length(G, "w", n=20)["mean"] > 0
    with pytest.raises(ValueError, match="space"):
        path_length(G, "x")


# ---- the CLIs --------------------------------------------------------------------------------

CLI_TINY = ["--base-channels", "4", "--max-channels", "8", "--w-dim", "8", "--z-dim", "8", "--batch-size", "4",
            "--eval-samples", "100", "--r1-every", "2"]  # 100: the fewest samples the metrics take


def test_train_then_sample_with_truncation(tmp_path, capsys):
    out = tmp_path / "sg"
    assert train.main(["stylegan", "--out", str(out), "--steps", "3", *CLI_TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "stylegan" and metrics["steps"] == 3 and "fd" in metrics
    G, config = sample.load_generator(out)
    assert config["architecture"]["style_mode"] == "demod" and not G.training
    assert "w_avg" in load_file(str(out / "generator.safetensors"))  # the tracked average w ships with G
    for psi in ("1", "0.5"):
        npz = tmp_path / f"s{psi}.npz"
        assert sample.main([str(out), "--n", "10", "--out", str(npz), "--truncation", psi]) == 0
        with np.load(npz) as data:
            assert data["arr_0"].shape == (10, 32, 32, 1)
    capsys.readouterr()
    assert sample.main([str(out), "--n", "10", "--out", str(tmp_path / "x.npz"), "--truncation", "1.5"]) == 2
    assert "--truncation" in capsys.readouterr().err


def test_stylegan_settings_are_checked(tmp_path, capsys):
    assert train.main(["stylegan", "--out", str(tmp_path / "x"), "--steps", "1", "--mixing-prob", "2"]) == 2
    assert "--mixing-prob" in capsys.readouterr().err  # the flag is named
    assert train.main(["stylegan", "--out", str(tmp_path / "x"), "--steps", "1", "--r1-every", "0"]) == 2
    assert "--r1-every" in capsys.readouterr().err
