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
    results = {"vae/fp32/0": {"test_neg_elbo": 100.0}, "vae/fp32/1": {"test_neg_elbo": 102.0},
               "vae/fast/0": {"test_neg_elbo": 101.0}, "vae/fast/1": {"test_neg_elbo": 102.5},
               "pix2pix/fp32/0": {"psnr": 24.0}, "pix2pix/fp32/1": {"psnr": 24.1},
               "pix2pix/fast/0": {"psnr": 22.0}, "pix2pix/fast/1": {"psnr": 22.2}}
    rows = quality.table(results, ["vae", "pix2pix"], [0, 1])
    elbo = next(r for r in rows if "test_neg_elbo" in r)
    psnr = next(r for r in rows if "psnr" in r)
    assert "| yes (means 101 vs 102" in elbo   # means 1.25 apart, seed range 2: the same
    assert "| no (means 24.1 vs 22.1" in psnr  # means 1.95 apart, seed range 0.2: different
    assert not any("ssim" in r for r in rows)  # a metric without every run recorded is left out


@pytest.mark.skipif(not native_bf16("cpu"), reason="the fast path compares bf16, which this CPU would emulate")
def test_compare_times_both_paths_and_profiles_the_share_outside_the_networks():
    speed = load("precision_speed")
    r = speed.compare("dcgan", 8, torch.device("cpu"), rounds=1, steps=1, profile_steps=2)
    assert r["fast"] == {"precision": "bf16", "channels_last": True} and r["width"] == 8
    assert r["fp32"] > 0 and r["fast_ips"] > 0 and r["ratio"] == pytest.approx(r["fast_ips"] / r["fp32"])
    assert 0 < r["outside_fp32"] < 1 and 0 < r["outside_fast"] < 1
