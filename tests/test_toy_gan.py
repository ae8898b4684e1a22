"""course_lib.toy_gan: shapes, the training step (detach, freezing, determinism), mode coverage."""

import copy
import dataclasses
import math

import pytest
import torch

from course_lib.toy_gan import (
    ModeCoverage,
    ToyDiscriminator,
    ToyGANConfig,
    ToyGenerator,
    make_optimizers,
    mode_coverage,
    ring_centres,
    toy_gan_step,
)

SMALL = ToyGANConfig(z_dim=4, hidden_dim=32, depth=2)


def _ring(n: int, generator: torch.Generator, std: float = 0.02) -> torch.Tensor:
    """A tiny ring-of-8 sampler, independent of course_lib.data."""
    angles = torch.randint(8, (n,), generator=generator).double() * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return (centres + std * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def _setup(cfg: ToyGANConfig = SMALL, seed: int = 0):
    torch.manual_seed(seed)
    G, D = ToyGenerator(cfg), ToyDiscriminator(cfg)
    opt_G, opt_D = make_optimizers(G, D, cfg)
    return G, D, opt_G, opt_D


def _batch(cfg: ToyGANConfig, seed: int, n: int = 64):
    generator = torch.Generator().manual_seed(seed)
    return _ring(n, generator), torch.randn(n, cfg.z_dim, generator=generator)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


# ---- networks --------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu"])
def test_shapes(activation):
    cfg = ToyGANConfig(z_dim=3, hidden_dim=16, depth=3, activation=activation)
    G, D = ToyGenerator(cfg), ToyDiscriminator(cfg)
    z = torch.randn(5, 3)
    x_fake = G(z)
    assert x_fake.shape == (5, 2) and x_fake.dtype == torch.float32
    assert D(x_fake).shape == (5,)
    linear_layers = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linear_layers) == cfg.depth + 1


def test_default_config_builds():
    cfg = ToyGANConfig()
    G, D = ToyGenerator(cfg), ToyDiscriminator(cfg)
    assert G(torch.zeros(2, cfg.z_dim)).shape == (2, 2)
    assert D(torch.zeros(2, 2)).shape == (2,)


def test_shape_errors():
    G, D = ToyGenerator(SMALL), ToyDiscriminator(SMALL)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 4\), got \(5, 3\)"):
        G(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\), got \(5,\)"):
        D(torch.zeros(5))
    with pytest.raises(ValueError, match="activation"):
        ToyGenerator(ToyGANConfig(activation="gelu"))
    with pytest.raises(ValueError, match="depth"):
        ToyDiscriminator(ToyGANConfig(depth=0))


# ---- the training step -----------------------------------------------------------------------

def test_step_updates_both_networks_and_logs_floats():
    G, D, opt_G, opt_D = _setup()
    G0, D0 = _params(G), _params(D)
    x_real, z = _batch(SMALL, 1)
    logs = toy_gan_step(G, D, opt_G, opt_D, x_real, z)
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    assert 0.0 <= logs["d_real"] <= 1.0 and 0.0 <= logs["d_fake"] <= 1.0
    assert logs["d_loss"] == pytest.approx(2 * math.log(2), abs=0.2)  # D starts near 1/2
    assert _changed(G0, G) and _changed(D0, D)


def test_each_network_gets_gradient_only_from_its_own_step():
    """Count gradient arrivals: G's parameters once (G step), D's once (D step, frozen in the G step)."""
    G, D, opt_G, opt_D = _setup()
    arrivals = {"G": 0, "D": 0}

    def counter(name):
        def hook(grad):
            arrivals[name] += 1
        return hook

    hooks = [p.register_hook(counter("G")) for p in G.parameters()]
    hooks += [p.register_hook(counter("D")) for p in D.parameters()]
    x_real, z = _batch(SMALL, 2)
    toy_gan_step(G, D, opt_G, opt_D, x_real, z)
    for h in hooks:
        h.remove()
    assert arrivals["G"] == len(list(G.parameters()))
    assert arrivals["D"] == len(list(D.parameters()))
    assert all(p.requires_grad for p in D.parameters())  # unfrozen afterwards


def test_d_update_matches_a_manual_detached_step():
    """D's update equals one Adam step on d_loss_bce(D(x_real), D(G(z).detach()))."""
    from course_lib.losses import d_loss_bce

    G, D, opt_G, opt_D = _setup()
    D_ref = copy.deepcopy(D)
    opt_ref = torch.optim.Adam(D_ref.parameters(), lr=SMALL.lr_d, betas=SMALL.betas)
    x_real, z = _batch(SMALL, 3)
    with torch.no_grad():
        x_fake = G(z)
    loss = d_loss_bce(D_ref(x_real), D_ref(x_fake))
    loss.backward()
    opt_ref.step()
    logs = toy_gan_step(G, D, opt_G, opt_D, x_real, z)
    assert logs["d_loss"] == pytest.approx(loss.item(), rel=1e-6)
    for p, q in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(p, q)


def test_saturating_and_nonsaturating_steps_differ():
    x_real, z = _batch(SMALL, 4)
    results = {}
    for g_loss in ("nonsaturating", "saturating"):
        G, D, opt_G, opt_D = _setup()
        logs = toy_gan_step(G, D, opt_G, opt_D, x_real, z, g_loss=g_loss)
        results[g_loss] = (logs, _params(G))
    assert results["nonsaturating"][0]["g_loss"] > 0 > results["saturating"][0]["g_loss"]
    assert any(not torch.equal(a, b) for a, b in zip(results["nonsaturating"][1], results["saturating"][1]))
    with pytest.raises(ValueError, match="g_loss"):
        toy_gan_step(G, D, opt_G, opt_D, x_real, z, g_loss="hinge")
    with pytest.raises(ValueError, match=r"x_real must have shape \(B, 2\)"):
        toy_gan_step(G, D, opt_G, opt_D, x_real[:, :1], z)


def _train(cfg: ToyGANConfig, steps: int, seed: int, data=_ring):
    G, D, opt_G, opt_D = _setup(cfg, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    logs = []
    for _ in range(steps):
        x_real = data(cfg.batch_size, generator)
        z = torch.randn(cfg.batch_size, cfg.z_dim, generator=generator)
        logs.append(toy_gan_step(G, D, opt_G, opt_D, x_real, z, cfg.g_loss))
    return G, D, logs


def test_two_seeded_runs_give_identical_weights():
    cfg = ToyGANConfig(z_dim=4, hidden_dim=32, depth=2, batch_size=64)
    G1, D1, logs1 = _train(cfg, 5, seed=7)
    G2, D2, logs2 = _train(cfg, 5, seed=7)
    assert logs1 == logs2
    for a, b in zip(list(G1.parameters()) + list(D1.parameters()), list(G2.parameters()) + list(D2.parameters())):
        assert torch.equal(a, b)


def test_generator_moves_to_a_single_mode():
    """Learning sanity: on one Gaussian at (1.5, -1), G's samples travel there from near the origin."""
    target = torch.tensor([1.5, -1.0])
    cfg = ToyGANConfig(z_dim=2, hidden_dim=32, depth=2, lr_g=2e-3, lr_d=2e-3, batch_size=128)

    def one_mode(n, generator):
        return target + 0.05 * torch.randn(n, 2, generator=generator)

    G0, _, _ = _train(cfg, 0, seed=0, data=one_mode)
    z = torch.randn(512, cfg.z_dim, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        start = (G0(z).mean(0) - target).norm().item()
    G, _, logs = _train(cfg, 300, seed=0, data=one_mode)
    with torch.no_grad():
        end = (G(z).mean(0) - target).norm().item()
    assert start > 1.0
    assert end < 0.25 * start
    assert all(math.isfinite(entry["d_loss"]) for entry in logs)


def test_smoke_run_of_the_default_config():
    _, _, logs = _train(dataclasses.replace(ToyGANConfig(), batch_size=128), 20, seed=0)
    assert all(math.isfinite(v) for entry in logs for v in entry.values())


# ---- mode coverage ---------------------------------------------------------------------------

def test_ring_centres():
    centres = ring_centres(8, 2.0)
    assert centres.shape == (8, 2) and centres.dtype == torch.float32
    torch.testing.assert_close(centres.norm(dim=1), torch.full((8,), 2.0))
    torch.testing.assert_close(centres[0], torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(centres[2], torch.tensor([0.0, 2.0]), atol=1e-6, rtol=0)


def test_mode_coverage_all_modes_exactly_at_centres():
    centres = ring_centres()
    samples = centres.repeat(50, 1)  # 400 samples, 50 per mode
    result = mode_coverage(samples, centres, std=0.02)
    assert isinstance(result, ModeCoverage)
    assert result.modes_covered == 8 and result.num_modes == 8
    assert result.high_quality_fraction == 1.0
    assert result.counts == [50] * 8


def test_mode_coverage_three_modes():
    centres = ring_centres()
    samples = centres[[0, 3, 5]].repeat(100, 1)
    result = mode_coverage(samples, centres, std=0.02)
    assert result.modes_covered == 3
    assert result.counts == [100, 0, 0, 100, 0, 100, 0, 0]


def test_mode_coverage_thresholds():
    centres = ring_centres()
    # 97 samples at mode 0, 1 sample 2.5 std from mode 1 (high quality), 2 samples far from every mode
    samples = torch.cat([
        centres[0].repeat(97, 1),
        (centres[1] + torch.tensor([0.05, 0.0]))[None],
        torch.zeros(2, 2),
    ])
    result = mode_coverage(samples, centres, std=0.02)
    assert result.high_quality_fraction == pytest.approx(0.98)
    assert result.counts[:2] == [97, 1]
    assert result.modes_covered == 2               # 1 of 100 samples reaches the 1% default
    assert mode_coverage(samples, centres, std=0.02, min_fraction=0.02).modes_covered == 1
    assert mode_coverage(samples, centres, std=0.02, threshold_std=2.0).counts[1] == 0
    assert mode_coverage(samples, centres, std=0.02, min_fraction=0.0).modes_covered == 2  # empty modes never count


def test_mode_coverage_input_checks():
    centres = ring_centres()
    with pytest.raises(ValueError, match=r"samples must have shape \(N, D\)"):
        mode_coverage(torch.zeros(5), centres, 0.02)
    with pytest.raises(ValueError, match=r"centres must have shape \(M, 3\)"):
        mode_coverage(torch.zeros(5, 3), centres, 0.02)
    with pytest.raises(ValueError, match="std"):
        mode_coverage(torch.zeros(5, 2), centres, 0.0)
