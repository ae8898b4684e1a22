"""Every shipped checkpoint has an up-to-date model card, and the card writer handles any run folder."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from course_lib import train

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("write_model_cards", ROOT / "scripts" / "write_model_cards.py")
cards = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cards)


@pytest.mark.parametrize("folder", cards.folders(), ids=lambda p: p.name)
def test_every_shipped_checkpoint_has_an_up_to_date_card(folder):
    path = folder / cards.CARD
    assert path.is_file(), f"{path} is missing: run python scripts/write_model_cards.py"
    assert path.read_text() == cards.card(folder), f"{path} is out of date: run python scripts/write_model_cards.py"


def test_a_card_has_every_section_and_the_command_rebuilds_the_config(tmp_path):
    folder = tmp_path / "encoder"
    folder.mkdir()
    cfg = train.default_config("encoder", steps=500, lr=3e-4)
    (folder / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    (folder / "metrics.json").write_text(json.dumps({"model": "encoder", "steps": 500, "device": "cpu",
                                                     "psnr": 17.25, "ssim": 0.61, "class_kept": 0.9}))
    text = cards.card(folder)
    for heading in ("## Model", "## Data", "## Intended use", "## Metrics", "## Limitations", "## How it was trained"):
        assert heading in text
    assert "| `psnr` | 17.25 |" in text and "| `class_kept` | 0.9 |" in text and "2-core x86-64 CPU" in text
    assert text == cards.card(folder)                                   # deterministic
    command = next(line for line in text.splitlines() if line.startswith("python -m course_lib.train "))
    args = train.parse_args(command.split()[3:])
    settings = {k: v for k, v in vars(args).items() if k not in ("model", *train.RUN_FLAGS)}
    assert train.default_config(args.model, **settings) == cfg          # the command trains the same run
