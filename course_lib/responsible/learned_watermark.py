"""A learned watermark (HiDDeN, Zhu et al. 2018): an encoder hides n bits in an image, a decoder reads them back.

    encoder: x (B, C, 32, 32), message (B, n) in {0, 1} -> x_w = clamp(x + s r / rms(r), -1, 1)
    attack:  x_w -> x_a (JPEG, blur, resizing, noise or a crop, drawn at every step)
    decoder: x_a -> logits (B, n), one per bit

trained end to end on BCE(logits, message). HiDDeN adds an image loss lambda MSE(x_w, x) instead of
fixing the distortion; here the encoder's residual r is scaled to a fixed RMS s (the distortion budget:
PSNR = 20 log10(2 / s) before clamping, 38 dB for s = 0.025), so the network only chooses where to
spend it, and an image loss cannot shrink the residual before the decoder has learnt to read it. JPEG
is not differentiable: the step uses the straight-through estimate (forward the real JPEG, backward as
if it were the identity), as later work on HiDDeN does. A key stands for a message (``key_bits``), and
detection is the same binomial test on matched bits as for the DCT mark (``watermarks.decide``).

``python -m course_lib.train watermark`` trains it; ``metrics.json`` holds the PSNR and SSIM of the
marked test digits, and the bit accuracy and true-positive rate (at a false-positive rate of 1e-3)
under each of ``attacks.STANDARD``, with the rate of unmarked digits flagged. When training ends the
decoder is calibrated so that each bit is a fair coin on unmarked digits (``calibrate``), as the
binomial test assumes. Under ``torchrun`` the
step gets the network in ``DistributedDataParallel`` and this rank's share of every batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import ShuffledBatches, load_dataset
from course_lib.device import seed_everything
from course_lib.image_quality import psnr, ssim
from course_lib.responsible import attacks
from course_lib.responsible.watermarks import key_bits, threshold
from course_lib.run import Run, RunConfig, adam, autocast, check_ints, distributed, make_config, prepare_images
from course_lib.run.files import architecture_of
from course_lib.training import TrainState

SHOWN = 10          # samples.png: 10 test digits, their marked versions, and 10x the residual
EVAL_FPR = 1e-3     # the false-positive rate of metrics.json's true-positive rates


@dataclass
class HiDDeNConfig:
    """Architecture of the encoder/decoder pair (the defaults: grey 32x32 digits, 32 bits, ~0.14M parameters)."""

    img_channels: int = 1            # C of the images
    n_bits: int = 32                 # bits hidden in each image
    base_channels: int = 32          # width of both networks
    strength: float = 0.025          # RMS of the residual in [-1, 1] units: PSNR 20 log10(2 / strength) = 38 dB

    def __post_init__(self) -> None:
        for name in ("img_channels", "n_bits", "base_channels"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if not 0 < self.strength < 1:
            raise ValueError(f"strength must be in (0, 1), got {self.strength!r}")


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class HiDDeN(nn.Module):
    """The encoder and the decoder of a learned watermark, on (B, C, 32, 32) images in [-1, 1].

        encoder: x -> [conv] x3 -> (B, W, 32, 32) ++ message -> linear -> plane (B, 1, 32, 32) ++ x
                 -> conv -> (B, W, 32, 32) -> 1x1 conv -> residual (B, C, 32, 32)
        decoder: x -> conv -> [conv s2] x2 -> (B, W, 8, 8) -> flatten (B, 64 W) -> linear -> (B, n)

    The message enters as StegaStamp's does (Tancik et al. 2020): a learnt linear map to an image-sized
    plane, so each bit can own a spatial pattern; HiDDeN's copy of every bit over the whole plane,
    read back through a global average, learns far more slowly at this size.
    """

    def __init__(self, cfg: HiDDeNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, w, n = cfg.img_channels, cfg.base_channels, cfg.n_bits
        self.image_features = nn.Sequential(_conv(c, w), _conv(w, w), _conv(w, w))
        self.message_plane = nn.Linear(n, 32 * 32)
        self.merge = _conv(w + 1 + c, w)
        self.to_residual = nn.Conv2d(w, c, 1)
        self.decoder = nn.Sequential(_conv(c, w), _conv(w, w, stride=2), _conv(w, w, stride=2), nn.Flatten(),
                                     nn.Linear(w * 8 * 8, n))
        self.register_buffer("logit_offset", torch.zeros(n))  # set by ``calibrate`` when training ends

    def check(self, x: torch.Tensor, name: str = "x") -> None:
        if x.dim() != 4 or x.shape[1:] != (self.cfg.img_channels, 32, 32):
            raise ValueError(f"{name} must be (B, {self.cfg.img_channels}, 32, 32), got {tuple(x.shape)}")

    def embed(self, x: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        """x (B, C, 32, 32) in [-1, 1] and message (B, n) in {0, 1} -> the marked images (B, C, 32, 32) in [-1, 1]."""
        self.check(x)
        if message.shape != (len(x), self.cfg.n_bits):
            raise ValueError(f"message must be ({len(x)}, {self.cfg.n_bits}), got {tuple(message.shape)}")
        plane = self.message_plane(2 * message.float() - 1).view(-1, 1, 32, 32)           # (B, 1, 32, 32)
        h = self.merge(torch.cat([self.image_features(x), plane, x], 1))                  # (B, W, 32, 32)
        residual = self.to_residual(h)                                                    # (B, C, 32, 32)
        rms = residual.pow(2).mean((1, 2, 3), keepdim=True).add(1e-12).sqrt()             # (B, 1, 1, 1)
        return (x + self.cfg.strength * residual / rms).clamp(-1, 1)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The bit logits (B, n) of images (B, C, 32, 32): bit j is read as 1 where logit j > 0."""
        self.check(x)
        return self.decoder(x) - self.logit_offset

    def forward(self, x: torch.Tensor, message: torch.Tensor,
                attack: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mark, attack (optional), decode: the marked images (B, C, 32, 32) and the decoder's logits (B, n)."""
        marked = self.embed(x, message)
        return marked, self.decode(marked if attack is None else attack(marked))


@torch.no_grad()
def calibrate(net: HiDDeN, x: torch.Tensor) -> dict[str, float]:
    """Shift the decoder's logits so that each bit reads 1 on exactly half of the unmarked images x (N, C, 32, 32).

    The binomial test assumes that an unmarked image matches each bit of a key with probability 1/2.
    A decoder trained only on marked images need not read unmarked ones that way: it may read bit j
    as 1 on almost every clean digit, and a key whose bit j is 1 would then match it for free (on the
    shipped run before calibration, several bits were read the same way on over 95% of the test
    digits). Subtracting each logit's median over clean images makes every bit a fair coin on them;
    marked images, whose logits are far from 0, are read as before. Returns the largest shift.
    """
    net.logit_offset.zero_()
    was_training = net.training
    net.eval()
    logits = torch.cat([net.decode(x[i:i + 500]) for i in range(0, len(x), 500)])    # (N, n)
    net.logit_offset.copy_(logits.median(0).values)
    net.train(was_training)
    return {"logit_offset_max": float(net.logit_offset.abs().max())}


def build_sampler(architecture: dict[str, Any], where: str = "the weights file") -> HiDDeN:
    """The (untrained) ``HiDDeN`` that a watermark run's generator.safetensors holds, from its architecture."""
    return HiDDeN(architecture_of(HiDDeNConfig, architecture, where))


# ----------------------------------------------------------------------------------------------
# Training: the attacks of a step, and the step
# ----------------------------------------------------------------------------------------------

def straight_through(attack: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The attack in the forward pass, the identity in the backward pass (for JPEG, which has no gradient)."""
    return lambda x: x + (attack(x.detach()) - x).detach()


def training_attack(generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """One attack drawn with ``generator``: none, JPEG (quality 50..90), blur (sigma 0.5..1.5), resizing to
    half, noise (sigma 0.04) or a 2-pixel crop, each with probability 1/6; differentiable (JPEG straight-through)."""
    choice = int(torch.randint(0, 6, (), generator=generator))
    u = float(torch.rand((), generator=generator))
    seed = int(torch.randint(0, 2 ** 31, (), generator=generator))
    return [lambda x: x,
            straight_through(lambda x: attacks.jpeg(x, 50 + round(40 * u))),
            lambda x: attacks.blur(x, 0.5 + u),
            lambda x: attacks.resize(x, 0.5),
            lambda x: attacks.noise(x, 0.04, seed),
            lambda x: attacks.crop(x, 2)][choice]


def watermark_step(net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, message: torch.Tensor,
                   attack: Callable[[torch.Tensor], torch.Tensor] | None = None, amp: bool = False,
                   channels_last: bool = False) -> dict[str, float]:
    """One update of the encoder and decoder on a batch.

    Args:
        net: a ``HiDDeN`` (or its ``DistributedDataParallel`` wrapper).
        optimizer: over its parameters.
        x: (B, C, 32, 32) images in [-1, 1].
        message: (B, n) bits in {0, 1}.
        attack: applied to the marked images before decoding (None: none); it receives float32 images.
        amp: bf16 autocast of the network (``course_lib.run.steps.autocast``); the loss is computed in float32.
        channels_last: convert x to channels_last (convert the network once yourself).

    Returns:
        Floats for logging: ``loss`` (the bits' BCE), ``image`` (the MSE of the marked images, for the
        record: the budget fixes it), ``bit_accuracy``.
    """
    net.train()
    x = prepare_images(x, channels_last, "x")
    float_attack = None if attack is None else (lambda marked: attack(marked.float()))  # JPEG goes through NumPy
    with autocast(amp, x.device):
        marked, logits = net(x, message, float_attack)
    marked, logits = marked.float(), logits.float()
    loss = F.binary_cross_entropy_with_logits(logits, message.float())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "image": F.mse_loss(marked.detach(), x).item(),
            "bit_accuracy": ((logits > 0).float() == message).float().mean().item()}


@torch.no_grad()
def robustness(net: HiDDeN, x: torch.Tensor, message: torch.Tensor, fpr: float = EVAL_FPR) -> dict[str, float]:
    """PSNR and SSIM of the marked images, and for each standard attack the bit accuracy and the share of images
    flagged at ``fpr``; ``fpr_unmarked``: the share of the unmarked images flagged. x (N, C, 32, 32), message (N, n)."""
    net.eval()
    marked = torch.cat([net.embed(x[i:i + 250], message[i:i + 250]) for i in range(0, len(x), 250)])
    k = threshold(net.cfg.n_bits, fpr)

    def read(images: torch.Tensor) -> torch.Tensor:  # matched bits (N,)
        bits = torch.cat([(net.decode(images[i:i + 250]) > 0).long() for i in range(0, len(images), 250)])
        return (bits == message.long()).sum(1)

    scores = {"psnr": float(psnr(marked, x).mean()), "ssim": float(ssim(marked, x).mean())}
    for name in attacks.STANDARD:
        matched = read(attacks.attack(marked, name))
        scores[f"bit_accuracy_{name}"] = float(matched.float().mean() / net.cfg.n_bits)
        scores[f"tpr_{name}"] = float((matched >= k).float().mean())
    scores["fpr_unmarked"] = float((read(x) >= k).float().mean())
    return scores


# ----------------------------------------------------------------------------------------------
# The run (course_lib.train builds a run of watermark with this)
# ----------------------------------------------------------------------------------------------

@dataclass
class WatermarkTrainConfig(RunConfig):
    """A learned watermark for 32x32 images (HiDDeN), small."""

    model: str = "watermark"          # watermark
    batch_size: int = 32              # images per step
    steps: int | None = 3000          # training steps to reach (None: no limit, needs minutes)
    n_bits: int = 32                  # bits hidden in each image
    base_channels: int = 32           # width of the encoder and the decoder
    psnr: float = 38.0                # distortion budget: the residual's RMS is set to this PSNR (dB, before clamping)
    train_attacks: bool = True        # attack the marked images in training (JPEG, blur, resize, noise, crop)
    lr: float = 1e-3                  # Adam learning rate
    eval_samples: int = 1000          # held-out test digits marked for metrics.json (0: skip the evaluation)

    MODELS: ClassVar[dict[str, str]] = {"watermark": "a learned watermark: HiDDeN's encoder and decoder (lesson 12)"}
    LEARNING_RATES: ClassVar[tuple[str, ...]] = ("lr",)
    MIN_EVAL_SAMPLES: ClassVar[int] = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, "n_bits", "base_channels")
        if not isinstance(self.psnr, (int, float)) or not 10 <= self.psnr <= 80:
            raise ValueError(f"psnr must be a number of dB in 10..80, got {self.psnr!r}")


def default_config(model: str = "watermark", **overrides: Any) -> WatermarkTrainConfig:
    """The course's learned-watermark settings, with ``overrides`` applied: 3,000 steps of batch 32, 32 bits,
    Adam at 1e-3, a budget of 38 dB, attacks in training."""
    if model not in WatermarkTrainConfig.MODELS:
        raise ValueError(f"model must be one of {tuple(WatermarkTrainConfig.MODELS)}, got {model!r}")
    return make_config(WatermarkTrainConfig, {"model": model}, overrides)


def build_run(cfg: WatermarkTrainConfig, device: torch.device | str = "cpu") -> Run:
    """Data, the network, Adam and the step closure, seeded by ``cfg.seed``."""
    device = torch.device(device)
    generator = seed_everything(cfg.seed)
    data = load_dataset(cfg.dataset, "train")
    if tuple(data.x.shape[2:]) != (32, 32):
        raise ValueError(f"dataset {cfg.dataset!r} holds {tuple(data.x.shape[1:])} images; the watermark takes 32x32")
    strength = 2 * 10 ** (-cfg.psnr / 20)  # PSNR on [0, 1] = 20 log10(1 / (s / 2))
    amp = cfg.bf16(device)  # bf16 autocast of the forward passes (--precision), refused early where unsupported
    channels_last = cfg.use_channels_last(device)  # --channels-last; by default on with bf16
    net = HiDDeN(HiDDeNConfig(data.x.shape[1], cfg.n_bits, cfg.base_channels, strength)).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = adam(net, cfg.lr, (0.9, 0.999), fused=device.type == "cuda")
    batches = ShuffledBatches(data.x, None, batch_size=cfg.batch_size,
                              generator=distributed.batch_generator(generator, cfg.seed), **distributed.shard())
    net_train = distributed.wrap(net)  # several processes (torchrun): in DDP, gradients averaged across them
    test = load_dataset(cfg.dataset, "test")
    shown = test.x[torch.linspace(0, len(test.x) - 1, SHOWN).long()].to(device)  # (10, C, 32, 32), one per class
    shown_message = key_bits(cfg.seed, cfg.n_bits).expand(SHOWN, -1).to(device)

    def step() -> dict[str, float]:
        x = next(batches).to(device)
        message = torch.randint(0, 2, (len(x), cfg.n_bits), generator=generator).to(device)
        attack = training_attack(generator) if cfg.train_attacks else None
        return watermark_step(net_train, optimizer, x, message, attack, amp=amp, channels_last=channels_last)

    @torch.no_grad()
    def grid() -> torch.Tensor:  # originals, marked, 10x the residual around grey
        was_training = net.training
        marked = net.eval().embed(shown, shown_message)
        net.train(was_training)
        return torch.cat([shown, marked, (10 * (marked - shown)).clamp(-1, 1)])

    def evaluate() -> dict[str, Any]:
        n = min(cfg.eval_samples, len(test.x))
        if n == 0:
            return {}
        pick = torch.linspace(0, len(test.x) - 1, n).long()
        message = torch.randint(0, 2, (n, cfg.n_bits), generator=torch.Generator().manual_seed(cfg.seed + 1))
        scores = robustness(net, test.x[pick].to(device), message.to(device))
        net.train()
        return {**scores, "test_digits": n, "fpr": EVAL_FPR}

    def finish() -> dict[str, float]:  # on the training digits: the test digits stay unseen for metrics.json
        return calibrate(net, data.x.to(device))

    state = TrainState(models={"net": net}, optimizers={"net": optimizer}, generator=generator, batches=batches,
                       config=dataclasses.asdict(cfg))
    return Run(cfg, state, step, net, grid=grid, evaluate=evaluate, images_per_step=cfg.batch_size, finish=finish)


def sample_arrays(model: HiDDeN, train: dict[str, Any], n: int, *, seed: int = 0,
                  chunk: int = 500) -> Iterator[dict[str, torch.Tensor]]:
    """``python -m course_lib.sample``'s arrays: the first n test digits of the run's dataset (``inputs``) marked
    (``arr_0``) with the message of key ``seed`` (``bits``, (n_bits,) the same for every image)."""
    test = load_dataset(train.get("dataset", "mnist5k"), "test")
    if n > len(test.x):
        raise ValueError(f"n: a watermark run marks the {len(test.x)} test digits, got n = {n}")
    device = next(model.parameters()).device
    bits = key_bits(seed, model.cfg.n_bits)
    for i in range(0, n, chunk):
        x = test.x[i:min(n, i + chunk)]
        with torch.no_grad():
            marked = model.eval().embed(x.to(device), bits.expand(len(x), -1).to(device)).cpu()
        yield {"arr_0": marked, "inputs": x, **({"bits": bits.to(torch.uint8)} if i == 0 else {})}
