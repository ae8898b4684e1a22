"""Compute the shipped reference statistics of the mnist5k test split, and the real-vs-real floors.

    python scripts/make_reference_stats.py           # writes course_lib/assets/reference_test.safetensors
    python scripts/make_reference_stats.py --check   # recomputes and compares with the shipped file

The file holds the classifier's features (1000, F) and logits (1000, 10) of the 1,000 test digits,
their mean ``mu`` and covariance ``sigma`` (float64), and in its metadata the SHA-256 of the
classifier that made them and the *floors*: what every metric reads when the "generated" set is
real digits the classifier never saw in the reference (draws from the train split) at the sample
sizes the profiles use. A generator cannot be expected to beat those numbers; the README prints
them. Run this after retraining the classifier (``scripts/train_classifier.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from course_lib.classifier import WEIGHTS_SHA256, classify, load_classifier
from course_lib.data import mnist5k
from course_lib.evaluate import REFERENCE_PATH, metrics_from_features, read_reference

FLOOR_SIZES = (200, 500, 1000, 4000)  # smoke and laptop eval_samples, a middle size, the whole train split
FLOOR_REPEATS = 5                     # random draws per size (1 for 4000: the whole split)


def floors(real_features: torch.Tensor, real_logits: torch.Tensor, train_features: torch.Tensor,
           train_logits: torch.Tensor) -> dict[str, dict[str, list[float]]]:
    """Metrics of random train-split draws against the test split: ``{n: {metric: [mean, std]}}``."""
    generator = torch.Generator().manual_seed(0)
    table = {}
    for n in FLOOR_SIZES:
        repeats = 1 if n == len(train_features) else FLOOR_REPEATS
        runs = []
        for _ in range(repeats):
            i = torch.randperm(len(train_features), generator=generator)[:n]
            runs.append(metrics_from_features(real_features, train_features[i], train_logits[i]))
        values = {name: torch.tensor([r[name] for r in runs], dtype=torch.float64) for name in runs[0]}
        table[str(n)] = {name: [float(v.mean()), float(v.std(unbiased=False))] for name, v in values.items()}
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    args = parser.parse_args()
    from safetensors.torch import save

    start = time.perf_counter()
    model = load_classifier()
    test_logits, test_features = classify(model, mnist5k("test").x)
    train_logits, train_features = classify(model, mnist5k("train").x)
    table = floors(test_features, test_logits, train_features, train_logits)
    print(f"computed in {time.perf_counter() - start:.1f} s")
    print("real-vs-real floors (train-split draws against the 1,000 test digits; mean ± std over draws):")
    names = list(table[str(FLOOR_SIZES[0])])
    print("| n | " + " | ".join(names) + " |")
    for n, row in table.items():
        print(f"| {n} | " + " | ".join(f"{row[k][0]:.4g} ± {row[k][1]:.2g}" for k in names) + " |")

    test_features64 = test_features.double()
    tensors = {
        "features": test_features.contiguous(),
        "logits": test_logits.contiguous(),
        "mu": test_features64.mean(0),
        "sigma": torch.cov(test_features64.T),
    }
    metadata = {"classifier_sha256": WEIGHTS_SHA256, "split": "test", "floors": json.dumps(table)}
    if args.check:
        shipped, shipped_meta = read_reference()
        same = all(torch.allclose(shipped[k].double(), v.double(), rtol=1e-5, atol=1e-6) for k, v in tensors.items())
        same = same and shipped_meta["classifier_sha256"] == WEIGHTS_SHA256
        print("matches the shipped reference statistics" if same else "DIFFERENT from the shipped reference statistics")
        return 0 if same else 1
    from course_lib.checkpoint import atomic_write

    data = save(tensors, metadata=metadata)
    atomic_write(REFERENCE_PATH, lambda tmp: tmp.write_bytes(data))
    print(f"wrote {REFERENCE_PATH} ({REFERENCE_PATH.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
