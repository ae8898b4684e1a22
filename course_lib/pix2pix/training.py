"""Training pix2pix on a paired task: its run config, its step function, calibration, evaluation and its run.

``Pix2PixTrainConfig`` extends the shared ``RunConfig`` with the task (``course_lib.data.paired``),
the loss weights and Adam's settings; ``pix2pix_step`` is one D update, then one G update.
``calibrate_pix2pix`` fits a photo model's correction scale on the validation pairs and
``evaluate_pix2pix`` scores G against the task's classical baseline on held-out pairs.
``build_run(cfg, device)`` puts it together for ``course_lib.train``: a U-Net G and a PatchGAN D,
Adam, the clean targets (mirrored at random for photos) degraded afresh every step, and the step
closure, seeded by ``cfg.seed``; under ``torchrun`` the step gets G and D in ``DistributedDataParallel``
and this rank's share of every batch (``course_lib.run.distributed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from course_lib.data import ShuffledBatches
from course_lib.data.paired import (TASKS, TEST_PATCHES, baseline, degrade, digit_subset, paired_task, paste,
                                    show_input, task_spec, task_targets)
from course_lib.device import seed_everything
from course_lib.evaluate import evaluate
from course_lib.image_quality import psnr, ssim
from course_lib.pix2pix.model import (RECONSTRUCTIONS, PatchDiscriminator, Pix2PixConfig, UNet, init_weights_,
                                      least_squares_scale, pix2pix_d_loss, pix2pix_g_loss)
from course_lib.run import (Run, RunConfig, adam, architecture_of, autocast, check_ints, check_numbers, distributed,
                            frozen, make_config, translate)
from course_lib.training import TrainState

GRID_PAIRS = 8  # test pairs in a run's samples.png (one per column)


# ----------------------------------------------------------------------------------------------
# The run config
# ----------------------------------------------------------------------------------------------

@dataclass
class Pix2PixTrainConfig(RunConfig):
    """A run of pix2pix on one paired task: photo restoration (colorize, superres, inpaint, denoise) or edges2digits."""

    model: str = "pix2pix"            # pix2pix
    dataset: str = "photo_patches"    # the task's: photo_patches, or mnist5k for edges2digits (the data come with the task)
    batch_size: int = 16              # pairs per update
    task: str = "colorize"            # colorize, superres, inpaint, denoise or edges2digits (course_lib.data.paired)
    base_channels: int = 32           # W: the U-Net's width (Pix2PixConfig.base_channels)
    lambda_l1: float = 100.0          # weight of the reconstruction term
    reconstruction: str = "l1"        # "l1" (the paper) or "l2" (Context Encoders, Pathak et al. 2016: the conditional mean)
    calibrate: bool = False           # photo tasks: fit G's correction scale on the val pairs after training
    correction_stride: int = 0        # photo tasks: block size of G's correction (0: the task's, 8 for colorize, else 1)
    lr_g: float = 2e-4                # Adam learning rate of G
    lr_d: float = 2e-4                # Adam learning rate of D
    beta1: float = 0.5                # Adam beta1
    beta2: float = 0.999              # Adam beta2

    MODELS: ClassVar[dict[str, str]] = {"pix2pix": "pix2pix, lesson 07: a U-Net and a PatchGAN on one paired task"}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"task": TASKS, "reconstruction": RECONSTRUCTIONS}
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("lr_g", "lr_d")
    AUTO_BF16: ClassVar[dict[str, tuple[str, ...]]] = {"pix2pix": ("cpu",)}  # measured: README, Benchmark
    RESUMABLE: ClassVar[tuple[str, ...]] = (*RunConfig.RESUMABLE, "calibrate")
    MIN_EVAL_SAMPLES: ClassVar[int] = 10  # held-out pairs (edges2digits: digits) scored; no sample metrics

    def __post_init__(self) -> None:
        super().__post_init__()
        expected = task_spec(self.task).dataset
        if self.dataset != expected:
            raise ValueError(f"dataset must be {expected!r} for model {self.model!r} with task {self.task!r} "
                             f"(the data come with the task), got {self.dataset!r}")
        if not isinstance(self.correction_stride, int) or self.correction_stride < 0:
            raise ValueError(f"correction_stride must be an int >= 0 (0: the task's default), got {self.correction_stride!r}")
        photo = self.dataset == "photo_patches"
        if self.correction_stride > 1 and not photo:
            raise ValueError("correction_stride > 1 needs model 'pix2pix' with a photo task (a residual U-Net), "
                             f"got model {self.model!r} with task {self.task!r}")
        if self.calibrate and not photo:
            raise ValueError("calibrate needs model 'pix2pix' with a photo task (the val split of photo_patches), "
                             f"got model {self.model!r} with task {self.task!r}")
        check_ints(self, "base_channels")
        check_numbers(self, "beta1", "beta2", below_one=True)
        check_numbers(self, "lambda_l1")

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "task": self.task}


def default_config(model: str = "pix2pix", **overrides: Any) -> Pix2PixTrainConfig:
    """The course's pix2pix settings for ``overrides["task"]`` (default colorize), with ``overrides`` applied:
    batch 16, the paper's lambda_l1 100 and Adam (2e-4, betas (0.5, 0.999)); the task's dataset; the photo
    tasks calibrate their correction scale on the val pairs (edges2digits has no val split)."""
    if model not in Pix2PixTrainConfig.MODELS:
        raise ValueError(f"model must be one of {tuple(Pix2PixTrainConfig.MODELS)}, got {model!r}")
    task = overrides.get("task") or Pix2PixTrainConfig.task
    dataset = task_spec(task).dataset if task in TASKS else Pix2PixTrainConfig.dataset
    return make_config(Pix2PixTrainConfig, {"model": model, "dataset": dataset,
                                            "calibrate": dataset == "photo_patches"}, overrides)


def pix2pix_config(cfg: Pix2PixTrainConfig) -> Pix2PixConfig:
    """The U-Net (and PatchGAN) a run of ``cfg`` trains: residual and dropout-free for the photo tasks."""
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


# ----------------------------------------------------------------------------------------------
# The step function
# ----------------------------------------------------------------------------------------------

def pix2pix_step(
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lambda_l1: float = 100.0,
    reconstruction: str = "l1",
    amp: bool = False,
) -> dict[str, float]:
    """One D update on (x, y) vs (x, G(x).detach()), then one G update through the updated D.

    Args:
        G: ``UNet``, (B, C_in, S, S) -> (B, C_out, S, S).
        D: ``PatchDiscriminator`` with ``C_in + C_out`` input channels (it sees the condition x).
        opt_G, opt_D: their optimisers.
        x: inputs (B, C_in, S, S) in [-1, 1].
        y: targets (B, C_out, S, S) in [-1, 1].
        lambda_l1: weight of the L1 term.
        reconstruction: "l1" (the paper) or "l2" (see ``pix2pix_g_loss``).
        amp: bf16 autocast of the networks, CUDA or CPU (``course_lib.run.steps.autocast``); losses in float32.

    Returns:
        ``{"d_loss", "g_loss", "g_gan", "g_l1", "d_real", "d_fake"}``: floats; d_real / d_fake are
        D's mean probability on real and generated pairs before its update.
    """
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ValueError(f"x and y must be a batch of pairs (B, C, S, S), got {tuple(x.shape)} and {tuple(y.shape)}")
    with autocast(amp, x.device):
        y_fake = G(x)                                            # (B, C_out, S, S)
        real_logits = D(torch.cat([x, y], dim=1))                # (B, 1, P, P): D sees the condition
        fake_logits = D(torch.cat([x, y_fake.detach()], dim=1))  # no gradient to G here
    loss_D = pix2pix_d_loss(real_logits.float(), fake_logits.float())
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()

    with frozen(D):
        with autocast(amp, x.device):
            logits = D(torch.cat([x, y_fake], dim=1))
        loss_G, gan, l1 = pix2pix_g_loss(logits.float(), y_fake.float(), y, lambda_l1, reconstruction)
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
    return {
        "d_loss": loss_D.item(),
        "g_loss": loss_G.item(),
        "g_gan": gan.item(),
        "g_l1": l1.item(),
        "d_real": torch.sigmoid(real_logits.detach().float()).mean().item(),
        "d_fake": torch.sigmoid(fake_logits.detach().float()).mean().item(),
    }


# ----------------------------------------------------------------------------------------------
# Calibration and evaluation
# ----------------------------------------------------------------------------------------------

def calibrate_pix2pix(G: UNet, task: str, n: int | None = None) -> float:
    """Fit G's ``correction_scale`` buffer (in place) on the task's validation pairs; returns it.

    The scale is the least-squares c of ``least_squares_scale`` for G's outputs at scale 1 (pasted
    into the input for inpaint, as they are scored): the blend between the input and G's output
    that is closest to the targets of pairs G never saw, chosen without looking at the test pairs.
    It is stored in G's state_dict, so ``generator.safetensors`` carries it with the weights.

    Returns:
        c >= 0 as G holds it (a float32 value).

    Raises:
        ValueError: G is not a residual U-Net (nothing to scale), or the task has no val split.
    """
    if not isinstance(G, UNet) or not G.cfg.residual:
        raise ValueError("G must be a residual pix2pix UNet (Pix2PixConfig(residual=True)) to calibrate")
    x, y = paired_task(task, "val", n=n)
    before = G.correction_scale.item()
    G.set_correction_scale(1.0)
    try:
        y_fake = paste(task, x, translate(G, x))  # G's corrections as trained
    except BaseException:
        G.set_correction_scale(before)
        raise
    x_image = x[:, :G.cfg.out_channels].expand_as(y)  # what a scale of 0 returns: the input itself
    G.set_correction_scale(least_squares_scale(x_image, y_fake, y))
    return G.correction_scale.item()


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
        _, labels = digit_subset("test", n)  # the digits paired_task drew the edges from
        scores = evaluate(y_fake, labels)
        result.update(class_accuracy=scores["class_accuracy"], fd=scores["fd"])
    return result


# ----------------------------------------------------------------------------------------------
# The run (course_lib.train builds a run of pix2pix with this)
# ----------------------------------------------------------------------------------------------

def build_run(cfg: Pix2PixTrainConfig, device: torch.device | str = "cpu") -> Run:
    """U-Net G and PatchGAN D for ``cfg.task``; every step degrades a fresh batch of clean targets.

    Photo targets are mirrored left-right at random (half of them), a free doubling of the data.
    """
    device = torch.device(device)
    amp = cfg.bf16(device)  # bf16 autocast of the forward passes (--precision), refused early where unsupported
    channels_last = cfg.use_channels_last(device)  # --channels-last; by default on with bf16
    generator = seed_everything(cfg.seed)
    model_cfg = pix2pix_config(cfg)
    G = init_weights_(UNet(model_cfg)).to(device)
    D = init_weights_(PatchDiscriminator(model_cfg.in_channels + model_cfg.out_channels,
                                         model_cfg.d_base_channels, model_cfg.d_layers, model_cfg.norm)).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = device.type == "cuda"
    optimizers = {"G": adam(G, cfg.lr_g, (cfg.beta1, cfg.beta2), fused=fused),
                  "D": adam(D, cfg.lr_d, (cfg.beta1, cfg.beta2), fused=fused)}
    batches = ShuffledBatches(task_targets(cfg.task, "train"), batch_size=cfg.batch_size,
                              generator=distributed.batch_generator(generator, cfg.seed), **distributed.shard())
    G_train, D_train = distributed.wrap(G), distributed.wrap(D)  # several processes: gradients averaged across them
    x_test, y_test = paired_task(cfg.task, "test", n=GRID_PAIRS)
    flip = task_spec(cfg.task).dataset == "photo_patches"  # mirrored photos are photos; mirrored digits are not digits

    def step() -> dict[str, float]:
        y = next(batches)                      # (B, C_out, S, S) clean targets
        if flip:                               # random horizontal flips: 8 photos are little data
            mirror = torch.rand(len(y), generator=generator) < 0.5
            y = torch.where(mirror[:, None, None, None], y.flip(-1), y)
        x = degrade(cfg.task, y, generator)    # fresh masks / noise every time
        return pix2pix_step(G_train, D_train, optimizers["G"], optimizers["D"], x.to(device), y.to(device),
                            lambda_l1=cfg.lambda_l1, reconstruction=cfg.reconstruction, amp=amp)

    def grid() -> torch.Tensor:  # rows: inputs, outputs, targets (translate: eval mode, no gradients)
        y_fake = paste(cfg.task, x_test, translate(G, x_test))
        return torch.cat([show_input(cfg.task, x_test), y_fake, y_test])

    def calibrate() -> dict[str, Any]:  # the test scores of G as trained, then its correction scale fitted on val pairs
        as_trained = evaluate_test_pairs(G, cfg) if cfg.eval_samples else {}
        scores: dict[str, Any] = {f"raw_{key}": as_trained[key] for key in ("psnr", "ssim") if key in as_trained}
        scores["correction_scale"] = calibrate_pix2pix(G, cfg.task)
        return scores

    state = TrainState(models={"G": G, "D": D}, optimizers=optimizers, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    return Run(cfg, state, step, G, grid=grid,
               evaluate=lambda: evaluate_test_pairs(G, cfg) if cfg.eval_samples else {},
               images_per_step=cfg.batch_size, grid_columns=GRID_PAIRS,
               finish=calibrate if cfg.calibrate else None)


def evaluate_test_pairs(G: nn.Module, cfg: Pix2PixTrainConfig) -> dict[str, float]:
    """The scores of metrics.json: ``evaluate_pix2pix`` on at most ``cfg.eval_samples`` held-out pairs (the 500
    fixed test pairs of a photo task, the 1,000 test digits of mnist5k for edges2digits)."""
    available = 1000 if task_spec(cfg.task).dataset == "mnist5k" else TEST_PATCHES
    return evaluate_pix2pix(G, cfg.task, min(cfg.eval_samples, available))


def build_sampler(architecture: dict[str, Any], where: str = "the weights file") -> UNet:
    """The (untrained) U-Net that a run's generator.safetensors holds, from its architecture.

    Files written before the correction scale became a buffer of the U-Net hold it in their architecture
    (``correction_scale``) and not in their tensors: the U-Net gets it here, and loading such a file's
    tensors keeps it (``UNet._load_from_state_dict``).
    """
    architecture = dict(architecture)
    scale = architecture.pop("correction_scale", 1.0)  # files written before it was a buffer
    G = UNet(architecture_of(Pix2PixConfig, architecture, where))
    if scale != 1:
        G.set_correction_scale(scale)
    return G


def sample_arrays(model: UNet, train: dict[str, Any], n: int, *, seed: int = 0,
                  chunk: int = 500) -> Iterator[dict[str, torch.Tensor]]:
    """``python -m course_lib.sample``'s arrays: G's outputs for the first n test inputs of the run's task
    (``arr_0``; for inpaint pasted into the visible pixels), with those ``inputs`` (as shown) and ``targets``.
    The test pairs are fixed, so ``seed`` plays no part; they are translated at once (at most 1,000)."""
    task = train["task"]
    x, y = paired_task(task, "test", n=n)
    yield {"arr_0": paste(task, x, translate(model, x)), "inputs": show_input(task, x), "targets": y}
