"""Shuffled mini-batches from an in-memory tensor, with an exactly resumable state.

The course's datasets fit in memory, so a training loop does not need a DataLoader: it needs
random batches, forever, that continue exactly where they stopped after a checkpoint is restored.
`ShuffledBatches` draws a fresh permutation with `torch.randperm(generator=...)` at the start of
every epoch and walks through it batch by batch. Its `state_dict()` holds the generator state, the
current permutation and the position in it, so

    batches = ShuffledBatches(x, batch_size=64, generator=torch.Generator().manual_seed(0))
    ...take k batches...; state = batches.state_dict()
    resumed = ShuffledBatches(x, batch_size=64); resumed.load_state_dict(state)

makes `resumed` yield exactly the batches `batches` yields next.

Several processes (``torchrun``, see ``course_lib.run.distributed``) split every batch: built with
the same generator seed on every rank, each draws the same permutation and yields its own slice
``rank::world_size`` of each global batch, so within an epoch the ranks' batches are disjoint and
together they are exactly the single-process batches. The state is the same on every rank.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from course_lib.data.common import check_int


class ShuffledBatches:
    """An endless iterator of shuffled mini-batches over the first dimension of `x`.

    Every epoch visits each sample exactly once, in a new random order. With `drop_last=True` the
    `N % batch_size` samples left at the end of a permutation are skipped for that epoch (a
    different few each epoch); with `drop_last=False` the epoch ends with a smaller batch.

    Args:
        x: (N, ...) samples, on any device; batches are indexed from it directly.
        labels: optional (N,) labels, batched alongside x.
        batch_size: samples per batch, in [1, N] (any >= 1 if drop_last is False).
        generator: torch.Generator used for every shuffle (its state is part of `state_dict()`).
            None: a new CPU generator seeded from torch's default generator, so `seed_everything`
            still makes the run repeatable.
        drop_last: skip the last, incomplete batch of every epoch.
        rank: this process's index in [0, world_size): it yields samples ``rank::world_size`` of
            each global batch of ``batch_size``.
        world_size: how many processes share the batches (1: a single process gets them whole);
            ``batch_size`` must divide by it, and ``drop_last`` must be True when it is above 1.

    Yields:
        x_batch (batch_size / world_size, ...) when labels is None, else (x_batch, labels_batch).
    """

    def __init__(self, x: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 64,
                 generator: torch.Generator | None = None, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or len(x) == 0:
            raise ValueError(f"x must be a non-empty tensor of shape (N, ...), got "
                             f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
        if labels is not None and tuple(labels.shape[:1]) != (len(x),):
            raise ValueError(f"labels must have {len(x)} rows like x, got shape {tuple(labels.shape)}")
        self.batch_size = check_int("batch_size", batch_size, 1, len(x) if drop_last else None)
        self.world_size = check_int("world_size", world_size, 1)
        self.rank = check_int("rank", rank, 0, world_size - 1)
        if batch_size % world_size:
            raise ValueError(f"batch_size ({batch_size}) must divide by world_size ({world_size}): "
                             "it is the global batch, split evenly across the processes")
        if world_size > 1 and not drop_last:
            raise ValueError("drop_last must be True with world_size > 1: an incomplete batch does not split evenly")
        if generator is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator().manual_seed(seed)
        self.x, self.labels, self.generator, self.drop_last = x, labels, generator, bool(drop_last)
        self.epoch = 0  # completed passes over the data
        self._permutation: torch.Tensor | None = None  # (N,) order of the current epoch
        self._position = 0  # index into the permutation of the next batch's first sample

    @property
    def num_samples(self) -> int:
        return len(self.x)

    @property
    def batches_per_epoch(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _epoch_end(self) -> int:
        return self.num_samples if not self.drop_last else \
            self.num_samples - self.num_samples % self.batch_size

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self._permutation is None or self._position >= self._epoch_end():
            if self._permutation is not None:
                self.epoch += 1
            self._permutation = torch.randperm(self.num_samples, generator=self.generator,
                                               device=self.generator.device)
            self._position = 0
        index = self._permutation[self._position:self._position + self.batch_size]  # (B,)
        self._position += len(index)
        if self.world_size > 1:
            index = index[self.rank::self.world_size]  # (B / world_size,): this rank's share
        index = index.to(self.x.device)
        if self.labels is None:
            return self.x[index]
        return self.x[index], self.labels[index.to(self.labels.device)]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the exact same sequence of batches.

        Returns:
            A dict of tensors, ints and bools (safe for `torch.save` / `torch.load(weights_only=True)`):
            generator_state, permutation ((N,) int64 or None before the first batch), position,
            epoch, and num_samples, batch_size, drop_last for a consistency check on load.
        """
        return {
            "generator_state": self.generator.get_state(),
            "permutation": None if self._permutation is None else self._permutation.clone(),
            "position": self._position,
            "epoch": self.epoch,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; the next batch is the one the saved iterator would have yielded.

        Args:
            state: a dict from `state_dict()` taken on data with the same N, batch_size, drop_last.
        """
        for key in ("num_samples", "batch_size", "drop_last"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state_dict was saved with {key}={state[key]}, but this iterator "
                                 f"has {key}={getattr(self, key)}")
        self.generator.set_state(state["generator_state"].clone())
        permutation = state["permutation"]
        self._permutation = None if permutation is None else \
            permutation.clone().to(self.generator.device)
        self._position = int(state["position"])
        self.epoch = int(state["epoch"])
