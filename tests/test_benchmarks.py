"""The benchmark scripts' own logic: interval merging, the equal-quality verdict, a tiny fp32-vs-fast comparison.

The figures they print are measurements (README, "Benchmark"); these tests only check that the scripts
compute what they say, on tiny models.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from course_lib.run import native_bf16

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_merged_length_counts_overlapping_and_nested_ranges_once():
    speed = load("precision_speed")
    assert speed._merged_length([]) == 0
    assert speed._merged_length([(0, 2), (1, 3), (5, 6)]) == 4      # overlap, then a gap
    assert speed._merged_length([(0, 10), (2, 3), (4, 5)]) == 10    # nested ranges (a forward inside a forward)


def test_quality_table_calls_a_metric_the_same_only_within_the_seed_range():
    quality = load("precision_quality")
    vae, pix = {"steps": quality.STEPS["vae"]}, {"steps": quality.STEPS["pix2pix"]}
    results = {"vae/fp32/0": {**vae, "test_neg_elbo": 100.0}, "vae/fp32/1": {**vae, "test_neg_elbo": 102.0},
               "vae/fast/0": {**vae, "test_neg_elbo": 101.0}, "vae/fast/1": {**vae, "test_neg_elbo": 102.5},
               "pix2pix/fp32/0": {**pix, "psnr": 24.0}, "pix2pix/fp32/1": {**pix, "psnr": 24.1},
               "pix2pix/fast/0": {**pix, "psnr": 22.0}, "pix2pix/fast/1": {**pix, "psnr": 22.2}}
    rows = quality.table(results, ["vae", "pix2pix"], [0, 1])
    elbo = next(r for r in rows if "test_neg_elbo" in r)
    psnr = next(r for r in rows if "psnr" in r)
    assert "| yes (means 101 vs 102" in elbo   # means 1.25 apart, seed range 2: the same
    assert "| no (means 24.1 vs 22.1" in psnr  # means 1.95 apart, seed range 0.2: different
    assert not any("ssim" in r for r in rows)  # a metric without every run recorded is left out
    assert quality.same_quality(results, "vae", [0, 1]) is None       # test_iwae and fd not recorded yet
    for name, fd in (("fp32/0", 300.0), ("fp32/1", 320.0), ("fast/0", 310.0), ("fast/1", 305.0)):
        results[f"vae/{name}"].update(test_iwae=95.0, fd=fd)
    assert quality.same_quality(results, "vae", [0, 1]) is True
    assert quality.same_quality(results, "pix2pix", [0, 1]) is None   # ssim not recorded yet
    for name in ("fp32/0", "fp32/1", "fast/0", "fast/1"):
        results[f"pix2pix/{name}"]["ssim"] = 0.8
    assert quality.same_quality(results, "pix2pix", [0, 1]) is False   # psnr differs, ssim does not
    results["vae/fast/1"]["steps"] = 10                                # a run of other steps does not count
    assert quality.same_quality(results, "vae", [0, 1]) is None
    assert not any("test_neg_elbo" in r for r in quality.table(results, ["vae"], [0, 1]))


def test_auto_bf16_lists_only_models_whose_recorded_quality_is_the_same():
    """A model may default to bf16 on a CPU only where the committed equal-step runs found its quality unchanged."""
    import json

    from course_lib.train import MODELS, default_config

    quality = load("precision_quality")
    results = json.loads(quality.DEFAULT_RESULTS.read_text())
    for model in MODELS:
        if "cpu" in default_config(model).AUTO_BF16.get(model, ()):
            assert model in quality.STEPS and quality.same_quality(results, model, [0, 1]) is True, model


@pytest.mark.skipif(not native_bf16("cpu"), reason="the fast path compares bf16, which this CPU would emulate")
def test_compare_times_both_paths_and_profiles_the_share_outside_the_networks():
    speed = load("precision_speed")
    r = speed.compare("dcgan", 8, torch.device("cpu"), rounds=1, steps=1, profile_steps=2)
    assert r["fast"] == {"precision": "bf16", "channels_last": True} and r["width"] == 8
    assert r["fp32"] > 0 and r["fast_ips"] > 0 and r["ratio"] == pytest.approx(r["fast_ips"] / r["fp32"])
    assert 0 < r["outside_fp32"] < 1 and 0 < r["outside_fast"] < 1


def test_optimizer_speed_swaps_every_optimiser_for_the_asked_adam_and_keeps_its_settings():
    bench = load("optimizer_speed")
    from course_lib.train import build_run, default_config

    run = build_run(default_config("dcgan", base_channels=8, eval_samples=0, precision="fp32"), torch.device("cpu"))
    before = {name: dict(opt.param_groups[0]) for name, opt in run.state.optimizers.items()}
    bench.with_adam(run, {"fused": True})
    for name, opt in run.state.optimizers.items():
        group = opt.param_groups[0]
        assert group["fused"] is True and group["lr"] == before[name]["lr"] and group["betas"] == before[name]["betas"]
        assert group["params"] == before[name]["params"]
    r = bench.compare("dcgan", "fp32", torch.device("cpu"), rounds=1, steps=1, width=8)
    assert set(r) == {"for-loop", "foreach", "fused"} and r["for-loop"]["ratio"] == 1.0
    assert all(v["images_per_s"] > 0 for v in r.values())
