"""Checks 02.1-02.2: an up-sampling block of G, DCGAN weight initialisation."""

from __future__ import annotations

import torch
from torch import nn

from course_lib import gan
from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_tensor, own_rng


# ----------------------------------------------------------------------------------------------
# 02.1 an up-sampling block of G
# ----------------------------------------------------------------------------------------------

@exercise("02.1", "an up-sampling block of the generator", forbid=("course_lib.gan.up_block",))
@own_rng
def check_up_block(up_block) -> None:
    torch.manual_seed(case_seed(0))
    block = call(up_block, 6, 4)
    if not isinstance(block, nn.Module):
        raise Mistake(f"up_block should return an nn.Module (for example an nn.Sequential), got {type(block).__name__}.")
    x = torch.randn(3, 6, 5, 5, generator=torch.Generator().manual_seed(case_seed(1)))  # (B, in_channels, 5, 5)
    block.train()
    out = expect_tensor(call(block, x.clone(), what="your block"), "your block")
    size = "x".join(str(s) for s in out.shape[2:])
    conv_t = [m for m in block.modules() if isinstance(m, nn.ConvTranspose2d)]
    if not conv_t:
        if any(isinstance(m, nn.Conv2d) for m in block.modules()):
            raise Mistake(
                f"you used nn.Conv2d: with stride 2 a convolution HALVES the height and width (a 5x5 input came out "
                f"{size}). G has to grow its feature maps, which is what the transposed convolution does: "
                "nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)."
            )
        raise Mistake("no nn.ConvTranspose2d in your block: the block is ConvTranspose2d -> BatchNorm2d -> ReLU.")
    if len(conv_t) > 1:
        raise Mistake(f"your block has {len(conv_t)} transposed convolutions; one per block doubles H and W once.")
    conv = conv_t[0]
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    if out.dim() != 4 or tuple(out.shape[2:]) != (10, 10):
        raise Mistake(
            f"a 5x5 input should come out 10x10 (height and width doubled), yours came out {size}, from "
            f"kernel_size={k}, stride={s}, padding={p}. A transposed convolution gives (H - 1)·stride - 2·padding "
            "+ kernel_size: with kernel_size=4, stride=2, padding=1 that is exactly 2H."
        )
    if tuple(out.shape[:2]) != (3, 4):
        raise Mistake(f"up_block(6, 4) should output 4 channels: (B, 4, 10, 10). Yours gave shape {tuple(out.shape)}.")
    if (conv.kernel_size, conv.stride, conv.padding) != ((4, 4), (2, 2), (1, 1)):
        raise Mistake(
            f"the size is right, but DCGAN uses kernel_size=4, stride=2, padding=1 (yours: kernel_size={conv.kernel_size}, "
            f"stride={conv.stride}, padding={conv.padding}). With a kernel divisible by the stride every output pixel "
            "receives the same number of contributions; kernel 3 with stride 2 overlaps unevenly, which builds a "
            "checkerboard pattern into the layer (Odena et al. 2016). An even overlap does not rule checkerboards out "
            "(neighbouring pixels still use different taps), but it does not add one."
        )
    batch_norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if not batch_norms:
        raise Mistake(
            "no batch norm: DCGAN puts nn.BatchNorm2d(out_channels) after every transposed convolution of G except "
            "the output layer. It keeps each layer's activations at a healthy scale, so the deep generator trains."
        )
    if conv.bias is not None:
        raise Mistake(
            "your ConvTranspose2d has a bias (PyTorch's default), but the BatchNorm2d right after it subtracts each "
            "channel's batch mean, which removes any constant added per channel: the bias is cancelled and never "
            "does anything. Pass bias=False (batch norm's own shift plays that role)."
        )
    if any(isinstance(m, nn.LeakyReLU) for m in block.modules()):
        raise Mistake(
            "LeakyReLU is the discriminator's activation. The DCGAN recipe uses ReLU in G (with tanh on its output "
            "layer) and LeakyReLU(0.2) in D."
        )
    if (out < 0).any():
        raise Mistake(
            f"your block outputs negative values (min {out.min().item():.3g}): it should end with nn.ReLU(), in the "
            "order ConvTranspose2d -> BatchNorm2d -> ReLU."
        )
    ref = gan.up_block(6, 4).train()  # the library's block, given the learner's weights
    with torch.no_grad():
        ref[0].weight.copy_(conv.weight)
        ref[1].weight.copy_(batch_norms[0].weight)
        ref[1].bias.copy_(batch_norms[0].bias)
        expected = ref(x)
    if not close(out, expected, rtol=1e-4, atol=1e-5):
        raise Mistake("the layers are there, but the output differs from ConvTranspose2d -> BatchNorm2d -> ReLU applied "
                      "in this order; check the order and that nothing else is in the block.")


# ----------------------------------------------------------------------------------------------
# 02.2 DCGAN initialisation
# ----------------------------------------------------------------------------------------------

def _init_target() -> nn.Module:
    """Layers big enough for reliable statistics (32768 weights each, 512 batch-norm scales), every parameter 0.5."""
    module = nn.Sequential(
        nn.ConvTranspose2d(32, 64, 4, bias=False),                 # 32768 weights
        nn.BatchNorm2d(512),
        nn.Sequential(nn.Conv2d(64, 32, 4), nn.BatchNorm2d(512)),  # nested: 32768 weights, 32 biases
        nn.Linear(256, 128),                                       # 32768 weights, 128 biases (G's first layer)
    )
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.5)  # a value no initialiser produces, so a skipped layer is visible
    return module


def _check_normal_weight(w: torch.Tensor, kind: str) -> None:
    std, mean = w.std().item(), w.mean().item()
    if 0.8 < std < 1.2:
        raise Mistake(
            f"the {kind} weights have standard deviation {std:.3f}: nn.init.normal_(w) draws from N(0, 1) unless "
            "you pass std=0.02. With std 1 the activations grow layer after layer."
        )
    if 0.15 < std < 0.25:
        raise Mistake(f"the {kind} weights have standard deviation {std:.3f}, ten times too large: DCGAN uses N(0, 0.02).")
    if not 0.018 < std < 0.022:
        raise Mistake(f"the {kind} weights have standard deviation {std:.4f}; DCGAN draws them from N(0, 0.02).")
    if abs(mean) > 0.002:
        raise Mistake(f"the {kind} weights have mean {mean:.4f}; DCGAN draws them from N(0, 0.02), centred at 0.")


@exercise("02.2", "DCGAN weight initialisation",
          forbid=("course_lib.gan.dcgan_init_", "course_lib.pix2pix.init_weights_"))
@own_rng
def check_dcgan_init(dcgan_init_) -> None:
    module = _init_target()
    conv_t, bn, (conv, bn_nested), linear = module[0], module[1], module[2], module[3]
    torch.manual_seed(case_seed(0))
    returned = call(dcgan_init_, module)
    untouched = lambda t: bool((t == 0.5).all())  # noqa: E731
    if untouched(conv.weight) and not untouched(conv_t.weight):
        raise Mistake(
            "the layers nested inside a sub-module were not initialised: module.children() only lists the direct "
            "children. Loop over module.modules(), which visits every layer recursively (or use module.apply(fn))."
        )
    if untouched(conv_t.weight):
        raise Mistake(
            "the ConvTranspose2d layers were skipped: in PyTorch nn.ConvTranspose2d is NOT a subclass of nn.Conv2d, "
            "so isinstance(m, nn.Conv2d) is False for it. Test isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)); "
            "G is made of transposed convolutions."
        )
    for layer, kind in ((conv, "Conv2d"), (linear, "Linear")):
        if untouched(layer.weight):
            raise Mistake(f"the {kind} layers were skipped: initialise every Conv2d, ConvTranspose2d and Linear weight from N(0, 0.02).")
    for layer, kind in ((conv_t, "ConvTranspose2d"), (conv, "Conv2d"), (linear, "Linear")):
        _check_normal_weight(layer.weight.detach(), kind)
    for layer, kind in ((conv, "Conv2d"), (linear, "Linear")):
        if not bool((layer.bias == 0).all()):
            raise Mistake(f"the {kind} biases should start at 0 (nn.init.zeros_(m.bias) when m.bias is not None).")
    for layer in (bn, bn_nested):
        w, b = layer.weight.detach(), layer.bias.detach()
        if untouched(w):
            raise Mistake("the BatchNorm2d layers were skipped: batch-norm scales start at N(1, 0.02) and shifts at 0.")
        if bool((w == 0).all()):
            raise Mistake(
                "the batch-norm scales (weight) are all 0: every output of the layer is then its shift, the same for "
                "every input, and no gradient flows through it. DCGAN draws the scales from N(1, 0.02)."
            )
        if abs(w.mean().item()) < 0.1:
            raise Mistake(
                f"the batch-norm scales have mean {w.mean().item():.3f}: they multiply the normalised activations, so "
                "they start near 1 (identity), from N(1, 0.02), not N(0, 0.02) like the conv weights."
            )
        if bool((w == 1).all()):
            raise Mistake("the batch-norm scales are all exactly 1 (PyTorch's default); DCGAN draws them from N(1, 0.02).")
        if not (abs(w.mean().item() - 1) < 0.01 and 0.012 < w.std().item() < 0.028):
            raise Mistake(f"the batch-norm scales have mean {w.mean().item():.3f} and std {w.std().item():.3f}; "
                          "draw them from N(1, 0.02).")
        if not bool((b == 0).all()):
            raise Mistake("the batch-norm shifts (bias) should start at 0.")
    if returned is not module:
        raise Mistake(f"dcgan_init_ should return the module it was given (end with `return module`), so that "
                      f"`D = dcgan_init_(D)` works; it returned {type(returned).__name__}.")
