"""course_lib.gan and course_lib.gan_steps: shapes, input checks, initialisation, spectral norm,
overfitting one batch, and the training steps (detach, freezing, n_critic, determinism, amp,
channels_last). Tiny models (base_channels 8, batch <= 8) so everything runs in seconds on 1 thread."""

import copy
import dataclasses
import math

import pytest
import torch

from course_lib.gan import (
    ConditionalBatchNorm2d,
    DCGANConfig,
    Discriminator,
    Generator,
    balanced_labels,
    dcgan_init_,
    sample,
    sample_z,
)
from course_lib.gan_steps import gan_step, wgan_gp_step
from course_lib.losses import d_loss_bce, d_loss_hinge, d_loss_wasserstein, gradient_penalty

TINY = DCGANConfig(z_dim=16, base_channels=8)
CONFIGS = {
    "unconditional": TINY,
    "projection": dataclasses.replace(TINY, num_classes=4),
    "concat": dataclasses.replace(TINY, num_classes=4, conditioning="concat"),
    "critic": dataclasses.replace(TINY, critic=True),
    "spectral_norm": dataclasses.replace(TINY, spectral_norm=True),
    "sn_projection_rgb": dataclasses.replace(TINY, img_channels=3, num_classes=4, spectral_norm=True),
    "concat_critic_rgb": dataclasses.replace(TINY, img_channels=3, num_classes=4, conditioning="concat", critic=True),
}


def _labels(cfg: DCGANConfig, n: int = 8):
    return balanced_labels(n, cfg.num_classes) if cfg.num_classes else None


def _real(cfg: DCGANConfig, seed: int, n: int = 8) -> torch.Tensor:
    return torch.rand(n, cfg.img_channels, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _setup(cfg: DCGANConfig, seed: int = 0, lr: float = 2e-4, betas=(0.5, 0.999)):
    torch.manual_seed(seed)
    G, D = Generator(cfg), Discriminator(cfg)
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    return G, D, opt_G, opt_D


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


# ---- shapes and architecture -----------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes_for_every_config(name):
    cfg = CONFIGS[name]
    G, D = Generator(cfg), Discriminator(cfg)
    labels = _labels(cfg, 5)
    x_fake = G(torch.randn(5, cfg.z_dim), labels)
    assert x_fake.shape == (5, cfg.img_channels, 32, 32) and x_fake.dtype == torch.float32
    assert x_fake.abs().max() <= 1.0  # tanh output
    logits = D(x_fake, labels)
    assert logits.shape == (5,) and logits.dtype == torch.float32


def test_default_config_is_the_usual_dcgan():
    cfg = DCGANConfig()
    assert (cfg.z_dim, cfg.img_channels, cfg.img_size, cfg.base_channels, cfg.num_classes) == (64, 1, 32, 64, 0)
    G, D = Generator(cfg), Discriminator(cfg)
    assert G(torch.randn(2, 64)).shape == (2, 1, 32, 32)
    assert D(torch.zeros(2, 1, 32, 32)).shape == (2,)
    convs_G = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in convs_G] == [(256, 128), (128, 64), (64, 1)]
    convs_D = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs_D] == [(1, 64), (64, 128), (128, 256)]
    assert all(m.stride == (2, 2) for m in convs_D)


def _batch_norms(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_batch_norm_placement():
    G, D = Generator(TINY), Discriminator(TINY)
    assert len(_batch_norms(G)) == 3                     # after the projection and in both up blocks
    assert not isinstance(G.blocks[-2], torch.nn.BatchNorm2d)  # G's output layer: conv + tanh only
    assert len(_batch_norms(D)) == 2 and not _batch_norms(D.blocks[0])  # never on D's first layer
    for name in ("critic", "spectral_norm"):
        assert not _batch_norms(Discriminator(CONFIGS[name]))
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in Discriminator(CONFIGS["critic"]).modules())


def test_conditioning_variants():
    concat = Discriminator(CONFIGS["concat"])
    assert concat.blocks[0][0].in_channels == 1 + 4 and concat.embed is None
    projection = Discriminator(CONFIGS["projection"])
    assert projection.blocks[0][0].in_channels == 1 and projection.embed.weight.shape == (4, 16 * 4 * 8)
    # Projection: logit = linear(h) + <embed(y), h>, checked against the pieces.
    x, labels = _real(TINY, 0, n=4), torch.tensor([0, 1, 2, 3])
    h = projection.blocks(x)
    expected = projection.head(h)[:, 0] + (projection.embed.weight[labels] * h).sum(1)
    torch.testing.assert_close(projection(x, labels), expected)
    # The label changes the logit of the same image.
    assert not torch.allclose(projection(x, labels), projection(x, labels.flip(0)))


# ---- input checks ----------------------------------------------------------------------------

def test_config_errors():
    with pytest.raises(ValueError, match="img_size must be 32.*got 64"):
        DCGANConfig(img_size=64)
    with pytest.raises(ValueError, match="conditioning must be 'projection' or 'concat', got 'sum'"):
        DCGANConfig(conditioning="sum")
    with pytest.raises(ValueError, match="num_classes"):
        DCGANConfig(num_classes=-1)
    with pytest.raises(ValueError, match="base_channels must be an int >= 1, got 0"):
        DCGANConfig(base_channels=0)


def test_input_errors():
    G, D = Generator(TINY), Discriminator(TINY)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 16\) with B >= 1, got \(5, 3\)"):
        G(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 32, 32\) with B >= 1, got \(5, 1, 28, 28\)"):
        D(torch.zeros(5, 1, 28, 28))
    with pytest.raises(ValueError, match="float"):
        D(torch.zeros(5, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="labels must be None for an unconditional model"):
        G(torch.zeros(5, 16), torch.zeros(5, dtype=torch.long))
    G4, D4 = Generator(CONFIGS["projection"]), Discriminator(CONFIGS["concat"])
    z, x = torch.zeros(5, 16), torch.zeros(5, 1, 32, 32)
    with pytest.raises(ValueError, match="labels are required"):
        G4(z)
    with pytest.raises(ValueError, match=r"int64 tensor of shape \(5,\).*got dtype torch.float32"):
        G4(z, torch.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(5,\).*got shape \(5, 1\)"):
        D4(x, torch.zeros(5, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"values in \[0, 4\), got values in \[0, 4\]"):
        D4(x, torch.tensor([0, 1, 2, 3, 4]))


def test_conditional_batch_norm_is_a_per_class_scale_and_shift():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, embed_dim=5)
    h, e = torch.randn(6, 3, 5, 5) * 2 + 1, torch.randn(6, 5)
    assert torch.allclose(cbn(h, e), cbn.bn(h), atol=1e-6)                 # fresh: a plain batch norm
    torch.nn.init.normal_(cbn.gain.weight)
    torch.nn.init.normal_(cbn.bias.weight)
    mean, var = h.mean(dim=(0, 2, 3), keepdim=True), h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    normed = (h - mean) / torch.sqrt(var + cbn.bn.eps)
    expected = normed * (1 + e @ cbn.gain.weight.T)[:, :, None, None] + (e @ cbn.bias.weight.T)[:, :, None, None]
    assert torch.allclose(cbn(h, e), expected, atol=1e-5)


def test_conditional_generator_uses_noise_and_labels():
    torch.manual_seed(0)
    G = Generator(dataclasses.replace(TINY, num_classes=4))
    cbns = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(cbns) == 3 and all((m.gain.weight == 0).all() and (m.bias.weight == 0).all() for m in cbns)
    assert G.embed.weight.std().item() == pytest.approx(1.0, rel=0.3)       # the class embedding: N(0, 1) like z
    for m in cbns:  # trained-looking maps
        torch.nn.init.normal_(m.gain.weight, std=0.3)
        torch.nn.init.normal_(m.bias.weight, std=0.3)
    z = torch.randn(4, TINY.z_dim)
    same_label = G(z, torch.tensor([1, 1, 1, 1]))                            # train mode: batch statistics
    scale = same_label.abs().max()                                           # DCGAN init: small outputs
    assert (same_label[0] - same_label[1]).abs().max() > 0.1 * scale         # z changes the image
    two_labels = G(z[[0, 0, 1, 1]], torch.tensor([1, 2, 1, 2]))
    assert (two_labels[0] - two_labels[1]).abs().max() > 0.1 * scale         # so does the label
    assert G.project.in_features == TINY.z_dim                               # the label is not concatenated to z


# ---- initialisation and spectral norm --------------------------------------------------------

def test_dcgan_init_statistics():
    torch.manual_seed(0)
    cfg = DCGANConfig(num_classes=10)
    G, D = Generator(cfg), Discriminator(cfg)
    weights, biases, bn_scales, conditional_maps = [], [], [], set()
    for m in list(G.modules()) + list(D.modules()):
        if isinstance(m, ConditionalBatchNorm2d):
            assert (m.gain.weight == 0).all() and (m.bias.weight == 0).all()  # a fresh conditional BN is a plain BN
            conditional_maps.update({id(m.gain), id(m.bias)})
        elif isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)) and id(m) not in conditional_maps:
            weights.append(m.weight.detach().flatten())
            if m.bias is not None:
                biases.append(m.bias.detach())
        elif isinstance(m, torch.nn.BatchNorm2d) and m.affine:
            bn_scales.append(m.weight.detach())
            biases.append(m.bias.detach())
    weights, bn_scales = torch.cat(weights), torch.cat(bn_scales)
    assert weights.numel() > 1_000_000
    assert abs(weights.mean().item()) < 1e-4 and weights.std().item() == pytest.approx(0.02, rel=0.01)
    assert bn_scales.mean().item() == pytest.approx(1.0, abs=0.005)
    assert bn_scales.std().item() == pytest.approx(0.02, rel=0.2)
    assert all((b == 0).all() for b in biases)
    assert G.embed.weight.std().item() == pytest.approx(1.0, rel=0.15)   # the class embedding: like z
    assert D.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)  # like the linear head


def test_dcgan_init_reaches_spectrally_normalised_weights():
    D = Discriminator(CONFIGS["spectral_norm"])
    conv = D.blocks[1][0]
    original = conv.parametrizations.weight.original
    with torch.no_grad():
        original.fill_(1.0)
    assert dcgan_init_(D) is D
    assert original.std().item() == pytest.approx(0.02, rel=0.1)


def _largest_singular_value(weight: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(weight.detach().reshape(weight.shape[0], -1), ord=2).item()


def test_spectral_norm_keeps_the_largest_singular_value_near_one():
    torch.manual_seed(0)
    D = Discriminator(CONFIGS["spectral_norm"])
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs + [D.head])
    for m in convs:  # at construction: raw weights N(0, 0.02) have sigma << 1; normalised ~ 1
        assert _largest_singular_value(m.parametrizations.weight.original) < 0.5
        assert _largest_singular_value(m.weight) == pytest.approx(1.0, abs=0.05)
    with torch.no_grad():  # a large update of the raw weights, as an optimiser step might make
        for m in convs:
            original = m.parametrizations.weight.original
            original.add_(torch.randn_like(original))
    x = _real(TINY, 0, n=4)
    for _ in range(30):  # one power iteration per training-mode forward (plus 15 at construction)
        D(x)
    for m in convs:
        assert _largest_singular_value(m.weight) == pytest.approx(1.0, abs=0.02)
    projection = Discriminator(CONFIGS["sn_projection_rgb"])
    assert torch.nn.utils.parametrize.is_parametrized(projection.embed, "weight")


# ---- sampling --------------------------------------------------------------------------------

def test_sample_and_helpers():
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert balanced_labels(7, 3).dtype == torch.int64
    torch.testing.assert_close(sample_z(3, 5, torch.Generator().manual_seed(1)),
                               torch.randn(3, 5, generator=torch.Generator().manual_seed(1)))
    G = Generator(CONFIGS["projection"]).eval()
    a = sample(G, 6, generator=torch.Generator().manual_seed(0))
    b = sample(G, 6, labels=balanced_labels(6, 4), generator=torch.Generator().manual_seed(0))
    assert a.shape == (6, 1, 32, 32) and not a.requires_grad
    assert torch.equal(a, b)  # default labels are balanced_labels
    assert G.training is False
    with pytest.raises(ValueError, match="labels must be None"):
        sample(Generator(TINY), 2, labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        sample(G, 0)


# ---- overfitting one batch -------------------------------------------------------------------

@pytest.mark.parametrize("name, loss", [("unconditional", "bce"), ("sn_projection_rgb", "hinge"),
                                        ("concat", "bce"), ("critic", "wgan-gp")])
def test_discriminator_separates_a_fixed_real_batch_from_fixed_fakes(name, loss):
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    G, D = Generator(cfg), Discriminator(cfg)
    generator = torch.Generator().manual_seed(1)
    x_real, labels = _real(cfg, 1), _labels(cfg)
    with torch.no_grad():
        x_fake = G(sample_z(8, cfg.z_dim, generator), labels)
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0 if loss == "wgan-gp" else 0.5, 0.9))
    first = None
    for _ in range(60 if loss == "wgan-gp" else 30):
        real, fake = D(x_real, labels), D(x_fake, labels)
        if loss == "bce":
            value = d_loss_bce(real, fake)
        elif loss == "hinge":
            value = d_loss_hinge(real, fake)
        else:
            value = d_loss_wasserstein(real, fake) + 10.0 * gradient_penalty(D, x_real, x_fake, generator=generator)
        first = value.item() if first is None else first
        opt.zero_grad()
        value.backward()
        opt.step()
    assert real.min() > fake.max()  # every real image scored above every fake
    if loss == "bce":
        assert first == pytest.approx(2 * math.log(2), abs=0.2) and value.item() < 0.05
    elif loss == "hinge":
        assert first == pytest.approx(2.0, abs=0.2) and value.item() < 0.1
    else:  # the critic's Wasserstein estimate grows from 0 towards the real-to-fake distance (~18)
        assert first == pytest.approx(10.0, abs=0.1)  # all penalty: the initial critic is ~flat
        assert -d_loss_wasserstein(real, fake).item() > 10.0


@pytest.mark.parametrize("name", ["unconditional", "projection"])
def test_generator_fits_a_fixed_batch(name):
    """G regresses 4 random targets (overfit one batch), the conditional G with labels 0..3."""
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    G = Generator(cfg)
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(4, 1, 32, 32, generator=generator) * 1.6 - 0.8
    z = sample_z(4, cfg.z_dim, generator)
    labels = torch.arange(4) if cfg.num_classes else None
    opt = torch.optim.Adam(G.parameters(), lr=1e-2)
    for step in range(100):
        loss = ((G(z, labels) - target) ** 2).mean()
        if step == 0:
            assert loss.item() > 0.2
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.03


# ---- gan_step --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, loss", [("unconditional", "bce"), ("projection", "hinge"), ("concat", "bce")])
def test_gan_step_updates_both_and_logs_floats(name, loss):
    cfg = CONFIGS[name]
    G, D, opt_G, opt_D = _setup(cfg)
    G0, D0 = _params(G), _params(D)
    logs = gan_step(G, D, opt_G, opt_D, _real(cfg, 0), _labels(cfg), loss=loss,
                    generator=torch.Generator().manual_seed(0))
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    if loss == "bce":
        assert 0 <= logs["d_real"] <= 1 and 0 <= logs["d_fake"] <= 1
    assert not _same(G0, G) and not _same(D0, D)


def test_gan_step_d_update_leaves_g_alone_and_matches_a_manual_detached_step():
    G, D, opt_G, opt_D = _setup(TINY)
    G0 = _params(G)
    seen = {}

    def after_d_step(optimizer, args, kwargs):  # runs right after opt_D.step()
        seen["g_grads"] = [p.grad for p in G.parameters()]
        seen["g_unchanged"] = _same(G0, G)

    handle = opt_D.register_step_post_hook(after_d_step)
    # The reference: one Adam step of D on d_loss_bce with the fakes computed without a graph.
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    opt_ref = torch.optim.Adam(D_ref.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x_real = _real(TINY, 3)
    with torch.no_grad():
        x_fake = G_ref(sample_z(8, TINY.z_dim, torch.Generator().manual_seed(4)))
    reference = d_loss_bce(D_ref(x_real), D_ref(x_fake))
    reference.backward()
    opt_ref.step()

    logs = gan_step(G, D, opt_G, opt_D, x_real, generator=torch.Generator().manual_seed(4))
    handle.remove()
    assert all(g is None for g in seen["g_grads"]) and seen["g_unchanged"]  # fakes were detached
    assert logs["d_loss"] == pytest.approx(reference.item(), rel=1e-6)
    for p, q in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(p, q)
    assert all(p.requires_grad for p in D.parameters())  # D unfrozen after the G step


def test_gan_step_gradients_reach_each_network_once():
    G, D, opt_G, opt_D = _setup(CONFIGS["projection"])
    arrivals = {"G": 0, "D": 0}
    hooks = [p.register_hook(lambda g: arrivals.__setitem__("G", arrivals["G"] + 1)) for p in G.parameters()]
    hooks += [p.register_hook(lambda g: arrivals.__setitem__("D", arrivals["D"] + 1)) for p in D.parameters()]
    gan_step(G, D, opt_G, opt_D, _real(TINY, 0), _labels(CONFIGS["projection"]), loss="hinge")
    for h in hooks:
        h.remove()
    assert arrivals == {"G": len(list(G.parameters())), "D": len(list(D.parameters()))}


def _run_gan_steps(cfg, steps=3, **kwargs):
    G, D, opt_G, opt_D = _setup(cfg, seed=7)
    generator = torch.Generator().manual_seed(8)
    logs = [gan_step(G, D, opt_G, opt_D, _real(cfg, i), _labels(cfg), generator=generator, **kwargs)
            for i in range(steps)]
    return G, D, logs


def _assert_same_weights(run_a, run_b):
    for a, b in zip(list(run_a[0].parameters()) + list(run_a[1].parameters()),
                    list(run_b[0].parameters()) + list(run_b[1].parameters())):
        assert torch.equal(a, b)


def test_amp_on_cpu_runs_the_networks_in_bf16_and_keeps_fp32_weights_and_losses():
    """amp=True autocasts on the CPU too: convolutions in bf16, weights and losses in float32, close to fp32."""
    seen = []
    G, D, opt_G, opt_D = _setup(TINY, seed=7)
    D.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    generator = torch.Generator().manual_seed(8)
    logs = [gan_step(G, D, opt_G, opt_D, _real(TINY, i), _labels(TINY), generator=generator, amp=True) for i in range(3)]
    assert torch.bfloat16 in seen
    assert all(p.dtype == torch.float32 for p in list(G.parameters()) + list(D.parameters()))
    for a, b in zip(logs, _run_gan_steps(TINY)[2]):
        assert a == pytest.approx(b, rel=0.05, abs=0.02)


def test_channels_last_on_cpu_gives_the_same_losses():
    run_default = _run_gan_steps(CONFIGS["projection"], loss="hinge")
    G, D, opt_G, opt_D = _setup(CONFIGS["projection"], seed=7)
    G.to(memory_format=torch.channels_last)
    D.to(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(8)
    logs = [gan_step(G, D, opt_G, opt_D, _real(TINY, i), _labels(CONFIGS["projection"]), loss="hinge",
                     generator=generator, channels_last=True) for i in range(3)]
    for a, b in zip(logs, run_default[2]):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_gan_step_input_checks():
    G, D, opt_G, opt_D = _setup(TINY)
    with pytest.raises(ValueError, match="loss must be 'bce' or 'hinge', got 'wgan'"):
        gan_step(G, D, opt_G, opt_D, _real(TINY, 0), loss="wgan")
    with pytest.raises(ValueError, match=r"x_real must be a tensor of shape \(B, C, H, W\)"):
        gan_step(G, D, opt_G, opt_D, torch.zeros(8, 32, 32))


# ---- wgan_gp_step ----------------------------------------------------------------------------

CRITIC = CONFIGS["critic"]


def _wgan_setup(cfg=CRITIC, seed=0):
    return _setup(cfg, seed=seed, lr=1e-4, betas=(0.0, 0.9))


def test_wgan_gp_step_updates_the_critic_n_critic_times_then_g_once():
    G, D, opt_G, opt_D = _wgan_setup()
    G0 = _params(G)
    events = []
    opt_D.register_step_post_hook(lambda *args: events.append(("D", _same(G0, G))))
    opt_G.register_step_post_hook(lambda *args: events.append(("G", _same(G0, G))))
    logs = wgan_gp_step(G, D, opt_G, opt_D, [_real(CRITIC, i) for i in range(5)],
                        generator=torch.Generator().manual_seed(0))
    assert events == [("D", True)] * 5 + [("G", False)]  # G untouched until its own update, at the end
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "gp"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    assert logs["gp"] == pytest.approx(1.0, abs=0.05)  # the initial critic is nearly flat
    # Two calls with n_critic = 2: the critic steps 4 times and G twice, G after each pair.
    events.clear()
    for call in range(2):
        wgan_gp_step(G, D, opt_G, opt_D, [_real(CRITIC, 10 + call), _real(CRITIC, 20 + call)])
    assert [name for name, _ in events] == ["D", "D", "G", "D", "D", "G"]


def test_wgan_gp_step_conditional_and_seeded_runs_match():
    cfg = CONFIGS["concat_critic_rgb"]

    def run():
        G, D, opt_G, opt_D = _wgan_setup(cfg, seed=3)
        generator = torch.Generator().manual_seed(4)
        logs = [wgan_gp_step(G, D, opt_G, opt_D, [_real(cfg, 2 * i), _real(cfg, 2 * i + 1)],
                             [_labels(cfg), _labels(cfg).flip(0)], generator=generator) for i in range(2)]
        return G, D, logs

    run_a, run_b = run(), run()
    assert run_a[2] == run_b[2]
    _assert_same_weights(run_a, run_b)


def test_wgan_gp_step_amp_and_channels_last_on_cpu():
    def run(**kwargs):
        G, D, opt_G, opt_D = _wgan_setup(seed=5)
        if kwargs.get("channels_last"):
            G.to(memory_format=torch.channels_last)
            D.to(memory_format=torch.channels_last)
        logs = wgan_gp_step(G, D, opt_G, opt_D, [_real(CRITIC, 0), _real(CRITIC, 1)],
                            generator=torch.Generator().manual_seed(6), **kwargs)
        return G, D, logs

    default = run()
    amp = run(amp=True)
    assert amp[2] == pytest.approx(default[2], rel=0.05, abs=0.02)  # the penalty itself runs in float32
    assert all(p.dtype == torch.float32 for p in list(amp[0].parameters()) + list(amp[1].parameters()))
    assert run(channels_last=True)[2] == pytest.approx(default[2], rel=1e-4, abs=1e-5)


def test_wgan_gp_step_input_checks():
    G, D, opt_G, opt_D = _wgan_setup()
    with pytest.raises(TypeError, match="x_real must be a non-empty list of n_critic real batches"):
        wgan_gp_step(G, D, opt_G, opt_D, _real(CRITIC, 0))
    with pytest.raises(ValueError, match="labels must be a list of 2 label batches"):
        wgan_gp_step(G, D, opt_G, opt_D, [_real(CRITIC, 0)] * 2, [torch.zeros(8, dtype=torch.long)])
    G_bn, D_bn, opt_G_bn, opt_D_bn = _setup(TINY)
    with pytest.raises(ValueError, match="without batch norm.*critic=True"):
        wgan_gp_step(G_bn, D_bn, opt_G_bn, opt_D_bn, [_real(TINY, 0)])


# ---- CUDA ------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_gan_steps_with_amp_and_channels_last_on_cuda():
    device = torch.device("cuda")
    for cfg, step in ((CONFIGS["projection"], "gan"), (CONFIGS["concat_critic_rgb"], "wgan")):
        torch.manual_seed(0)
        G = Generator(cfg).to(device, memory_format=torch.channels_last)
        D = Discriminator(cfg).to(device, memory_format=torch.channels_last)
        betas = (0.5, 0.999) if step == "gan" else (0.0, 0.9)
        opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=betas)
        opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=betas)
        G0 = _params(G)
        x_real, labels = _real(cfg, 0).to(device), _labels(cfg).to(device)
        generator = torch.Generator().manual_seed(0)  # CPU generator: z is drawn on CPU and moved
        if step == "gan":
            logs = gan_step(G, D, opt_G, opt_D, x_real, labels, loss="hinge", generator=generator,
                            amp=True, channels_last=True)
        else:
            logs = wgan_gp_step(G, D, opt_G, opt_D, [x_real, x_real.flip(0)], [labels, labels.flip(0)],
                                generator=generator, amp=True, channels_last=True)
            assert math.isfinite(logs["gp"])
        assert all(math.isfinite(v) for v in logs.values())
        assert not _same(G0, G)
        assert all(p.dtype == torch.float32 for p in list(G.parameters()) + list(D.parameters()))
