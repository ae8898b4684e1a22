"""Device selection, seeding, parameter counts, profiles, and importing without side effects."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from course_lib.device import count_parameters, environment_report, get_device, seed_everything
from course_lib.profiles import PROFILE_NAMES, get_profile


def test_get_device_auto_is_cpu_here_and_explicit_cpu_works():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_get_device_unavailable_cuda_says_so():
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device("cuda")


def test_get_device_rejects_nonsense():
    with pytest.raises(ValueError, match="device must be"):
        get_device("tpu-please")


def test_seed_everything_repeats_torch_and_returns_generator():
    g1 = seed_everything(3)
    a = torch.randn(5), torch.randn(3, generator=g1)
    g2 = seed_everything(3)
    b = torch.randn(5), torch.randn(3, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_count_parameters_counts_trainable_only_by_default():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))  # 16 + 10
    assert count_parameters(net) == 26
    net[0].requires_grad_(False)
    assert count_parameters(net) == 10
    assert count_parameters(net, trainable_only=False) == 26


def test_environment_report_has_the_basics():
    report = environment_report(torch.device("cpu"))
    assert {"python", "torch", "device", "cpu threads"} <= set(report)


def test_profiles_resolve_from_name_env_and_auto(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert get_profile("auto").name == "smoke"
    assert get_profile("laptop").name == "laptop"
    monkeypatch.delenv("COURSE_PROFILE")
    assert get_profile("auto").name == ("gpu" if torch.cuda.is_available() else "laptop")
    p = get_profile("smoke")
    assert p.pick(smoke=1, laptop=2, gpu=3) == 1
    assert set(PROFILE_NAMES) == {"smoke", "laptop", "gpu"}


def test_unknown_profile_names_the_choices(monkeypatch):
    with pytest.raises(ValueError, match="smoke, laptop, gpu"):
        get_profile("fast")
    monkeypatch.setenv("COURSE_PROFILE", "turbo")
    with pytest.raises(ValueError, match="COURSE_PROFILE"):
        get_profile("auto")


def test_importing_course_lib_has_no_side_effects():
    """Importing every module prints nothing, opens no socket, and leaves RNG and settings alone."""
    code = r"""
import socket, importlib, pkgutil, torch
def refuse(*a, **k): raise AssertionError("network access at import time")
socket.socket.connect = refuse
socket.create_connection = refuse
state, threads, dtype = torch.get_rng_state(), torch.get_num_threads(), torch.get_default_dtype()
import course_lib
for m in pkgutil.walk_packages(course_lib.__path__, "course_lib."):
    if m.name.endswith("__main__"):
        continue
    importlib.import_module(m.name)
assert torch.equal(state, torch.get_rng_state()), "RNG state changed"
assert threads == torch.get_num_threads() and dtype == torch.get_default_dtype()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == "", (out.stdout, out.stderr)
