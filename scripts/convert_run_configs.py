"""Rewrite the settings of runs written before the family configs, in today's form.

    python scripts/convert_run_configs.py runs/dcgan checkpoints/*             # config.json of each folder
    python scripts/convert_run_configs.py --weights runs/dcgan                  # also generator.safetensors' metadata

Until the training settings were split by family, every run stored one flat config of every
family's settings (``loss``, ``latent_dim``, ``task``, ``r1_every``, ... whatever the model), a
StyleGAN's architecture carried ``num_classes = 0``, and a pix2pix U-Net's architecture carried its
fitted ``correction_scale`` (now a buffer in its tensors). Such runs keep working without this script
(``--resume`` compares only the model's own settings; ``course_lib.sample.load_generator`` reads old
metadata as the family's settings, and the old architecture through the family's ``build_sampler``),
but a ``config.json`` that holds another family's settings cannot be passed to ``default_config`` as
it is. This script writes each folder's ``config.json`` as the model's family config (the settings the
run had; a setting newer than the run gets its default) and, with ``--weights``, the metadata of
``generator.safetensors`` the same way: the architecture as the rebuilt network has it, and the
tensors the network has that the file lacks (pix2pix's ``correction_scale``, from the old
architecture) added; every tensor of the file is kept bit for bit, and the checksums cover them all.
Every file is written atomically; a folder already in today's form is rewritten unchanged.
``checkpoint.pt`` is left alone: resuming reads it as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from course_lib.checkpoint import CheckpointError, atomic_write, read_safetensors, write_safetensors
from course_lib.run.files import CONFIG, GENERATOR, settings_of
from course_lib.train import FAMILIES, family_of


def family_config(stored: dict) -> dict:
    """A stored run config (flat or today's) as its family's config, complete and checked."""
    model = stored.get("model")
    if model not in FAMILIES:
        raise ValueError(f"model {model!r} is none of {tuple(FAMILIES)}")
    cls = type(family_of(model).default_config(model))
    settings = {k: v for k, v in settings_of(cls, stored).items() if k != "lr_changes"}
    return dataclasses.asdict(cls(**settings))


def convert(folder: Path, weights: bool) -> list[str]:
    """Rewrite ``folder``'s config.json (and with ``weights`` its generator.safetensors metadata); returns what was written."""
    written = []
    if (folder / CONFIG).is_file():
        config = family_config(json.loads((folder / CONFIG).read_text()))
        atomic_write(folder / CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2)))
        written.append(CONFIG)
    if weights and (folder / GENERATOR).is_file():
        tensors, metadata = read_safetensors(folder / GENERATOR)  # checks every tensor's checksum
        meta = json.loads(metadata.get("config", "{}"))
        family = family_of(meta.get("model", ""))
        model = family.build_sampler(meta.get("architecture", {}), str(folder / GENERATOR))
        try:
            model.load_state_dict(tensors)  # the tensors fit the architecture, and the network holds the file's values
        except RuntimeError as err:
            raise CheckpointError(f"{folder / GENERATOR}: its tensors do not fit its architecture: {err}") from err
        newer = {k: v for k, v in model.state_dict().items() if k not in tensors}  # held by the old architecture
        meta = {**meta, "architecture": dataclasses.asdict(model.cfg),
                "train": family_config({"model": meta["model"], **meta["train"]})}
        write_safetensors(folder / GENERATOR, {**tensors, **newer}, {**metadata, "config": json.dumps(meta)})
        written.append(GENERATOR)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders (python -m course_lib.train --out DIR)")
    parser.add_argument("--weights", action="store_true", help="also rewrite the metadata of generator.safetensors")
    args = parser.parse_args()
    failed = 0
    for folder in args.folders:
        try:
            written = convert(folder, args.weights)
        except (ValueError, TypeError, CheckpointError, OSError) as err:
            print(f"error: {folder}: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{folder}: rewrote {', '.join(written) or 'nothing (no config.json)'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
