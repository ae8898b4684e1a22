"""Train a model of the course from the command line: checkpoint, sample grid and metrics in one directory.

Usage::

    python -m course_lib.train {dcgan,cgan,wgan_gp} --dataset mnist5k [--steps N | --minutes M]
        --out DIR [--seed S] [--device auto] [--resume]

DIR receives

- ``checkpoint.pt``: the whole run (models, optimisers, RNG states, batch position, history),
  rewritten atomically every ``--checkpoint-every`` steps; ``--resume`` continues from it and ends
  exactly where a straight run would have;
- ``generator.safetensors``: the weights of G_ema (the moving average of G's weights, see
  ``course_lib.ema``; G itself with ``--ema-decay 0``) and the model config, what
  ``course_lib.sample`` reads;
- ``samples.png``: a grid from fixed noise (for cgan one class per column);
- ``metrics.json``: the course metrics of ``--eval-samples`` samples (see ``course_lib.evaluate``),
  with the step count, training seconds and throughput;
- ``config.json``: the `TrainConfig` of the run.

A step is one generator update (for WGAN-GP: ``n_critic`` critic updates, then one G update).
``--minutes`` stops at a wall-clock budget instead (whichever of steps and minutes comes first);
the time of earlier sessions of a resumed run counts towards it. The library functions
(`TrainConfig`, `build_run`, `train`) do the work; ``main`` only turns flags into a config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from course_lib.checkpoint import CheckpointError, atomic_write, read_checkpoint, save_weights
from course_lib.data import ShuffledBatches, load_dataset
from course_lib.device import get_device, seed_everything
from course_lib.augment import translate
from course_lib.ema import ema_copy, ema_update_
from course_lib.gan import DCGANConfig, Discriminator, Generator, balanced_labels, sample_z
from course_lib.gan_steps import gan_step, wgan_gp_step
from course_lib.training import TrainState, fit
from course_lib.viz import save_images

MODELS = ("dcgan", "cgan", "wgan_gp")
CHECKPOINT, GENERATOR, SAMPLES, METRICS, CONFIG = (
    "checkpoint.pt", "generator.safetensors", "samples.png", "metrics.json", "config.json")
GRID_SIZE = 100  # samples in samples.png: 10 x 10
RESUMABLE_CHANGES = ("steps", "minutes", "eval_samples", "checkpoint_every")  # may differ on --resume


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in the checkpoint and in ``config.json``."""

    model: str = "dcgan"              # dcgan, cgan (class-conditional, projection D) or wgan_gp
    dataset: str = "mnist5k"          # a built-in dataset of 32x32 images (course_lib.data.load_dataset)
    steps: int | None = 3000          # generator updates to reach (None: no limit, needs minutes)
    minutes: float | None = None      # optional wall-clock budget; the run ends at steps or minutes
    batch_size: int = 64              # real images per D update
    z_dim: int = 64                   # size of the noise vector z
    base_channels: int = 32           # W: network width (DCGANConfig.base_channels); 32 trains 2.4x faster than 64 on a CPU
    loss: str = "bce"                 # dcgan / cgan: "bce" (non-saturating) or "hinge"
    conditioning: str = "projection"  # cgan: "projection" or "concat" discriminator
    spectral_norm: bool = False       # spectral norm in D (Miyato et al. 2018)
    lr_g: float = 2e-4                # Adam learning rate of G
    lr_d: float = 2e-4                # Adam learning rate of D
    beta1: float = 0.5                # Adam beta1 (DCGAN: 0.5; WGAN-GP: 0.0)
    beta2: float = 0.999              # Adam beta2 (DCGAN: 0.999; WGAN-GP: 0.9)
    n_critic: int = 5                 # wgan_gp: critic updates per generator update
    lambda_gp: float = 10.0           # wgan_gp: gradient-penalty weight
    augment_shift: int = 0            # dcgan / cgan: DiffAugment translation of D's inputs by up to this many px (0: off)
    ema_decay: float = 0.999          # G_ema <- decay G_ema + (1 - decay) G after every step (0: no G_ema)
    seed: int = 0                     # seeds initialisation, noise and batch order
    eval_samples: int = 1000          # samples scored for metrics.json (0: skip the evaluation)
    checkpoint_every: int = 250       # steps between checkpoints
    amp: bool = False                 # bf16 autocast on CUDA (no effect elsewhere)
    channels_last: bool = False       # channels_last memory format (for CUDA tensor cores)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.steps is None and self.minutes is None:
            raise ValueError("give steps or minutes (or both): a run needs an end")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes!r}")
        if self.loss not in ("bce", "hinge"):
            raise ValueError(f"loss must be 'bce' or 'hinge', got {self.loss!r}")
        for name in ("batch_size", "n_critic", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")


def default_config(model: str, **overrides: Any) -> TrainConfig:
    """The recommended settings of each family, with ``overrides`` applied.

    WGAN-GP uses the paper's Adam settings (lr 1e-4, betas (0, 0.9)); DCGAN and the conditional
    GAN use Radford et al.'s (lr 2e-4, betas (0.5, 0.999)).
    """
    base: dict[str, Any] = {"model": model}
    if model == "wgan_gp":
        base.update(lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9)
    if overrides.get("minutes") is not None and overrides.get("steps") is None:
        base["steps"] = None  # a time budget alone
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)


def model_config(cfg: TrainConfig, img_channels: int) -> DCGANConfig:
    """The architecture a run trains."""
    return DCGANConfig(
        z_dim=cfg.z_dim,
        img_channels=img_channels,
        base_channels=cfg.base_channels,
        num_classes=10 if cfg.model == "cgan" else 0,
        conditioning=cfg.conditioning,
        spectral_norm=cfg.spectral_norm,
        critic=cfg.model == "wgan_gp",
    )


# ----------------------------------------------------------------------------------------------
# Building a run
# ----------------------------------------------------------------------------------------------

@dataclass
class Run:
    """A training run: its state (for ``fit``), the step closure, and fixed monitoring inputs."""

    cfg: TrainConfig
    model_cfg: DCGANConfig
    state: TrainState
    step_fn: Callable[[], dict[str, float]]
    fixed_z: torch.Tensor                # (GRID_SIZE, z_dim) noise for samples.png
    fixed_labels: torch.Tensor | None    # (GRID_SIZE,) labels 0..9 repeated, for cgan


def build_run(cfg: TrainConfig, device: torch.device | str = "cpu") -> Run:
    """Data, models, optimisers, batch sampler and step function of a run, all seeded by ``cfg.seed``."""
    device = torch.device(device)
    data = load_dataset(cfg.dataset, "train")
    if data.x.dim() != 4 or tuple(data.x.shape[2:]) != (32, 32):
        raise ValueError(f"dataset {cfg.dataset!r} must hold 32x32 images, got shape {tuple(data.x.shape)}")
    if cfg.model == "cgan" and data.labels is None:
        raise ValueError(f"model 'cgan' needs a labelled dataset; {cfg.dataset!r} has no labels")
    generator = seed_everything(cfg.seed)  # seeds the initialisation too
    model_cfg = model_config(cfg, img_channels=data.x.shape[1])
    G, D = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
    if cfg.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2), **fused)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2), **fused)
    labels = data.labels if cfg.model == "cgan" else None
    batches = ShuffledBatches(data.x, labels, batch_size=cfg.batch_size, generator=generator)
    models = {"G": G, "D": D}
    if cfg.ema_decay:
        models["G_ema"] = ema_copy(G)  # what samples.png, metrics.json and generator.safetensors use
    state = TrainState(models=models, optimizers={"G": opt_G, "D": opt_D}, generator=generator,
                       batches=batches, config=dataclasses.asdict(cfg))
    monitor = torch.Generator().manual_seed(cfg.seed + 1)  # fixed noise, independent of training
    fixed_z = sample_z(GRID_SIZE, cfg.z_dim, generator=monitor).to(device)
    fixed_labels = balanced_labels(GRID_SIZE, 10, device=device) if cfg.model == "cgan" else None

    def next_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = next(batches)
        x, y = batch if labels is not None else (batch, None)
        return x.to(device, non_blocking=True), (y.to(device) if y is not None else None)

    augment = None
    if cfg.augment_shift:
        def augment(t: torch.Tensor) -> torch.Tensor:
            return translate(t, cfg.augment_shift, generator=generator)

    def step() -> dict[str, float]:
        if cfg.model == "wgan_gp":
            xs, ys = zip(*[next_batch() for _ in range(cfg.n_critic)])
            logs = wgan_gp_step(G, D, opt_G, opt_D, list(xs), None, lambda_gp=cfg.lambda_gp, generator=generator,
                                amp=cfg.amp, channels_last=cfg.channels_last)
        else:
            x, y = next_batch()
            logs = gan_step(G, D, opt_G, opt_D, x, y, loss=cfg.loss, generator=generator, amp=cfg.amp,
                            channels_last=cfg.channels_last, augment=augment)
        if cfg.ema_decay:
            ema_update_(models["G_ema"], G, cfg.ema_decay, step=state.step)
        return logs

    return Run(cfg, model_cfg, state, step, fixed_z, fixed_labels)


# ----------------------------------------------------------------------------------------------
# Training and writing the results
# ----------------------------------------------------------------------------------------------

def save_generator(path: str | Path, G: Generator, model_cfg: DCGANConfig, cfg: TrainConfig) -> Path:
    """G's weights as safetensors; the metadata says how to rebuild it (``course_lib.sample.load_generator``)."""
    config = {"model": cfg.model, "architecture": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(cfg)}
    return save_weights(path, G, config=config)


@torch.no_grad()
def generate(G: Generator, n: int, seed: int = 0, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples from G in eval mode, on the CPU: images (n, C, 32, 32) in [-1, 1], and balanced labels or None."""
    device = next(G.parameters()).device
    z = sample_z(n, G.z_dim, generator=torch.Generator().manual_seed(seed))  # (n, z_dim), the same on every device
    labels = balanced_labels(n, G.cfg.num_classes) if G.cfg.num_classes else None
    was_training = G.training
    G.eval()
    try:
        chunks = [G(z[i:i + batch_size].to(device), None if labels is None else labels[i:i + batch_size].to(device))
                  for i in range(0, n, batch_size)]
    finally:
        G.train(was_training)
    return torch.cat(chunks).float().cpu(), labels


def evaluate_generator(G: Generator, n: int, seed: int = 0) -> dict[str, float]:
    """Course metrics of n samples from G against the mnist5k test digits (``course_lib.evaluate``)."""
    from course_lib.evaluate import evaluate

    images, labels = generate(G, n, seed)
    return evaluate(images, labels)


def train(cfg: TrainConfig, out: str | Path, device: str = "auto", resume: bool = False,
          show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a training run into ``out``; returns the content of ``metrics.json``.

    Raises:
        FileExistsError: ``out`` already holds a checkpoint and ``resume`` is False (never overwrite
            a run silently).
        CheckpointError: ``resume`` with a checkpoint of a different configuration.
    """
    out = Path(out)
    checkpoint = out / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise FileExistsError(f"{checkpoint} exists: pass --resume to continue that run, or choose another --out")
    device = get_device(device)
    run = build_run(cfg, device)
    if resume and checkpoint.exists():
        stored = read_checkpoint(checkpoint)["config"]
        wanted = run.state.config
        changed = {k for k in wanted if k not in RESUMABLE_CHANGES and stored.get(k) != wanted[k]}
        if changed:
            raise CheckpointError(f"cannot resume {checkpoint}: it was trained with different settings "
                                  f"({', '.join(f'{k}={stored.get(k)!r}' for k in sorted(changed))})")
        run.state.load(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / CONFIG, lambda tmp: tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=2)))

    seconds_before = run.state.history.get("seconds", [0.0])[-1] if run.state.history.get("seconds") else 0.0
    start = time.perf_counter()
    step_fn = run.step_fn

    def timed_step() -> dict[str, float]:
        logs = step_fn()
        logs["seconds"] = seconds_before + time.perf_counter() - start  # wall time of the run so far
        return logs

    def out_of_time() -> bool:
        return cfg.minutes is not None and seconds_before + time.perf_counter() - start >= 60 * cfg.minutes

    G = run.state.models.get("G_ema", run.state.models["G"])  # sample from the average when there is one
    steps_before = run.state.step
    fit(run.state, timed_step, cfg.steps, checkpoint_path=checkpoint, checkpoint_every=cfg.checkpoint_every,
        sample_fn=lambda: G(run.fixed_z, run.fixed_labels), sample_every=0, show_progress=show_progress,
        should_stop=out_of_time)
    seconds = run.state.history["seconds"][-1] if run.state.history.get("seconds") else 0.0
    session = time.perf_counter() - start
    save_generator(out / GENERATOR, G, run.model_cfg, cfg)
    save_images(run.state.grids[-1][1], out / SAMPLES, nrow=10)
    images_per_step = cfg.batch_size * (cfg.n_critic if cfg.model == "wgan_gp" else 1)
    result: dict[str, Any] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "steps": run.state.step,
        "train_seconds": round(seconds, 1),
        "images_per_second": round((run.state.step - steps_before) * images_per_step / max(session, 1e-9), 1),
        "device": str(device),
    }
    if cfg.eval_samples:
        result["eval_samples"] = cfg.eval_samples
        result.update(evaluate_generator(G, cfg.eval_samples, seed=cfg.seed))
    atomic_write(out / METRICS, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=MODELS, help="which GAN to train")
    parser.add_argument("--dataset", default="mnist5k", help="built-in dataset of 32x32 images (default mnist5k)")
    parser.add_argument("--steps", type=int, help="generator updates to reach (default 3000, or none with --minutes)")
    parser.add_argument("--minutes", type=float, help="wall-clock budget in minutes (stops at steps or minutes)")
    parser.add_argument("--out", type=Path, required=True, help="directory for checkpoint, samples and metrics")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--batch-size", type=int, help="real images per D update (default 64)")
    parser.add_argument("--base-channels", type=int, help="network width W (default 32)")
    parser.add_argument("--loss", choices=["bce", "hinge"], help="dcgan/cgan loss (default bce)")
    parser.add_argument("--conditioning", choices=["projection", "concat"], help="cgan discriminator (default projection)")
    parser.add_argument("--spectral-norm", action="store_true", default=None, help="spectral norm in D")
    parser.add_argument("--lr-g", type=float, help="G learning rate")
    parser.add_argument("--lr-d", type=float, help="D learning rate")
    parser.add_argument("--n-critic", type=int, help="wgan_gp: critic updates per G update (default 5)")
    parser.add_argument("--augment-shift", type=int, help="dcgan/cgan: DiffAugment shift of D's inputs in px (default 0: off)")
    parser.add_argument("--ema-decay", type=float, help="decay of G_ema, the weight average sampled from (default 0.999; 0: none)")
    parser.add_argument("--eval-samples", type=int, help="samples scored for metrics.json (default 1000; 0 skips)")
    parser.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 250)")
    parser.add_argument("--amp", action="store_true", default=None, help="bf16 autocast on CUDA")
    parser.add_argument("--channels-last", action="store_true", default=None, help="channels_last memory format")
    args = parser.parse_args(argv)
    try:
        cfg = default_config(args.model, dataset=args.dataset, steps=args.steps, minutes=args.minutes, seed=args.seed,
                             batch_size=args.batch_size, base_channels=args.base_channels, loss=args.loss,
                             conditioning=args.conditioning, spectral_norm=args.spectral_norm, lr_g=args.lr_g,
                             lr_d=args.lr_d, n_critic=args.n_critic, ema_decay=args.ema_decay, augment_shift=args.augment_shift, eval_samples=args.eval_samples,
                             checkpoint_every=args.checkpoint_every, amp=args.amp, channels_last=args.channels_last)
        result = train(cfg, args.out, device=args.device, resume=args.resume)
    except (ValueError, FileExistsError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
