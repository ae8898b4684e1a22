"""course_lib.cyclegan: generator shapes, the pair's directions, the LSGAN, cycle and identity
losses on analytic cases, the image history pool's statistics and bookkeeping, and the training
step (a manual reference, the cycle loss falling on a fixed pair of batches, determinism).
Tiny seeded CPU models (base_channels 8, one residual block, 16x16 images)."""

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn

from course_lib.cyclegan import (
    CycleGAN,
    CycleGANConfig,
    ImagePool,
    ResidualBlock,
    ResnetGenerator,
    cycle_loss,
    cyclegan_step,
    discriminators,
    identity_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    up_stage,
)
from course_lib.pix2pix import PatchDiscriminator, init_weights_, patch_output_size

TINY = CycleGANConfig(img_size=16, base_channels=8, n_blocks=1, d_base_channels=8, d_layers=1)
SHAPE = (1, 16, 16)


def _images(seed: int, n: int = 4, shape=SHAPE) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _setup(cfg: CycleGANConfig = TINY, seed: int = 0, lr: float = 2e-3, pool_size: int = 8):
    torch.manual_seed(seed)
    pair = init_weights_(CycleGAN(cfg))
    D_A, D_B = (init_weights_(d) for d in discriminators(cfg))
    opt_G = torch.optim.Adam(pair.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(list(D_A.parameters()) + list(D_B.parameters()), lr=lr, betas=(0.5, 0.999))
    shape = (cfg.img_channels, cfg.img_size, cfg.img_size)
    return pair, D_A, D_B, opt_G, opt_D, ImagePool(pool_size, shape), ImagePool(pool_size, shape)


def _state(*modules: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for m in modules for t in m.state_dict().values()]


# ---- generators ------------------------------------------------------------------------------

@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize("n_down", [1, 2])
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_generator_shapes(upsample, n_down, channels):
    cfg = dataclasses.replace(TINY, upsample=upsample, n_down=n_down, img_channels=channels, n_blocks=2)
    torch.manual_seed(0)
    G = ResnetGenerator(cfg)
    sizes = []
    for block in (m for m in G.net if isinstance(m, ResidualBlock)):
        block.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape)))
    out = G(_images(1, 2, (channels, 16, 16)))
    assert out.shape == (2, channels, 16, 16) and out.abs().max() <= 1.0
    s = 16 // 2 ** n_down
    assert sizes == [(2, 8 * 2 ** n_down, s, s)] * 2  # residual blocks at 1 / 2^n_down resolution, width W 2^n_down
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == (n_down if upsample == "transpose" else 0)
    assert sum(isinstance(m, nn.Upsample) for m in G.modules()) == (n_down if upsample == "resize" else 0)


def test_n_down_zero_and_wrong_inputs():
    G = ResnetGenerator(dataclasses.replace(TINY, n_down=0))
    assert G(_images(0, 1)).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, 1, 16, 16\).*\(1, 3, 16, 16\)"):
        G(_images(0, 1, (3, 16, 16)))


def test_residual_block_and_up_stage():
    block = ResidualBlock(4, "instance")
    nn.init.zeros_(block.body[-1].weight)  # the last norm's gain 0: the body outputs 0, the block is the identity
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), x)
    for mode in ("transpose", "resize"):
        assert up_stage(8, 4, mode, "instance")(torch.randn(2, 8, 5, 5)).shape == (2, 4, 10, 10)


def test_cyclegan_directions_and_bad_direction():
    torch.manual_seed(0)
    pair = CycleGAN(TINY)
    assert pair.G_AB is not pair.G_BA
    x = _images(1)
    assert torch.equal(pair(x, "AB"), pair.G_AB(x)) and torch.equal(pair(x), pair.G_AB(x))  # AB by default
    assert torch.equal(pair(x, "BA"), pair.G_BA(x))
    assert not torch.equal(pair(x, "AB"), pair(x, "BA"))  # two different networks
    for bad in ("ab", "AA", None):
        with pytest.raises(ValueError, match="direction must be 'AB' or 'BA'"):
            pair(x, bad)


def test_discriminators_are_two_unconditional_patchgans():
    D_A, D_B = discriminators(TINY)
    assert isinstance(D_A, PatchDiscriminator) and D_A is not D_B
    assert D_A.in_channels == TINY.img_channels and D_A.d_layers == TINY.d_layers
    assert D_A(_images(0)).shape == (4, 1, patch_output_size(16, 1), patch_output_size(16, 1))
    assert any(isinstance(m, nn.InstanceNorm2d) for m in D_A.modules())
    assert discriminators(CycleGANConfig())[0].receptive_field == 34  # d_layers 2: a whole 32x32 digit


@pytest.mark.parametrize("field, value", [
    ("img_channels", 0), ("img_size", 0), ("base_channels", True), ("n_blocks", 0), ("d_base_channels", -2),
    ("n_down", -1), ("upsample", "bilinear"), ("norm", "group"), ("d_layers", 6),
])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        CycleGANConfig(**{field: value})


def test_img_size_must_be_divisible_by_two_to_the_n_down():
    with pytest.raises(ValueError, match="n_down.*got n_down=3, img_size=20"):
        CycleGANConfig(img_size=20, n_down=3)
    assert CycleGANConfig(img_size=20, n_down=2).img_size == 20


# ---- losses ----------------------------------------------------------------------------------

def test_lsgan_losses_analytic_values():
    ones, zeros = torch.ones(3, 1, 4, 4), torch.zeros(3, 1, 4, 4)
    assert lsgan_d_loss(ones, zeros).item() == 0.0  # a perfect D: real scored 1, fake 0
    assert lsgan_d_loss(zeros, ones).item() == pytest.approx(1.0)  # 0.5 * (1 + 1)
    assert lsgan_d_loss(ones * 0.5, zeros + 0.5).item() == pytest.approx(0.25)  # 0.5 * (0.25 + 0.25)
    assert lsgan_g_loss(zeros).item() == pytest.approx(1.0)  # fakes scored 0: (0 - 1)^2
    assert lsgan_g_loss(ones).item() == 0.0
    scores = torch.tensor([[0.0, 2.0], [3.0, -1.0]])  # any shape; mean of (s - 1)^2 = (1 + 1 + 4 + 4) / 4
    assert lsgan_g_loss(scores).item() == pytest.approx(2.5)
    assert lsgan_g_loss(torch.full((5,), 1.5)).item() == pytest.approx(0.25)  # still pushed: not saturating


def test_cycle_loss_counts_both_directions_symmetrically():
    a, b = _images(0), _images(1)
    assert cycle_loss(a, a.clone(), b, b.clone()).item() == 0.0  # perfect reconstructions
    assert cycle_loss(a, a + 0.1, b, b).item() == pytest.approx(0.1, rel=1e-5)
    assert cycle_loss(a, a, b, b - 0.2).item() == pytest.approx(0.2, rel=1e-5)
    assert cycle_loss(a, a + 0.1, b, b - 0.2).item() == pytest.approx(0.3, rel=1e-5)
    rec_a, rec_b = _images(2), _images(3)
    torch.testing.assert_close(cycle_loss(a, rec_a, b, rec_b), cycle_loss(b, rec_b, a, rec_a))  # A and B swapped
    torch.testing.assert_close(cycle_loss(a, rec_a, b, rec_b),
                               (rec_a - a).abs().mean() + (rec_b - b).abs().mean())
    with pytest.raises(ValueError, match=r"x_b and x_b_rec.*same shape"):
        cycle_loss(a, rec_a, b, rec_b[:2])
    with pytest.raises(ValueError, match=r"x_a and x_a_rec.*same shape"):
        cycle_loss(a, rec_a[:, :, :8], b, rec_b)


class Recorder(nn.Module):
    """An identity or constant 'generator' that records what it was given."""

    def __init__(self, constant: float | None = None) -> None:
        super().__init__()
        self.constant, self.inputs = constant, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        return x if self.constant is None else torch.full_like(x, self.constant)


def test_identity_loss_feeds_each_generator_its_output_domain():
    x_a, x_b = torch.full((2, *SHAPE), 0.2), torch.full((2, *SHAPE), -0.6)
    G_AB, G_BA = Recorder(), Recorder(constant=0.0)  # G_AB the identity, G_BA a constant
    loss = identity_loss(G_AB, G_BA, x_a, x_b)
    # mean|G_AB(x_b) - x_b| + mean|G_BA(x_a) - x_a| = 0 + |0 - 0.2|; the swapped version would give 0.6
    assert loss.item() == pytest.approx(0.2, rel=1e-6)
    assert [t is x_b for t in G_AB.inputs] == [True] and [t is x_a for t in G_BA.inputs] == [True]
    G_AB, G_BA = Recorder(constant=0.0), Recorder()
    assert identity_loss(G_AB, G_BA, x_a, x_b).item() == pytest.approx(0.6, rel=1e-6)
    assert identity_loss(Recorder(), Recorder(), x_a, x_b).item() == 0.0  # both identities: nothing to pay


# ---- the image pool --------------------------------------------------------------------------

def _ids(n: int, start: int) -> torch.Tensor:
    """Images whose every pixel holds their id: (n, 1, 2, 2) with values start, start + 1, ..."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def _read(images: torch.Tensor) -> list[int]:
    assert torch.all(images == images[:, :1, :1, :1])  # each image is still one uniform id
    return images[:, 0, 0, 0].long().tolist()


def test_pool_returns_the_input_while_filling():
    pool = ImagePool(10, (1, 2, 2))
    g = torch.Generator().manual_seed(0)
    for start in (0, 4):
        batch = _ids(4, start)
        assert torch.equal(pool(batch, g), batch)
    assert int(pool.count) == 8 and _read(pool.images[:8]) == list(range(8))
    out = _read(pool(_ids(4, 8), g))  # two slots left: ids 8 and 9 are stored and returned unchanged
    assert out[:2] == [8, 9] and int(pool.count) == 10
    # ids 10 and 11 arrive at a full pool: each kept or swapped with a stored image, none lost
    assert sorted(out[2:] + _read(pool.images)) == list(range(12))


def test_pool_statistics_and_bookkeeping_once_full():
    """Over many batches about half the returned images are old ones; every old image returned
    was in the pool; nothing is lost or duplicated: what goes out plus what stays is what was in
    the pool plus the new batch; the images swapped within one batch are distinct."""
    capacity, batch, batches = 16, 8, 300
    pool = ImagePool(capacity, (1, 2, 2))
    g = torch.Generator().manual_seed(0)
    pool(_ids(capacity, 0), g)  # fill it
    next_id, from_history = capacity, 0
    for _ in range(batches):
        before = _read(pool.images)
        new = _ids(batch, next_id)
        out = _read(pool(new, g))
        after = _read(pool.images)
        old = [i for i in out if i < next_id]
        assert set(old) <= set(before) and len(set(old)) == len(old)  # stored earlier, distinct slots
        assert sorted(out + after) == sorted(before + list(range(next_id, next_id + batch)))
        kept = [i for i in out if i >= next_id]
        assert kept == sorted(kept)  # a new image returned as it is stays at its row
        from_history += len(old)
        next_id += batch
    n = batches * batch
    assert abs(from_history - n / 2) < 5 * math.sqrt(n / 4), from_history  # Binomial(2400, 1/2): 5 sigma
    assert int(pool.count) == capacity


def test_pool_rows_keep_their_positions():
    """A row either keeps its new image or gets an old one; new images never move to other rows."""
    pool = ImagePool(4, (1, 2, 2))
    g = torch.Generator().manual_seed(1)
    pool(_ids(4, 0), g)
    for step in range(20):
        start = 100 * (step + 1)
        out = _read(pool(_ids(6, start), g))
        for row, value in enumerate(out):
            assert value == start + row or value < start


def test_pool_storage_is_not_aliased():
    pool = ImagePool(4, (1, 2, 2))
    g = torch.Generator().manual_seed(0)
    fakes = _ids(4, 0)
    out = pool(fakes, g)
    out.fill_(-7)
    fakes.fill_(-8)
    assert _read(pool.images) == [0, 1, 2, 3]
    for start in (10, 20, 30):  # full: the returned old images are copies
        fakes = _ids(4, start)
        out = pool(fakes, g)
        stored = pool.images.clone()
        out.fill_(-7)
        fakes.fill_(-8)
        assert torch.equal(pool.images, stored)


def test_pool_detaches_and_capacity_zero_returns_the_input():
    fakes = torch.randn(3, 1, 2, 2, requires_grad=True)
    off = ImagePool(0, (1, 2, 2))
    out = off(fakes)
    assert torch.equal(out, fakes) and not out.requires_grad
    assert off.images.shape == (0, 1, 2, 2)
    on = ImagePool(2, (1, 2, 2))
    assert not on(fakes * 2).requires_grad


def test_pool_handles_a_batch_larger_than_its_capacity():
    pool = ImagePool(3, (1, 2, 2))
    g = torch.Generator().manual_seed(0)
    out = _read(pool(_ids(20, 0), g))  # fills with 0, 1, 2, then swaps among those
    assert len(out) == 20 and out[:3] == [0, 1, 2] and int(pool.count) == 3
    for start in (100, 200, 300):
        before = _read(pool.images)
        out = _read(pool(_ids(20, start), g))
        old = [i for i in out if i < start]
        assert len(old) <= 3 and len(set(old)) == len(old) and set(old) <= set(before)
        assert sorted(out + _read(pool.images)) == sorted(before + list(range(start, start + 20)))


def test_pool_state_dict_round_trip_reproduces_the_next_outputs():
    pool = ImagePool(6, (1, 2, 2))
    g = torch.Generator().manual_seed(3)
    for start in (0, 4, 8):
        pool(_ids(4, start), g)
    copy_ = ImagePool(6, (1, 2, 2))
    copy_.load_state_dict(pool.state_dict())
    assert int(copy_.count) == 6 and torch.equal(copy_.images, pool.images)
    state = g.get_state()
    first = [pool(_ids(4, s), g) for s in (20, 30)]
    g2 = torch.Generator()
    g2.set_state(state)
    second = [copy_(_ids(4, s), g2) for s in (20, 30)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.equal(pool.images, copy_.images)
    assert set(pool.state_dict()) == {"images", "count"}


def test_pool_input_checks():
    with pytest.raises(ValueError, match="capacity"):
        ImagePool(-1, (1, 2, 2))
    with pytest.raises(ValueError, match="image_shape"):
        ImagePool(2, (2, 2))
    with pytest.raises(ValueError, match=r"fakes must have shape \(B, 1, 2, 2\).*\(3, 1, 4, 4\)"):
        ImagePool(2, (1, 2, 2))(torch.zeros(3, 1, 4, 4))


# ---- the training step -----------------------------------------------------------------------

def test_cyclegan_step_matches_a_manual_step():
    """G first (both generators, Ds frozen), then both Ds on real images and the pooled new fakes."""
    pair, D_A, D_B, opt_G, opt_D, pool_a, pool_b = _setup(seed=1)
    ref = copy.deepcopy((pair, D_A, D_B))
    pair_r, D_A_r, D_B_r = ref
    opt_G_r = torch.optim.Adam(pair_r.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_D_r = torch.optim.Adam(list(D_A_r.parameters()) + list(D_B_r.parameters()), lr=2e-3, betas=(0.5, 0.999))
    x_a, x_b = _images(2), _images(3)
    logs = cyclegan_step(pair.G_AB, pair.G_BA, D_A, D_B, opt_G, opt_D, x_a, x_b, pool_a, pool_b,
                         lambda_cycle=7.0, lambda_identity=0.3, generator=torch.Generator().manual_seed(0))

    fake_b, fake_a = pair_r.G_AB(x_a), pair_r.G_BA(x_b)
    gan = ((D_B_r(fake_b) - 1) ** 2).mean() + ((D_A_r(fake_a) - 1) ** 2).mean()
    cyc = (pair_r.G_BA(fake_b) - x_a).abs().mean() + (pair_r.G_AB(fake_a) - x_b).abs().mean()
    idt = (pair_r.G_AB(x_b) - x_b).abs().mean() + (pair_r.G_BA(x_a) - x_a).abs().mean()
    loss_G = gan + 7.0 * cyc + 0.3 * 7.0 * idt
    opt_G_r.zero_grad()
    loss_G.backward()
    opt_G_r.step()
    opt_D_r.zero_grad()  # the library freezes the Ds during G's update; here their gradients are dropped
    # the pools are filling (capacity 8 >= 4): D sees exactly the fakes made before G's update
    d_a = 0.5 * ((D_A_r(x_a) - 1) ** 2).mean() + 0.5 * (D_A_r(fake_a.detach()) ** 2).mean()
    d_b = 0.5 * ((D_B_r(x_b) - 1) ** 2).mean() + 0.5 * (D_B_r(fake_b.detach()) ** 2).mean()
    (d_a + d_b).backward()
    opt_D_r.step()

    expected = {"g_loss": loss_G, "g_gan": gan, "cycle": cyc, "identity": idt,
                "d_loss": d_a + d_b, "d_a": d_a, "d_b": d_b}
    assert set(logs) == set(expected)
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value.item(), rel=1e-5), key
    for a, b in zip(_state(pair, D_A, D_B), _state(pair_r, D_A_r, D_B_r)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert torch.equal(pool_a.images[:4], fake_a.detach()) and torch.equal(pool_b.images[:4], fake_b.detach())
    assert all(p.requires_grad for d in (D_A, D_B) for p in d.parameters())  # unfrozen afterwards


def test_identity_weight_zero_skips_the_identity_loss():
    pair, D_A, D_B, opt_G, opt_D, pool_a, pool_b = _setup(seed=2)
    calls = []
    pair.G_AB.register_forward_pre_hook(lambda m, inputs: calls.append("AB"))
    logs = cyclegan_step(pair.G_AB, pair.G_BA, D_A, D_B, opt_G, opt_D, _images(1), _images(2), pool_a, pool_b,
                         lambda_identity=0.0, generator=torch.Generator().manual_seed(0))
    assert logs["identity"] == 0.0 and len(calls) == 2  # G_AB(a) and G_AB(G_BA(b)), not G_AB(b)
    with pytest.raises(ValueError, match="same image shape"):
        cyclegan_step(pair.G_AB, pair.G_BA, D_A, D_B, opt_G, opt_D, _images(1), _images(2, 4, (1, 8, 8)),
                      pool_a, pool_b)


def test_cyclegan_step_reduces_the_cycle_loss_on_fixed_batches():
    pair, D_A, D_B, opt_G, opt_D, pool_a, pool_b = _setup(seed=0)
    x_a, x_b = _images(1), _images(2)
    g = torch.Generator().manual_seed(3)
    cycle = [cyclegan_step(pair.G_AB, pair.G_BA, D_A, D_B, opt_G, opt_D, x_a, x_b, pool_a, pool_b,
                           generator=g)["cycle"] for _ in range(30)]
    assert cycle[0] > 0.8
    assert cycle[-1] < 0.5 * cycle[0], cycle[::5]
    assert int(pool_a.count) == int(pool_b.count) == 8  # the pools filled up


