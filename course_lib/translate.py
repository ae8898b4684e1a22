"""Image-to-image runs for the training CLI: pix2pix on a paired task, CycleGAN on handwritten <-> printed digits.

``course_lib.train`` calls ``build_pix2pix`` / ``build_cyclegan`` for its ``pix2pix`` and
``cyclegan`` models and ``evaluate_translation`` for ``metrics.json``. The same functions serve
the lessons: ``translate`` runs a trained generator over many images, ``calibrate_pix2pix`` fits
a photo model's correction scale on the validation pairs, ``evaluate_pix2pix`` scores it against
the task's classical baseline on held-out pairs, ``evaluate_cyclegan`` measures how
often a digit keeps its identity through a translation and how close the translations are to the
target domain.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from course_lib.cyclegan import CycleGAN, CycleGANConfig, ImagePool, cyclegan_step, discriminators
from course_lib.data import ShuffledBatches
from course_lib.data.paired import (TEST_PATCHES, baseline, degrade, digit_subset, interleave_classes, paired_task,
                                    paste, show_input, task_spec, task_targets, unpaired_digits)
from course_lib.image_quality import psnr, ssim
from course_lib.pix2pix import (PatchDiscriminator, Pix2PixConfig, UNet, init_weights_, least_squares_scale,
                                pix2pix_step)

GRID_PAIRS = 8  # test pairs (or images per domain) in a run's samples.png


@dataclass
class TranslationRun:
    """What ``course_lib.train.build_run`` needs from an image-to-image run."""

    model_cfg: Pix2PixConfig | CycleGANConfig
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    batches: Any
    step: Callable[[], dict[str, float]]
    sampler: nn.Module                       # G (pix2pix) or the CycleGAN pair of generators
    grid: Callable[[], torch.Tensor]         # the images of samples.png, GRID_PAIRS per row


def _adam(module: nn.Module, lr: float, cfg: Any, device: torch.device) -> torch.optim.Adam:
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(cfg.beta1, cfg.beta2), **fused)


@torch.no_grad()
def translate(model: nn.Module, x: torch.Tensor, direction: str | None = None, batch_size: int = 250) -> torch.Tensor:
    """Run a generator over many images in eval mode, in batches on its device; the result on the CPU.

    Args:
        model: a pix2pix ``UNet`` (direction None) or a ``CycleGAN`` (direction "AB" or "BA").
        x: (N, C, S, S) inputs in [-1, 1].
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        call = (lambda t: model(t)) if direction is None else (lambda t: model(t, direction))
        out = [call(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------
# pix2pix
# ----------------------------------------------------------------------------------------------

def pix2pix_config(cfg: Any) -> Pix2PixConfig:
    spec = task_spec(cfg.task)
    photo = spec.dataset == "photo_patches"
    # the photo tasks restore their input (residual) and need no noise: no dropout, whose variance shift before the
    # next batch norm cost 0.8 dB at evaluation (Li et al. 2019, "Understanding the Disharmony between Dropout and
    # Batch Normalization by Variance Shift")
    # colour varies slowly: colorize's correction is by default a 4 x 4 grid of colours, upsampled (stride 8; on the
    # val pairs 25.0 dB / SSIM 0.905 against 24.7 / 0.890 at full resolution, both with 3,000 steps)
    stride = cfg.correction_stride or (8 if cfg.task == "colorize" else 1)
    return Pix2PixConfig(in_channels=spec.in_channels, out_channels=spec.out_channels,
                         base_channels=cfg.base_channels, max_mult=2, residual=photo, dropout=0.0 if photo else 0.5,
                         correction_stride=stride)


def calibrate_pix2pix(G: UNet, task: str, n: int | None = None) -> float:
    """Fit ``G.cfg.correction_scale`` (in place) on the task's validation pairs; returns it.

    The scale is the least-squares c of ``least_squares_scale`` for G's outputs at scale 1 (pasted
    into the input for inpaint, as they are scored): the blend between the input and G's output
    that is closest to the targets of pairs G never saw, chosen without looking at the test pairs.

    Raises:
        ValueError: G is not a residual U-Net (nothing to scale), or the task has no val split.
    """
    if not isinstance(G, UNet) or not G.cfg.residual:
        raise ValueError("G must be a residual pix2pix UNet (Pix2PixConfig(residual=True)) to calibrate")
    x, y = paired_task(task, "val", n=n)
    before, G.cfg.correction_scale = G.cfg.correction_scale, 1.0
    try:
        y_fake = paste(task, x, translate(G, x))  # G's corrections as trained
    except BaseException:
        G.cfg.correction_scale = before
        raise
    x_image = x[:, :G.cfg.out_channels].expand_as(y)  # what a scale of 0 returns: the input itself
    G.cfg.correction_scale = least_squares_scale(x_image, y_fake, y)
    return G.cfg.correction_scale


def build_pix2pix(cfg: Any, generator: torch.Generator, device: torch.device) -> TranslationRun:
    """U-Net G and PatchGAN D for ``cfg.task``; every step degrades a fresh batch of clean targets.

    Photo targets are mirrored left-right at random (half of them), a free doubling of the data.
    """
    model_cfg = pix2pix_config(cfg)
    G = init_weights_(UNet(model_cfg)).to(device)
    D = init_weights_(PatchDiscriminator(model_cfg.in_channels + model_cfg.out_channels,
                                         model_cfg.d_base_channels, model_cfg.d_layers, model_cfg.norm)).to(device)
    if cfg.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    optimizers = {"G": _adam(G, cfg.lr_g, cfg, device), "D": _adam(D, cfg.lr_d, cfg, device)}
    batches = ShuffledBatches(task_targets(cfg.task, "train"), batch_size=cfg.batch_size, generator=generator)
    x_test, y_test = paired_task(cfg.task, "test", n=GRID_PAIRS)

    flip = task_spec(cfg.task).dataset == "photo_patches"  # mirrored photos are photos; mirrored digits are not digits

    def step() -> dict[str, float]:
        y = next(batches)                      # (B, C_out, S, S) clean targets
        if flip:                               # random horizontal flips: 8 photos are little data
            mirror = torch.rand(len(y), generator=generator) < 0.5
            y = torch.where(mirror[:, None, None, None], y.flip(-1), y)
        x = degrade(cfg.task, y, generator)    # fresh masks / noise every time
        return pix2pix_step(G, D, optimizers["G"], optimizers["D"], x.to(device), y.to(device),
                            lambda_l1=cfg.lambda_l1, reconstruction=cfg.reconstruction, amp=cfg.amp)

    def grid() -> torch.Tensor:  # rows: inputs, outputs, targets (translate: eval mode, no gradients)
        y_fake = paste(cfg.task, x_test, translate(G, x_test))
        return torch.cat([show_input(cfg.task, x_test), y_fake, y_test])

    return TranslationRun(model_cfg, {"G": G, "D": D}, optimizers, batches, step, G, grid)


def evaluate_pix2pix(G: nn.Module, task: str, n: int | None = None) -> dict[str, float]:
    """PSNR and SSIM of G and of the task's baseline on the held-out pairs (mean over images).

    For inpaint G's output is pasted into the hole of the input (``paired.paste``), as the
    mean-fill baseline is.

    For ``edges2digits`` also the course classifier's accuracy on G's digits against the labels
    of the digits the edges came from, and the FD of G's digits to the mnist5k test digits.

    Returns:
        ``{"psnr", "ssim", "baseline_psnr", "baseline_ssim", "test_pairs"}`` (+ ``"class_accuracy"``, ``"fd"``).
    """
    x, y = paired_task(task, "test", n=n)
    y_fake = paste(task, x, translate(G, x))  # inpaint: the visible pixels are known, only the hole is G's
    y_base = baseline(task, x)
    result = {
        "test_pairs": len(x),
        "psnr": psnr(y_fake, y).mean().item(),
        "ssim": ssim(y_fake, y).mean().item(),
        "baseline_psnr": psnr(y_base, y).mean().item(),
        "baseline_ssim": ssim(y_base, y).mean().item(),
    }
    if task == "edges2digits":
        from course_lib.evaluate import evaluate

        _, labels = digit_subset("test", n)  # the digits paired_task drew the edges from
        scores = evaluate(y_fake, labels)
        result.update(class_accuracy=scores["class_accuracy"], fd=scores["fd"])
    return result


# ----------------------------------------------------------------------------------------------
# CycleGAN
# ----------------------------------------------------------------------------------------------

def cyclegan_config(cfg: Any) -> CycleGANConfig:
    return CycleGANConfig(img_channels=1, base_channels=cfg.base_channels, n_blocks=cfg.n_blocks)


def build_cyclegan(cfg: Any, generator: torch.Generator, device: torch.device) -> TranslationRun:
    """Two ResNet generators, two PatchGANs and two history pools for handwritten (A) <-> printed (B) digits."""
    model_cfg = cyclegan_config(cfg)
    pair = init_weights_(CycleGAN(model_cfg)).to(device)
    D_A, D_B = (init_weights_(d).to(device) for d in discriminators(model_cfg))
    image_shape = (model_cfg.img_channels, model_cfg.img_size, model_cfg.img_size)
    pool_a, pool_b = ImagePool(cfg.pool_size, image_shape).to(device), ImagePool(cfg.pool_size, image_shape).to(device)
    Ds = nn.ModuleDict({"D_A": D_A, "D_B": D_B})  # one optimiser over both Ds, as the reference implementation
    optimizers = {"G": _adam(pair, cfg.lr_g, cfg, device), "D": _adam(Ds, cfg.lr_d, cfg, device)}
    a, b = unpaired_digits("train")
    # one shuffled stream per domain, drawn from the same run generator: unpaired by construction
    batches = _TwoStreams(ShuffledBatches(a.x, batch_size=cfg.batch_size, generator=generator),
                          ShuffledBatches(b.x, batch_size=cfg.batch_size, generator=generator))
    a_test, b_test = (d.x[:GRID_PAIRS] for d in unpaired_digits("test"))

    def step() -> dict[str, float]:
        x_a, x_b = next(batches)
        return cyclegan_step(pair.G_AB, pair.G_BA, D_A, D_B, optimizers["G"], optimizers["D"],
                             x_a.to(device), x_b.to(device), pool_a, pool_b, lambda_cycle=cfg.lambda_cycle,
                             lambda_identity=cfg.lambda_identity, generator=generator, amp=cfg.amp)

    def grid() -> torch.Tensor:  # rows: a, G_AB(a), b, G_BA(b)
        return torch.cat([a_test, pair(a_test.to(device), "AB").float().cpu(),
                          b_test, pair(b_test.to(device), "BA").float().cpu()])

    models = {"G": pair, "D": Ds, "pool_a": pool_a, "pool_b": pool_b}  # pools are buffers: saved with the run
    return TranslationRun(model_cfg, models, optimizers, batches, step, pair, grid)


class _TwoStreams:
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


@functools.lru_cache(maxsize=2)
def _domain_features(domain: str) -> torch.Tensor:
    """Classifier features of the test images of a domain: "A" (mnist5k) or "B" (printed digits)."""
    from course_lib.classifier import classify, load_classifier

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
    from course_lib.classifier import classify, load_classifier
    from course_lib.metrics import class_accuracy, frechet_distance

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


def evaluate_translation(model: nn.Module, cfg: Any) -> dict[str, float]:
    """The metrics of ``metrics.json`` for a pix2pix or CycleGAN run.

    At most ``cfg.eval_samples`` held-out images: the 500 fixed test pairs of a photo task, the
    1,000 test digits of mnist5k (edges2digits) or of each CycleGAN domain.
    """
    if cfg.model == "pix2pix":
        available = 1000 if task_spec(cfg.task).dataset == "mnist5k" else TEST_PATCHES
        return evaluate_pix2pix(model, cfg.task, min(cfg.eval_samples, available))
    return evaluate_cyclegan(model, min(cfg.eval_samples, 1000))
