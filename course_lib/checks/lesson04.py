"""Graded checks for lesson 04 (class-conditional GANs).

The checks pin the learner's conditioning code to what ``course_lib.gan`` does: G's batch norms are
class-conditional, ``BN(h) * (1 + gain(e_y)) + bias(e_y)`` (``gan.ConditionalBatchNorm2d``), the "concat"
discriminator stacks one-hot label maps onto the image channels, the projection discriminator adds
``<embed(labels), h>`` to its unconditional logit (Miyato & Koyama 2018), and a conditional D step
scores the fakes with the labels they were generated with. The classic mistakes they recognise: a
gain without the 1 (a fresh layer multiplies by zero), per-class vectors broadcast along the width
instead of the channels, scaling before normalising (the norm then undoes part of the class),
gain and shift swapped, maps that were never expanded, a (B, 1) + (B,) broadcast into (B, B), a
projection summed over the batch, a head applied without its bias, ``F.one_hot`` without
``num_classes`` (too few maps for a batch that misses the last classes), averaged loss terms, and
a discriminator that never sees the labels.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from course_lib import gan, losses
from course_lib.checks import Mistake, call, case_seed, close, exercise, expect_shape, expect_tensor, own_rng




# Reference implementations (what the library computes inside Generator and Discriminator) -------


def reference_conditional_batch_norm(h: torch.Tensor, e: torch.Tensor, bn: nn.Module,
                                     gain: nn.Linear, bias: nn.Linear) -> torch.Tensor:
    """Conditional batch norm: bn(h) (no affine of its own) * (1 + gain(e)) + bias(e), per sample and channel."""
    return bn(h) * (1 + gain(e))[:, :, None, None] + bias(e)[:, :, None, None]


def reference_one_hot_maps(labels: torch.Tensor, num_classes: int, size: int) -> torch.Tensor:
    """Labels (B,) -> float one-hot maps (B, K, size, size): channel labels[i] is all ones, the others 0."""
    maps = F.one_hot(labels, num_classes).float()                # (B, K)
    return maps[:, :, None, None].expand(-1, -1, size, size)    # (B, K, size, size)


def reference_projection_logits(h: torch.Tensor, labels: torch.Tensor, head: nn.Linear, embed: nn.Embedding) -> torch.Tensor:
    """Projection discriminator logit: head(h) (B, 1) -> (B,), plus <embed(labels), h> per sample."""
    return head(h)[:, 0] + (embed(labels) * h).sum(dim=1)


def reference_conditional_d_loss(G: nn.Module, D: nn.Module, x_real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BCE loss of a conditional D: fakes made with the real batch's labels, scored with those labels."""
    x_fake = G(z, labels).detach()                               # (B, C, H, W)
    return losses.d_loss_bce(D(x_real, labels), D(x_fake, labels))


# ----------------------------------------------------------------------------------------------
# 04.1 conditional batch norm: the label in G
# ----------------------------------------------------------------------------------------------

def _cbn_setup(batch: int, channels: int, size: int, seed: int):
    """Features, class embeddings and the three layers of a conditional batch norm with non-zero maps."""
    g = torch.Generator().manual_seed(case_seed(seed))
    h = torch.randn(batch, channels, size, size, generator=g) * 3 + 1      # (B, C, size, size), not yet normalised
    e = torch.randn(batch, 6, generator=g)                                 # (B, E): the samples' class embeddings
    bn = nn.BatchNorm2d(channels, affine=False)
    gain, bias = nn.Linear(6, channels, bias=False), nn.Linear(6, channels, bias=False)
    with torch.no_grad():  # trained-looking maps: a fresh layer's zeros would hide most mistakes
        gain.weight.copy_(torch.randn(channels, 6, generator=g) * 0.2)
        bias.weight.copy_(torch.randn(channels, 6, generator=g) * 0.4)
    return h, e, bn, gain, bias


@exercise("04.1", "conditional batch norm, the label in G", forbid=("course_lib.gan.ConditionalBatchNorm2d",))
@own_rng
def check_conditional_batch_norm(conditional_batch_norm) -> None:
    # C = H = W = 4 first, so that a per-sample vector broadcast along the wrong axis still runs.
    h, e, bn, gain, bias = _cbn_setup(batch=3, channels=4, size=4, seed=0)
    out = expect_tensor(call(conditional_batch_norm, h.clone(), e.clone(), bn, gain, bias), "conditional_batch_norm")
    expect_shape(out, (3, 4, 4, 4), "conditional_batch_norm", "(B, C, H, W), the shape of h.")
    with torch.no_grad():
        normed = bn(h)
        g, b = gain(e), bias(e)                                            # (B, C) each
        per_channel = lambda t: t[:, :, None, None]                        # noqa: E731
        wrong_axis = lambda t: t[:, None, None, :]                         # noqa: E731
        ref = normed * (1 + per_channel(g)) + per_channel(b)
        suspects = [
            (normed * per_channel(g) + per_channel(b),
             "the gain is used without the 1: BN(h) * gain(e). The maps start at zero (a fresh layer must be a plain "
             "batch norm), so the scale is 1 + gain(e); without the 1 a new G multiplies every feature by 0."),
            (normed * (1 + wrong_axis(g)) + wrong_axis(b),
             "the per-sample vectors are broadcast along the WIDTH: gain(e) is (B, C), and [:, None, None, :] lines C up "
             "with the last axis. One scale and shift per channel needs (B, C, 1, 1): gain(e)[:, :, None, None]."),
            (bn(h * (1 + per_channel(g)) + per_channel(b)),
             "you scale and shift BEFORE normalising: batch norm then removes each channel's batch-mean shift and "
             "rescales it, so part of the class information is undone. Normalise first, then apply the class's "
             "scale and shift."),
            (normed * (1 + per_channel(b)) + per_channel(g),
             "gain and bias are swapped: the scale comes from gain(e), the shift from bias(e)."),
            (h * (1 + per_channel(g)) + per_channel(b),
             "the features are never normalised: apply bn(h) first (it has no affine parameters of its own)."),
        ]
    for wrong, message in suspects:
        if close(out, wrong) and not close(wrong, ref):
            raise Mistake(message)
    if not close(out, ref):
        raise Mistake("conditional_batch_norm should equal bn(h) * (1 + gain(e))[:, :, None, None] + "
                      "bias(e)[:, :, None, None]. Use the given bn (a new nn.BatchNorm2d or F.batch_norm with another "
                      "eps normalises differently) and the given gain and bias layers, applied to e.")

    # Another shape (C != H), and the gradient must reach both maps.
    h, e, bn, gain, bias = _cbn_setup(batch=4, channels=5, size=2, seed=1)
    out = expect_tensor(call(conditional_batch_norm, h.clone(), e.clone(), bn, gain, bias), "conditional_batch_norm")
    expect_shape(out, (4, 5, 2, 2), "conditional_batch_norm", "(B, C, H, W), the shape of h.")
    with torch.no_grad():
        ref = reference_conditional_batch_norm(h, e, bn, gain, bias)
    if not close(out, ref):
        raise Mistake("correct for C = H = W but not for B=4, C=5, H=W=2: check which axes the per-sample vectors use.")
    if not out.requires_grad:
        raise Mistake("the result is cut off from the gain and bias maps (.detach(), .data or torch.no_grad()): they "
                      "are trained with G, so keep them in the graph.")
    out.sum().backward()
    if gain.weight.grad is None or bias.weight.grad is None:
        raise Mistake("no gradient reaches gain or bias; use gain(e) and bias(e) directly.")
    expected = e.sum(0)[None, :].expand(5, -1) * 4                          # d sum / d bias[c, j] = H W sum_b e[b, j]
    if not close(bias.weight.grad, expected):
        raise Mistake("the gradient of the bias map is wrong: each sample's shift must be bias(e) of its own embedding.")


# ----------------------------------------------------------------------------------------------
# 04.2 one-hot label maps for the "concat" discriminator
# ----------------------------------------------------------------------------------------------

@exercise("04.2", "one-hot label maps for the concat discriminator")
@own_rng
def check_one_hot_maps(one_hot_maps) -> None:
    labels = torch.tensor([2, 0, 4])  # B = 3, K = 5, size = 4: every axis has its own length
    out = expect_tensor(call(one_hot_maps, labels.clone(), 5, 4), "one_hot_maps")
    shape = tuple(out.shape)
    if shape == (3, 5):
        raise Mistake("you returned the (B, K) one-hot vectors. D stacks the labels onto the image channels, so every "
                      "class needs a whole size x size map: add two axes and expand, maps[:, :, None, None].expand(-1, -1, size, size).")
    if shape == (3, 5, 1, 1):
        raise Mistake("the maps are (B, K, 1, 1): expand them to (B, K, size, size) with .expand(-1, -1, size, size); "
                      "torch.cat with the images along dim 1 needs the same height and width.")
    if shape == (3, 4, 4, 5):
        raise Mistake("the classes are on the last axis, (B, size, size, K): PyTorch images are channels-first, and D "
                      "concatenates the maps as channels, so the class axis must be dim 1: (B, K, size, size).")
    if shape == (5, 3, 4, 4):
        raise Mistake("the first two axes are swapped, (K, B, size, size): the batch comes first, then one channel per class.")
    expect_shape(out, (3, 5, 4, 4), "one_hot_maps", "(B, num_classes, size, size).")
    if not out.is_floating_point():
        raise Mistake(f"the maps have dtype {out.dtype} (F.one_hot returns int64): convert them with .float() so they "
                      "can be concatenated to the float images.")
    ref = reference_one_hot_maps(labels, 5, 4)
    if not close(out, ref):
        raise Mistake("channel labels[i] of sample i should be all ones and every other channel all zeros.")
    x = torch.zeros(3, 1, 4, 4)
    stacked = call(torch.cat, [x, out], dim=1, what="torch.cat([x, maps], dim=1)")
    expect_shape(stacked, (3, 6, 4, 4), "torch.cat([x, maps], dim=1)")
    few = torch.tensor([1, 0, 1, 2])  # a batch without the classes 3 and 4
    out = expect_tensor(call(one_hot_maps, few.clone(), 5, 4), "one_hot_maps")
    if out.dim() == 4 and tuple(out.shape[::2]) == (4, 4) and out.shape[1] == 3:
        raise Mistake("for labels [1, 0, 1, 2] with num_classes = 5 you made 3 maps: F.one_hot(labels) without "
                      "num_classes makes max(labels) + 1 columns, so a batch that misses the last classes gets too few "
                      "channels (and D's first layer breaks). Pass it: F.one_hot(labels, num_classes).")
    expect_shape(out, (4, 5, 4, 4), "one_hot_maps", "(B, num_classes, size, size), whatever labels the batch holds.")
    if not close(out, reference_one_hot_maps(few, 5, 4)):
        raise Mistake("for labels [1, 0, 1, 2] channel labels[i] of sample i should be all ones and the others zeros.")


def _louder(D: nn.Module) -> nn.Module:
    """Redraw D's weights from N(0, 0.3): with DCGAN's N(0, 0.02) every logit is ~1e-4, too close to 0 to tell
    the unconditional and the class term (or real and fake) apart."""
    with torch.no_grad():
        for m in D.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                m.weight.normal_(0.0, 0.3)
    return D


# ----------------------------------------------------------------------------------------------
# 04.3 the projection discriminator's logit
# ----------------------------------------------------------------------------------------------

@exercise("04.3", "the projection discriminator's logit")
@own_rng
def check_projection_logits(projection_logits) -> None:
    torch.manual_seed(case_seed(0))
    cfg = gan.DCGANConfig(base_channels=2, num_classes=5, conditioning="projection")
    D = _louder(gan.Discriminator(cfg)).eval()
    with torch.no_grad():
        D.head.bias.fill_(0.7)  # a trained head's bias; the fresh zero would hide a head applied without it
    g = torch.Generator().manual_seed(case_seed(1))
    x = torch.rand(3, 1, 32, 32, generator=g) * 2 - 1
    labels = torch.tensor([4, 1, 1])
    with torch.no_grad():
        h = D.blocks(x)                                           # (B, F) = (3, 128)
        expected = D(x, labels)                                   # the library's logits, (B,)
        unconditional = D.head(h)[:, 0]
        projection = (D.embed(labels) * h).sum(1)
        one_hot = unconditional + h[torch.arange(3), labels]
    try:
        out = call(projection_logits, h.clone(), labels.clone(), D.head, D.embed)
    except Mistake as err:
        if "size of tensor" not in str(err):
            raise
        raise Mistake(f"{str(err).rstrip('.')}. Here B = 3 and F = 128: a clash between the batch and the features usually means a sum "
                      "over the wrong axis. <embed(y_i), h_i> sums over the features of each sample, "
                      "(embed(labels) * h).sum(dim=1), shape (B,).") from None
    out = expect_tensor(out, "projection_logits")
    shape = tuple(out.shape)
    if shape == (3, 3):
        raise Mistake(
            "your logits have shape (B, B): head(h) has shape (B, 1) and the projection (B,), and adding them "
            "broadcasts into a (B, B) table. Take head(h)[:, 0] (or .squeeze(1)) before adding."
        )
    if shape == (3, 1):
        raise Mistake("your logits have shape (B, 1); D returns one logit per sample, shape (B,): use head(h)[:, 0] and "
                      "sum the projection with .sum(dim=1) (no keepdim).")
    if shape == (128,):
        raise Mistake("the inner product was summed over the batch (dim 0): <embed(y_i), h_i> is a sum over the "
                      "FEATURES of each sample, (embed(labels) * h).sum(dim=1).")
    expect_shape(out, (3,), "projection_logits", "One logit per sample.")
    if close(out, projection):
        raise Mistake("the unconditional term is missing: logit = head(h) + <embed(y), h>. head(h) judges realism for "
                      "every class; the projection adds the class-specific part.")
    if close(out, unconditional + projection.sum()):
        raise Mistake("the inner products were summed over the whole batch into one number: <embed(y_i), h_i> is one "
                      "number PER SAMPLE, (embed(labels) * h).sum(dim=1), shape (B,).")
    if close(out, one_hot):
        raise Mistake(
            "you took the inner product with the one-hot vector of the label, which just reads feature number y of h. "
            "The projection uses a LEARNED vector per class, embed(labels) of shape (B, F), trained with D."
        )
    if close(out, unconditional):
        raise Mistake("the projection term <embed(labels), h> is missing: your D ignores the labels.")
    if close(out, expected - D.head.bias):
        raise Mistake("head's bias is missing (h @ head.weight.T or F.linear without the bias): call the layer itself, "
                      "head(h)[:, 0], which adds its trained bias.")
    if not close(out, expected, rtol=1e-4, atol=1e-6):
        raise Mistake("your logits differ from course_lib.gan.Discriminator's: head(h)[:, 0] + (embed(labels) * h).sum(dim=1). "
                      "Use the given head and embed as they are (no new layers, no normalisation of h or of the class "
                      "vectors), and the labels as indices into embed.")


# ----------------------------------------------------------------------------------------------
# 04.4 the conditional discriminator's loss
# ----------------------------------------------------------------------------------------------

class _Watched(nn.Module):
    """Wraps G or D: forwards the call and records the labels it received, complaining when there are none."""

    def __init__(self, net: nn.Module, name: str) -> None:
        super().__init__()
        self.net, self.name, self.calls = net, name, []
        self.z_dim = getattr(net, "z_dim", None)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        first = "z" if self.name == "G" else "x"
        if labels is None:
            raise Mistake(
                f"{self.name} was called without labels, {self.name}({first}): a conditional {self.name} must see the "
                f"condition, {self.name}({first}, labels). A discriminator that never sees the labels cannot tell a "
                "realistic 3 from a realistic 3 that was asked to be a 7, so G gets no reason to obey the labels."
            )
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
            got = f"shape {tuple(labels.shape)}, dtype {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise Mistake(f"{self.name} takes the class indices as a (B,) int64 tensor (it embeds them itself), got {got}.")
        self.calls.append((x.detach(), labels.clone()))
        return self.net(x, labels)


def _conditional_setup(seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case_seed(seed))
        cfg = gan.DCGANConfig(z_dim=8, base_channels=2, num_classes=5)
        G, D = gan.Generator(cfg), _louder(gan.Discriminator(cfg))
    g = torch.Generator().manual_seed(case_seed(seed + 1))
    x_real = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
    labels = torch.tensor([0, 3, 3, 1])
    z = torch.randn(4, cfg.z_dim, generator=g)
    return G, D, x_real, labels, z


@exercise("04.4", "the conditional discriminator's loss", forbid=("course_lib.gan_steps.gan_step",))
@own_rng
def check_conditional_d_loss(conditional_d_loss) -> None:
    G, D, x_real, labels, z = _conditional_setup()
    G_w, D_w = _Watched(G, "G"), _Watched(D, "D")
    loss = call(conditional_d_loss, G_w, D_w, x_real.clone(), labels.clone(), z.clone())
    if isinstance(loss, float):
        raise Mistake("return the loss tensor (the caller calls loss.backward() on it), not a float.")
    loss = expect_tensor(loss, "conditional_d_loss")
    expect_shape(loss, (), "conditional_d_loss", "Use the course's d_loss_bce: mean over the real batch + mean over the fake batch.")
    if not G_w.calls:
        raise Mistake("G was never called: make the fakes inside the function, x_fake = G(z, labels).")
    if not torch.equal(G_w.calls[0][1], labels):
        raise Mistake(f"the fakes were generated with labels {G_w.calls[0][1].tolist()} instead of the real batch's "
                      f"{labels.tolist()}: use G(z, labels), so real and fake batches ask for the same classes.")
    if len(D_w.calls) == 1 and len(D_w.calls[0][1]) == 2 * len(labels):
        raise Mistake("real and fake images went through D as one concatenated batch; score them in two calls, "
                      "D(x_real, labels) and D(x_fake, labels), so batch norm normalises each batch separately.")
    if len(D_w.calls) != 2:
        raise Mistake(f"D was called {len(D_w.calls)} times; the loss needs D(x_real, labels) and D(x_fake, labels).")
    for x, seen in D_w.calls:
        if not torch.equal(seen, labels):
            which = "real" if torch.equal(x, x_real) else "fake"
            raise Mistake(f"D scored the {which} batch with labels {seen.tolist()} instead of {labels.tolist()}: every "
                          "image is judged together with the label it was drawn (real) or generated (fake) for.")
    if not loss.requires_grad:
        raise Mistake("the loss is not connected to D's parameters; stay in torch (no .item() or .detach() on the loss).")
    G_ref, D_ref, *_ = _conditional_setup()
    ref = reference_conditional_d_loss(G_ref, D_ref, x_real, labels, z)
    swapped = losses.d_loss_bce(D_ref(G_ref(z, labels).detach(), labels), D_ref(x_real, labels))
    if close(loss, swapped) and not close(loss, ref):
        raise Mistake("real and fake are swapped: the real batch gets target 1 and the fakes target 0, "
                      "d_loss_bce(D(x_real, labels), D(x_fake, labels)).")
    if close(loss, ref / 2, rtol=1e-4, atol=1e-6):
        raise Mistake("you averaged the two terms; the course's convention SUMS the mean loss on the real batch and the "
                      "mean loss on the fake batch: d_loss_bce(real_logits, fake_logits).")
    if not close(loss, ref, rtol=1e-4, atol=1e-6):
        raise Mistake(f"your loss {loss.item():.6f} differs from d_loss_bce(D(x_real, labels), D(G(z, labels).detach(), labels)) "
                      f"= {ref.item():.6f}. Likely causes: fresh noise instead of the given z, G or D switched to eval "
                      "mode, or the logits passed through sigmoid before a loss that expects logits.")
    grads_in_G = []
    hooks = [p.register_hook(lambda grad: grads_in_G.append(1)) for p in G.parameters()]
    try:
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    if grads_in_G:
        raise Mistake("missing detach: backpropagating D's loss reaches G's parameters. Score x_fake.detach() in D's loss.")
    if all(p.grad is None for p in D.parameters()):
        raise Mistake("no gradient reaches D's parameters from your loss.")
    G, D, x_real, labels, z = _conditional_setup()
    with torch.no_grad():
        D.head.bias.fill_(40.0)  # a D that calls everything real, confidently: logits about +40
    want = reference_conditional_d_loss(G, D, x_real, labels, z)
    loss = expect_tensor(call(conditional_d_loss, G, D, x_real.clone(), labels.clone(), z.clone()), "conditional_d_loss")
    if not close(loss, want, rtol=1e-4):
        raise Mistake(f"with saturated logits (about +40 for every image) the loss should be {want.item():.2f}, yours is "
                      f"{float(loss.detach()):.2f}: sigmoid(40) rounds to 1 and binary_cross_entropy clamps log 0 to "
                      "-100. Work with logits: d_loss_bce, or F.binary_cross_entropy_with_logits.")


EXERCISES = [check_conditional_batch_norm, check_one_hot_maps, check_projection_logits, check_conditional_d_loss]

HINTS = {
    "04.1": ("gain(e) and bias(e) hold one number per sample and channel, (B, C), while h is (B, C, H, W): they "
             "must be (B, C, 1, 1) to act on each channel's pixels.",
             "Add the two missing axes at the end ([:, :, None, None]), not at the front: a (B, C) tensor broadcast "
             "against (B, C, H, W) as it is lines the channels up with the width.",
             "Normalise with bn(h), multiply by 1 + gain, add bias. Call the modules directly (no .detach(), no "
             "torch.no_grad()): they train with G."),
    "04.2": ("Turn each label into K numbers, a one at its class and zeros elsewhere, (B, K); then spread every "
             "number over a size x size map.",
             "Give F.one_hot the number of classes: without it, it makes max(labels) + 1 columns, too few for a "
             "batch that misses the last class. Convert the integers to float.",
             "Add two trailing axes ([:, :, None, None]) and .expand(-1, -1, size, size)."),
    "04.3": ("Two terms, each one number per sample: the label-free head(h), and the inner product of the class "
             "vector embed(labels) with h.",
             "head(h) is (B, 1): drop its last axis ([:, 0] or .squeeze(1)) before adding a (B,) tensor, or "
             "broadcasting gives (B, B).",
             "The inner product multiplies the (B, F) class vectors and h element by element and sums over the "
             "features (dim 1). Use head as it is, bias included."),
    "04.4": ("Make the fakes for the real batch's labels, G(z, labels), and let D judge each batch together with "
             "those labels.",
             "Detach the fakes before D sees them, and score the real and the fake images in two separate calls of "
             "D (each batch gets its own batch-norm statistics).",
             "d_loss_bce(real_logits, fake_logits) is the loss. Return the tensor itself: no .item() and no "
             "backward() inside."),
}
