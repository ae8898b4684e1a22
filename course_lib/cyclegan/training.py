"""Training CycleGAN on handwritten (A) <-> printed (B) digits: its run config, its step, evaluation and its run.

``CycleGANTrainConfig`` extends the shared ``RunConfig`` with the loss weights, the pool and the
generators' size; ``cyclegan_step`` is one update of both generators, then of both discriminators
on pooled fakes (the reference implementation's order). ``evaluate_cyclegan`` measures how often a
digit keeps its identity through a translation and how close the translations are to the target
domain. ``build_run(cfg, device)`` puts it together for ``course_lib.train``: two ResNet generators,
two PatchGANs, two history pools, Adam, one shuffled stream per domain and the step closure, seeded by
``cfg.seed``; under ``torchrun`` the step gets the networks in ``DistributedDataParallel`` and this
rank's share of every batch (``course_lib.run.distributed``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from course_lib.classifier import classify, load_classifier
from course_lib.cyclegan.model import (CycleGAN, CycleGANConfig, ImagePool, cycle_loss, discriminators, identity_loss,
                                       lsgan_d_loss, lsgan_g_loss)
from course_lib.data import ShuffledBatches
from course_lib.data.paired import interleave_classes, unpaired_digits
from course_lib.device import seed_everything
from course_lib.metrics import class_accuracy, frechet_distance
from course_lib.pix2pix.model import init_weights_
from course_lib.run import (Run, RunConfig, adam, architecture_of, autocast, check_ints, check_numbers, distributed,
                            frozen, make_config, prepare_images, translate)
from course_lib.training import TrainState

GRID_IMAGES = 8  # test digits per domain in a run's samples.png (one per column)
DIRECTIONS = ("AB", "BA")  # handwritten -> printed, printed -> handwritten


# ----------------------------------------------------------------------------------------------
# The run config
# ----------------------------------------------------------------------------------------------

@dataclass
class CycleGANTrainConfig(RunConfig):
    """A run of CycleGAN between handwritten (mnist5k) and printed digits."""

    model: str = "cyclegan"                    # cyclegan
    dataset: str = "mnist5k+printed_digits"    # the two domains (the data come with the model)
    batch_size: int = 8                        # images per domain per update
    base_channels: int = 16                    # W: the generators' width (CycleGANConfig.base_channels)
    n_blocks: int = 3                          # residual blocks in each generator
    lambda_cycle: float = 10.0                 # weight of the cycle loss
    lambda_identity: float = 0.5               # weight of the identity loss, relative to lambda_cycle (0: off)
    pool_size: int = 50                        # fakes kept in each history pool (0: off)
    lr_g: float = 2e-4                         # Adam learning rate of the generators
    lr_d: float = 2e-4                         # Adam learning rate of the discriminators
    beta1: float = 0.5                         # Adam beta1
    beta2: float = 0.999                       # Adam beta2

    MODELS: ClassVar[dict[str, str]] = {"cyclegan": "CycleGAN, lesson 08: handwritten <-> printed digits, unpaired"}
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("lr_g", "lr_d")
    MIN_EVAL_SAMPLES: ClassVar[int] = 10  # held-out digits translated per domain; no sample metrics

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset != "mnist5k+printed_digits":
            raise ValueError(f"dataset must be 'mnist5k+printed_digits' for model {self.model!r} "
                             f"(the data come with the model), got {self.dataset!r}")
        check_ints(self, "base_channels", "n_blocks")
        check_ints(self, "pool_size", at_least=0)
        check_numbers(self, "beta1", "beta2", below_one=True)
        check_numbers(self, "lambda_cycle", "lambda_identity")


def default_config(model: str = "cyclegan", **overrides: Any) -> CycleGANTrainConfig:
    """The course's CycleGAN settings, with ``overrides`` applied: batch 8 per domain, width 16, 3 residual
    blocks, the paper's loss weights (10, 0.5), pool of 50 and Adam (2e-4, betas (0.5, 0.999))."""
    if model not in CycleGANTrainConfig.MODELS:
        raise ValueError(f"model must be one of {tuple(CycleGANTrainConfig.MODELS)}, got {model!r}")
    return make_config(CycleGANTrainConfig, {"model": model}, overrides)


def cyclegan_config(cfg: CycleGANTrainConfig) -> CycleGANConfig:
    """The generators' and discriminators' architecture a run of ``cfg`` trains (grey digits)."""
    return CycleGANConfig(img_channels=1, base_channels=cfg.base_channels, n_blocks=cfg.n_blocks)


# ----------------------------------------------------------------------------------------------
# The step function
# ----------------------------------------------------------------------------------------------

def cyclegan_step(
    G_AB: nn.Module,
    G_BA: nn.Module,
    D_A: nn.Module,
    D_B: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    pool_a: ImagePool,
    pool_b: ImagePool,
    *,
    lambda_cycle: float = 10.0,
    lambda_identity: float = 0.5,
    generator: torch.Generator | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """One generator update (both G's, Ds frozen), then one update of both Ds on pooled fakes.

    The order is the reference implementation's: G first, then D on the fakes G just made (taken
    through the history pools).

    Args:
        G_AB, G_BA: the generators; ``opt_G`` holds both of their parameters.
        D_A, D_B: the discriminators of domains A and B; ``opt_D`` holds both.
        x_a, x_b: unpaired batches (B, C, S, S) of A and B in [-1, 1].
        pool_a, pool_b: ``ImagePool`` of translated images into A and into B.
        lambda_cycle: weight of the cycle loss (10 in the paper).
        lambda_identity: weight of the identity loss relative to lambda_cycle (0.5; 0 turns it off).
        generator: CPU ``torch.Generator`` for the pools.
        amp: bf16 autocast of the networks (``course_lib.run.steps.autocast``); the losses are computed in float32.
        channels_last: convert x_a and x_b to channels_last (convert the networks once yourself).

    Returns:
        ``{"g_loss", "g_gan", "cycle", "identity", "d_loss", "d_a", "d_b"}``: floats; ``cycle`` and
        ``identity`` are the unweighted losses, ``d_a`` / ``d_b`` the Ds' losses.
    """
    if x_a.dim() != 4 or x_b.dim() != 4 or x_a.shape[1:] != x_b.shape[1:]:
        raise ValueError(f"x_a and x_b must be (B, C, S, S) batches of the same image shape, "
                         f"got {tuple(x_a.shape)} and {tuple(x_b.shape)}")
    x_a, x_b = prepare_images(x_a, channels_last, "x_a"), prepare_images(x_b, channels_last, "x_b")
    def forward(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """A network's forward pass under autocast; its output in float32 for the losses."""
        with autocast(amp, x.device):
            return net(x).float()

    # --- generators: fool both Ds, undo each other, leave their own domain alone ---
    with frozen(D_A), frozen(D_B):
        fake_b = forward(G_AB, x_a)  # (B, C, S, S): a translated into B
        fake_a = forward(G_BA, x_b)  # b translated into A
        gan = lsgan_g_loss(forward(D_B, fake_b)) + lsgan_g_loss(forward(D_A, fake_a))
        cyc = cycle_loss(x_a, forward(G_BA, fake_b), x_b, forward(G_AB, fake_a))
        idt = (identity_loss(lambda x: forward(G_AB, x), lambda x: forward(G_BA, x), x_a, x_b) if lambda_identity
               else torch.zeros((), device=x_a.device))
        loss_G = gan + lambda_cycle * cyc + lambda_identity * lambda_cycle * idt
    opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    opt_G.step()

    # --- discriminators: real vs earlier fakes from the history ---
    loss_d_a = lsgan_d_loss(forward(D_A, x_a), forward(D_A, pool_a(fake_a, generator)))
    loss_d_b = lsgan_d_loss(forward(D_B, x_b), forward(D_B, pool_b(fake_b, generator)))
    loss_D = loss_d_a + loss_d_b
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()
    return {
        "g_loss": loss_G.item(),
        "g_gan": gan.item(),
        "cycle": cyc.item(),
        "identity": idt.item(),
        "d_loss": loss_D.item(),
        "d_a": loss_d_a.item(),
        "d_b": loss_d_b.item(),
    }


class TwoStreams:
    """Batches of two ``ShuffledBatches`` side by side, with one resumable state."""

    def __init__(self, a: ShuffledBatches, b: ShuffledBatches) -> None:
        self.a, self.b = a, b

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return next(self.a), next(self.b)

    def state_dict(self) -> dict[str, Any]:
        return {"a": self.a.state_dict(), "b": self.b.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.a.load_state_dict(state["a"])
        self.b.load_state_dict(state["b"])


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _domain_features(domain: str) -> torch.Tensor:
    """Classifier features of the test images of a domain: "A" (mnist5k) or "B" (printed digits)."""
    a, b = unpaired_digits("test")
    return classify(load_classifier(), (a if domain == "A" else b).x)[1]


def evaluate_cyclegan(model: CycleGAN, n: int | None = None) -> dict[str, float]:
    """How well a handwritten <-> printed CycleGAN translates the held-out digits of each domain.

    - ``identity_ab`` / ``identity_ba``: the fraction of translated digits that the course
      classifier reads as the digit they came from (the translation kept the identity);
      ``source_acc_a`` / ``source_acc_b``: the classifier's accuracy on the untranslated images.
    - ``fd_ab`` / ``fd_ba``: FD of the translations to the target domain's test images, next to
      ``fd_a_to_b`` (the untranslated A images against B): how far the translation moved them.
      The targets are all 1,000 test images of the domain; ``n`` (default: all) images are
      translated, balanced over the ten classes.
    - ``cycle_a`` / ``cycle_b``: mean absolute error of the round trips A -> B -> A and B -> A -> B.
    """
    a, b = unpaired_digits("test")
    ia, ib = interleave_classes(a.labels)[:n], interleave_classes(b.labels)[:n]  # balanced over the classes for any n
    x_a, y_a, x_b, y_b = a.x[ia], a.labels[ia], b.x[ib], b.labels[ib]
    fake_b, fake_a = translate(model, x_a, "AB"), translate(model, x_b, "BA")
    rec_a, rec_b = translate(model, fake_b, "BA"), translate(model, fake_a, "AB")
    classifier = load_classifier()
    logits_fb, feats_fb = classify(classifier, fake_b)
    logits_fa, feats_fa = classify(classifier, fake_a)
    logits_a, feats_a = classify(classifier, x_a)
    logits_b, _ = classify(classifier, x_b)
    return {
        "test_images": len(x_a),
        "identity_ab": class_accuracy(logits_fb, y_a),
        "identity_ba": class_accuracy(logits_fa, y_b),
        "source_acc_a": class_accuracy(logits_a, y_a),
        "source_acc_b": class_accuracy(logits_b, y_b),
        "fd_ab": frechet_distance(_domain_features("B"), feats_fb),
        "fd_ba": frechet_distance(_domain_features("A"), feats_fa),
        "fd_a_to_b": frechet_distance(_domain_features("B"), feats_a),
        "cycle_a": (rec_a - x_a).abs().mean().item(),
        "cycle_b": (rec_b - x_b).abs().mean().item(),
    }


# ----------------------------------------------------------------------------------------------
# The run (course_lib.train builds a run of cyclegan with this)
# ----------------------------------------------------------------------------------------------

def build_run(cfg: CycleGANTrainConfig, device: torch.device | str = "cpu") -> Run:
    """Two ResNet generators, two PatchGANs and two history pools for handwritten (A) <-> printed (B) digits."""
    device = torch.device(device)
    amp = cfg.bf16(device)  # bf16 autocast of the forward passes (--precision), refused early where unsupported
    channels_last = cfg.use_channels_last(device)  # --channels-last; by default on with bf16
    generator = seed_everything(cfg.seed)
    model_cfg = cyclegan_config(cfg)
    pair = init_weights_(CycleGAN(model_cfg)).to(device)
    D_A, D_B = (init_weights_(d).to(device) for d in discriminators(model_cfg))
    if channels_last:
        pair, D_A, D_B = (m.to(memory_format=torch.channels_last) for m in (pair, D_A, D_B))
    image_shape = (model_cfg.img_channels, model_cfg.img_size, model_cfg.img_size)
    pool_a, pool_b = ImagePool(cfg.pool_size, image_shape).to(device), ImagePool(cfg.pool_size, image_shape).to(device)
    Ds = nn.ModuleDict({"D_A": D_A, "D_B": D_B})  # one optimiser over both Ds, as the reference implementation
    fused = device.type == "cuda"
    optimizers = {"G": adam(pair, cfg.lr_g, (cfg.beta1, cfg.beta2), fused=fused),
                  "D": adam(Ds, cfg.lr_d, (cfg.beta1, cfg.beta2), fused=fused)}
    a, b = unpaired_digits("train")
    # one shuffled stream per domain, drawn from the same run generator: unpaired by construction
    shuffle = distributed.batch_generator(generator, cfg.seed)
    batches = TwoStreams(ShuffledBatches(a.x, batch_size=cfg.batch_size, generator=shuffle, **distributed.shard()),
                         ShuffledBatches(b.x, batch_size=cfg.batch_size, generator=shuffle, **distributed.shard()))
    G_AB, G_BA, D_A_train, D_B_train = (distributed.wrap(m) for m in (pair.G_AB, pair.G_BA, D_A, D_B))  # DDP or as is
    a_test, b_test = (d.x[:GRID_IMAGES] for d in unpaired_digits("test"))

    def step() -> dict[str, float]:
        x_a, x_b = next(batches)
        return cyclegan_step(G_AB, G_BA, D_A_train, D_B_train, optimizers["G"], optimizers["D"],
                             x_a.to(device), x_b.to(device), pool_a, pool_b, lambda_cycle=cfg.lambda_cycle,
                             lambda_identity=cfg.lambda_identity, generator=generator, amp=amp,
                             channels_last=channels_last)

    def grid() -> torch.Tensor:  # rows: a, G_AB(a), b, G_BA(b)
        return torch.cat([a_test, pair(a_test.to(device), "AB").float().cpu(),
                          b_test, pair(b_test.to(device), "BA").float().cpu()])

    models = {"G": pair, "D": Ds, "pool_a": pool_a, "pool_b": pool_b}  # pools are buffers: saved with the run
    state = TrainState(models=models, optimizers=optimizers, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    return Run(cfg, state, step, pair, grid=grid,
               evaluate=lambda: evaluate_cyclegan(pair, min(cfg.eval_samples, 1000)) if cfg.eval_samples else {},
               images_per_step=2 * cfg.batch_size, grid_columns=GRID_IMAGES)  # a batch per domain


def build_sampler(architecture: dict[str, Any], where: str = "the weights file") -> CycleGAN:
    """The (untrained) pair of generators that a run's generator.safetensors holds, from its architecture."""
    return CycleGAN(architecture_of(CycleGANConfig, architecture, where))


def sample_arrays(model: CycleGAN, train: dict[str, Any], n: int, *, seed: int = 0, chunk: int = 500,
                  direction: str = "AB") -> Iterator[dict[str, torch.Tensor]]:
    """``python -m course_lib.sample``'s arrays: the first n test digits of the source domain of ``direction``
    (AB: handwritten to printed; BA: printed to handwritten) translated (``arr_0``), with those ``inputs`` and
    their ``labels``, so ``python -m course_lib.evaluate`` can read how many kept their identity. The test
    digits are fixed, so ``seed`` plays no part; they are translated at once (at most 1,000)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'AB' or 'BA', got {direction!r}")
    a, b = unpaired_digits("test")
    source = a if direction == "AB" else b
    if n > len(source):
        raise ValueError(f"n must be <= {len(source)}, the test digits of the source domain, got {n}")
    yield {"arr_0": translate(model, source.x[:n], direction), "inputs": source.x[:n], "labels": source.labels[:n]}
