"""The same code paths on a CUDA device (skipped here: this machine has no GPU)."""

import pytest
import torch

from course_lib.device import get_device
from course_lib.toy_gan import ToyDiscriminator, ToyGANConfig, ToyGenerator, make_optimizers, toy_gan_step
from course_lib.training import TrainState, fit

pytestmark = pytest.mark.gpu


def test_auto_device_is_cuda():
    assert get_device().type == "cuda"


def test_toy_gan_trains_and_resumes_exactly_on_cuda(tmp_path):
    def run(steps, resume_from=None):
        torch.manual_seed(0)
        cfg = ToyGANConfig(hidden_dim=32, depth=2)
        G, D = ToyGenerator(cfg).cuda(), ToyDiscriminator(cfg).cuda()
        opt_G, opt_D = make_optimizers(G, D, cfg)
        gen = torch.Generator(device="cuda").manual_seed(1)
        state = TrainState(models={"G": G, "D": D}, optimizers={"G": opt_G, "D": opt_D}, generator=gen)
        if resume_from:
            state.load(resume_from)

        def step():
            x_real = torch.randn(64, 2, device="cuda", generator=gen)
            z = torch.randn(64, cfg.z_dim, device="cuda", generator=gen)
            return toy_gan_step(G, D, opt_G, opt_D, x_real, z)

        fit(state, step, steps, checkpoint_path=tmp_path / "ckpt.pt", show_progress=False)
        return state

    straight = run(20)
    run(10)
    resumed = run(20, resume_from=tmp_path / "ckpt.pt")
    assert resumed.history == straight.history
