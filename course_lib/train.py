"""Train a model of the course from the command line: checkpoint, sample grid and metrics in one directory.

Usage::

    python -m course_lib.train MODEL --out DIR [--steps N | --minutes M] [--resume | --force] [options]
    python -m course_lib.train MODEL --help        # the options of MODEL, and only those
    torchrun --nproc_per_node N -m course_lib.train MODEL --out DIR ...   # N processes (GPUs): one run

Under ``torchrun`` each process trains on its share of every batch (``--batch-size`` stays the
global batch) and rank 0 alone writes DIR and prints; see ``course_lib.run.distributed``.

MODEL is one of the names of ``FAMILIES``: ``dcgan``, ``cgan`` and ``wgan_gp`` (``course_lib.gan``),
``vae`` and ``cvae`` (``course_lib.vae``), ``pix2pix`` (``course_lib.pix2pix``), ``cyclegan``
(``course_lib.cyclegan``), ``stylegan`` (``course_lib.stylegan``), ``encoder`` (``course_lib.editing``:
an encoder into a trained StyleGAN's W+, lesson 10), ``adain`` (``course_lib.style_transfer``: AdaIN's
decoder, lesson 11) and ``watermark`` (``course_lib.responsible.learned_watermark``, lesson 12). Each
name has its own options:
the settings of its family's config (``GANTrainConfig``, ``VAETrainConfig``, ...), with the
recommended values of ``default_config(MODEL)`` as defaults and the comments of the config as help;
an option of another family is an error. DIR receives ``checkpoint.pt`` (``--resume`` continues from
it), ``generator.safetensors`` (what ``course_lib.sample`` reads), ``samples.png``, ``metrics.json``
and ``config.json`` (the family's settings): see ``course_lib.run.session``.

``--out`` must be a new or empty folder: one that holds anything is refused unless ``--resume``
(continue the run in it) or ``--force`` (delete the previous run's files and start again); so is
the repository's ``checkpoints/`` without ``--force``. ``--resume`` needs a ``checkpoint.pt`` there,
refuses changed settings except when the run ends, how it is evaluated and the learning rates (a
change is recorded, with its step, as ``lr_changes`` in the checkpoint and ``metrics.json``); a run
started before the configs were split by family resumes as well. Ctrl-C (or SIGTERM) finishes the
step under way, writes the checkpoint, prints the command that continues the run and exits with
status 130; a second Ctrl-C stops at once (the last checkpoint stays intact). Every setting is
checked before the first step; errors are one line on stderr (status 2 for a bad flag or folder, 1
for a failure such as a full disk or a diverged run).

Adding a family: write its package (``course_lib/<family>/`` with ``model.py`` and ``training.py``;
``training.py`` defines ``default_config``, ``build_run``, ``build_sampler`` and ``sample_arrays``,
the package re-exports them) and add its line to ``FAMILIES``. The library functions
(``default_config``, ``build_run``, ``train``) do the work; ``main`` only turns flags into a config.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import shlex
import sys
import types
import typing
from pathlib import Path
from typing import Any

import torch

from course_lib import cyclegan, editing, gan, pix2pix, style_transfer, stylegan, vae
from course_lib.responsible import learned_watermark
from course_lib.checkpoint import CheckpointError, DiskFullError, describe_os_error
from course_lib.data import DatasetUnavailableError
from course_lib.run import Run, RunConfig, distributed, train_run
from course_lib.run.files import CHECKPOINT, save_generator  # noqa: F401 (re-exported: the lessons and scripts use them)
from course_lib.run.sampling import evaluate_generator, generate, generate_batches  # noqa: F401 (re-exported, as above)
from course_lib.training import StopSignals, TrainingDiverged, TrainingInterrupted

FAMILIES: dict[str, types.ModuleType] = {  # model name (the command's MODEL) -> the family package that trains it
    "dcgan": gan, "cgan": gan, "wgan_gp": gan,   # lessons 02, 04, 05
    "vae": vae, "cvae": vae,                      # lesson 06
    "pix2pix": pix2pix,                           # lesson 07
    "cyclegan": cyclegan,                         # lesson 08
    "stylegan": stylegan,                         # lesson 09
    "encoder": editing,                           # lesson 10 (an encoder into a trained StyleGAN's W+)
    "adain": style_transfer,                      # lesson 11 (AdaIN's decoder for style transfer)
    "watermark": learned_watermark,               # lesson 12 (a learned watermark: HiDDeN's encoder and decoder)
}
MODELS = tuple(FAMILIES)  # the model names, in the order of the lessons
RUN_FLAGS = ("out", "device", "resume", "force")  # the command's own flags; every other flag is a setting


def family_of(model: str) -> types.ModuleType:
    """The family package that trains ``model``, from ``FAMILIES``."""
    if model not in FAMILIES:
        raise ValueError(f"model must be one of {tuple(FAMILIES)}, got {model!r}")
    return FAMILIES[model]


def default_config(model: str, **overrides: Any) -> RunConfig:
    """The recommended settings of ``model`` (its family's ``default_config``), with ``overrides`` applied.

    Returns the family's config: ``GANTrainConfig`` for dcgan, cgan and wgan_gp, ``VAETrainConfig`` for
    vae and cvae, ``Pix2PixTrainConfig``, ``CycleGANTrainConfig`` or ``StyleGANTrainConfig``.
    """
    return family_of(model).default_config(model, **overrides)


def build_run(cfg: RunConfig, device: torch.device | str = "cpu") -> Run:
    """Data, models, optimisers, batch sampler and step function of a run (its family's ``build_run``)."""
    return family_of(cfg.model).build_run(cfg, torch.device(device))


def train(cfg: RunConfig, out: str | Path, device: str = "auto", resume: bool = False,
          show_progress: bool = True, force: bool = False, stop: StopSignals | None = None) -> dict[str, Any]:
    """Run (or resume) a training run into ``out``; returns the content of ``metrics.json``.

    See ``course_lib.run.session.train_run`` for the files, the arguments and the errors.
    """
    return train_run(lambda on: build_run(cfg, on), cfg, out, device=device, resume=resume,
                     show_progress=show_progress, force=force, stop=stop)


# ----------------------------------------------------------------------------------------------
# The command line: one subcommand per model, its options read from its family's config
# ----------------------------------------------------------------------------------------------

EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130  # a bad flag or folder; a failed run; Ctrl-C or SIGTERM


def settings_help(cls: type[RunConfig]) -> dict[str, str]:
    """Each setting's comment in the source of its config (and of the configs it extends): its ``--help``."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # the base first: a family's comment on a field replaces the base's
        if dataclasses.is_dataclass(klass):
            for line in inspect.getsource(klass).splitlines():
                match = re.match(r"\s+(\w+): [^=#]+=[^#]*#\s*(.+)$", line)
                if match:
                    comments[match[1]] = match[2]
    return comments


def add_settings(parser: argparse.ArgumentParser, preset: RunConfig) -> None:
    """One option per setting of ``preset``'s config that applies to its model, its default ``preset``'s value."""
    cls = type(preset)
    types_of, comments = typing.get_type_hints(cls), settings_help(cls)
    group = parser.add_argument_group(f"{preset.model} settings ({cls.__name__})")
    for field in dataclasses.fields(cls):
        name = field.name
        if name == "model" or not preset.uses(name):
            continue
        default = getattr(preset, name)
        kind = typing.get_args(types_of[name])[0] if typing.get_args(types_of[name]) else types_of[name]  # int | None
        shown = ("none" if default is None else ("on" if default else "off") if isinstance(default, bool)
                 else f"{default:g}" if isinstance(default, float) else default)
        options: dict[str, Any] = {"help": f"{comments.get(name, name)} (default {shown})"}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif name in cls.choices():
            options.update(type=kind, choices=cls.choices()[name])
        else:
            options.update(type=kind, metavar={int: "N", float: "X"}.get(kind, name.upper()))
        group.add_argument("--" + name.replace("_", "-"), default=None, **options)


def make_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """``python -m course_lib.train``'s parser, and its subcommands: one per name of ``FAMILIES``, with that model's options."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n")[0],
                                     allow_abbrev=False,
                                     usage="%(prog)s MODEL --out DIR [--steps N | --minutes M] [--resume | --force] "
                                           "[options]",
                                     epilog="python -m course_lib.train MODEL --help lists the options of MODEL.")
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL", title="models")
    commands = {}
    for name in FAMILIES:
        preset = default_config(name)
        family = type(preset).__module__.rsplit(".", 1)[0]
        about = f"{preset.MODELS[name]} ({family})"
        command = models.add_parser(name, prog=f"python -m course_lib.train {name}", help=about, description=about,
                                    allow_abbrev=False,
                                    usage="%(prog)s --out DIR [--steps N | --minutes M] [--resume | --force] [options]")
        command.add_argument("--out", type=Path, required=True, metavar="DIR",
                             help="directory for checkpoint, samples and metrics")
        command.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps (default auto)")
        command.add_argument("--resume", action="store_true", help="continue the run in --out")
        command.add_argument("--force", action="store_true",
                             help="start a new run in an --out that holds files (deletes the previous run's files), "
                                  "or inside checkpoints/")
        add_settings(command, preset)
        commands[name] = command
    return parser, commands


def options_of(model: str) -> set[str]:
    """The setting flags of ``model``'s subcommand (``--lr-g``, ``--spectral-norm``, ``--no-spectral-norm``, ...)."""
    preset = default_config(model)
    flags = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(preset) if f.name != "model" and preset.uses(f.name)}
    return flags | {"--no-" + flag[2:] for flag in flags}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The flags of ``argv``; an option that is not one of its model's is an error that says whose it is (exit 2)."""
    parser, commands = make_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = next((word.split("=", 1)[0] for word in unknown if word.startswith("--")), unknown[0])
        owners = [name for name in FAMILIES if flag in options_of(name)]
        whose = f"it is an option of {', '.join(owners)}" if owners else "no model has it"
        commands[args.model].error(f"{flag} is not an option of {args.model} ({whose}); "
                                   f"python -m course_lib.train {args.model} --help lists its options")
    return args


def _flag_message(message: str, cls: type[RunConfig]) -> str:
    """Name the flag in a configuration error: 'lr_g must be ...' -> '--lr-g must be ...'."""
    first = message.split(" ", 1)[0].rstrip(":")
    if first in {f.name for f in dataclasses.fields(cls)} - {"model"}:
        return f"--{first.replace('_', '-')}{message[len(first):]}"
    return message


def _continue_command(argv: list[str], **flags: float) -> str:
    """The command line that continues this run: ``argv`` without --force, with --resume and ``flags`` set."""
    replaced = {"--" + name.replace("_", "-") for name in flags}
    words: list[str] = []
    i = 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        skip = 0 if name not in replaced else 1 if "=" in argv[i] else 2  # the flag and its value
        if name != "--force" and not skip:
            words.append(argv[i])
        i += max(skip, 1)
    words += [] if "--resume" in words else ["--resume"]
    for name, value in flags.items():
        words += ["--" + name.replace("_", "-"), f"{value:g}"]
    return "python -m course_lib.train " + shlex.join(words)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k not in ("model", *RUN_FLAGS)}
    config_class = type(default_config(args.model))

    world = distributed.environment()  # under torchrun every process runs this command

    def error(message: str, status: int) -> int:
        print(f"error{f' (rank {world.rank})' if world.size > 1 else ''}: {message}", file=sys.stderr)
        return status

    if args.resume and args.force:
        return error("--resume continues the run in --out and --force replaces it: give one of them", EXIT_USAGE)
    try:
        cfg = default_config(args.model, **settings)
    except ValueError as err:
        return error(_flag_message(str(err), config_class), EXIT_USAGE)
    checkpoint = args.out / CHECKPOINT
    with StopSignals() as stop:
        try:
            result = train(cfg, args.out, device=args.device, resume=args.resume, force=args.force, stop=stop)
        except TrainingInterrupted as err:
            return error(f"interrupted by {err}; continue it with: {_continue_command(argv)}", EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            if checkpoint.is_file():
                return error(f"interrupted: the last checkpoint, {checkpoint}, is intact; continue the run with: "
                             f"{_continue_command(argv)}", EXIT_INTERRUPTED)
            return error("interrupted before the first checkpoint: nothing to resume", EXIT_INTERRUPTED)
        except TrainingDiverged as err:
            rates = {name: getattr(cfg, name) / 2 for name in cfg.LEARNING_RATES}
            if err.checkpoint_step is not None:
                advice = f"Continue from it with lower learning rates, e.g.: {_continue_command(argv, **rates)}"
            else:
                advice = ("Start again with lower learning rates and --force, e.g. "
                          + " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in rates.items()))
            return error(f"{err} {advice}", EXIT_FAILURE)
        except DiskFullError as err:
            after = (f"; then continue the run with: {_continue_command(argv)}" if checkpoint.is_file()
                     else " (with --force: the folder holds the new run's config.json)")
            return error(f"{err}{after}", EXIT_FAILURE)
        except (ValueError, FileExistsError, FileNotFoundError, CheckpointError) as err:
            return error(_flag_message(str(err), config_class), EXIT_USAGE)
        except DatasetUnavailableError as err:  # the command never downloads: say how to fetch the files once
            return error(f"{err} (This command does not download; in Python, "
                         f"course_lib.data.load_dataset({cfg.dataset!r}, download=True) fetches the files once.)",
                         EXIT_FAILURE)
        except OSError as err:  # e.g. a read-only --out
            return error(describe_os_error(err), EXIT_FAILURE)
    if world.is_main:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
