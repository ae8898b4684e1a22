"""Add per-tensor SHA-256 checksums to safetensors weights written before they existed, changing no tensor.

    python scripts/add_weight_checksums.py                       # every checkpoints/*/generator.safetensors
    python scripts/add_weight_checksums.py path/to/a.safetensors  # any other weights file

``course_lib.checkpoint.save_weights`` stores the SHA-256 of every tensor in the file's metadata and
``load_weights`` verifies them; older files (the shipped checkpoints, until this script ran) load
without the check. This script re-writes such a file with the checksums and every other metadata
entry kept, after checking, in memory, that each tensor of the new file is bit for bit the old one;
only then is the file replaced (atomically). Files that already carry checksums are verified and
left as they are. The digit classifier's weights are not for this script: their whole-file SHA-256
is pinned in ``course_lib.classifier``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load, save

from course_lib.checkpoint import CHECKSUMS, CheckpointError, atomic_write, read_safetensors, tensor_sha256

ROOT = Path(__file__).resolve().parents[1]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when two tensors have the same dtype, shape and bytes (NaN and -0.0 included)."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)))


def add_checksums(path: Path) -> str:
    """Give one weights file its checksums; returns what was done, for the report."""
    tensors, metadata = read_safetensors(path)  # verifies existing checksums
    if CHECKSUMS in metadata:
        return "already has checksums (verified)"
    checksums = {name: tensor_sha256(t) for name, t in sorted(tensors.items())}
    data = save(tensors, metadata={**metadata, CHECKSUMS: json.dumps(checksums)})
    again = load(data)
    if again.keys() != tensors.keys() or not all(same_bits(again[k], tensors[k]) for k in tensors):
        raise CheckpointError(f"{path}: the re-saved tensors differ from the original; file left unchanged")
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    reread, new_metadata = read_safetensors(path)
    assert all(same_bits(reread[k], tensors[k]) for k in tensors) and new_metadata == {**metadata, CHECKSUMS: json.dumps(checksums)}
    return f"added checksums of {len(tensors)} tensors, every tensor bit-identical"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path,
                        help="safetensors files (default: every checkpoints/*/generator.safetensors)")
    args = parser.parse_args()
    files = args.files or sorted((ROOT / "checkpoints").glob("*/generator.safetensors"))
    failed = 0
    for path in files:
        try:
            print(f"{path}: {add_checksums(path)}")
        except CheckpointError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
