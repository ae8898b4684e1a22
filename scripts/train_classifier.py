"""Train the course's digit classifier on the mnist5k train split and write its weights.

    python scripts/train_classifier.py            # writes course_lib/assets/digit_classifier.safetensors
    python scripts/train_classifier.py --check    # trains into a temporary file and compares it
                                                  # with the shipped one (bit for bit)
    python scripts/train_classifier.py --mlp      # the second feature network of lesson 03 (an MLP),
                                                  # course_lib/assets/digit_mlp.safetensors

Training is deterministic on the CPU (seeded initialisation, a fixed generator for shuffling and
augmentation, ``torch.use_deterministic_algorithms``, a fixed number of CPU threads) and takes
about three minutes on 2 cores. The bits of the result depend on the thread count (the order of
floating-point sums in parallel CPU kernels), so ``--threads`` defaults to 2, the setting
that made the shipped file; other thread counts train an equally good classifier with a different
checksum.

Augmentation is light: a random rotation of up to 10 degrees and a random translation of up to
2 px (pad with background, then crop). Only the mnist5k *train* split is used for training; the
script reports accuracy on the 1,000 mnist5k test digits and on printed digits (a second domain,
never trained on), then prints the file's SHA-256 and the line to paste into
``course_lib/classifier.py``. After a new classifier, regenerate the reference statistics with
``python scripts/make_reference_stats.py`` (they record the classifier's checksum).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib.checkpoint import save_weights
from course_lib.classifier import (WEIGHTS_PATH, WEIGHTS_SHA256, ClassifierConfig, DigitClassifier,
                                   classify, file_sha256)
from course_lib.data import ShuffledBatches, mnist5k, printed_digits
from course_lib.device import count_parameters, seed_everything
from course_lib.mlp_classifier import MLP_WEIGHTS_PATH, MLP_WEIGHTS_SHA256, DigitMLP, MLPConfig

MIN_TEST_ACCURACY = 0.985  # the shipped classifier must reach this on the 1,000 mnist5k test digits
MIN_MLP_TEST_ACCURACY = 0.95  # the MLP (no convolutions) must reach this


def augment(x: torch.Tensor, cfg: ClassifierConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly rotate and translate a batch of MNIST-framed digits.

    Args:
        x: (B, 1, 32, 32) digits in [-1, 1], background -1.
        cfg: uses max_rotation_deg and max_shift.
        generator: the source of every random number.

    Returns:
        (B, 1, 28, 28) in [-1, 1]: each digit rotated by an angle uniform in +-max_rotation_deg
        (bilinear), then a 28x28 window whose centre is shifted by an integer in
        [-max_shift, max_shift] px in each direction.
    """
    b = x.shape[0]
    if cfg.max_rotation_deg > 0:
        angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(cfg.max_rotation_deg)  # (B,)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, 32, 32, 2)
        x = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1  # background stays -1
    s = cfg.max_shift
    x = F.pad(x[..., 2:30, 2:30], (s, s, s, s), value=-1.0)  # (B, 1, 28 + 2s, 28 + 2s)
    dy, dx = torch.randint(0, 2 * s + 1, (2, b), generator=generator)  # (B,) offsets of the window
    rows = (dy[:, None] + torch.arange(28))[:, :, None]  # (B, 28, 1)
    cols = (dx[:, None] + torch.arange(28))[:, None, :]  # (B, 1, 28)
    return x[torch.arange(b)[:, None, None], 0, rows, cols][:, None]  # (B, 1, 28, 28)


def train(cfg: ClassifierConfig, log=print, network: type = DigitClassifier) -> DigitClassifier:
    """Train a `DigitClassifier` (or ``network``) on the mnist5k train split, deterministically on the CPU.

    Args:
        cfg: architecture and training settings.
        log: called with one progress line per epoch.
        network: the class to build from ``cfg`` (``DigitMLP`` with an ``MLPConfig``).

    Returns:
        The trained model, in eval mode, on the CPU.
    """
    generator = seed_everything(cfg.seed)  # seeds the initialisation; the generator drives the data
    train_set = mnist5k("train")
    model = network(cfg)
    batches = ShuffledBatches(train_set.x, train_set.labels, batch_size=cfg.batch_size, generator=generator)
    steps = cfg.epochs * batches.batches_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps)
    model.train()
    start = time.perf_counter()
    total, correct, loss_sum = 0, 0, 0.0
    for step in range(1, steps + 1):
        x_real, labels = next(batches)  # (B, 1, 32, 32), (B,)
        logits = model(augment(x_real, cfg, generator))  # (B, 10)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        loss_sum += loss.item() * len(labels)
        if step % batches.batches_per_epoch == 0:
            log(f"epoch {step // batches.batches_per_epoch:2d}/{cfg.epochs}  loss {loss_sum / total:.4f}  "
                f"train accuracy (augmented) {correct / total:.4f}  {time.perf_counter() - start:5.1f} s")
            total, correct, loss_sum = 0, 0, 0.0
    return model.eval()


def accuracy(model: DigitClassifier, x: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images whose arg-max logit is their label."""
    logits, _ = classify(model, x)
    return float((logits.argmax(1) == labels).float().mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlp", action="store_true", help="train the second feature network (an MLP) instead")
    parser.add_argument("--out", type=Path, default=None, help="weights file to write (default: the shipped one)")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the train split (default: the config's)")
    parser.add_argument("--seed", type=int, default=None, help="seed for init, shuffling, augmentation (default: the config's)")
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads; the shipped weights were made with 2 (other values change the bits)")
    parser.add_argument("--check", action="store_true",
                        help="train into a temporary file and check it is identical to the shipped weights")
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)  # every op used here has a deterministic CPU kernel
    torch.set_num_threads(args.threads)  # the thread count changes the order of floating-point sums
    config_class, network = (MLPConfig, DigitMLP) if args.mlp else (ClassifierConfig, DigitClassifier)
    shipped_path, shipped_sha256 = (MLP_WEIGHTS_PATH, MLP_WEIGHTS_SHA256) if args.mlp else (WEIGHTS_PATH, WEIGHTS_SHA256)
    minimum = MIN_MLP_TEST_ACCURACY if args.mlp else MIN_TEST_ACCURACY
    overrides = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    cfg = config_class(**overrides)
    args.out = args.out or shipped_path
    start = time.perf_counter()
    model = train(cfg, network=network)
    seconds = time.perf_counter() - start
    print(f"trained {count_parameters(model):,} parameters in {seconds:.1f} s "
          f"({torch.get_num_threads()} CPU threads)")

    test = mnist5k("test")
    printed = printed_digits("test", n_per_class=100)
    test_accuracy = accuracy(model, test.x, test.labels)
    printed_accuracy = accuracy(model, printed.x, printed.labels)
    print(f"mnist5k test accuracy:        {test_accuracy:.4f} ({len(test)} digits)")
    print(f"printed_digits test accuracy: {printed_accuracy:.4f} ({len(printed)} digits, never trained on)")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / shipped_path.name if args.check else args.out
        save_weights(out, model, config=dataclasses.asdict(cfg))
        size, sha256 = out.stat().st_size, file_sha256(out)
    print(f"wrote {'a temporary copy' if args.check else out} ({size / 1e6:.2f} MB)")
    print(f"SHA-256 {sha256}")
    ok = test_accuracy >= minimum
    if not ok:
        print(f"FAILED: mnist5k test accuracy {test_accuracy:.4f} < {minimum}", file=sys.stderr)
    if args.check:
        same = sha256 == shipped_sha256
        print("reproduced the shipped weights bit for bit" if same else
              f"DIFFERENT from the shipped weights (expected {shipped_sha256})")
        return 0 if ok and same else 1
    if args.mlp:
        print("paste into course_lib/mlp_classifier.py:")
        print(f'MLP_WEIGHTS_SHA256 = "{sha256}"')
        return 0 if ok else 1
    print("paste into course_lib/classifier.py:")
    print(f'WEIGHTS_SHA256 = "{sha256}"')
    print("then regenerate the reference statistics: python scripts/make_reference_stats.py")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
