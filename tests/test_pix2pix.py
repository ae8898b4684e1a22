"""course_lib.pix2pix: U-Net shapes and skip connections, the PatchGAN's receptive field (formula
and a gradient measurement), the losses, the training step (a manual reference, overfitting one
batch, determinism) and the config checks. Tiny seeded CPU models (base_channels 8)."""

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.pix2pix import (
    PatchDiscriminator,
    Pix2PixConfig,
    UNet,
    check_pair_images,
    init_weights_,
    norm_layer,
    patch_bce,
    patch_layers,
    patch_output_size,
    pix2pix_d_loss,
    pix2pix_g_loss,
    pix2pix_step,
    receptive_field,
)

TINY = Pix2PixConfig(in_channels=1, out_channels=3, img_size=16, base_channels=8, depth=3, d_base_channels=8)
CONFIGS = {
    "default_32": dataclasses.replace(TINY, img_size=32, depth=5),
    "inpaint_16": dataclasses.replace(TINY, in_channels=4),
    "grey_to_grey": dataclasses.replace(TINY, out_channels=1, img_size=32, depth=4),
    "no_skips": dataclasses.replace(TINY, skips=False),
    "instance_norm": dataclasses.replace(TINY, norm="instance", in_channels=3),
    "depth_1": dataclasses.replace(TINY, depth=1, img_size=8),
    "no_dropout": dataclasses.replace(TINY, dropout=0.0, img_size=64, depth=6),
}


def _pair(cfg: Pix2PixConfig, seed: int, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, cfg.in_channels, cfg.img_size, cfg.img_size, generator=g) * 2 - 1
    y = torch.rand(n, cfg.out_channels, cfg.img_size, cfg.img_size, generator=g) * 2 - 1
    return x, y


def _setup(cfg: Pix2PixConfig = TINY, seed: int = 0, lr: float = 2e-4, d_layers: int = 1):
    torch.manual_seed(seed)
    G = init_weights_(UNet(cfg))
    D = init_weights_(PatchDiscriminator(cfg.in_channels + cfg.out_channels, cfg.d_base_channels, d_layers, cfg.norm))
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    return G, D, opt_G, opt_D


def _state(*modules: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for m in modules for t in m.state_dict().values()]


# ---- the U-Net -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONFIGS))
def test_unet_output_shapes_and_range(name):
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    G = UNet(cfg)
    x, _ = _pair(cfg, 1, n=2)
    y_fake = G(x)
    assert y_fake.shape == (2, cfg.out_channels, cfg.img_size, cfg.img_size) and y_fake.dtype == torch.float32
    assert y_fake.abs().max() <= 1.0  # tanh
    assert len(G.down) == cfg.depth and len(G.up) == cfg.depth - 1


def test_unet_encoder_shapes_follow_the_docstring():
    """W, 2W, 4W, 8W, 8W channels at 16, 8, 4, 2, 1 pixels for depth 5 on 32x32."""
    cfg = CONFIGS["default_32"]
    G = UNet(cfg).eval()
    shapes = []
    hooks = [stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for stage in G.down]
    G(torch.zeros(1, 1, 32, 32))
    for h in hooks:
        h.remove()
    W = cfg.base_channels
    assert shapes == [(1, W, 16, 16), (1, 2 * W, 8, 8), (1, 4 * W, 4, 4), (1, 8 * W, 2, 2), (1, 8 * W, 1, 1)]


def test_skip_connections_change_the_decoder_inputs():
    """With skips, every decoder stage after the first and the output layer see twice the channels."""
    with_skips, without = UNet(TINY), UNet(dataclasses.replace(TINY, skips=False))
    widths = [8, 16, 32]  # W * min(2^i, 8)
    assert with_skips.up[0][0].in_channels == without.up[0][0].in_channels == widths[2]  # the bottleneck alone
    assert with_skips.up[1][0].in_channels == 2 * widths[1] and without.up[1][0].in_channels == widths[1]
    assert with_skips.to_image[0].in_channels == 2 * widths[0] and without.to_image[0].in_channels == widths[0]


@pytest.mark.parametrize("skips", [True, False])
def test_the_first_encoder_stage_reaches_the_output_only_through_its_skip(skips):
    """Zero the output of encoder stage 1: with skips G(x) still depends on x (through stage 0's skip);
    without skips everything after stage 1 is cut off from x, so G(x) is the same for every x."""
    cfg = dataclasses.replace(TINY, skips=skips)
    torch.manual_seed(0)
    G = init_weights_(UNet(cfg)).eval()  # eval: no dropout, batch norm with its running statistics
    x1, _ = _pair(cfg, 1, n=2)
    x2, _ = _pair(cfg, 2, n=2)
    assert not torch.allclose(G(x1), G(x2))
    hook = G.down[1].register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    try:
        changed = not torch.allclose(G(x1), G(x2), atol=1e-7)
    finally:
        hook.remove()
    assert changed == skips


def test_zeroing_any_encoder_stage_changes_the_output():
    torch.manual_seed(0)
    G = init_weights_(UNet(TINY)).eval()
    x, _ = _pair(TINY, 1, n=2)
    reference = G(x)
    for stage in G.down:
        hook = stage.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
        try:
            assert not torch.allclose(G(x), reference)
        finally:
            hook.remove()


def test_unet_layers_norm_and_dropout_placement():
    G = UNet(CONFIGS["default_32"])
    kinds = [[type(m).__name__ for m in stage] for stage in G.down]
    assert kinds[0] == ["Conv2d", "LeakyReLU"] and kinds[-1] == ["Conv2d", "LeakyReLU"]  # no norm at the ends
    assert all(k == ["Conv2d", "BatchNorm2d", "LeakyReLU"] for k in kinds[1:-1])
    up = [[type(m).__name__ for m in stage] for stage in G.up]
    assert up[:2] == [["ConvTranspose2d", "BatchNorm2d", "Dropout", "ReLU"]] * 2  # the 2 innermost stages
    assert up[2:] == [["ConvTranspose2d", "BatchNorm2d", "ReLU"]] * 2
    assert isinstance(G.to_image[-1], nn.Tanh)
    no_drop = UNet(dataclasses.replace(CONFIGS["default_32"], dropout=0.0))
    assert not any(isinstance(m, nn.Dropout) for m in no_drop.modules())
    instance = UNet(dataclasses.replace(TINY, norm="instance"))
    assert any(isinstance(m, nn.InstanceNorm2d) and m.affine for m in instance.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in instance.modules())


def test_dropout_makes_training_outputs_random_and_eval_outputs_fixed():
    torch.manual_seed(0)
    G = init_weights_(UNet(TINY))
    x, _ = _pair(TINY, 1)
    assert not torch.equal(G(x), G(x))  # dropout is pix2pix's noise source
    G.eval()
    assert torch.equal(G(x), G(x))


def test_unet_input_checks():
    G = UNet(TINY)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 16, 16\).*\(2, 3, 16, 16\)"):
        G(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, 16, 16\).*\(2, 1, 32, 32\)"):
        G(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="float"):
        G(torch.zeros(2, 1, 16, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match="B >= 1"):
        G(torch.zeros(0, 1, 16, 16))
    with pytest.raises(ValueError, match="y_real must be a torch.Tensor"):
        check_pair_images([[0.0]], 1, 16, name="y_real")


# ---- the PatchGAN and its receptive field ----------------------------------------------------

def test_receptive_field_of_the_paper_patchgans():
    assert receptive_field(patch_layers(3)) == 70  # the 70x70 PatchGAN of Isola et al.
    assert receptive_field(patch_layers(1)) == 16
    assert [receptive_field(patch_layers(d)) for d in range(6)] == [7, 16, 34, 70, 142, 286]
    assert receptive_field([]) == 1 and receptive_field([(3, 1)]) == 3 and receptive_field([(2, 2), (2, 2)]) == 4
    assert patch_layers(2) == [(4, 2), (4, 2), (4, 1), (4, 1)]
    assert PatchDiscriminator(4, 8, 3).receptive_field == 70


@pytest.mark.parametrize("d_layers", [0, 1, 2, 3])
def test_receptive_field_matches_a_gradient_measurement(d_layers):
    """Backpropagate from the centre logit of a PatchGAN with positive constant weights (and batch
    norm in eval mode, an identity): the input pixels with a non-zero gradient form a square of
    side receptive_field. Positive weights and inputs mean no gradient can cancel to zero."""
    D = PatchDiscriminator(1, 2, d_layers, norm="batch").eval()
    for m in D.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.1)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    rf = D.receptive_field
    size = 2 * rf + 16  # large enough that the centre logit's window lies inside the image
    x = (torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0)) + 0.5).requires_grad_()
    logits = D(x)
    centre = logits.shape[-1] // 2
    logits[0, 0, centre, centre].backward()
    seen = x.grad[0, 0] != 0
    rows, cols = seen.any(1).nonzero()[:, 0], seen.any(0).nonzero()[:, 0]
    assert len(rows) == len(cols) == rf
    assert rows.max() - rows.min() + 1 == rf and cols.max() - cols.min() + 1 == rf  # one contiguous window
    assert seen.sum().item() == rf * rf  # the whole square
    assert 0 < rows.min() and rows.max() < size - 1  # not touching the border, so padding played no part


@pytest.mark.parametrize("d_layers", [0, 1, 2, 3])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_patch_output_size_is_the_real_output_size(d_layers, size):
    if size == 16 and d_layers == 3:  # 16 -> 8 -> 4 -> 2 -> 1 -> 0: too small
        with pytest.raises(ValueError, match="too small"):
            patch_output_size(size, d_layers)
        return
    D = PatchDiscriminator(4, 4, d_layers)
    logits = D(torch.zeros(2, 4, size, size))
    p = patch_output_size(size, d_layers)
    assert logits.shape == (2, 1, p, p)


def test_patch_discriminator_layers_and_input_check():
    D = PatchDiscriminator(7, 8, 2, norm="instance")
    convs = [m for m in D.net if isinstance(m, nn.Conv2d)]
    layers = [(c.in_channels, c.out_channels, c.stride[0]) for c in convs]
    assert layers == [(7, 8, 2), (8, 16, 2), (16, 32, 1), (32, 1, 1)]
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in D.net) == 2  # not after the first and the last
    widths = [c.out_channels for c in PatchDiscriminator(3, 4, 5).net if isinstance(c, nn.Conv2d)]
    assert widths == [4, 8, 16, 32, 32, 32, 1]  # capped at 8 W
    with pytest.raises(ValueError, match=r"\(B, 7, S, S\).*\(2, 3, 32, 32\)"):
        D(torch.zeros(2, 3, 32, 32))


def test_init_weights_statistics():
    torch.manual_seed(0)
    G = init_weights_(UNet(dataclasses.replace(CONFIGS["default_32"], base_channels=32)))
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.mean().item()) < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert all(torch.all(m.bias == 0) for m in convs if m.bias is not None)
    gains = torch.cat([m.weight for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert gains.mean().item() == pytest.approx(1.0, abs=0.01) and gains.std().item() == pytest.approx(0.02, rel=0.2)
    assert all(torch.all(m.bias == 0) for m in G.modules() if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(ValueError, match="norm"):
        norm_layer("layer", 4)


# ---- losses ----------------------------------------------------------------------------------

def test_patch_bce_and_d_loss_analytic_values():
    zeros = torch.zeros(3, 1, 4, 4)
    assert patch_bce(zeros, True).item() == pytest.approx(math.log(2))
    assert patch_bce(zeros, False).item() == pytest.approx(math.log(2))
    assert pix2pix_d_loss(zeros, zeros).item() == pytest.approx(math.log(2))  # 0.5 * (log 2 + log 2)
    assert pix2pix_d_loss(torch.full((2, 1, 3, 3), 30.0), torch.full((2, 1, 3, 3), -30.0)).item() < 1e-12
    logits = torch.randn(2, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    assert patch_bce(logits, True).item() == pytest.approx(nn.functional.softplus(-logits).mean().item(), rel=1e-6)
    # the halving: D's loss is the mean of its two BCE terms, not their sum
    assert pix2pix_d_loss(logits, logits).item() == pytest.approx(
        0.5 * (patch_bce(logits, True) + patch_bce(logits, False)).item(), rel=1e-6)


def test_g_loss_is_gan_plus_lambda_times_mean_absolute_error():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 6, 6, generator=g)
    y_fake, y_real = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1, torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    total, gan, l1 = pix2pix_g_loss(logits, y_fake, y_real, lambda_l1=37.0)
    assert l1.item() == pytest.approx((y_fake - y_real).abs().mean().item(), rel=1e-6)
    assert gan.item() == pytest.approx(nn.functional.softplus(-logits).mean().item(), rel=1e-6)  # non-saturating
    assert total.item() == pytest.approx(gan.item() + 37.0 * l1.item(), rel=1e-6)
    total_default, _, _ = pix2pix_g_loss(torch.zeros(1, 1, 2, 2), torch.full((1, 3, 4, 4), 0.5),
                                         torch.zeros(1, 3, 4, 4))
    assert total_default.item() == pytest.approx(math.log(2) + 100 * 0.5, rel=1e-6)  # lambda_l1 = 100 by default
    with pytest.raises(ValueError, match=r"same shape.*\(4, 3, 16, 16\).*\(4, 1, 16, 16\)"):
        pix2pix_g_loss(logits, y_fake, y_real[:, :1])


# ---- the training step -----------------------------------------------------------------------

def test_discriminator_sees_the_pairs_x_y_and_x_g_of_x():
    """D is conditional: its input is (x, y) or (x, G(x)) along channels, C_in + C_out channels."""
    G, D, opt_G, opt_D = _setup()
    assert D.in_channels == TINY.in_channels + TINY.out_channels
    x, y = _pair(TINY, 1)
    seen = []
    D.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().clone()))
    torch.manual_seed(5)
    pix2pix_step(G, D, opt_G, opt_D, x, y)
    assert len(seen) == 3  # real pair, fake pair for D's update, fake pair for G's update
    assert all(s.shape == (4, 4, 16, 16) for s in seen)
    assert torch.equal(seen[0], torch.cat([x, y], 1))
    assert all(torch.equal(s[:, :1], x) for s in seen)  # the condition x is always there
    assert torch.equal(seen[1], seen[2])  # the same G(x) for both updates (G is updated last)
    assert not torch.equal(seen[1][:, 1:], y)
    # a D that saw y alone could not take the pair
    D_y_only = PatchDiscriminator(TINY.out_channels, 8, 1)
    with pytest.raises(ValueError, match=r"\(B, 3, S, S\)"):
        pix2pix_step(G, D_y_only, opt_G, torch.optim.Adam(D_y_only.parameters()), x, y)


def test_pix2pix_step_matches_a_manual_step():
    """The same updates written out by hand: D on (x, y) vs (x, G(x).detach()), then G through the new D."""
    G, D, opt_G, opt_D = _setup(seed=3, lr=1e-3)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    opt_G_ref = torch.optim.Adam(G_ref.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_D_ref = torch.optim.Adam(D_ref.parameters(), lr=1e-3, betas=(0.5, 0.999))
    x, y = _pair(TINY, 4)

    torch.manual_seed(9)  # dropout draws
    logs = pix2pix_step(G, D, opt_G, opt_D, x, y, lambda_l1=50.0)

    torch.manual_seed(9)
    y_fake = G_ref(x)
    bce = nn.functional.binary_cross_entropy_with_logits
    real, fake = D_ref(torch.cat([x, y], 1)), D_ref(torch.cat([x, y_fake.detach()], 1))
    loss_D = 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    opt_D_ref.zero_grad()
    loss_D.backward()
    opt_D_ref.step()
    logits = D_ref(torch.cat([x, y_fake], 1))
    loss_G = bce(logits, torch.ones_like(logits)) + 50.0 * (y_fake - y).abs().mean()
    opt_G_ref.zero_grad()
    loss_G.backward()
    opt_G_ref.step()

    assert logs["d_loss"] == pytest.approx(loss_D.item(), rel=1e-6)
    assert logs["g_loss"] == pytest.approx(loss_G.item(), rel=1e-6)
    assert logs["d_real"] == pytest.approx(torch.sigmoid(real).mean().item(), rel=1e-6)
    assert logs["d_fake"] == pytest.approx(torch.sigmoid(fake).mean().item(), rel=1e-6)
    for a, b in zip(_state(G, D), _state(G_ref, D_ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(p.requires_grad for p in D.parameters())  # D is unfrozen again after G's update


def test_pix2pix_step_logs_and_input_checks():
    G, D, opt_G, opt_D = _setup()
    x, y = _pair(TINY, 1)
    logs = pix2pix_step(G, D, opt_G, opt_D, x, y)
    assert set(logs) == {"d_loss", "g_loss", "g_gan", "g_l1", "d_real", "d_fake"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    assert 0 <= logs["d_real"] <= 1 and 0 <= logs["d_fake"] <= 1
    assert logs["g_loss"] == pytest.approx(logs["g_gan"] + 100 * logs["g_l1"], rel=1e-5)
    with pytest.raises(ValueError, match="pairs"):
        pix2pix_step(G, D, opt_G, opt_D, x, y[:3])
    with pytest.raises(ValueError, match="pairs"):
        pix2pix_step(G, D, opt_G, opt_D, x, torch.zeros(4, 3, 32, 32))


def test_pix2pix_step_overfits_one_fixed_batch():
    """60 steps on 4 fixed pairs (y a pixelwise function of x): the L1 term falls by more than half,
    with the paper's dropout on; in eval mode G is as close to the targets."""
    G, D, opt_G, opt_D = _setup(seed=0, lr=5e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    y = torch.cat([x, -x, 2 * x.abs() - 1], 1) * 0.8
    l1 = [pix2pix_step(G, D, opt_G, opt_D, x, y)["g_l1"] for _ in range(60)]
    assert l1[0] > 0.35
    assert l1[-1] < 0.5 * l1[0], l1[::10]
    with torch.no_grad():
        assert (G.eval()(x) - y).abs().mean().item() < 0.5 * l1[0]


def test_two_seeded_runs_give_identical_weights():
    def run() -> list[torch.Tensor]:
        G, D, opt_G, opt_D = _setup(seed=11)
        x, y = _pair(TINY, 12)
        for _ in range(4):
            pix2pix_step(G, D, opt_G, opt_D, x, y)  # dropout draws come from torch's global generator
        return _state(G, D)

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    G0, _, _, _ = _setup(seed=11)
    assert not all(torch.equal(a, b) for a, b in zip(first, _state(G0)))  # they did train


def test_amp_on_cpu_runs_in_bf16_close_to_the_fp32_step_with_fp32_weights():
    results = []
    for amp in (False, True):
        G, D, opt_G, opt_D = _setup(seed=2)
        x, y = _pair(TINY, 3)
        torch.manual_seed(0)
        results.append((pix2pix_step(G, D, opt_G, opt_D, x, y, amp=amp), _state(G, D)))
    assert results[1][0] != results[0][0]  # bf16 arithmetic: not bit for bit
    assert results[1][0] == pytest.approx(results[0][0], rel=0.02, abs=0.01)
    assert all(t.dtype == a.dtype for t, a in zip(results[1][1], results[0][1]))


# ---- config ----------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("in_channels", 0), ("out_channels", -1), ("img_size", 2.5), ("base_channels", True),
    ("depth", 0), ("d_base_channels", 0), ("norm", "layer"), ("dropout", 1.0), ("dropout", -0.1),
    ("d_layers", 6), ("d_layers", -1), ("dropout_stages", -1),
])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        Pix2PixConfig(**{field: value})


def test_img_size_must_be_divisible_by_two_to_the_depth():
    with pytest.raises(ValueError, match=r"img_size must be divisible by 2 \*\* depth = 32, got img_size=48"):
        Pix2PixConfig(img_size=48, depth=5)
    assert Pix2PixConfig(img_size=48, depth=4).img_size == 48
    assert Pix2PixConfig().in_channels == 1 and Pix2PixConfig().norm == "batch"


def test_the_cli_builds_residual_dropout_free_u_nets_for_the_photo_tasks():
    """Photo tasks restore their input: a global residual and no dropout (its variance shift before the next batch
    norm cost 0.8 dB at evaluation); edges2digits keeps pix2pix's dropout and has no residual (edges are not digits)."""
    from course_lib.train import default_config
    from course_lib.translate import pix2pix_config

    for task in ("colorize", "superres", "inpaint", "denoise"):
        cfg = pix2pix_config(default_config("pix2pix", task=task))
        assert cfg.residual and cfg.dropout == 0.0 and cfg.max_mult == 2
        assert cfg.correction_stride == (8 if task == "colorize" else 1)  # slow colour, sharp detail
        assert pix2pix_config(default_config("pix2pix", task=task, correction_stride=4)).correction_stride == 4
    with pytest.raises(ValueError, match="correction_stride > 1 needs model 'pix2pix' with a photo task"):
        default_config("pix2pix", task="edges2digits", correction_stride=8)
    with pytest.raises(ValueError, match="correction_stride must be an int >= 0"):
        default_config("pix2pix", task="colorize", correction_stride=-1)
    cfg = pix2pix_config(default_config("pix2pix", task="edges2digits"))
    assert not cfg.residual and cfg.dropout == 0.5 and (cfg.in_channels, cfg.out_channels) == (1, 1)


def test_l2_reconstruction_is_the_mean_squared_error():
    g = torch.Generator().manual_seed(0)
    y_fake, y_real = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    logits = torch.zeros(2, 1, 2, 2)
    total, gan, l2 = pix2pix_g_loss(logits, y_fake, y_real, lambda_l1=10.0, reconstruction="l2")
    assert l2.item() == pytest.approx((y_fake - y_real).pow(2).mean().item())
    assert total.item() == pytest.approx(gan.item() + 10.0 * l2.item())
    _, _, l1 = pix2pix_g_loss(logits, y_fake, y_real)
    assert l1.item() == pytest.approx((y_fake - y_real).abs().mean().item())
    with pytest.raises(ValueError, match="reconstruction"):
        pix2pix_g_loss(logits, y_fake, y_real, reconstruction="l3")


# ---- shaping the residual correction: stride (slow colour) and scale (calibration) ------------

RESIDUAL = dataclasses.replace(TINY, residual=True, dropout=0.0)


def _unet(cfg: Pix2PixConfig, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return init_weights_(UNet(cfg), std=0.2).eval()  # a large init: corrections far from 0


def test_a_correction_stride_of_the_image_size_adds_one_colour_per_image():
    G = _unet(dataclasses.replace(RESIDUAL, correction_stride=16))
    x = torch.rand(3, 1, 16, 16) * 1.6 - 0.8  # away from +-1: the clamp stays idle
    with torch.no_grad():
        correction = G(x) - x  # (3, 3, 16, 16)
    flat = correction.flatten(2)
    torch.testing.assert_close(flat, flat[..., :1].expand_as(flat), rtol=0, atol=1e-6)  # constant per image, channel
    assert flat[..., 0].std() > 1e-3  # but a different colour per image and channel


def test_a_correction_stride_averages_the_correction_over_blocks_then_upsamples():
    plain, strided = _unet(RESIDUAL), _unet(dataclasses.replace(RESIDUAL, correction_stride=4))  # the same weights
    x = torch.rand(2, 1, 16, 16) * 0.2 - 0.1  # near 0: neither output clamps
    with torch.no_grad():
        raw = plain(x) - x
        expected = F.interpolate(F.avg_pool2d(raw, 4), scale_factor=4, mode="bilinear", align_corners=False)
        torch.testing.assert_close(strided(x) - x, expected, rtol=0, atol=1e-5)


def test_a_correction_scale_blends_the_input_and_the_output():
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    G = _unet(RESIDUAL)
    assert G.correction_scale.shape == () and G.correction_scale.item() == 1.0  # the correction as trained
    with torch.no_grad():
        full = G(x)
        G.set_correction_scale(0.0)
        assert torch.equal(G(x), x.expand(-1, 3, -1, -1))  # the input itself
        G.set_correction_scale(0.25)
        torch.testing.assert_close(G(x), x + 0.25 * (full - x))
        G.set_correction_scale(1)
        assert torch.equal(G(x), full)  # exactly: training at scale 1 is untouched by the blend


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf"), "1", True, torch.tensor(0.5)])
def test_the_correction_scale_is_checked(value):
    G = _unet(RESIDUAL)
    with pytest.raises(ValueError, match="^correction_scale must be a finite number >= 0"):
        G.set_correction_scale(value)
    assert G.correction_scale.item() == 1.0


@pytest.mark.parametrize("value", [0, 3, 2.0])
def test_the_correction_stride_is_checked(value):
    with pytest.raises(ValueError, match="^correction_stride must"):
        dataclasses.replace(RESIDUAL, correction_stride=value)


def test_correction_settings_need_a_residual_u_net():
    with pytest.raises(ValueError, match="needs residual=True"):
        dataclasses.replace(TINY, correction_stride=4)
    G = _unet(TINY)
    assert "correction_scale" not in G.state_dict()  # a plain U-Net has no correction to scale
    with pytest.raises(ValueError, match="needs residual=True"):
        G.set_correction_scale(0.5)


def test_the_correction_scale_travels_in_the_state_dict(tmp_path):
    """A fitted scale is a buffer: it round-trips through a state_dict, generator.safetensors and checkpoint.pt."""
    from course_lib import sample, train

    cfg = train.default_config("pix2pix", task="colorize", base_channels=8, calibrate=False)
    run = train.build_run(cfg)
    G = run.sampler
    G.set_correction_scale(0.375)
    assert G.state_dict()["correction_scale"].item() == 0.375
    other = train.build_run(cfg).sampler
    other.load_state_dict(G.state_dict())
    assert other.correction_scale.item() == 0.375
    train.save_generator(tmp_path / "generator.safetensors", G, G.cfg, cfg)
    loaded, meta = sample.load_generator(tmp_path)
    assert loaded.correction_scale.item() == 0.375 and "correction_scale" not in meta["architecture"]
    run.state.save(tmp_path / "checkpoint.pt")
    resumed = train.build_run(cfg)
    resumed.state.load(tmp_path / "checkpoint.pt")
    assert resumed.sampler.correction_scale.item() == 0.375


def old_format_folder(folder, scale: float):
    """A folder with a generator.safetensors as written before the scale was a buffer: the scale in the
    architecture, no correction_scale tensor. Returns the U-Net it holds (with its scale) and the tensors."""
    import json

    from course_lib import train
    from course_lib.checkpoint import WEIGHTS_FORMAT, write_safetensors

    cfg = train.default_config("pix2pix", task="superres", base_channels=8)
    G = init_weights_(train.build_run(cfg).sampler, std=0.2).eval()
    G.set_correction_scale(scale)
    tensors = {k: v for k, v in G.state_dict().items() if k != "correction_scale"}
    meta = {"model": "pix2pix", "architecture": {**dataclasses.asdict(G.cfg), "correction_scale": scale},
            "train": dataclasses.asdict(cfg)}
    folder.mkdir()
    write_safetensors(folder / "generator.safetensors", tensors, {"format": WEIGHTS_FORMAT, "config": json.dumps(meta)})
    return G, tensors


def test_a_file_with_the_scale_in_its_architecture_loads_with_that_scale(tmp_path):
    from course_lib import sample

    G, tensors = old_format_folder(tmp_path / "old", 0.8125)
    loaded, meta = sample.load_generator(tmp_path / "old")
    assert loaded.correction_scale.item() == 0.8125
    x = torch.rand(3, 3, 32, 32) * 2 - 1  # superres: a colour input
    with torch.no_grad():
        assert torch.equal(loaded(x), G(x))
    fresh = UNet(G.cfg)  # checkpoint.pt of such a run holds no buffer either: it loads (strict) at scale 1
    fresh.load_state_dict(tensors)
    assert fresh.correction_scale.item() == 1.0
    with pytest.raises(RuntimeError, match="Unexpected key.*correction_scale"):  # but a plain U-Net has none
        UNet(TINY).load_state_dict({**UNet(TINY).state_dict(), "correction_scale": torch.tensor(0.5)})


def test_convert_run_configs_moves_the_scale_into_the_tensors(tmp_path):
    """``scripts/convert_run_configs.py --weights`` rewrites an old file in today's form: the scale becomes a
    tensor, every old tensor is kept bit for bit, the checksums cover them all, and the model is the same."""
    import importlib.util
    import json
    from pathlib import Path

    from course_lib import sample
    from course_lib.checkpoint import CHECKSUMS, read_safetensors, tensor_sha256

    script = Path(__file__).resolve().parents[1] / "scripts" / "convert_run_configs.py"
    spec = importlib.util.spec_from_file_location("convert_run_configs", script)
    convert_run_configs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert_run_configs)

    G, tensors = old_format_folder(tmp_path / "old", 0.8125)
    assert convert_run_configs.convert(tmp_path / "old", weights=True) == ["generator.safetensors"]
    new, metadata = read_safetensors(tmp_path / "old" / "generator.safetensors")  # verifies every checksum
    assert set(new) == set(tensors) | {"correction_scale"} and set(json.loads(metadata[CHECKSUMS])) == set(new)
    assert all(tensor_sha256(new[k]) == tensor_sha256(tensors[k]) for k in tensors)  # dtype, shape and bytes
    assert new["correction_scale"].item() == 0.8125
    assert "correction_scale" not in json.loads(metadata["config"])["architecture"]
    loaded, _ = sample.load_generator(tmp_path / "old")
    assert loaded.correction_scale.item() == 0.8125
    x = torch.rand(3, 3, 32, 32) * 2 - 1  # superres: a colour input
    with torch.no_grad():
        assert torch.equal(loaded(x), G(x))


def test_least_squares_scale_has_the_closed_form_minimum():
    from course_lib.pix2pix import least_squares_scale

    g = torch.Generator().manual_seed(1)
    base, target = torch.rand(4, 3, 8, 8, generator=g), torch.rand(4, 3, 8, 8, generator=g)
    assert least_squares_scale(base, base + 2 * (target - base), target) == pytest.approx(0.5)  # twice too strong
    assert least_squares_scale(base, base - (target - base), target) == 0.0  # the wrong way: clipped at 0
    assert least_squares_scale(base, base.clone(), target) == 1.0  # no correction to scale
    output = target + 0.3 * torch.randn(4, 3, 8, 8, generator=g)
    c = least_squares_scale(base, output, target)
    grid = torch.linspace(0, 2, 2001)
    errors = torch.stack([(base + t * (output - base) - target).pow(2).sum() for t in grid])
    assert c == pytest.approx(grid[errors.argmin()].item(), abs=1e-3)  # the parabola's vertex, found by search
    with pytest.raises(ValueError, match="same shape"):
        least_squares_scale(base, output[:2], target)


def test_calibrate_fits_the_scale_on_val_pairs_and_never_raises_their_error(monkeypatch):
    from course_lib.data.paired import paired_task
    from course_lib.translate import calibrate_pix2pix, translate

    G = _unet(dataclasses.replace(RESIDUAL, img_size=32, depth=5))
    x, y = paired_task("colorize", "val", n=24)
    errors = {}
    for scale in (0.0, 1.0):
        G.set_correction_scale(scale)
        errors[scale] = (translate(G, x) - y).pow(2).mean().item()
    c = calibrate_pix2pix(G, "colorize", n=24)
    assert G.correction_scale.item() == c and 0 <= c < 1  # an untrained correction is mostly noise: shrunk
    assert (translate(G, x) - y).pow(2).mean().item() <= min(errors.values()) + 1e-6
    with pytest.raises(ValueError, match="residual"):
        calibrate_pix2pix(_unet(TINY), "colorize", n=4)

    def broken(G, x):
        assert G.correction_scale.item() == 1.0  # G's corrections as trained are what is fitted
        raise KeyboardInterrupt

    monkeypatch.setattr("course_lib.pix2pix.training.translate", broken)
    with pytest.raises(KeyboardInterrupt):
        calibrate_pix2pix(G, "colorize", n=4)
    assert G.correction_scale.item() == c  # a failed calibration leaves the scale as it was
    with pytest.raises(ValueError, match="split must be one of"):
        calibrate_pix2pix(_unet(dataclasses.replace(RESIDUAL, in_channels=1, out_channels=1, img_size=32, depth=5)),
                          "edges2digits", n=4)
