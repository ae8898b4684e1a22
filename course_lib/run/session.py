"""A training run from start to files: check the folder, build, resume, train, write samples, weights and metrics.

``train_run(build, cfg, out)`` runs the ``Run`` that ``build(device)`` returns (a family's
``build_run``) and writes, each file atomically (a temporary file renamed into place):

- ``config.json``: the run's config, the family's settings only;
- ``checkpoint.pt``: the whole run (models, optimisers, RNG states, batch position, history), every
  ``cfg.checkpoint_every`` steps and at the end; ``resume=True`` continues from it and ends exactly
  where a straight run would have;
- ``generator.safetensors``: the run's sampler with its architecture and config (``save_generator``);
- ``samples.png``: the run's grid (``Run.grid``);
- ``metrics.json``: the run's identity, steps, time, throughput and ``Run.evaluate()``'s scores.

Under ``torchrun`` (several processes, ``course_lib.run.distributed``) only rank 0 writes them.

Nothing here names a family: what differs between them comes through ``RunConfig`` and ``Run``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from course_lib.checkpoint import CheckpointError, atomic_write, is_temporary, read_checkpoint, remove_stale_temporaries
from course_lib.run import distributed
from course_lib.run.config import Run, RunConfig
from course_lib.run.files import CHECKPOINT, CONFIG, GENERATOR, METRICS, RUN_FILES, SAMPLES, save_generator, shipped_folders
from course_lib.training import StopSignals, TrainingInterrupted, fit
from course_lib.viz import save_images


def check_out(out: str | Path, resume: bool = False, force: bool = False) -> None:
    """Refuse an output folder that would lose saved work; called before anything is built or written.

    Raises:
        FileExistsError: ``out`` is inside the shipped ``checkpoints/`` (without ``force``), is a file,
            or holds anything (without ``resume`` or ``force``).
        FileNotFoundError: ``resume`` but there is no run (``checkpoint.pt``) in ``out``.
    """
    out = Path(out)
    for folder in shipped_folders():
        if not force and (out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents):
            raise FileExistsError(f"--out {out} is inside {folder}, the checkpoints shipped with the course: train "
                                  "into another folder, or pass --force to replace a shipped checkpoint")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder")
    contents = sorted(p.name for p in out.iterdir() if not is_temporary(p)) if out.is_dir() else []
    if resume and not (out / CHECKPOINT).is_file():
        where = "the folder does not exist" if not out.exists() else f"it holds no {CHECKPOINT}"
        restart = " (with --force, since the folder is not empty)" if contents else ""
        raise FileNotFoundError(f"--resume: there is no run to resume in {out} ({where}); check the path, "
                                f"or leave out --resume to start a new run{restart}")
    if contents and not resume and not force:
        what = (f"a run ({CHECKPOINT})" if CHECKPOINT in contents
                else f"a run's files ({', '.join(n for n in contents if n in RUN_FILES)})" if set(contents) & set(RUN_FILES)
                else f"files ({', '.join(contents[:3])}{', ...' if len(contents) > 3 else ''})")
        raise FileExistsError(f"--out {out} already holds {what}: pass --resume to continue the run, --force to "
                              "delete its files and start a new one, or choose another --out")


def resume_run(run: Run, checkpoint: Path) -> list[dict[str, Any]]:
    """Load a checkpoint into ``run`` after checking its settings; returns the run's learning-rate changes.

    Only ``cfg.RESUMABLE`` and ``cfg.LEARNING_RATES`` may differ. The settings compared are the
    family's own, so a checkpoint written before the configs were split by family (it stores every
    family's settings) resumes too. New learning rates replace the stored ones in the optimisers (as
    built by ``build_run``, so StyleGAN's lazy-R1 scaling applies) and are appended, with the step,
    to ``lr_changes``.
    """
    stored = read_checkpoint(checkpoint)["config"]
    cfg, wanted = run.cfg, run.state.config
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}  # for settings newer than the checkpoint
    if stored.get("model", cfg.model) != cfg.model:
        raise CheckpointError(f"cannot resume {checkpoint}: it is a run of model {stored['model']!r}, not {cfg.model!r}")
    may_change = set(cfg.RESUMABLE) | set(cfg.LEARNING_RATES)
    changed = {k for k in defaults if k not in may_change and stored.get(k, defaults[k]) != wanted[k]}
    if changed:
        raise CheckpointError(f"cannot resume {checkpoint}: it was trained with different settings "
                              f"({', '.join(f'{k}={stored.get(k, defaults[k])!r}' for k in sorted(changed))})")
    rates = {name: [group["lr"] for group in opt.param_groups] for name, opt in run.state.optimizers.items()}
    run.state.load(checkpoint)
    if cfg.steps is not None and run.state.step > cfg.steps:
        raise ValueError(f"steps: the run in {checkpoint.parent} is already at step {run.state.step}, past "
                         f"--steps {cfg.steps}; give at least {run.state.step}")
    for name, opt in run.state.optimizers.items():  # load_state_dict restored the stored rates: use this run's
        for group, lr in zip(opt.param_groups, rates[name]):
            group["lr"] = lr
    changes = list(stored.get("lr_changes", []))
    used = cfg.LEARNING_RATES
    new = {k: (stored.get(k, defaults[k]), wanted[k]) for k in used if stored.get(k, defaults[k]) != wanted[k]}
    if new:
        changes.append({"step": run.state.step, **{k: wanted[k] for k in used}})
        if distributed.is_main():
            print(f"resuming at step {run.state.step} with new learning rates: "
                  + ", ".join(f"{k} {old:g} -> {lr:g}" for k, (old, lr) in new.items()), file=sys.stderr)
    if changes:
        run.state.config["lr_changes"] = changes
    return changes


def train_run(build: Callable[[torch.device], Run], cfg: RunConfig, out: str | Path, device: str = "auto",
              resume: bool = False, show_progress: bool = True, force: bool = False,
              stop: StopSignals | None = None) -> dict[str, Any]:
    """Run (or resume) a training run into ``out``; returns the content of ``metrics.json``.

    Under ``torchrun`` every process calls it (``course_lib.run.distributed``): each rank trains on
    its share of every batch, rank 0 alone writes the files, shows the progress and evaluates, and
    every rank returns with rank 0's networks (``Run.finish`` runs there) and metrics.

    Args:
        build: builds the run on a device (a family's ``build_run(cfg, device)``); it checks every
            setting and loads the data, before anything is written.
        cfg: the run's settings (what ``build`` builds).
        out: its folder: new or empty, or with ``resume`` one that holds its ``checkpoint.pt``.
        device: "auto", "cpu", "cuda[:N]" or "mps" (under torchrun: "auto", "cpu" or "cuda").
        resume: continue the run in ``out``.
        show_progress: show a progress bar (on stderr in a script).
        force: start a new run in a folder that holds files (the previous run's files are deleted)
            or inside the shipped ``checkpoints/``.
        stop: ``StopSignals`` installed by the caller: on Ctrl-C the step under way finishes, the
            checkpoint is written and ``TrainingInterrupted`` is raised.

    Raises:
        FileExistsError, FileNotFoundError: see ``check_out`` (never overwrite a run silently).
        CheckpointError: ``resume`` with a checkpoint of a different configuration, or a corrupt one.
        TrainingDiverged: a logged value became NaN or Inf (the last good checkpoint is kept).
        TrainingInterrupted: ``stop`` received a signal; the checkpoint of the last step is written.
        DiskFullError: no space left (the previous checkpoint is unchanged).
    """
    out = Path(out)
    check_out(out, resume, force)
    with distributed.process_group(device) as resolved:
        return _train(build, cfg, out, resolved, resume, show_progress, force, stop)


def _train(build: Callable[[torch.device], Run], cfg: RunConfig, out: Path, device: torch.device, resume: bool,
           show_progress: bool, force: bool, stop: StopSignals | None) -> dict[str, Any]:
    """``train_run`` in its folder ``out`` (checked) on this rank's ``device``."""
    checkpoint = out / CHECKPOINT
    world = distributed.world()
    run = build(device)  # every setting and the data are checked here, before anything is written
    if world.is_main:
        for stale in remove_stale_temporaries(out):  # left by a process killed during a write
            print(f"removed {stale}, a temporary file left by an interrupted write", file=sys.stderr)
    lr_changes = resume_run(run, checkpoint) if resume else []
    distributed.broadcast_state(run.state.models.values())  # several processes: start from rank 0's state
    distributed.barrier()  # every rank has checked the folder and read the checkpoint before rank 0 writes
    if force and not resume and world.is_main:
        removed = [name for name in RUN_FILES if (out / name).is_file()]
        for name in removed:
            (out / name).unlink()
        if removed:
            print(f"--force: deleted the previous run's {', '.join(removed)} in {out}", file=sys.stderr)
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / CONFIG, lambda tmp: tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=2)))

    history = run.state.history.get("seconds")
    seconds_before = history[-1] if history else 0.0
    start = time.perf_counter()
    step_fn = run.step_fn
    agreed = {"stop": False, "signal": False}  # several processes: what the ranks decided together

    def out_of_time() -> bool:  # the wall-clock budget is spent
        return cfg.minutes is not None and seconds_before + time.perf_counter() - start >= 60 * cfg.minutes

    def timed_step() -> dict[str, float]:
        if world.size > 1:
            distributed.reseed(run.state.generator, cfg.seed, run.state.step)
        logs = step_fn()
        if world.size > 1:
            distributed.sync_buffers(run.state.models.values())
            signalled = stop is not None and stop()
            logs, (agreed["stop"], agreed["signal"]) = distributed.agree(logs, out_of_time() or signalled, signalled,
                                                                         device=device)
        logs["seconds"] = seconds_before + time.perf_counter() - start  # wall time of the run so far
        return logs

    def should_stop() -> bool:  # the wall-clock budget is spent, or Ctrl-C asked to stop
        if world.size > 1:
            return agreed["stop"]
        return out_of_time() or (stop is not None and stop())

    steps_before = run.state.step
    with stop.deferred() if stop is not None else nullcontext():
        fit(run.state, timed_step, cfg.steps, checkpoint_path=checkpoint if world.is_main else None,
            checkpoint_every=cfg.checkpoint_every, sample_fn=run.sample_grid if world.is_main else None,
            sample_every=0, show_progress=show_progress and world.is_main, should_stop=should_stop)
    if (stop is not None and stop()) or agreed["signal"]:
        raise TrainingInterrupted(f"{(stop and stop.requested) or 'a signal'} at step {run.state.step}"
                                  + (f" of {cfg.steps}" if cfg.steps else "") + f": the run is saved in {checkpoint}",
                                  step=run.state.step)
    if not world.is_main:  # rank 0 finishes, evaluates and writes the files; the others get its networks and metrics
        distributed.broadcast_state(run.state.models.values())
        return distributed.broadcast_object(None)
    seconds = run.state.history["seconds"][-1] if run.state.history.get("seconds") else 0.0
    session = time.perf_counter() - start
    finished = run.finish() if run.finish is not None else {}  # e.g. pix2pix's calibration: it changes the sampler
    save_generator(out / GENERATOR, run.sampler, run.sampler.cfg, cfg)
    grid = run.sample_grid() if run.finish is not None else run.state.grids[-1][1]  # a finished sampler's own grid
    save_images(grid, out / SAMPLES, nrow=run.grid_columns)
    result: dict[str, Any] = {
        **cfg.identity(),
        "steps": run.state.step,
        "train_seconds": round(seconds, 1),
        "images_per_second": round((run.state.step - steps_before) * run.images_per_step / max(session, 1e-9), 1),
        "device": str(device),
        **({"processes": world.size} if world.size > 1 else {}),
        **({"lr_changes": lr_changes} if lr_changes else {}),
    }
    result.update(run.evaluate())
    result.update(finished)
    atomic_write(out / METRICS, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    distributed.broadcast_state(run.state.models.values())  # e.g. the calibrated pix2pix G, on every rank
    return distributed.broadcast_object(result)
