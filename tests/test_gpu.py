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


def _stylegan_on_cuda(channels_last: bool):
    from course_lib.stylegan import Discriminator, Generator, StyleGANConfig
    from course_lib.stylegan_train import lazy_adam

    torch.manual_seed(0)
    cfg = StyleGANConfig(z_dim=16, w_dim=16, base_channels=8, max_channels=32)
    G, D = Generator(cfg).cuda(), Discriminator(cfg).cuda()
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_G = lazy_adam(G, 2e-3, (0.0, 0.99), fused=True)
    opt_D = lazy_adam(D, 2e-3, (0.0, 0.99), reg_every=2, fused=True)
    x = torch.rand(8, 1, 32, 32, device="cuda") * 2 - 1
    return G, D, opt_G, opt_D, x


@pytest.mark.parametrize("channels_last", [False, True])
def test_stylegan_step_runs_under_bf16_autocast_with_r1_in_fp32(channels_last):
    from course_lib.losses import r1_penalty
    from course_lib.stylegan_train import stylegan_step

    G, D, opt_G, opt_D, x = _stylegan_on_cuda(channels_last)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        assert D(x).dtype == torch.bfloat16           # autocast is really on for D's forward ...
        assert r1_penalty(D, x).dtype == torch.float32  # ... and off for R1
    gen = torch.Generator(device="cuda").manual_seed(0)
    for step in range(4):
        logs = stylegan_step(G, D, opt_G, opt_D, x, step=step, r1_every=2, r1_gamma=1.0, generator=gen,
                             amp=True, channels_last=channels_last)
        assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
        assert ("r1" in logs) == (step % 2 == 0)
    assert all(p.dtype == torch.float32 for p in G.parameters())  # autocast never changes the weights


def test_stylegan_step_with_compiled_networks_keeps_r1_outside_the_compiled_graph():
    from course_lib.stylegan_train import stylegan_step

    G, D, opt_G, opt_D, x = _stylegan_on_cuda(channels_last=True)
    synthesis_fast, D_fast = torch.compile(G.synthesis), torch.compile(D)
    gen = torch.Generator(device="cuda").manual_seed(0)
    for step in range(3):  # R1 (double backward) on steps 0 and 2 runs the plain D inside the wrapper
        logs = stylegan_step(G, D_fast, opt_G, opt_D, x, step=step, r1_every=2, r1_gamma=1.0, generator=gen,
                             amp=True, channels_last=True, synthesis=synthesis_fast)
    assert torch.isfinite(torch.tensor(logs["g_loss"]))


def test_stylegan_run_trains_on_cuda_with_the_cli_flags(tmp_path):
    from course_lib.train import default_config, train

    cfg = default_config("stylegan", steps=4, base_channels=4, max_channels=8, batch_size=8, eval_samples=0,
                         r1_every=2, amp=True, channels_last=True)
    result = train(cfg, tmp_path / "sg", device="cuda", show_progress=False)
    assert result["steps"] == 4 and result["device"].startswith("cuda")
