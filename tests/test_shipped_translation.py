"""The shipped pix2pix photo checkpoints: their metrics.json is what they score on the test pairs now, and each
beats its task's classical baseline in PSNR and SSIM on those held-out pairs (the course's claim in lesson 07
and the README)."""

import json
from pathlib import Path

import pytest

from course_lib.data.paired import PHOTO_TASKS
from course_lib.sample import load_generator
from course_lib.translate import evaluate_pix2pix

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.mark.parametrize("task", PHOTO_TASKS)
def test_shipped_photo_model_beats_its_baseline_on_the_test_pairs(task):
    directory = CHECKPOINTS / f"pix2pix_{task}"
    recorded = json.loads((directory / "metrics.json").read_text())
    G, meta = load_generator(directory)
    # the scale fitted on the val pairs; these files keep it in their architecture (written before it was a buffer)
    assert meta["train"]["calibrate"] and G.correction_scale.item() == pytest.approx(recorded["correction_scale"])
    scores = evaluate_pix2pix(G, task)
    for key in ("psnr", "ssim", "baseline_psnr", "baseline_ssim"):
        assert scores[key] == pytest.approx(recorded[key], abs=2e-3), key  # the split and the data have not moved
    assert scores["psnr"] > scores["baseline_psnr"] and scores["ssim"] > scores["baseline_ssim"]
