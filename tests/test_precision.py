"""What --precision means on a device (course_lib.run.steps.use_bf16) and how bad values are refused."""

import pytest
import torch

from course_lib import train
from course_lib.run import steps


def test_fp32_never_and_bf16_always_where_the_device_has_native_bf16(monkeypatch):
    monkeypatch.setattr(steps, "native_bf16", lambda device: True)
    assert steps.use_bf16("fp32", "cpu") is False
    assert steps.use_bf16("bf16", "cpu") is True
    assert steps.use_bf16("auto", "cpu") is False                      # no measured device type: fp32
    assert steps.use_bf16("auto", "cpu", auto=("cpu",)) is True
    assert steps.use_bf16("auto", "cpu", auto=("cuda",)) is False


def test_bf16_is_refused_and_auto_falls_back_where_bf16_would_be_emulated(monkeypatch):
    monkeypatch.setattr(steps, "native_bf16", lambda device: False)
    with pytest.raises(ValueError, match="precision 'bf16' needs native bf16.*neither AVX-512 BF16 nor AMX.*'fp32' or 'auto'"):
        steps.use_bf16("bf16", "cpu")
    assert steps.use_bf16("auto", "cpu", auto=("cpu",)) is False
    with pytest.raises(ValueError, match="precision must be one of \\('auto', 'fp32', 'bf16'\\), got 'fp16'"):
        steps.use_bf16("fp16", "cpu")


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert steps.native_bf16("cpu") is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert steps.native_bf16("cpu") is True
    assert steps.native_bf16("meta") is False


def test_autocast_is_bf16_on_the_cpu_a_no_op_without_amp_and_refused_elsewhere():
    x = torch.randn(2, 3)
    with steps.autocast(True, x.device):
        assert (x @ x.T).dtype == torch.bfloat16
    with steps.autocast(False, x.device):
        assert (x @ x.T).dtype == torch.float32
    with pytest.raises(ValueError, match="amp \\(bf16 autocast\\) runs on CUDA or the CPU, not on mps"):
        steps.autocast(True, torch.device("mps"))


def test_a_config_refuses_an_unknown_precision_and_the_cli_names_the_flag(tmp_path, capsys):
    with pytest.raises(ValueError, match="precision must be one of \\('auto', 'fp32', 'bf16'\\), got 'half'"):
        train.default_config("dcgan", precision="half")
    with pytest.raises(SystemExit) as refused:
        train.main(["dcgan", "--out", str(tmp_path / "x"), "--precision", "half"])
    assert refused.value.code == 2 and "--precision: invalid choice: 'half'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bf16_on_a_cpu_without_it_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(steps, "native_bf16", lambda device: False)
    out = tmp_path / "run"
    assert train.main(["dcgan", "--out", str(out), "--steps", "2", "--device", "cpu", "--precision", "bf16",
                       "--base-channels", "8", "--batch-size", "8", "--eval-samples", "0"]) != 0
    assert "precision 'bf16' needs native bf16" in capsys.readouterr().err
    assert not (out / "checkpoint.pt").exists()
