"""Graded checks of lessons 02, 04 and 05, and the libraries behind them (latent, lipschitz).

As in test_checks.py: the library reference and a learner-style solution pass every check, an
unattempted stub is "not attempted", and a bank of classic mistakes is caught, each with its own
message. The ``solution_*`` functions below are what a learner should write; they are the code
of the solution notebooks' exercise cells.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from course_lib import gan, latent, lipschitz, losses
from course_lib.checks import MIME, CheckResult, lesson02, lesson04, lesson05
from course_lib.gan_steps import gan_step


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise x: replace this line with your code")


# ==============================================================================================
# Solutions: what a learner writes in each exercise cell
# ==============================================================================================

# ----- lesson 02 -----

def solution_up_block(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),  # 2x H and W
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def solution_dcgan_init_(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def solution_d_step(G, D, opt_D, x_real, z) -> float:
    x_fake = G(z).detach()                                # no gradient into G
    loss = losses.d_loss_bce(D(x_real), D(x_fake))
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


def solution_slerp(z0, z1, t):
    cos = (z0 * z1).sum(dim=-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos.clamp(-1, 1))               # (B, 1), one angle per row
    sin_omega = torch.sin(omega)
    arc = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / sin_omega
    line = (1 - t) * z0 + t * z1
    return torch.where(sin_omega.abs() < 1e-6, line, arc)


# ----- lesson 04 -----

def solution_conditional_batch_norm(h, e, bn, gain, bias):
    scale = 1 + gain(e)[:, :, None, None]                 # (B, C, 1, 1)
    return bn(h) * scale + bias(e)[:, :, None, None]


def solution_one_hot_maps(labels, num_classes, size):
    maps = F.one_hot(labels, num_classes).float()        # (B, K)
    return maps[:, :, None, None].expand(-1, -1, size, size)


def solution_projection_logits(h, labels, head, embed):
    return head(h)[:, 0] + (embed(labels) * h).sum(dim=1)


def solution_conditional_d_loss(G, D, x_real, labels, z):
    x_fake = G(z, labels).detach()
    return losses.d_loss_bce(D(x_real, labels), D(x_fake, labels))


# ----- lesson 05 -----

def solution_critic_loss(real_scores, fake_scores):
    return fake_scores.mean() - real_scores.mean()


def solution_gradient_penalty(critic, x_real, x_fake, eps):
    x_hat = (eps * x_real + (1 - eps) * x_fake).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)               # (B,): one norm per sample
    return ((norms - 1) ** 2).mean()


def solution_clip_weights_(module, c):
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)
    return module


def solution_power_iteration(weight, u, n_iters):
    W = weight.reshape(weight.shape[0], -1)              # (out, in * kh * kw)
    for _ in range(n_iters):
        v = F.normalize(W.T @ u, dim=0)
        u = F.normalize(W @ v, dim=0)
    return u @ W @ v, u, v


def solution_hinge_d_loss(real_scores, fake_scores):
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


# ==============================================================================================
# References and solutions pass; stubs are "not attempted"
# ==============================================================================================

REFERENCES = [
    (lesson02.check_up_block, gan.up_block),
    (lesson02.check_up_block, solution_up_block),
    (lesson02.check_dcgan_init, gan.dcgan_init_),
    (lesson02.check_dcgan_init, solution_dcgan_init_),
    (lesson02.check_d_step, lesson02.reference_d_step),
    (lesson02.check_d_step, solution_d_step),
    (lesson02.check_slerp, latent.slerp),
    (lesson02.check_slerp, solution_slerp),
    (lesson04.check_conditional_batch_norm, lesson04.reference_conditional_batch_norm),
    (lesson04.check_conditional_batch_norm, solution_conditional_batch_norm),
    (lesson04.check_one_hot_maps, lesson04.reference_one_hot_maps),
    (lesson04.check_one_hot_maps, solution_one_hot_maps),
    (lesson04.check_projection_logits, lesson04.reference_projection_logits),
    (lesson04.check_projection_logits, solution_projection_logits),
    (lesson04.check_conditional_d_loss, lesson04.reference_conditional_d_loss),
    (lesson04.check_conditional_d_loss, solution_conditional_d_loss),
    (lesson05.check_critic_loss, losses.d_loss_wasserstein),
    (lesson05.check_critic_loss, solution_critic_loss),
    (lesson05.check_gradient_penalty, lesson05.reference_gradient_penalty),
    (lesson05.check_gradient_penalty, solution_gradient_penalty),
    (lesson05.check_clip_weights, lipschitz.clip_weights_),
    (lesson05.check_clip_weights, solution_clip_weights_),
    (lesson05.check_power_iteration, lipschitz.power_iteration),
    (lesson05.check_power_iteration, solution_power_iteration),
    (lesson05.check_hinge_d_loss, losses.d_loss_hinge),
    (lesson05.check_hinge_d_loss, solution_hinge_d_loss),
]


@pytest.mark.parametrize("check, reference", REFERENCES,
                         ids=[f"{c.__name__}-{getattr(r, '__name__', 'ref')}" for c, r in REFERENCES])
def test_reference_passes_and_stub_is_not_attempted(check, reference):
    result = check(reference)
    assert result.status == "passed", result.message
    assert check(stub).status == "not_attempted"
    bundle = result._repr_mimebundle_()
    assert bundle[MIME]["status"] == "passed" and "PASSED" in bundle["text/plain"]


def test_every_lesson_lists_its_checks_in_order():
    assert [c.exercise_id for c in lesson02.EXERCISES] == [f"02.{i}" for i in range(1, 5)]
    assert [c.exercise_id for c in lesson04.EXERCISES] == [f"04.{i}" for i in range(1, 5)]
    assert [c.exercise_id for c in lesson05.EXERCISES] == [f"05.{i}" for i in range(1, 6)]


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for check, solution in REFERENCES[1::2]:   # every check once, with the learner-style solution
        assert check(solution).passed
    assert torch.equal(torch.rand(3), expected)


# ----- the reference implementations written in the check modules agree with the library -----

def test_reference_gradient_penalty_equals_the_library_for_the_same_eps():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 1))
    x_real, x_fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    eps = torch.rand(3, 1, 1, 1, generator=torch.Generator().manual_seed(9))
    library = losses.gradient_penalty(critic, x_real, x_fake, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(lesson05.reference_gradient_penalty(critic, x_real, x_fake, eps), library, atol=1e-6)


def test_reference_d_steps_match_gan_step():
    z_gen = torch.Generator().manual_seed(5)
    for cfg, labels in ((gan.DCGANConfig(z_dim=8, base_channels=2), None),
                        (gan.DCGANConfig(z_dim=8, base_channels=2, num_classes=3), torch.tensor([0, 2, 1]))):
        torch.manual_seed(0)
        G, D = gan.Generator(cfg), gan.Discriminator(cfg)
        x_real = torch.rand(3, 1, 32, 32) * 2 - 1
        z = gan.sample_z(3, cfg.z_dim, generator=torch.Generator().manual_seed(5))
        G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
        opt = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)  # noqa: E731
        logs = gan_step(G2, D2, opt(G2), opt(D2), x_real, labels, generator=z_gen.manual_seed(5))
        if labels is None:
            d_loss = lesson02.reference_d_step(G, D, opt(D), x_real, z)
        else:
            d_loss = lesson04.reference_conditional_d_loss(G, D, x_real, labels, z).item()
        assert abs(d_loss - logs["d_loss"]) < 1e-5


def test_conditioning_references_match_the_library_models():
    torch.manual_seed(0)
    z, labels = torch.randn(3, 8), torch.tensor([0, 2, 1])
    G = gan.Generator(gan.DCGANConfig(z_dim=8, base_channels=2, num_classes=3, embed_dim=4))
    cbn = G.blocks[0]
    assert isinstance(cbn, gan.ConditionalBatchNorm2d)
    torch.nn.init.normal_(cbn.gain.weight)  # trained-looking maps, so that the labels matter
    torch.nn.init.normal_(cbn.bias.weight)
    features, e = G.project(z).view(3, 8, 4, 4), G.embed(labels)
    assert torch.allclose(lesson04.reference_conditional_batch_norm(features, e, cbn.bn, cbn.gain, cbn.bias),
                          cbn(features, e), atol=1e-6)

    x = torch.rand(3, 1, 32, 32) * 2 - 1
    D = gan.Discriminator(gan.DCGANConfig(base_channels=2, num_classes=3, conditioning="concat")).eval()
    stacked = torch.cat([x, lesson04.reference_one_hot_maps(labels, 3, 32)], dim=1)
    assert torch.allclose(D.head(D.blocks(stacked))[:, 0], D(x, labels), atol=1e-6)

    D = gan.Discriminator(gan.DCGANConfig(base_channels=2, num_classes=3)).eval()
    logits = lesson04.reference_projection_logits(D.blocks(x), labels, D.head, D.embed)
    assert torch.allclose(logits, D(x, labels), atol=1e-6)


# ==============================================================================================
# The bank of classic mistakes
# ==============================================================================================

# ----- 02.1 up_block -----

def halving_block(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 4, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


def kernel3_block(i, o):
    return nn.Sequential(nn.ConvTranspose2d(i, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


def kernel3_output_padding_block(i, o):
    return nn.Sequential(nn.ConvTranspose2d(i, o, 3, 2, 1, output_padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


def stride1_block(i, o):
    return nn.Sequential(nn.ConvTranspose2d(i, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


def bias_block(i, o):
    return nn.Sequential(nn.ConvTranspose2d(i, o, 4, 2, 1), nn.BatchNorm2d(o), nn.ReLU())


def no_bn_block(i, o):
    return nn.Sequential(nn.ConvTranspose2d(i, o, 4, 2, 1, bias=False), nn.ReLU())


def leaky_block(i, o):
    return nn.Sequential(nn.ConvTranspose2d(i, o, 4, 2, 1, bias=False), nn.BatchNorm2d(o), nn.LeakyReLU(0.2))


def relu_before_bn_block(i, o):
    return nn.Sequential(nn.ConvTranspose2d(i, o, 4, 2, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(o))


# ----- 02.2 dcgan_init_ -----

def _init(module, std=0.02, bn=(1.0, 0.02), kinds=(nn.Conv2d, nn.ConvTranspose2d, nn.Linear), children=False, ret=True):
    for m in (module.children() if children else module.modules()):
        if isinstance(m, kinds):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and bn is not None:
            nn.init.normal_(m.weight, *bn) if bn[1] else nn.init.constant_(m.weight, bn[0])
            nn.init.zeros_(m.bias)
    return module if ret else None


def std_02_init(m):
    return _init(m, std=0.2)


def std_1_init(m):
    return _init(m, std=1.0)


def bn_zero_init(m):
    return _init(m, bn=(0.0, 0.0))


def bn_like_conv_init(m):
    return _init(m, bn=(0.0, 0.02))


def skips_conv_transpose_init(m):
    return _init(m, kinds=(nn.Conv2d, nn.Linear))


def children_only_init(m):
    return _init(m, children=True)


def no_return_init(m):
    _init(m, ret=False)


# ----- 02.3 d_step -----

def no_detach_d_step(G, D, opt_D, x_real, z):
    loss = losses.d_loss_bce(D(x_real), D(G(z)))
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


def no_zero_grad_d_step(G, D, opt_D, x_real, z):
    loss = losses.d_loss_bce(D(x_real), D(G(z).detach()))
    loss.backward()
    opt_D.step()
    return loss.item()


def swapped_d_step(G, D, opt_D, x_real, z):
    loss = losses.d_loss_bce(D(G(z).detach()), D(x_real))
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


def tensor_d_step(G, D, opt_D, x_real, z):
    loss = losses.d_loss_bce(D(x_real), D(G(z).detach()))
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss


def also_updates_G_d_step(G, D, opt_D, x_real, z):
    loss = solution_d_step(G, D, opt_D, x_real, z)
    opt_G = torch.optim.SGD(G.parameters(), lr=0.1)
    opt_G.zero_grad()
    losses.g_loss_nonsaturating(D(G(z))).backward()
    opt_G.step()
    return loss


def one_batch_d_step(G, D, opt_D, x_real, z):
    logits = D(torch.cat([x_real, G(z).detach()]))
    loss = losses.d_loss_bce(logits[: len(x_real)], logits[len(x_real):])
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


def averaged_d_step(G, D, opt_D, x_real, z):
    loss = losses.d_loss_bce(D(x_real), D(G(z).detach())) / 2
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


# ----- 02.4 slerp -----

def lerp_slerp(z0, z1, t):
    return (1 - t) * z0 + t * z1


def unnormalised_slerp(z0, z1, t):
    omega = torch.arccos((z0 * z1).sum(-1, keepdim=True).clamp(-1, 1))
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def swapped_weights_slerp(z0, z1, t):
    return solution_slerp(z0, z1, 1 - t)


def nan_for_identical_slerp(z0, z1, t):
    cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos.clamp(-1, 1))
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _sigmoid_bce(real_logits, fake_logits):
    p_real, p_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
    return F.binary_cross_entropy(p_real, torch.ones_like(p_real)) + F.binary_cross_entropy(p_fake, torch.zeros_like(p_fake))


def sigmoid_bce_d_step(G, D, opt_D, x_real, z):
    loss = _sigmoid_bce(D(x_real), D(G(z).detach()))
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


def sigmoid_bce_conditional_d_loss(G, D, x_real, labels, z):
    return _sigmoid_bce(D(x_real, labels), D(G(z, labels).detach(), labels))


def unclamped_slerp(z0, z1, t):
    cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos)                              # no clamp: NaN where round-off gives cos > 1
    sin = torch.sin(omega)
    arc = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / sin
    return torch.where(sin.abs() < 1e-6, (1 - t) * z0 + t * z1, arc)


def eval_mode_d_step(G, D, opt_D, x_real, z):
    G.eval()
    with torch.no_grad():
        x_fake = G(z)
    G.train()
    loss = losses.d_loss_bce(D(x_real), D(x_fake))
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


def one_angle_slerp(z0, z1, t):
    omega = torch.arccos(((z0 * z1).sum() / (z0.norm() * z1.norm())).clamp(-1, 1))
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


# ----- 04.1 to 04.4 conditioning -----

def gain_without_one_cbn(h, e, bn, gain, bias):
    return bn(h) * gain(e)[:, :, None, None] + bias(e)[:, :, None, None]


def width_axis_cbn(h, e, bn, gain, bias):
    return bn(h) * (1 + gain(e)[:, None, None, :]) + bias(e)[:, None, None, :]


def scale_before_norm_cbn(h, e, bn, gain, bias):
    return bn(h * (1 + gain(e)[:, :, None, None]) + bias(e)[:, :, None, None])


def swapped_maps_cbn(h, e, bn, gain, bias):
    return bn(h) * (1 + bias(e)[:, :, None, None]) + gain(e)[:, :, None, None]


def unnormalised_cbn(h, e, bn, gain, bias):
    return h * (1 + gain(e)[:, :, None, None]) + bias(e)[:, :, None, None]


def detached_cbn(h, e, bn, gain, bias):
    with torch.no_grad():
        return bn(h) * (1 + gain(e)[:, :, None, None]) + bias(e)[:, :, None, None]


def first_sample_cbn(h, e, bn, gain, bias):
    return bn(h) * (1 + gain(e[:1])[:, :, None, None]) + bias(e[:1])[:, :, None, None]


def unexpanded_maps(labels, num_classes, size):
    return F.one_hot(labels, num_classes).float()


def single_pixel_maps(labels, num_classes, size):
    return F.one_hot(labels, num_classes).float()[:, :, None, None]


def integer_maps(labels, num_classes, size):
    return F.one_hot(labels, num_classes)[:, :, None, None].expand(-1, -1, size, size)


def channels_last_maps(labels, num_classes, size):
    return F.one_hot(labels, num_classes).float()[:, None, None, :].expand(-1, size, size, -1)


def no_num_classes_maps(labels, num_classes, size):
    return F.one_hot(labels).float()[:, :, None, None].expand(-1, -1, size, size)


def biasless_head_logits(h, labels, head, embed):
    return (h @ head.weight.T)[:, 0] + (embed(labels) * h).sum(dim=1)


def averaged_conditional_d_loss(G, D, x_real, labels, z):
    return solution_conditional_d_loss(G, D, x_real, labels, z) / 2


def projection_only_logits(h, labels, head, embed):
    return (embed(labels) * h).sum(dim=1)


def batch_summed_projection_logits(h, labels, head, embed):
    return head(h)[:, 0] + (embed(labels) * h).sum()


def dim0_projection_logits(h, labels, head, embed):
    return head(h)[:, 0] + (embed(labels) * h).sum(dim=0)


def broadcast_projection_logits(h, labels, head, embed):
    return head(h) + (embed(labels) * h).sum(dim=1)      # (B, 1) + (B,) -> (B, B)


def keepdim_projection_logits(h, labels, head, embed):
    return head(h) + (embed(labels) * h).sum(dim=1, keepdim=True)


def one_hot_projection_logits(h, labels, head, embed):
    return head(h)[:, 0] + (F.one_hot(labels, h.shape[1]).float() * h).sum(dim=1)


def unconditional_d_loss(G, D, x_real, labels, z):
    return losses.d_loss_bce(D(x_real), D(G(z, labels).detach()))


def half_conditioned_d_loss(G, D, x_real, labels, z):
    return losses.d_loss_bce(D(x_real, labels), D(G(z, labels).detach()))


def shuffled_labels_d_loss(G, D, x_real, labels, z):
    return losses.d_loss_bce(D(x_real, labels), D(G(z, labels).detach(), labels.roll(1)))


def random_labels_for_fakes_d_loss(G, D, x_real, labels, z):
    fake_labels = (labels + 1) % 5
    return losses.d_loss_bce(D(x_real, labels), D(G(z, fake_labels).detach(), fake_labels))


def no_detach_conditional_d_loss(G, D, x_real, labels, z):
    return losses.d_loss_bce(D(x_real, labels), D(G(z, labels), labels))


def swapped_conditional_d_loss(G, D, x_real, labels, z):
    return losses.d_loss_bce(D(G(z, labels).detach(), labels), D(x_real, labels))


def one_hot_labels_d_loss(G, D, x_real, labels, z):
    return losses.d_loss_bce(D(x_real, F.one_hot(labels, 5)), D(G(z, labels).detach(), F.one_hot(labels, 5)))


def float_conditional_d_loss(G, D, x_real, labels, z):
    return solution_conditional_d_loss(G, D, x_real, labels, z).item()


# ----- 05.1 to 05.5 -----

def flipped_critic_loss(real, fake):
    return real.mean() - fake.mean()


def summed_critic_loss(real, fake):
    return fake.sum() - real.sum()


def _gp(critic, x_real, x_fake, eps, at="x_hat", create_graph=True):
    x = {"x_hat": eps * x_real + (1 - eps) * x_fake, "real": x_real}[at].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=create_graph)
    return grad


def whole_batch_norm_gp(critic, x_real, x_fake, eps):
    return (_gp(critic, x_real, x_fake, eps).norm() - 1) ** 2


def squared_norm_gp(critic, x_real, x_fake, eps):
    return (_gp(critic, x_real, x_fake, eps).flatten(1).norm(dim=1) ** 2).mean()


def squared_norm_minus_one_gp(critic, x_real, x_fake, eps):
    return ((_gp(critic, x_real, x_fake, eps).flatten(1).pow(2).sum(1) - 1) ** 2).mean()


def no_create_graph_gp(critic, x_real, x_fake, eps):
    return ((_gp(critic, x_real, x_fake, eps, create_graph=False).flatten(1).norm(dim=1) - 1) ** 2).mean()


def at_real_gp(critic, x_real, x_fake, eps):
    return ((_gp(critic, x_real, x_fake, eps, at="real").flatten(1).norm(dim=1) - 1) ** 2).mean()


def no_requires_grad_gp(critic, x_real, x_fake, eps):
    x_hat = eps * x_real + (1 - eps) * x_fake
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def own_eps_gp(critic, x_real, x_fake, eps):
    mine = torch.rand(x_real.shape[0], 1, 1, 1)             # draws its own eps instead of using the given one
    return solution_gradient_penalty(critic, x_real, x_fake, mine)


def clips_gradients(module, c):
    nn.utils.clip_grad_value_(module.parameters(), c)
    return module


def clips_weights_only(module, c):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight"):
                p.clamp_(-c, c)
    return module


def clips_a_copy(module, c):
    return solution_clip_weights_(copy.deepcopy(module), c)


def clips_without_no_grad(module, c):
    for p in module.parameters():
        p.clamp_(-c, c)
    return module


def clips_state_dict(module, c):
    for value in module.state_dict().values():
        if value.is_floating_point():
            value.clamp_(-c, c)
    return module


def rescales_instead_of_clipping(module, c):
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(c / p.abs().max().clamp_min(c))
    return module


def untransposed_power_iteration(weight, u, n_iters):
    W = weight.reshape(weight.shape[0], -1)
    for _ in range(n_iters):
        v = F.normalize(W @ u, dim=0)                    # W instead of W^T
        u = F.normalize(W @ v, dim=0)
    return u @ W @ v, u, v


def unnormalised_power_iteration(weight, u, n_iters):
    W = weight.reshape(weight.shape[0], -1)
    for _ in range(n_iters):
        v = W.T @ u
        u = W @ v
    return u @ W @ v, u, v


def in_channels_power_iteration(weight, u, n_iters):
    W = weight.reshape(weight.shape[1], -1)              # one row per INPUT channel
    for _ in range(n_iters):
        v = F.normalize(W.T @ u, dim=0)
        u = F.normalize(W @ v, dim=0)
    return u @ W @ v, u, v


def linear_hinge(real, fake):
    return (1 - real).mean() + (1 + fake).mean()


def zero_margin_hinge(real, fake):
    return F.relu(-real).mean() + F.relu(fake).mean()


def swapped_hinge(real, fake):
    return F.relu(1 + real).mean() + F.relu(1 - fake).mean()


def fake_sign_hinge(real, fake):
    return F.relu(1 - real).mean() + F.relu(1 - fake).mean()


def summed_hinge(real, fake):
    return F.relu(1 - real).sum() + F.relu(1 + fake).sum()


MISTAKES = [
    # 02.1
    ("Conv2d halves", lesson02.check_up_block, halving_block, "HALVES"),
    ("kernel 3 wrong size", lesson02.check_up_block, kernel3_block, "came out 9x9"),
    ("stride 1", lesson02.check_up_block, stride1_block, "came out 5x5"),
    ("kernel 3 with output_padding", lesson02.check_up_block, kernel3_output_padding_block, "checkerboard"),
    ("bias before batch norm", lesson02.check_up_block, bias_block, "bias=False"),
    ("no batch norm", lesson02.check_up_block, no_bn_block, "no batch norm"),
    ("LeakyReLU in G", lesson02.check_up_block, leaky_block, "ReLU in G"),
    ("ReLU before batch norm", lesson02.check_up_block, relu_before_bn_block, "negative values"),
    # 02.2
    ("std 0.2", lesson02.check_dcgan_init, std_02_init, "ten times too large"),
    ("std 1", lesson02.check_dcgan_init, std_1_init, "N(0, 1)"),
    ("BN scales 0", lesson02.check_dcgan_init, bn_zero_init, "are all 0"),
    ("BN scales N(0, 0.02)", lesson02.check_dcgan_init, bn_like_conv_init, "near 1"),
    ("ConvTranspose2d skipped", lesson02.check_dcgan_init, skips_conv_transpose_init, "NOT a subclass"),
    ("children only", lesson02.check_dcgan_init, children_only_init, "module.modules()"),
    ("init returns None", lesson02.check_dcgan_init, no_return_init, "return module"),
    # 02.3
    ("D step without detach", lesson02.check_d_step, no_detach_d_step, "missing detach"),
    ("D step without zero_grad", lesson02.check_d_step, no_zero_grad_d_step, "missing zero_grad"),
    ("D step labels swapped", lesson02.check_d_step, swapped_d_step, "swapped"),
    ("D step returns a tensor", lesson02.check_d_step, tensor_d_step, "Python float"),
    ("D step updates G", lesson02.check_d_step, also_updates_G_d_step, "G's parameters changed"),
    ("D step one batch", lesson02.check_d_step, one_batch_d_step, "separate"),
    ("D step averaged", lesson02.check_d_step, averaged_d_step, "SUMS"),
    ("D step with G in eval mode", lesson02.check_d_step, eval_mode_d_step, "eval mode"),
    ("D step sigmoid then BCE", lesson02.check_d_step, sigmoid_bce_d_step, "saturated logits"),
    # 02.4
    ("lerp for slerp", lesson02.check_slerp, lerp_slerp, "straight line"),
    ("angle of unnormalised vectors", lesson02.check_slerp, unnormalised_slerp, "without normalising"),
    ("slerp endpoints swapped", lesson02.check_slerp, swapped_weights_slerp, "endpoints swapped"),
    ("slerp 0/0", lesson02.check_slerp, nan_for_identical_slerp, "divides 0 by 0"),
    ("slerp without clamping the cosine", lesson02.check_slerp, unclamped_slerp, "Clamp the cosine"),
    ("one angle for the batch", lesson02.check_slerp, one_angle_slerp, "one angle for the whole batch"),
    # 04.1
    ("gain without the 1", lesson04.check_conditional_batch_norm, gain_without_one_cbn, "without the 1"),
    ("class vectors on the width axis", lesson04.check_conditional_batch_norm, width_axis_cbn, "WIDTH"),
    ("scale before normalising", lesson04.check_conditional_batch_norm, scale_before_norm_cbn, "BEFORE normalising"),
    ("gain and bias swapped", lesson04.check_conditional_batch_norm, swapped_maps_cbn, "swapped"),
    ("no normalisation", lesson04.check_conditional_batch_norm, unnormalised_cbn, "never normalised"),
    ("detached tables", lesson04.check_conditional_batch_norm, detached_cbn, "cut off"),
    ("one embedding for everyone", lesson04.check_conditional_batch_norm, first_sample_cbn, "should equal"),
    ("(B, K) maps", lesson04.check_one_hot_maps, unexpanded_maps, "(B, K) one-hot vectors"),
    ("(B, K, 1, 1) maps", lesson04.check_one_hot_maps, single_pixel_maps, "expand them"),
    ("int64 maps", lesson04.check_one_hot_maps, integer_maps, ".float()"),
    ("channels-last maps", lesson04.check_one_hot_maps, channels_last_maps, "last axis"),
    ("one_hot without num_classes", lesson04.check_one_hot_maps, no_num_classes_maps, "without num_classes"),
    # 04.3
    ("projection without head", lesson04.check_projection_logits, projection_only_logits, "unconditional term is missing"),
    ("projection summed over batch", lesson04.check_projection_logits, batch_summed_projection_logits, "PER SAMPLE"),
    ("projection summed over dim 0", lesson04.check_projection_logits, dim0_projection_logits, "wrong axis"),
    ("(B, 1) + (B,) broadcast", lesson04.check_projection_logits, broadcast_projection_logits, "(B, B)"),
    ("(B, 1) logits", lesson04.check_projection_logits, keepdim_projection_logits, "shape (B, 1)"),
    ("one-hot projection", lesson04.check_projection_logits, one_hot_projection_logits, "LEARNED vector per class"),
    ("head without its bias", lesson04.check_projection_logits, biasless_head_logits, "bias is missing"),
    # 04.4
    ("D sees no labels", lesson04.check_conditional_d_loss, unconditional_d_loss, "called without labels"),
    ("fakes scored without labels", lesson04.check_conditional_d_loss, half_conditioned_d_loss, "called without labels"),
    ("fakes scored with other labels", lesson04.check_conditional_d_loss, shuffled_labels_d_loss, "scored the fake batch"),
    ("fakes made with other labels", lesson04.check_conditional_d_loss, random_labels_for_fakes_d_loss, "real batch's"),
    ("conditional without detach", lesson04.check_conditional_d_loss, no_detach_conditional_d_loss, "missing detach"),
    ("conditional swapped", lesson04.check_conditional_d_loss, swapped_conditional_d_loss, "swapped"),
    ("one-hot labels to D", lesson04.check_conditional_d_loss, one_hot_labels_d_loss, "int64"),
    ("conditional loss as float", lesson04.check_conditional_d_loss, float_conditional_d_loss, "loss tensor"),
    ("conditional terms averaged", lesson04.check_conditional_d_loss, averaged_conditional_d_loss, "SUMS"),
    ("conditional sigmoid then BCE", lesson04.check_conditional_d_loss, sigmoid_bce_conditional_d_loss, "saturated logits"),
    # 05.1
    ("critic loss sign", lesson05.check_critic_loss, flipped_critic_loss, "wrong sign"),
    ("critic loss BCE", lesson05.check_critic_loss, losses.d_loss_bce, "BCE"),
    ("critic loss summed", lesson05.check_critic_loss, summed_critic_loss, "wrong reduction"),
    # 05.2
    ("GP norm over the batch", lesson05.check_gradient_penalty, whole_batch_norm_gp, "over the whole batch"),
    ("GP squared norm, no -1", lesson05.check_gradient_penalty, squared_norm_gp, "SQUARED gradient norm"),
    ("GP (||g||² - 1)²", lesson05.check_gradient_penalty, squared_norm_minus_one_gp, "squared norm inside"),
    ("GP without create_graph", lesson05.check_gradient_penalty, no_create_graph_gp, "create_graph=True"),
    ("GP at the real samples", lesson05.check_gradient_penalty, at_real_gp, "at the real samples"),
    ("GP x_hat without grad", lesson05.check_gradient_penalty, no_requires_grad_gp, "requires_grad_(True)"),
    ("GP with its own eps", lesson05.check_gradient_penalty, own_eps_gp, "Use the eps you are given"),
    # 05.3
    ("clipping gradients", lesson05.check_clip_weights, clips_gradients, "GRADIENTS"),
    ("biases not clipped", lesson05.check_clip_weights, clips_weights_only, "biases were not clipped"),
    ("clipped copy", lesson05.check_clip_weights, clips_a_copy, "in place"),
    ("in-place without no_grad", lesson05.check_clip_weights, clips_without_no_grad, "torch.no_grad()"),
    ("clipping the state_dict", lesson05.check_clip_weights, clips_state_dict, "buffers"),
    ("rescaling instead of clipping", lesson05.check_clip_weights, rescales_instead_of_clipping, "don't rescale"),
    # 05.4
    ("W instead of W^T", lesson05.check_power_iteration, untransposed_power_iteration, "transpose"),
    ("no normalisation", lesson05.check_power_iteration, unnormalised_power_iteration, "unit vectors"),
    ("conv weight reshaped to (in, -1)", lesson05.check_power_iteration, in_channels_power_iteration, "OUTPUT channel"),
    # 05.5
    ("hinge without relu", lesson05.check_hinge_d_loss, linear_hinge, "relu is missing"),
    ("hinge without margins", lesson05.check_hinge_d_loss, zero_margin_hinge, "margins are missing"),
    ("hinge swapped", lesson05.check_hinge_d_loss, swapped_hinge, "swapped"),
    ("hinge fake sign", lesson05.check_hinge_d_loss, fake_sign_hinge, "wrong sign"),
    ("hinge summed", lesson05.check_hinge_d_loss, summed_hinge, "wrong reduction"),
    ("Wasserstein for hinge", lesson05.check_hinge_d_loss, losses.d_loss_wasserstein, "Wasserstein critic loss"),
]


@pytest.mark.parametrize("name, check, wrong, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_classic_mistake_is_caught_with_its_message(name, check, wrong, expected):
    result = check(wrong)
    assert isinstance(result, CheckResult)
    assert result.status == "failed", f"{name} was not caught: {result.message}"
    assert expected in result.message, result.message


def test_gradient_penalty_accepts_eps_on_either_side():
    def other_side(critic, x_real, x_fake, eps):
        return solution_gradient_penalty(critic, x_fake, x_real, eps)   # (1 - eps) x_real + eps x_fake

    assert lesson05.check_gradient_penalty(other_side).status == "passed"


# ==============================================================================================
# course_lib.latent
# ==============================================================================================

def _pair(b=3, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


@pytest.mark.parametrize("fn", [latent.lerp, latent.slerp])
def test_shapes_and_exact_endpoints(fn):
    z0, z1 = _pair()
    assert fn(z0, z1, 0.3).shape == (3, 6)
    assert fn(z0, z1, torch.linspace(0, 1, 5)).shape == (5, 3, 6)
    assert fn(z0[0], z1[0], torch.linspace(0, 1, 4)).shape == (4, 6)
    assert torch.equal(fn(z0, z1, 0.0), z0) and torch.equal(fn(z0, z1, 1.0), z1)
    path = fn(z0, z1, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    assert torch.allclose(path[1], fn(z0, z1, 0.5))


def test_lerp_matches_torch_lerp():
    z0, z1 = _pair()
    assert torch.allclose(latent.lerp(z0, z1, 0.3), torch.lerp(z0, z1, 0.3), atol=1e-6)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints_and_lerp_does_not():
    z0, z1 = _pair(b=4, d=64)
    z1 = z1 / z1.norm(dim=1, keepdim=True) * z0.norm(dim=1, keepdim=True)   # equal norms per row
    t = torch.linspace(0, 1, 7)
    norms = latent.slerp(z0, z1, t).norm(dim=-1)                            # (7, 4)
    assert torch.allclose(norms, z0.norm(dim=1).expand(7, 4), rtol=1e-5)
    assert (latent.lerp(z0, z1, 0.5).norm(dim=1) < 0.85 * z0.norm(dim=1)).all()  # nearly orthogonal in 64-D


def test_slerp_follows_the_arc_in_2d():
    z0, z1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    # equal angle steps; with unequal norms White's formula gives sin-weighted mixtures
    mid = latent.slerp(z0, z1, 0.5)
    assert torch.allclose(mid, torch.tensor([[2 ** -0.5, 2 * 2 ** -0.5]]), atol=1e-6)
    z1 = torch.tensor([[0.0, 1.0]])
    third = latent.slerp(z0, z1, 1 / 3)
    assert torch.allclose(third, torch.tensor([[0.5 * 3 ** 0.5, 0.5]]), atol=1e-6)


def test_slerp_falls_back_to_lerp_for_parallel_or_zero_rows():
    z = torch.tensor([[1.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    assert torch.allclose(latent.slerp(z, z.clone(), 0.3), z)
    assert torch.allclose(latent.slerp(z, 2 * z, 0.5), 1.5 * z)             # same direction: a straight line
    zero = torch.zeros(1, 3)
    assert torch.allclose(latent.slerp(zero, z[:1], 0.25), 0.25 * z[:1])
    assert torch.isfinite(latent.slerp(z, -z, 0.5)).all()                    # antiparallel: no unique arc, lerp


def test_slerp_is_differentiable_without_nan():
    z0 = torch.tensor([[1.0, 0.0], [0.6, 0.8]], requires_grad=True)
    latent.slerp(z0, z0.detach().clone(), 0.4).sum().backward()
    assert torch.isfinite(z0.grad).all()


def test_interpolation_path():
    z0, z1 = _pair(b=2, d=5)
    path = latent.interpolation_path(z0, z1, 6)
    assert path.shape == (6, 2, 5)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    assert torch.allclose(latent.interpolation_path(z0, z1, 3, mode="lerp")[1], (z0 + z1) / 2)
    assert torch.allclose(path, latent.slerp(z0, z1, torch.linspace(0, 1, 6)))


@pytest.mark.parametrize("call, name", [
    (lambda: latent.slerp(torch.zeros(2, 3), torch.zeros(2, 4), 0.5), "z0 and z1"),
    (lambda: latent.slerp([1.0], torch.zeros(1), 0.5), "z0"),
    (lambda: latent.lerp(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 2)), "t"),
    (lambda: latent.lerp(torch.zeros(2, 3), torch.zeros(2, 3), float("nan")), "t"),
    (lambda: latent.slerp(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), 0.5), "z0"),
    (lambda: latent.interpolation_path(torch.zeros(3), torch.ones(3), 1), "steps"),
    (lambda: latent.interpolation_path(torch.zeros(3), torch.ones(3), 4, mode="cubic"), "mode"),
])
def test_latent_errors_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ==============================================================================================
# course_lib.lipschitz
# ==============================================================================================

def test_clip_weights_bounds_every_parameter_in_place_and_leaves_buffers():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Conv1d(3, 2, 1))
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 1)
    module[1].running_var.fill_(4.0)
    before = copy.deepcopy(module)
    assert lipschitz.clip_weights_(module, 0.01) is module
    for p, q in zip(module.parameters(), before.parameters()):
        assert p.abs().max() <= 0.01
        assert torch.equal(p, q.clamp(-0.01, 0.01))
    assert torch.equal(module[1].running_var, torch.full((3,), 4.0))
    with pytest.raises(ValueError, match="c must"):
        lipschitz.clip_weights_(module, 0)


@pytest.mark.parametrize("shape", [(5, 3), (3, 7), (4, 2, 3, 3)])
def test_power_iteration_converges_to_the_largest_singular_value(shape):
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    exact = lipschitz.spectral_norm_exact(weight)
    assert torch.allclose(exact, torch.linalg.matrix_norm(weight.reshape(shape[0], -1), ord=2))
    sigma, u, v = lipschitz.power_iteration(weight, n_iters=300, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(sigma, exact, rtol=1e-4)
    assert u.shape == (shape[0],) and v.shape == (weight[0].numel(),)
    assert torch.allclose(u.norm(), torch.tensor(1.0)) and torch.allclose(v.norm(), torch.tensor(1.0))
    one, _, _ = lipschitz.power_iteration(weight, n_iters=1, generator=torch.Generator().manual_seed(2))
    assert one <= exact + 1e-5                                               # u^T W v never overshoots


def test_power_iteration_sigma_has_the_gradient_u_v_transposed():
    weight = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), requires_grad=True)
    sigma, u, v = lipschitz.power_iteration(weight, n_iters=5, generator=torch.Generator().manual_seed(0))
    sigma.backward()
    assert torch.allclose(weight.grad, torch.outer(u, v), atol=1e-6)


@pytest.mark.parametrize("make_layer", [lambda: nn.Linear(6, 4), lambda: nn.Conv2d(2, 3, 3)], ids=["linear", "conv"])
def test_power_iteration_matches_torch_spectral_norm(make_layer):
    torch.manual_seed(0)                                # weights made here, not at collection: the same in every run
    layer = spectral_norm(make_layer())                 # 15 power iterations at construction
    param = layer.parametrizations.weight
    x = torch.randn(2, 6) if isinstance(layer, nn.Linear) else torch.randn(2, 2, 5, 5)
    W = param.original.detach()
    # one training-mode forward = one iteration u <- normalize(W normalize(W^T u)), as ours from the same u
    u_before = param[0]._u.clone()
    layer(x)
    _, u, _ = lipschitz.power_iteration(W, u_before, n_iters=1)
    assert torch.allclose(u, param[0]._u, atol=1e-6)
    # after enough forwards torch's sigma, ours and the exact value agree
    for _ in range(30):
        layer(x)
    layer.eval()                                        # no further iteration when reading the weight
    torch_sigma = (W / layer.weight.detach()).flatten()[0]
    ours, _, _ = lipschitz.power_iteration(W, n_iters=100, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(torch_sigma, lipschitz.spectral_norm_exact(W), rtol=1e-4)
    assert torch.allclose(ours, torch_sigma, rtol=1e-4)


@pytest.mark.parametrize("call, name", [
    (lambda: lipschitz.power_iteration(torch.zeros(3)), "weight"),
    (lambda: lipschitz.power_iteration(torch.ones(3, 2), u=torch.ones(2)), "u must"),
    (lambda: lipschitz.power_iteration(torch.ones(3, 2), n_iters=0), "n_iters"),
    (lambda: lipschitz.spectral_norm_exact(torch.ones(3, dtype=torch.long)), "weight"),
])
def test_lipschitz_errors_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
