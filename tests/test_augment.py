"""DiffAugment translation: shapes, fill, exact shifts, gradients, and its use in gan_step."""

import pytest
import torch

from course_lib.augment import translate
from course_lib.gan import DCGANConfig, Discriminator, Generator
from course_lib.gan_steps import gan_step


def test_translate_shifts_each_image_and_fills_with_background():
    x = torch.rand(16, 2, 8, 8)
    y = translate(x, max_shift=2, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    for i in range(len(x)):  # every output is one of the 25 shifts of its input
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2), value=-1.0)
                candidate = padded[:, 2 - dy:10 - dy, 2 - dx:10 - dx]
                found |= torch.equal(candidate, y[i])
        assert found, i
    assert torch.equal(translate(x, 0), x)


def test_translate_is_differentiable_and_seeded():
    x = torch.rand(4, 1, 6, 6, requires_grad=True)
    translate(x, 1, generator=torch.Generator().manual_seed(3)).sum().backward()
    assert x.grad is not None and x.grad.sum() > 0
    a = translate(x.detach(), 1, generator=torch.Generator().manual_seed(3))
    b = translate(x.detach(), 1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="max_shift"):
        translate(x, -1)
    with pytest.raises(ValueError, match="x must be"):
        translate(torch.rand(3, 4), 1)


def test_gan_step_applies_the_augmentation_to_everything_d_sees():
    torch.manual_seed(0)
    cfg = DCGANConfig(base_channels=4, z_dim=8)
    G, D = Generator(cfg), Discriminator(cfg)
    seen = []

    def augment(t):
        seen.append(t.requires_grad)
        return translate(t, 1, generator=torch.Generator().manual_seed(len(seen)))

    opt_G, opt_D = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    logs = gan_step(G, D, opt_G, opt_D, torch.rand(4, 1, 32, 32) * 2 - 1, augment=augment)
    assert len(seen) == 3, "real and fake in the D step, fake in the G step"
    assert seen[2], "the G step's fakes keep their graph, so G learns through the augmentation"
    assert all(map(lambda v: v == v, logs.values()))
