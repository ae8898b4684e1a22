"""Training the encoder of lesson 10: ``python -m course_lib.train encoder``, on a trained StyleGAN.

The encoder (``course_lib.editing.encoder``) learns x -> W+ for one generator, which stays frozen:
each step shows it a batch of real training digits and as many of the generator's own samples, whose
codes are known (pSp, Richardson et al. 2021; e4e's delta penalty, Tov et al. 2021). The run's
sampler is an ``Inverter``: the encoder together with a copy of the generator it was trained for,
so ``generator.safetensors`` holds everything a reconstruction needs, and a code is only ever read
by the generator that gives it meaning.

``metrics.json`` scores the reconstructions G(E(x)) of the first ``eval_samples`` held-out test
digits: PSNR and SSIM (images in [0, 1]), the share whose class the course classifier still reads
as the digit's label, and the seconds per image of one encoder pass. Under ``torchrun`` the step gets
the encoder in ``DistributedDataParallel`` and this rank's share of every batch
(``course_lib.run.distributed``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from course_lib.checkpoint import CheckpointError, load_weights
from course_lib.classifier import classify, load_classifier
from course_lib.data import ShuffledBatches, load_dataset
from course_lib.device import seed_everything
from course_lib.editing.encoder import Encoder, EncoderConfig, encode, encoder_step
from course_lib.editing.inversion import features_distance, pixel_distance
from course_lib.image_quality import psnr, ssim
from course_lib.run import Run, RunConfig, adam, check_ints, check_numbers, distributed, make_config
from course_lib.run.files import GENERATOR, architecture_of, shipped_checkpoint
from course_lib.stylegan import Generator, StyleGANConfig
from course_lib.stylegan import build_sampler as build_stylegan
from course_lib.training import TrainState

DISTANCES = ("pixel", "features")
GRID_PAIRS = 50  # samples.png: 50 test digits (odd rows) above their reconstructions (even rows)


@dataclass
class EncoderTrainConfig(RunConfig):
    """An encoder x -> W+ for a trained StyleGAN (pSp with e4e's delta penalty), small."""

    model: str = "encoder"            # encoder
    stylegan: str = "stylegan"        # the generator to invert: a shipped checkpoint's name or a StyleGAN run folder
    batch_size: int = 32              # real digits per step (as many of G's samples join them)
    steps: int | None = 3000          # training steps to reach (None: no limit, needs minutes)
    base_channels: int = 16           # the encoder's width at 32x32 (doubles at each of its 3 halvings)
    distance: str = "features"        # reconstruction distance: "pixel" (MSE) or "features" (classifier features + MSE)
    lambda_latent: float = 1.0        # weight of the code error on G's own samples
    lambda_delta: float = 0.1         # weight of e4e's penalty on the spread of the layers' codes
    lr: float = 1e-3                  # Adam learning rate of the encoder
    eval_samples: int = 1000          # held-out test digits reconstructed for metrics.json (0: skip the evaluation)

    MODELS: ClassVar[dict[str, str]] = {"encoder": "an encoder into W+ of a trained StyleGAN (lesson 10: pSp / e4e)"}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"distance": DISTANCES}
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("lr",)
    MIN_EVAL_SAMPLES: ClassVar[int] = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, "base_channels")
        check_numbers(self, "lambda_latent", "lambda_delta")
        if not isinstance(self.stylegan, str) or not self.stylegan:
            raise ValueError(f"stylegan must name a shipped checkpoint or a StyleGAN run folder, got {self.stylegan!r}")


def default_config(model: str = "encoder", **overrides: Any) -> EncoderTrainConfig:
    """The course's encoder settings, with ``overrides`` applied: 3,000 steps of batch 32 + 32 of G's samples,
    Adam at 1e-3, the classifier-feature distance, e4e's delta penalty at 0.1, for the shipped StyleGAN."""
    if model not in EncoderTrainConfig.MODELS:
        raise ValueError(f"model must be one of {tuple(EncoderTrainConfig.MODELS)}, got {model!r}")
    return make_config(EncoderTrainConfig, {"model": model}, overrides)


# ----------------------------------------------------------------------------------------------
# The generator an encoder inverts, and the pair that a run ships
# ----------------------------------------------------------------------------------------------

def stylegan_folder(source: str | Path) -> Path:
    """The folder of ``source``: a run folder when it is one, else the shipped checkpoint of that name."""
    path = Path(source)
    if (path / GENERATOR).is_file():
        return path
    if isinstance(source, str) and "/" not in source:
        return shipped_checkpoint(source)  # raises naming the checkpoints there
    raise CheckpointError(f"stylegan: {source} is neither a run folder with a {GENERATOR} nor a shipped checkpoint")


def load_stylegan(source: str | Path, device: torch.device | str = "cpu") -> Generator:
    """The StyleGAN generator (G_ema) of a run folder or shipped checkpoint, frozen, in eval mode on ``device``.

    Raises:
        CheckpointError: no such folder or checkpoint, or a run of another model (naming it).
    """
    path = stylegan_folder(source) / GENERATOR
    _, config = load_weights(path)
    if config.get("model") != "stylegan":
        raise CheckpointError(f"{path.parent} holds a {config.get('model')!r} run, not a StyleGAN "
                              "(python -m course_lib.train stylegan, or checkpoints/stylegan)")
    G = build_stylegan(config.get("architecture", {}), where=str(path))
    load_weights(path, G)
    for p in G.parameters():
        p.requires_grad_(False)
    return G.to(device).eval()


@dataclass
class InverterConfig:
    """The architecture of an ``Inverter``: its encoder's and its generator's."""

    encoder: EncoderConfig
    generator: StyleGANConfig


class Inverter(nn.Module):
    """An encoder with the generator it inverts: x (B, C, 32, 32) -> G(E(x)) (B, C, 32, 32), in one pass.

    ``inverter.encoder(x)`` gives the W+ codes (B, num_ws, w_dim) for editing; ``inverter.generator`` turns
    codes back into images. The generator is a frozen copy: training changes the encoder only.
    """

    def __init__(self, cfg: InverterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg.encoder)
        self.generator = Generator(cfg.generator)
        for p in self.generator.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesis(self.encoder(x), noise_mode="const").clamp(-1, 1)


def build_sampler(architecture: dict[str, Any], where: str = "the weights file") -> Inverter:
    """The (untrained) ``Inverter`` that an encoder run's generator.safetensors holds, from its architecture."""
    if set(architecture) != {"encoder", "generator"}:
        raise CheckpointError(f"{where} does not describe an encoder and its generator (architecture keys "
                              f"{sorted(architecture)}); retrain it with `python -m course_lib.train encoder`")
    return Inverter(InverterConfig(architecture_of(EncoderConfig, architecture["encoder"], where),
                                   architecture_of(StyleGANConfig, architecture["generator"], where)))


@torch.no_grad()
def reconstruction_metrics(inverter: Inverter, x: torch.Tensor, labels: torch.Tensor,
                           classifier: nn.Module | None = None) -> dict[str, float]:
    """PSNR, SSIM (images mapped to [0, 1]), class kept and seconds per image of G(E(x)) for test digits x (N, C, 32, 32)."""
    inverter.eval()
    start = time.perf_counter()
    codes = encode(inverter.encoder, x)
    seconds = (time.perf_counter() - start) / len(x)
    rec = torch.cat([inverter.generator.synthesis(codes[i:i + 250], noise_mode="const").clamp(-1, 1)
                     for i in range(0, len(codes), 250)])
    a, b = (rec + 1) / 2, (x + 1) / 2
    classifier = classifier or load_classifier()
    logits, _ = classify(classifier, rec)
    return {"psnr": float(psnr(a, b).mean()), "ssim": float(ssim(a, b).mean()),
            "class_kept": float((logits.argmax(1) == labels).float().mean()),
            "encoder_seconds_per_image": seconds, "test_digits": len(x)}


# ----------------------------------------------------------------------------------------------
# The run (course_lib.train builds a run of encoder with this)
# ----------------------------------------------------------------------------------------------

def build_run(cfg: EncoderTrainConfig, device: torch.device | str = "cpu") -> Run:
    """Data, the encoder (starting at G's average w), the frozen G, Adam and the step closure, seeded by ``cfg.seed``."""
    device = torch.device(device)
    G = load_stylegan(cfg.stylegan, device)  # checked before anything is built
    generator = seed_everything(cfg.seed)
    data = load_dataset(cfg.dataset, "train")
    if tuple(data.x.shape[1:]) != (G.cfg.img_channels, 32, 32):
        raise ValueError(f"dataset {cfg.dataset!r} holds {tuple(data.x.shape[1:])} images; the StyleGAN "
                         f"{cfg.stylegan!r} draws {(G.cfg.img_channels, 32, 32)}")
    inverter = Inverter(InverterConfig(EncoderConfig(G.cfg.img_channels, cfg.base_channels, G.num_ws, G.cfg.w_dim),
                                       G.cfg)).to(device)
    inverter.generator.load_state_dict(G.state_dict())
    inverter.encoder.w_avg.copy_(G.w_avg)
    E = inverter.encoder
    amp = cfg.bf16(device)  # bf16 autocast of the forward passes (--precision), refused early where unsupported
    channels_last = cfg.use_channels_last(device)  # --channels-last; by default on with bf16
    if channels_last:
        inverter = inverter.to(memory_format=torch.channels_last)
    optimizer = adam(E, cfg.lr, (0.9, 0.99), fused=device.type == "cuda")
    distance = features_distance(load_classifier(device)) if cfg.distance == "features" else pixel_distance
    batches = ShuffledBatches(data.x, None, batch_size=cfg.batch_size,
                              generator=distributed.batch_generator(generator, cfg.seed), **distributed.shard())
    E_train = distributed.wrap(E)  # several processes (torchrun): the encoder in DDP, gradients averaged across them
    test = load_dataset(cfg.dataset, "test")
    shown = test.x[torch.linspace(0, len(test.x) - 1, GRID_PAIRS).long()].to(device)  # (50, C, 32, 32), every class

    def step() -> dict[str, float]:
        return encoder_step(E_train, inverter.generator, optimizer, next(batches).to(device), distance=distance,
                            lambda_latent=cfg.lambda_latent, lambda_delta=cfg.lambda_delta, generator=generator,
                            amp=amp, channels_last=channels_last)

    @torch.no_grad()
    def grid() -> torch.Tensor:  # rows of 10 test digits, each above its reconstruction
        was_training = E.training
        rec = inverter.eval()(shown)
        E.train(was_training)
        return torch.stack([shown.view(5, 10, *shown.shape[1:]), rec.view(5, 10, *rec.shape[1:])], 1).flatten(0, 2)

    def evaluate() -> dict[str, Any]:
        n = min(cfg.eval_samples, len(test.x))
        if n == 0:
            return {}
        pick = torch.linspace(0, len(test.x) - 1, n).long()
        scores = reconstruction_metrics(inverter, test.x[pick].to(device), test.labels[pick])
        E.train()
        return scores

    state = TrainState(models={"E": E}, optimizers={"E": optimizer}, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    return Run(cfg, state, step, inverter, grid=grid, evaluate=evaluate, images_per_step=2 * cfg.batch_size)


def sample_arrays(model: Inverter, train: dict[str, Any], n: int, *, seed: int = 0,
                  chunk: int = 500) -> Iterator[dict[str, torch.Tensor]]:
    """``python -m course_lib.sample``'s arrays: the reconstructions G(E(x)) (``arr_0``) of the first n test
    digits of the run's dataset (``inputs``) and their ``labels``. The inputs are fixed, so ``seed`` plays no part."""
    test = load_dataset(train.get("dataset", "mnist5k"), "test")
    if n > len(test.x):
        raise ValueError(f"n: an encoder run reconstructs the {len(test.x)} test digits, got n = {n}")
    device = next(model.parameters()).device
    for i in range(0, n, chunk):
        x = test.x[i:min(n, i + chunk)]
        with torch.no_grad():
            yield {"arr_0": model.eval()(x.to(device)).cpu(), "inputs": x, "labels": test.labels[i:i + len(x)]}
