"""Checkpoints as data: state_dicts, a plain config dict and a step, written atomically.

Two formats, one for each job:

- **Training checkpoints** (``save_checkpoint`` / ``load_checkpoint``): everything needed to resume
  a run exactly (models, optimisers, random-number states, step, history). Written with
  ``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses to execute
  code from the file: a checkpoint is data, never a pickled module.
- **Weights for shipping** (``save_weights`` / ``load_weights``): a model's tensors in safetensors,
  with its config as JSON in the file's metadata.

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed over the
target, so an interrupted write never leaves a half-written checkpoint where a good one was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

FORMAT = "course_lib.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or does not match the model."""


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a file atomically: ``write(tmp_path)`` fills a temporary file, which then replaces ``path``.

    Args:
        path: the final file path; its folder is created if needed.
        write: a function that writes the whole file to the path it is given.

    Returns:
        The final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # make sure the bytes are on disk before the rename
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _rng_state(generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda:{i}"] = s
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def _set_rng_state(state: dict[str, torch.Tensor], generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    cuda_states = [state[k] for k in sorted(state) if k.startswith("cuda:")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def save_checkpoint(
    path: str | os.PathLike,
    *,
    models: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    step: int = 0,
    config: dict[str, Any] | None = None,
    history: dict[str, list[float]] | None = None,
    generator: torch.Generator | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a resumable training checkpoint atomically.

    Args:
        path: file to write (conventionally ``.pt``).
        models: name -> module, e.g. ``{"G": G, "D": D}``; their ``state_dict()`` is saved.
        optimizers: name -> optimiser, saved with ``state_dict()``.
        step: number of completed training steps.
        config: a plain dict (str, int, float, bool, None, lists, dicts) describing the run.
        history: logged values, name -> list of floats.
        generator: a ``torch.Generator`` whose state is saved with the global RNG states.
        extra: more plain data or tensors (e.g. a batch sampler's ``state_dict()``).

    Returns:
        The path written.
    """
    if not isinstance(models, dict) or not all(isinstance(m, nn.Module) for m in models.values()):
        raise TypeError("models must be a dict of name -> torch.nn.Module")
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    for name, module in models.items():
        bad = [k for k, v in module.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise CheckpointError(
                f"refusing to save: model {name!r} has NaN or Inf values in {bad[:3]}; "
                "the last good checkpoint is kept"
            )
    payload = {
        "format": FORMAT,
        "step": step,
        "config": dict(config or {}),
        "models": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in models.items()},
        "optimizers": {k: o.state_dict() for k, o in (optimizers or {}).items()},
        "history": {k: [float(v) for v in vs] for k, vs in (history or {}).items()},
        "rng": _rng_state(generator),
        "extra": dict(extra or {}),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint into a plain dict, without code execution.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt or not a course checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged zip archives
        raise CheckpointError(
            f"checkpoint {path} could not be read: it is truncated or corrupt ({type(err).__name__}: {err}). "
            "Delete it, or restore an earlier copy, and train again."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a course_lib training checkpoint (expected format {FORMAT!r})")
    return payload


def load_checkpoint(
    path: str | os.PathLike,
    *,
    models: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    generator: torch.Generator | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint into existing models and optimisers (in place) and return the rest.

    Args:
        path: a file written by ``save_checkpoint``.
        models: name -> module to load into; every name must be in the checkpoint.
        optimizers: name -> optimiser to load into.
        generator: restored to its saved state when given.
        restore_rng: also restore the global torch (and CUDA) RNG states, for exact resumption.

    Returns:
        The checkpoint dict (``step``, ``config``, ``history``, ``extra``, ...).
    """
    payload = read_checkpoint(path)
    for name, module in models.items():
        if name not in payload["models"]:
            raise CheckpointError(f"checkpoint {path} has no model {name!r}; it has {sorted(payload['models'])}")
        try:
            module.load_state_dict(payload["models"][name])
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint {path}: model {name!r} does not match: {err}") from err
    for name, opt in (optimizers or {}).items():
        if name not in payload["optimizers"]:
            raise CheckpointError(f"checkpoint {path} has no optimiser {name!r}; it has {sorted(payload['optimizers'])}")
        opt.load_state_dict(payload["optimizers"][name])
    if restore_rng:
        _set_rng_state(payload["rng"], generator)
    return payload


def save_weights(path: str | os.PathLike, module: nn.Module, config: dict[str, Any] | None = None) -> Path:
    """Save a model's weights as safetensors, with ``config`` as JSON metadata, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    metadata = {"format": "course_lib.weights/1", "config": json.dumps(config or {})}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_weights(path: str | os.PathLike, module: nn.Module | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read safetensors weights (and load them into ``module`` when given).

    Returns:
        ``(state_dict, config)``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    try:
        state = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"weights file {path} is truncated or corrupt: {err}") from err
    config = json.loads(metadata.get("config", "{}"))
    if module is not None:
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise CheckpointError(f"weights in {path} do not match the model: {err}") from err
    return state, config
