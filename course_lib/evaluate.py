"""Evaluate generated digits with the course's classifier: every metric, from a file or from tensors.

Usage::

    python -m course_lib.evaluate SAMPLES.npz [--ref test|train] [--labels-key labels] [--json]
    python -m course_lib.evaluate SAMPLES.npz --memorisation [--space pixel|features] [--json]

``SAMPLES.npz`` holds ``arr_0``: uint8 images (N, H, W, C) with H = W = 28 or 32 and C = 1 (the
convention of OpenAI's guided-diffusion evaluator), and optionally integer ``labels`` (N,) for
class-conditional samples. The reference set is a split of ``mnist5k``. The metrics are computed on
the classifier's penultimate features (see ``course_lib.metrics``), so they are comparable within
the course, not with published Inception FIDs.

The command refuses fewer than ``MIN_SAMPLES`` (100) samples and warns (on stderr) below the
size of the reference split: the metrics are biased or noisy there (compare with the real-vs-real
floor it prints at the nearest size). Labels must be class indices 0..9; a ``--labels-key`` given
explicitly must be in the file. Results go to stdout, warnings and errors to stderr.

``--memorisation`` runs Meehan et al.'s data-copying test instead: C_T of the samples against the
``mnist5k`` train split, calibrated by its test split, in pixel space and in the classifier's feature
space (or the one ``--space`` names); C_T < -3 flags copying (``course_lib.memorisation``).

A VAE is also scored differently, by -ELBO and the importance-weighted bound on the test images
in nats: ``course_lib.vae.evaluate_likelihood`` (what ``python -m course_lib.train vae`` writes
into metrics.json).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from course_lib import metrics
from course_lib.checkpoint import CheckpointError, describe_os_error
from course_lib.classifier import WEIGHTS_SHA256, classify, load_classifier
from course_lib.data import mnist5k
from course_lib.data.common import pad_28_to_32
from course_lib.device import get_device
from course_lib.memorisation import SPACES, memorisation_report

METRIC_NAMES = ("fd", "kid_mean", "kid_std", "precision", "recall", "is", "class_accuracy", "modes")
NUM_CLASSES = 10  # the digit classifier's classes: labels are 0..9
# fewest samples the command scores: the Inception Score averages 10 splits, and a split of m samples
# cannot score above m, so 10 per split are needed for 10 classes (at N = 10 every IS is exactly 1)
MIN_SAMPLES = 100


def load_samples(path: str | Path, labels_key: str = "labels",
                 require_labels: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read an ``.npz`` of uint8 NHWC images (``arr_0``) and optional labels.

    Args:
        path: the file, as ``np.savez(path, images, labels=labels)`` writes it.
        labels_key: the name of the labels array; ignored when absent unless ``require_labels``.
        require_labels: raise if the file has no ``labels_key`` array (a key given on purpose).

    Returns:
        ``(images, labels)``: images float32 (N, 1, H, W) in [-1, 1]; labels int64 (N,) in 0..9 or None.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable ``.npz`` (truncated, a text file, ...), or arrays of the wrong kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is a folder, not a samples file" if path.is_dir() else f"no samples file at {path}")
    unreadable = (ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)  # what damaged files raise
    how = "save images with np.savez(path, images, labels=labels)"
    try:
        data = np.load(path)  # allow_pickle=False: a pickle (or a text file) is refused, never executed
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} is not an .npz file but a single .npy array; {how}")
        with data:
            if "arr_0" not in data:
                raise ValueError(f"{path} has no 'arr_0' array (found {sorted(data.files)}); {how}")
            if require_labels and labels_key not in data:
                raise ValueError(f"{path} has no {labels_key!r} array for --labels-key (found {sorted(data.files)})")
            pixels = data["arr_0"]
            labels = data[labels_key] if labels_key in data else None
    except unreadable as err:
        if str(err).startswith(str(path)):
            raise
        detail = ("it is neither an .npz nor an .npy file" if "pickle" in str(err)  # NumPy's words for any other file
                  else f"{type(err).__name__}: {' '.join(str(err).split())[:120]}")
        raise ValueError(f"{path} is not a readable .npz file of samples: it is truncated or damaged, or not written "
                         f"by np.savez ({detail})") from err
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 1 or pixels.shape[1:3] not in ((28, 28), (32, 32)):
        raise ValueError(f"arr_0 must be uint8 of shape (N, 28 or 32, 28 or 32, 1), got {pixels.dtype} {pixels.shape}")
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 1, H, W) in [-1, 1]
    if labels is not None:
        if labels.shape != (len(pixels),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"'{labels_key}' must be integers of shape ({len(pixels)},), got {labels.dtype} {labels.shape}")
        outside = labels[(labels < 0) | (labels >= NUM_CLASSES)]
        if len(outside):
            raise ValueError(f"'{labels_key}' must hold class indices 0..{NUM_CLASSES - 1}, found "
                             f"{len(outside)} outside (e.g. {sorted(set(outside.tolist()))[:3]})")
        labels = torch.from_numpy(labels).long()
    return images, labels


REFERENCE_PATH = Path(__file__).parent / "assets" / "reference_test.safetensors"


def read_reference(path: str | Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read the shipped reference statistics of the ``mnist5k`` test split.

    Made by ``scripts/make_reference_stats.py``: ``features`` (1000, F) float32, ``logits``
    (1000, 10) float32, ``mu`` (F,) and ``sigma`` (F, F) float64; the metadata records the SHA-256 of
    the classifier that made them and the real-vs-real ``floors`` (JSON).

    Raises:
        CheckpointError: the file is missing or corrupt, or was made by another classifier.
    """
    path = Path(path) if path is not None else REFERENCE_PATH
    remedy = "Regenerate it with `python scripts/make_reference_stats.py` (a few seconds)."
    if not path.is_file():
        raise CheckpointError(f"the reference statistics are missing: no file at {path}. {remedy}")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"the reference statistics file {path} is corrupt: {err}. {remedy}") from err
    if metadata.get("classifier_sha256") != WEIGHTS_SHA256:
        raise CheckpointError(f"the reference statistics in {path} were made with another classifier "
                              f"(SHA-256 {metadata.get('classifier_sha256')}, expected {WEIGHTS_SHA256}). {remedy}")
    return tensors, metadata


@functools.lru_cache(maxsize=4)
def reference_features(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier ``(features, logits)`` of a ``mnist5k`` split: shipped for "test", computed for "train"."""
    if split == "test":
        tensors, _ = read_reference()
        return tensors["features"], tensors["logits"]
    if split != "train":
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    logits, features = classify(load_classifier(), mnist5k(split).x)
    return features, logits


def reference_floors() -> dict[int, dict[str, tuple[float, float]]]:
    """Real-vs-real floors: ``{n: {metric: (mean, std)}}`` for n real train digits against the test split.

    No generator should be expected to do better than real digits: read a model's FD or KID as a
    multiple of the floor at the same sample size.
    """
    _, metadata = read_reference()
    return {int(n): {k: tuple(v) for k, v in row.items()} for n, row in json.loads(metadata["floors"]).items()}


def metrics_from_features(real_features: torch.Tensor, features: torch.Tensor, logits: torch.Tensor,
                          labels: torch.Tensor | None = None) -> dict[str, float]:
    """Every metric from classifier outputs: real (N, F) features, generated (M, F) features and (M, C) logits."""
    subset = min(500, len(features), len(real_features))
    # IS averages over 10 splits; shuffle first (fixed seed) so that files ordered by class, such as
    # conditional samples with balanced labels, do not get one class per split
    order = torch.randperm(len(logits), generator=torch.Generator().manual_seed(0))
    kid_mean, kid_std = metrics.kernel_inception_distance(real_features, features, subsets=50, subset_size=subset)
    precision, recall = metrics.precision_recall(real_features, features, k=3)
    result = {
        "fd": metrics.frechet_distance(real_features, features),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "is": metrics.inception_score(torch.softmax(logits[order].double(), 1), splits=min(10, len(logits)))[0],
        "modes": float(metrics.class_histogram_stats(logits).modes),
    }
    if labels is not None:
        result["class_accuracy"] = metrics.class_accuracy(logits, labels)
    return result


def evaluate(images: torch.Tensor, labels: torch.Tensor | None = None, ref: str = "test",
             device: str | torch.device = "cpu") -> dict[str, float]:
    """All metrics of a set of generated digits against a ``mnist5k`` split.

    Args:
        images: (N, 1, 28 or 32, 28 or 32) in [-1, 1], N >= 10.
        labels: (N,) int64 labels the samples were generated for (conditional models), or None.
        ref: the reference split, "test" (1,000 digits, shipped statistics) or "train" (4,000).
        device: where the classifier runs.

    Returns:
        ``{"fd", "kid_mean", "kid_std", "precision", "recall", "is", "modes"}`` (+ ``"class_accuracy"``
        when labels are given), as floats.
    """
    if ref not in ("test", "train"):
        raise ValueError(f"ref must be 'test' or 'train', got {ref!r}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1 or len(images) < 10:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N >= 10, 1, H, W) tensor in [-1, 1], got {shape}")
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != (len(images),)):
        raise ValueError(f"labels must be a tensor of shape ({len(images)},), got {getattr(labels, 'shape', type(labels).__name__)}")
    real_features, _ = reference_features(ref)
    logits, features = classify(load_classifier(device), images)
    return metrics_from_features(real_features, features, logits, labels)


def _nearest_floor(n: int) -> tuple[int, dict[str, tuple[float, float]]]:
    table = reference_floors()
    size = min(table, key=lambda m: abs(m - n))
    return size, table[size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("samples", type=Path, help=".npz with arr_0: uint8 (N, H, W, 1) images, optional labels")
    parser.add_argument("--ref", default="test", choices=["test", "train"], help="mnist5k split to compare with")
    parser.add_argument("--labels-key", help="name of the labels array in the .npz (default: labels, if present)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--device", default="cpu", help="device for the classifier (default cpu)")
    parser.add_argument("--memorisation", action="store_true", help="the data-copying test C_T instead of the metrics")
    parser.add_argument("--space", choices=["pixel", "features"], help="--memorisation: one space (default both)")
    args = parser.parse_args(argv)
    if args.space and not args.memorisation:
        parser.error("--space applies to --memorisation")
    if args.memorisation:
        return memorisation_main(args)
    try:
        device = get_device(args.device)
        images, labels = load_samples(args.samples, args.labels_key or "labels", require_labels=args.labels_key is not None)
        if len(images) < MIN_SAMPLES:
            raise ValueError(f"{args.samples} holds {len(images)} samples: the metrics need at least {MIN_SAMPLES} "
                             "(the Inception Score splits them into 10 groups; with fewer, IS and KID are meaningless)")
        reference = 1000 if args.ref == "test" else 4000  # the mnist5k split's size
        if len(images) < reference:
            print(f"warning: {len(images)} samples, fewer than the {reference:,} reference digits: FD and KID are "
                  "biased and noisy at this size; compare with the real-vs-real floor at the same size", file=sys.stderr)
        result = evaluate(images, labels, ref=args.ref, device=device)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.samples}: {len(images)} samples against mnist5k {args.ref}")
        floor = _nearest_floor(len(images)) if args.ref == "test" else None
        if floor:
            print(f"  {'metric':<15} {'value':>8}   real-vs-real floor at n={floor[0]}")
        for name in METRIC_NAMES:
            if name in result:
                extra = f"   {floor[1][name][0]:.4f}" if floor and name in floor[1] else ""
                print(f"  {name:<15} {result[name]:8.4f}{extra}")
    return 0


def memorisation_main(args: argparse.Namespace) -> int:
    """``--memorisation``: C_T of the samples file against mnist5k's train split, in each space."""
    try:
        images, _ = load_samples(args.samples)
        if len(images) < MIN_SAMPLES:
            raise ValueError(f"{args.samples} holds {len(images)} samples: the data-copying test needs at least "
                             f"{MIN_SAMPLES} (10 cells of the partition, 10 samples in each that counts)")
        if images.shape[-1] == 28:
            images = pad_28_to_32(images)
        result = memorisation_report(images, (args.space,) if args.space else SPACES)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.samples}: {len(images)} samples, data-copying test against mnist5k train (C_T < -3: copying)")
        for space in (args.space,) if args.space else SPACES:
            print(f"  C_T {space:<9} {result[f'ct_{space}']:8.2f}   over {result[f'cells_{space}']} cells"
                  f"{'   COPYING' if result[f'copying_{space}'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
