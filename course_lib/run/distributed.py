"""Training on several processes (several GPUs, or CPU processes) with ``torchrun``: data parallelism.

``torchrun --nproc_per_node N -m course_lib.train MODEL ...`` starts N copies of the command and
tells each its place in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). Every process
(a *rank*) holds the same networks and takes a different part of each batch; after every backward
pass the gradients are averaged across the ranks, so the parameters stay identical and one step on
N ranks of ``B / N`` images is the step of one process on the ``B`` images (what the tests check).
Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here does anything: a single process trains
exactly as before, bit for bit.

What the run layer (``course_lib.run.session``) and the families' ``build_run`` do with it:

- ``process_group(device)`` (``init``, then ``destroy``): initialises ``torch.distributed`` for the
  run (backend nccl on CUDA, gloo on the CPU), each rank on its own GPU ``cuda:LOCAL_RANK``, and
  destroys it afterwards; ``world()``, ``is_main()`` and ``barrier()`` answer where a rank stands.
- ``wrap(module)``: a trained network in ``DistributedDataParallel`` (``broadcast_buffers=False``),
  which averages its gradients during the backward pass. The step functions get the wrappers; the
  checkpoint, G_ema and sampling keep the plain networks. A wrapper still answers the network's
  attributes (``G.z_dim``), and ``course_lib.run.steps.frozen`` turns its gradient averaging off
  while the network is frozen (D during G's update), since no gradient reaches it then.
- ``batch_generator`` and ``shard``: ``--batch-size`` stays the global batch. The batch sampler
  draws the same permutation on every rank (from a generator seeded by the run's seed) and each
  rank takes its share ``rank::world_size`` of every batch: disjoint shards that together are
  the epoch (``course_lib.data.ShuffledBatches``).
- ``reseed(generator, seed, step)``: before every step each rank seeds its own noise (the run's
  generator and torch's global RNG) from (seed, rank, step): different noise on every rank, and
  nothing to store for an exact resume, since the step number says it all.
- ``sync_buffers(models)``: after every step every rank copies rank 0's buffers (batch-norm
  running statistics, StyleGAN's ``w_avg``, CycleGAN's image pools), so G_ema, updated from
  identical parameters and buffers, and everything a checkpoint holds are the same on every rank:
  rank 0's checkpoint resumes every rank exactly.
- ``agree(logs, stop)``: the logged values averaged over the ranks (the global batch's), and one
  decision to stop for all (the time budget or Ctrl-C may reach the ranks at different steps).

Batch norm keeps per-rank statistics: each rank normalises over its own ``B / N`` images, as the
DCGAN's D already normalises real and fake batches separately. ``SyncBatchNorm`` would make the
statistics those of the global batch, but it runs on GPUs only (not with gloo on the CPU, where
the tests run) and costs an all-reduce per layer per forward pass; with a few dozen images per
GPU the per-rank statistics are the usual choice. Only rank 0's running statistics are kept.

Gradient penalties under DDP: WGAN-GP and R1 take ``torch.autograd.grad(..., create_graph=True)``
of the critic's output with respect to its *input*, which never reaches the averaging hooks
(those fire when a parameter's gradient is accumulated), then add the penalty to the loss that
the ordinary ``backward`` differentiates; the hooks then average the whole gradient, the penalty's
part included. This is the practice PyTorch's issue #47562 (and #63812) recommends; a loss made of
a penalty alone, with parameters it does not reach, would not be averaged correctly, and none of the
course's losses is one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from course_lib.device import get_device

TIMEOUT = timedelta(minutes=30)  # how long a rank waits for the others (rank 0 evaluates alone at the end)


@dataclass(frozen=True)
class World:
    """Where this process stands among the processes of a run."""

    rank: int = 0        # this process, in [0, size)
    size: int = 1        # how many processes train together (1: a single process)
    local_rank: int = 0  # this process on its machine: its GPU's index

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the files, shows progress and evaluates."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an int (torchrun sets it), got {value!r}") from None


def environment() -> World:
    """The world that ``torchrun`` describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (unset: a single process).

    Raises:
        ValueError: values that do not fit together (``RANK`` outside [0, WORLD_SIZE), ...).
    """
    world = World(rank=_env_int("RANK", 0), size=_env_int("WORLD_SIZE", 1), local_rank=_env_int("LOCAL_RANK", 0))
    if world.size < 1 or not 0 <= world.rank < world.size or world.local_rank < 0:
        raise ValueError(f"RANK={world.rank}, WORLD_SIZE={world.size}, LOCAL_RANK={world.local_rank}: expected "
                         "WORLD_SIZE >= 1 and 0 <= RANK < WORLD_SIZE (set by torchrun)")
    return world


def world() -> World:
    """This process's place in the initialised process group, or a single process's ``World()`` without one."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=_env_int("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on rank 0 and in a single process: the process that writes files and prints."""
    return world().is_main


def barrier() -> None:
    """Wait until every rank gets here (nothing for a single process)."""
    if world().size > 1:
        dist.barrier()


def device_of(name: str, place: World) -> torch.device:
    """The device a rank computes on: ``get_device(name)``, on CUDA the GPU ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: several processes on MPS (no backend for it), or a GPU index given with
            several processes (each takes the GPU of its LOCAL_RANK).
    """
    device = get_device(name)
    if place.size == 1:
        return device
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"device {name!r}: several processes train on CUDA GPUs (nccl) or on the CPU (gloo), "
                         f"not on {device.type}")
    if device.type == "cuda":
        if device.index is not None:
            raise ValueError(f"device {name!r}: with torchrun each process uses the GPU of its LOCAL_RANK; "
                             "pass --device cuda (or auto), and choose the GPUs with CUDA_VISIBLE_DEVICES")
        device = torch.device("cuda", place.local_rank)
        torch.cuda.set_device(device)
    return device


def init(device: str = "auto") -> torch.device:
    """This process's device, after joining torchrun's process group when there is one to join.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the group is initialised from its environment with
    nccl on CUDA and gloo on the CPU; a group initialised already (by a test, or a caller of its
    own) is used as it is; a single process gets ``get_device(device)`` and nothing else.
    """
    if dist.is_available() and dist.is_initialized():
        return device_of(device, world())
    env = environment()
    if env.size == 1:
        return get_device(device)
    resolved = device_of(device, env)
    dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo", timeout=TIMEOUT,
                            **({"device_id": resolved} if resolved.type == "cuda" else {}))
    return resolved


def destroy() -> None:
    """Leave and destroy the process group (nothing without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(device: str = "auto") -> Iterator[torch.device]:
    """``init(device)`` for the block, and ``destroy()`` after it when the block initialised the group.

    Yields:
        This rank's ``torch.device``.
    """
    owned = not (dist.is_available() and dist.is_initialized())
    resolved = init(device)
    try:
        yield resolved
    finally:
        if owned:
            destroy()


class DistributedNetwork(DistributedDataParallel):
    """``DistributedDataParallel`` that also answers its network's attributes (``G.z_dim``, ``vae.cfg``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(module: nn.Module) -> nn.Module:
    """A trained network ready for its step function: in ``DistributedDataParallel`` with several processes.

    The wrapper averages the gradients across the ranks during the backward pass; with a single
    process ``module`` itself is returned. ``broadcast_buffers=False``: buffers are not copied
    from rank 0 at every forward pass (an in-place write that breaks a backward through two
    forward passes, PyTorch issue #22095); ``sync_buffers`` copies them once per step instead.
    The wrapper broadcasts rank 0's parameters and buffers when it is built.
    """
    if world().size == 1:
        return module
    device = next(module.parameters()).device
    return DistributedNetwork(module, device_ids=[device] if device.type == "cuda" else None,
                              broadcast_buffers=False)


def batch_generator(generator: torch.Generator, seed: int) -> torch.Generator:
    """The generator a run's batch sampler shuffles with.

    A single process: the run's ``generator`` itself (batches and noise share it, as always).
    Several: a generator seeded with ``seed``, the same on every rank, so that every rank draws
    the same permutations while its noise differs (see ``reseed``).
    """
    return generator if world().size == 1 else torch.Generator().manual_seed(seed)


def shard() -> dict[str, int]:
    """This rank's share of the batches: ``ShuffledBatches(..., **shard())`` (``rank`` and ``world_size``)."""
    current = world()
    return {"rank": current.rank, "world_size": current.size}


def noise_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s noise in step ``step`` (counted from 0) of a run seeded with ``seed``."""
    return ((seed * 1_000_003 + rank) * 1_000_000_007 + step) % 2**63


def reseed(generator: torch.Generator, seed: int, step: int) -> None:
    """Seed this rank's noise for ``step``: the run's ``generator`` and torch's global RNG (StyleGAN's noise maps)."""
    rank_seed = noise_seed(seed, world().rank, step)
    generator.manual_seed(rank_seed)
    torch.manual_seed(rank_seed)


def _coalesced(tensors: list[torch.Tensor], collective: Any) -> None:
    """Run ``collective`` on the tensors flattened into one per dtype and device, and copy the result back."""
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])  # (total,)
        collective(flat)
        for t, value in zip(group, flat.split([t.numel() for t in group])):
            t.data.copy_(value.view_as(t))


@torch.no_grad()
def broadcast_state(models: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers of ``models`` to every rank (nothing for a single process)."""
    if world().size == 1:
        return
    tensors = [t for m in models for t in (*m.parameters(), *m.buffers())]
    _coalesced(tensors, lambda flat: dist.broadcast(flat, src=0))


@torch.no_grad()
def sync_buffers(models: Iterable[nn.Module]) -> None:
    """Copy rank 0's buffers of ``models`` to every rank: running statistics, ``w_avg``, pools (one process: none)."""
    if world().size == 1:
        return
    buffers = [b for m in models for b in m.buffers()]
    if buffers:
        _coalesced(buffers, lambda flat: dist.broadcast(flat, src=0))


def agree(logs: dict[str, float], *flags: bool,
          device: torch.device | str = "cpu") -> tuple[dict[str, float], list[bool]]:
    """One all-reduce: ``logs`` averaged over the ranks, and each of ``flags`` True if it is True on any rank.

    Every rank must pass the same keys (in any order). With a single process the values come back unchanged.

    Returns:
        ``(mean_logs, any_flags)``.
    """
    current = world()
    if current.size == 1:
        return dict(logs), list(flags)
    keys = sorted(logs)
    values = torch.tensor([float(logs[k]) for k in keys] + [float(f) for f in flags], dtype=torch.float64,
                          device=device)
    dist.all_reduce(values)
    mean = values[:len(keys)] / current.size
    return dict(zip(keys, mean.tolist())), [bool(v > 0) for v in values[len(keys):].tolist()]


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object; a single process gets it back)."""
    if world().size == 1:
        return value
    box = [value if world().is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
