"""Checkpoints as data: state_dicts, a plain config dict and a step, written atomically and checked on load.

Two formats, one for each job:

- **Training checkpoints** (``save_checkpoint`` / ``load_checkpoint``): everything needed to resume
  a run exactly (models, optimisers, random-number states, step, history). Written with
  ``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses to execute
  code from the file: a checkpoint is data, never a pickled module.
- **Weights for shipping** (``save_weights`` / ``load_weights``): a model's tensors in safetensors,
  with its config as JSON in the file's metadata.

What is promised:

- Every write goes to a temporary file in the same folder, is flushed to disk, then renamed over
  the target, so an interrupted write never leaves a half-written file where a good one was. The
  file gets the permissions of any new file (``0o666`` less the umask). A process killed during a
  write can leave its temporary file (``.NAME.PID.XXXX.tmp``); ``remove_stale_temporaries`` deletes
  those of dead processes. A full disk raises ``DiskFullError`` and leaves the old file as it was.
- Both formats carry the SHA-256 of every tensor (and a checkpoint also of its plain data), checked
  on load: flipped bits raise ``CheckpointError`` naming the file and the tensor. Files written
  before the checksums existed still load. Weights with NaN or Inf values are refused both ways.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

FORMAT = "course_lib.checkpoint/1"
WEIGHTS_FORMAT = "course_lib.weights/1"
CHECKSUMS = "tensor_sha256"  # safetensors metadata key: JSON {tensor name: SHA-256 of its dtype, shape and bytes}
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]+\.tmp$")  # atomic_write's temporary files


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or does not match the model."""


class DiskFullError(OSError):
    """A write failed because the disk (or the user's quota) is full; the file it would replace is unchanged."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _disk_full(folder: Path) -> bool:
    """True when the file system of ``folder`` has (almost) no space left for this user."""
    try:
        return shutil.disk_usage(folder).free < 1 << 16
    except OSError:
        return False


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a file atomically: ``write(tmp_path)`` fills a temporary file, which then replaces ``path``.

    The temporary file is created with mode ``0o666`` less the umask (as ``open`` would create
    ``path``), in the same folder, named ``.NAME.PID.XXXX.tmp``; it is removed if anything fails.

    Args:
        path: the final file path; its folder is created if needed.
        write: a function that writes the whole file to the path it is given.

    Returns:
        The final path.

    Raises:
        DiskFullError: no space left on the device (or quota exceeded); ``path`` is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the kernel applies the umask
        write(tmp)
        with open(tmp, "rb+") as f:  # make sure the bytes are on disk before the rename
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or (
            isinstance(err, Exception) and not isinstance(err, OSError) and _disk_full(path.parent))
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. a read-only file system, where it was never created
            pass
        if full:
            raise DiskFullError(errno.ENOSPC, f"no space left on device (disk full) while writing {path}; "
                                f"{'the previous file is unchanged' if path.exists() else 'nothing was written'}. "
                                "Free some space and run the command again") from err
        if isinstance(err, OSError) and str(err.filename) == str(tmp) and err.errno is not None:
            raise type(err)(err.errno, err.strerror, str(path)) from err  # name the file being written
        raise
    try:  # make the rename itself durable (POSIX; a no-op where folders cannot be opened)
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)
    return path


def describe_os_error(err: OSError) -> str:
    """One line for a failed file operation, for a command-line error: what went wrong, on which path."""
    if isinstance(err, DiskFullError):
        return str(err)
    reason = (err.strerror or str(err)).rstrip(".")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on device (disk full)"
    where = f": {err.filename}" if err.filename else ""
    hint = " (choose a folder you can write to)" if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ""
    return f"{reason[:1].lower()}{reason[1:]}{where}{hint}"


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that ``atomic_write`` calls of processes no longer running left in ``folder``.

    A process killed during a write (``kill -9``, a power cut) cannot remove its temporary file; the
    next run in the same folder calls this. Files of a process that is still running are kept.

    Returns:
        The paths removed.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.iterdir()):
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _process_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a name ``atomic_write`` gives its temporary files."""
    return _TEMPORARY.match(Path(path).name) is not None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # it exists (another user's), or we cannot tell: keep the file
    return True


# ----------------------------------------------------------------------------------------------
# Checksums and finiteness
# ----------------------------------------------------------------------------------------------

def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (on the CPU), as hex."""
    t = t.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, whatever the dtype
    return digest.hexdigest()


def _payload_checksums(payload: Any) -> dict[str, Any]:
    """SHA-256 of every tensor in a nested dict/list payload (by path) and one of all its plain data."""
    tensors: dict[str, str] = {}
    plain = hashlib.sha256()

    def walk(obj: Any, where: str) -> None:
        if isinstance(obj, torch.Tensor):
            tensors[where] = tensor_sha256(obj)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                walk(value, f"{where}/{key}")
        elif isinstance(obj, (list, tuple)):
            for i, value in enumerate(obj):
                walk(value, f"{where}/{i}")
        else:  # str, int, float, bool, None; other types by name only (a repr might hold an address)
            value = repr(obj) if obj is None or isinstance(obj, (str, int, float, bool)) else type(obj).__name__
            plain.update(f"{where}={value}\n".encode())

    walk(payload, "")
    return {"tensors": tensors, "data": plain.hexdigest()}


def _non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]


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
    """Save a resumable training checkpoint atomically, with the SHA-256 of every tensor inside.

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

    Raises:
        CheckpointError: a model holds NaN or Inf values (nothing is written).
        DiskFullError: the disk is full (the previous checkpoint is unchanged).
    """
    if not isinstance(models, dict) or not all(isinstance(m, nn.Module) for m in models.values()):
        raise TypeError("models must be a dict of name -> torch.nn.Module")
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    for name, module in models.items():
        bad = _non_finite(module.state_dict())
        if bad:
            raise CheckpointError(
                f"refusing to save: model {name!r} has NaN or Inf values in {bad[:3]}; "
                f"{'the previous ' + str(path) + ' is kept' if Path(path).exists() else 'nothing was written'}"
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
    payload["checksums"] = _payload_checksums(payload)
    buffer = io.BytesIO()  # serialise first: a full disk then fails in a plain write, with errno ENOSPC
    torch.save(payload, buffer)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint into a plain dict, without code execution, and verify its checksums.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt (a checksum does not match) or not
            a course checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    remedy = "Restore an earlier copy of it, or start the run again (`--force` instead of `--resume`)"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged zip archives
        raise CheckpointError(
            f"checkpoint {path} could not be read: it is truncated or corrupt ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:300]}). {remedy}."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a course_lib training checkpoint (expected format {FORMAT!r})")
    stored = payload.pop("checksums", None)  # absent in checkpoints written before checksums existed
    if stored is not None:
        actual = _payload_checksums(payload)
        bad = [k for k in stored.get("tensors", {}) if actual["tensors"].get(k) != stored["tensors"][k]]
        bad += [k for k in actual["tensors"] if k not in stored.get("tensors", {})]
        if bad or actual["data"] != stored.get("data"):
            what = f"tensor(s) {', '.join(w.lstrip('/') for w in bad[:3])}" if bad else "its plain data (step, config, history)"
            raise CheckpointError(f"checkpoint {path} is corrupt: {what} changed after it was written "
                                  f"(SHA-256 mismatch). {remedy}.")
    for name, state in payload.get("models", {}).items():
        bad = _non_finite(state)
        if bad:
            raise CheckpointError(f"checkpoint {path} has NaN or Inf values in model {name!r} ({', '.join(bad[:3])}). "
                                  f"{remedy}.")
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


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write tensors as safetensors atomically, adding the SHA-256 of each to the metadata (key ``CHECKSUMS``)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    checksums = {name: tensor_sha256(t) for name, t in sorted(tensors.items())}
    data = save(tensors, metadata={**metadata, CHECKSUMS: json.dumps(checksums)})
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def save_weights(path: str | os.PathLike, module: nn.Module, config: dict[str, Any] | None = None) -> Path:
    """Save a model's weights as safetensors, with ``config`` as JSON metadata and a checksum per tensor, atomically.

    Raises:
        CheckpointError: the model holds NaN or Inf values (nothing is written).
        DiskFullError: the disk is full (the previous file is unchanged).
    """
    tensors = module.state_dict()
    bad = _non_finite(tensors)
    if bad:
        raise CheckpointError(f"refusing to save {path}: the model has NaN or Inf values in {bad[:3]}")
    return write_safetensors(path, tensors, {"format": WEIGHTS_FORMAT, "config": json.dumps(config or {})})


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file's tensors and metadata, verifying the per-tensor checksums when it has them.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, or a tensor does not match its checksum.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    remedy = ("Restore the file (for a checkpoint shipped with the course: `git checkout -- <the file>`), "
              "or retrain it with `python -m course_lib.train`")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"weights file {path} is truncated or corrupt: {err}. {remedy}.") from err
    if CHECKSUMS in metadata:
        try:
            stored = json.loads(metadata[CHECKSUMS])
        except ValueError as err:
            raise CheckpointError(f"weights file {path} is corrupt: its checksums are unreadable. {remedy}.") from err
        bad = sorted(set(stored) ^ set(state)) + [k for k in state if k in stored and tensor_sha256(state[k]) != stored[k]]
        if bad:
            raise CheckpointError(f"weights file {path} is corrupt: tensor(s) {', '.join(bad[:3])} changed after it "
                                  f"was written (SHA-256 mismatch). {remedy}.")
    return state, metadata


def load_weights(path: str | os.PathLike, module: nn.Module | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read safetensors weights (and load them into ``module`` when given), after checking them.

    The file's per-tensor checksums are verified when it has them (files written before they
    existed load without), and NaN or Inf values are refused: such weights cannot draw images.

    Returns:
        ``(state_dict, config)``.

    Raises:
        CheckpointError: missing, truncated or corrupt file, non-finite values, or weights that do
            not match ``module``.
    """
    path = Path(path)
    state, metadata = read_safetensors(path)
    bad = _non_finite(state)
    if bad:
        raise CheckpointError(f"weights file {path} has NaN or Inf values in {', '.join(bad[:3])}: it cannot be used. "
                              "Restore the file, or retrain it with `python -m course_lib.train`.")
    try:
        config = json.loads(metadata.get("config", "{}"))
    except ValueError as err:
        raise CheckpointError(f"weights file {path} is corrupt: its config metadata is not JSON") from err
    if module is not None:
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise CheckpointError(f"weights in {path} do not match the model: {err}") from err
    return state, config
