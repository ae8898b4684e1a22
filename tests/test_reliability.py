"""What the command-line tools promise: nothing saved is lost, nothing corrupt is used silently, and every
bad input gets one clear line (issue 24). Read the test names as the list of promises; each section is one
item of the issue. Tiny models, temporary folders; a full disk and a read-only folder are simulated with
the OSError the operating system raises (the tests may run as root, who can write anywhere).
"""

from __future__ import annotations

import errno
import io
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from course_lib import checkpoint, evaluate, exercises, sample, train
from course_lib.run import session  # the run layer: it writes the files and runs fit
from course_lib.checkpoint import (CHECKSUMS, CheckpointError, DiskFullError, atomic_write, load_weights,
                                   read_checkpoint, remove_stale_temporaries, save_checkpoint, save_weights)
from course_lib.viz import to_uint8

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--base-channels", "8", "--batch-size", "16", "--eval-samples", "0"]


@pytest.fixture(autouse=True)
def interruptible():
    """Ctrl-C as in a terminal: a suite started in the background (``make test &``) inherits SIGINT ignored, which
    ``train`` rightly keeps ignored; these tests are about a run that can be interrupted."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def default_sigint() -> None:  # for child processes: SIGINT as in a terminal, whatever the suite inherited
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_train(out, *extra, model="dcgan"):
    return train.main([model, "--out", str(out), *TINY, *extra])


def one_line_error(err: str) -> str:
    """The single line a failed command printed on stderr (progress lines aside)."""
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def flip_byte(path: Path, tensor: torch.Tensor) -> None:
    """Flip one bit in the stored bytes of ``tensor`` inside ``path`` (raw tensor data is stored uncompressed)."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    at = data.find(raw)
    assert at >= 0, "tensor bytes not found in the file"
    data[at + len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def tiny_generator_dir(directory: Path) -> Path:
    """A run folder holding only an untrained tiny DCGAN's generator.safetensors."""
    from course_lib.gan import DCGANConfig, Generator

    cfg = train.default_config("dcgan", base_channels=8, steps=1)
    model_cfg = DCGANConfig(z_dim=cfg.z_dim, base_channels=8)
    torch.manual_seed(0)
    train.save_generator(directory / "generator.safetensors", Generator(model_cfg), model_cfg, cfg)
    return directory


def wrap_steps(monkeypatch, action):
    """Make every training run call ``action(n, logs)`` after its n-th step (n = 1, 2, ...)."""
    real_build = train.build_run

    def build(cfg, device="cpu"):
        run = real_build(cfg, device)
        inner, count = run.step_fn, [0]

        def step():
            logs = inner()
            count[0] += 1
            return action(count[0], logs) or logs

        run.step_fn = step
        return run

    monkeypatch.setattr(train, "build_run", build)


def same_weights(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    x, y = load_file(str(a / "generator.safetensors")), load_file(str(b / "generator.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# ---- 1. A run is never overwritten, and checkpoints/ is off limits unless asked --------------------

def test_train_refuses_a_folder_that_holds_a_shipped_checkpoint_copy(tmp_path, capsys):
    copy = tmp_path / "dcgan"
    shutil.copytree(ROOT / "checkpoints" / "dcgan", copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    assert run_train(copy, "--steps", "5") == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--resume" in line and "--force" in line and "generator.safetensors" in line
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_train_refuses_a_folder_that_holds_anything(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert run_train(tmp_path, "--steps", "1") == 2
    assert "notes.txt" in one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_force_replaces_the_previous_run_and_keeps_other_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(out, "--steps", "2") == 0
    (out / "mine.txt").write_text("kept")
    assert run_train(out, "--steps", "1", "--force") == 0
    assert read_checkpoint(out / "checkpoint.pt")["step"] == 1 and (out / "mine.txt").read_text() == "kept"
    assert run_train(out, "--steps", "2", "--force", "--resume") == 2
    assert "give one of them" in one_line_error(capsys.readouterr().err)


def test_train_refuses_an_out_inside_the_shipped_checkpoints(capsys):
    target = sample.SHIPPED / "zz_reliability_test"
    assert run_train(target, "--steps", "1") == 2
    assert "--force" in one_line_error(capsys.readouterr().err)
    assert not target.exists()


# ---- 2. Corrupt or non-finite weights are refused, naming the file --------------------------------

def make_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


def test_flipped_bytes_in_weights_are_refused(tmp_path, capsys):
    net = make_net()
    path = save_weights(tmp_path / "w.safetensors", net)
    flip_byte(path, net[2].weight.detach())
    with pytest.raises(CheckpointError, match=r"w\.safetensors is corrupt: tensor\(s\) 2\.weight changed"):
        load_weights(path)
    run = tiny_generator_dir(tmp_path / "run")
    from safetensors.torch import load_file

    largest = max(load_file(str(run / "generator.safetensors")).values(), key=torch.Tensor.numel)
    flip_byte(run / "generator.safetensors", largest)
    assert sample.main([str(run), "--n", "5", "--out", str(tmp_path / "s.npz")]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "generator.safetensors is corrupt" in line and "retrain" in line
    assert not (tmp_path / "s.npz").exists()


def test_nan_weights_are_refused_when_saved_and_when_loaded(tmp_path, capsys):
    net = make_net()
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        save_weights(tmp_path / "nan.safetensors", net)
    run = tiny_generator_dir(tmp_path / "run")
    from safetensors import safe_open

    with safe_open(str(run / "generator.safetensors"), "pt") as f:  # a file written by other code, no checksums
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    first = sorted(k for k in tensors if tensors[k].is_floating_point())[0]
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    save_file(tensors, str(run / "generator.safetensors"), metadata={k: v for k, v in metadata.items() if k != CHECKSUMS})
    assert sample.main([str(run), "--n", "5", "--out", str(tmp_path / "s.npz")]) == 2
    assert "NaN or Inf" in one_line_error(capsys.readouterr().err)


def test_flipped_bytes_in_a_training_checkpoint_are_refused(tmp_path):
    net = make_net()
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(8, 4)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "run.pt", models={"net": net}, optimizers={"net": opt}, step=3)
    exp_avg = opt.state_dict()["state"][2]["exp_avg"]  # an Adam state, not a weight
    flip_byte(path, exp_avg)
    with pytest.raises(CheckpointError, match=r"run\.pt is corrupt: tensor\(s\) optimizers/net/state/2/exp_avg"):
        read_checkpoint(path)


def test_checkpoints_written_before_checksums_still_load(tmp_path):
    net = make_net()
    path = save_checkpoint(tmp_path / "run.pt", models={"net": net}, step=2)
    payload = torch.load(path, weights_only=True)
    del payload["checksums"]
    torch.save(payload, path)
    assert read_checkpoint(path)["step"] == 2
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "old.safetensors"))
    state, config = load_weights(tmp_path / "old.safetensors")
    assert config == {} and torch.equal(state["0.weight"], net[0].weight)


def test_every_shipped_checkpoint_carries_verified_checksums():
    from course_lib.checkpoint import read_safetensors

    files = sorted((ROOT / "checkpoints").glob("*/generator.safetensors"))
    assert files
    for path in files:
        _, metadata = read_safetensors(path)  # raises if a tensor does not match
        assert CHECKSUMS in metadata, f"{path}: run scripts/add_weight_checksums.py"


# ---- 3. Permissions follow the umask; temporary files of killed writers are cleaned up -------------

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_respect_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "f.txt", lambda tmp: tmp.write_text("x"))
        saved = save_weights(tmp_path / "w.safetensors", make_net())
    finally:
        os.umask(previous)
    for p in (path, saved):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, oct(p.stat().st_mode)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stray_temporary_files_are_removed_on_the_next_start_of_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(out, "--steps", "2") == 0
    stale = out / f".checkpoint.pt.{dead_pid()}.0123abcd.tmp"  # what kill -9 during a write leaves
    live = out / f".metrics.json.{os.getpid()}.0123abcd.tmp"   # a writer that is still running
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"in progress")
    assert run_train(out, "--steps", "3", "--resume") == 0
    assert not stale.exists() and live.exists()
    assert "temporary file" in capsys.readouterr().err
    assert remove_stale_temporaries(out) == []


# ---- 4. Ctrl-C and SIGTERM: finish the step, save, say how to resume, exit 130 ---------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_current_step_and_the_run_resumes_exactly(tmp_path, monkeypatch, capsys, signum):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    args = ("--steps", "6", "--checkpoint-every", "4")
    assert run_train(straight, *args) == 0
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    wrap_steps(monkeypatch, lambda n, logs: signal.raise_signal(signum) if n == 3 else None)
    assert run_train(stopped, *args) == 130
    line = one_line_error(capsys.readouterr().err)
    assert f"{signal.Signals(signum).name} at step 3 of 6" in line and "--resume" in line
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored
    assert read_checkpoint(stopped / "checkpoint.pt")["step"] == 3  # the step since the last checkpoint is kept
    monkeypatch.undo()
    command = shlex.split(line.split("continue it with: ", 1)[1])[3:]  # drop "python -m course_lib.train"
    assert train.main(command) == 0
    assert same_weights(straight, stopped)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    def twice(n, logs):
        if n == 3:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    wrap_steps(monkeypatch, twice)
    assert run_train(tmp_path / "run", "--steps", "6", "--checkpoint-every", "2") == 130
    assert "is intact" in one_line_error(capsys.readouterr().err)
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")] == []


def test_ctrl_c_on_a_real_process_prints_one_line_and_exits_130(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "course_lib.train", "dcgan", "--out", str(out), *TINY, "--steps", "100000",
               "--checkpoint-every", "1"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert "--resume" in one_line_error(stderr) and read_checkpoint(out / "checkpoint.pt")["step"] >= 1


# ---- 5. --resume needs a run to resume --------------------------------------------------------------

def test_resume_without_a_run_is_refused(tmp_path, capsys):
    assert run_train(tmp_path / "typo", "--steps", "2", "--resume") == 2
    assert "no run to resume" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    assert run_train(tmp_path / "empty", "--steps", "2", "--resume") == 2
    assert "holds no checkpoint.pt" in one_line_error(capsys.readouterr().err)


# ---- 6. Everything that can be checked is checked before the first step ----------------------------

@pytest.mark.parametrize("extra, message", [
    (["--dataset", "photo_patches", "--eval-samples", "100"], "--eval-samples: the course metrics score one-channel"),
    (["--eval-samples", "-1"], "--eval-samples must be an int >= 0"),
    (["--eval-samples", "10"], "--eval-samples must be 0 (no evaluation) or at least 100"),
    (["--lr-g", "-1"], "--lr-g must be a positive number, got -1.0"),
    (["--lr-d", "nan"], "--lr-d must be a positive number"),
    (["--ema-decay", "1"], "--ema-decay must be in [0, 1)"),
    (["--z-dim", "0"], "--z-dim must be an int >= 1"),
])
def test_bad_settings_are_refused_before_the_first_step(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.setattr(session, "fit", lambda *a, **k: pytest.fail("training started"))
    assert train.main(["dcgan", "--out", str(tmp_path / "run"), "--base-channels", "8", "--steps", "2", *extra]) == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


# ---- 7. Failures are one line naming the path or the flag, never a traceback -----------------------

def test_a_read_only_out_is_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "locked" / "run"
    if os.geteuid() == 0:  # root writes anywhere: raise what the system raises for everyone else
        def refuse(path, write):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

        monkeypatch.setattr(session, "atomic_write", refuse)
    else:
        out.parent.mkdir()
        out.parent.chmod(0o555)
    assert run_train(out, "--steps", "1") == 1
    line = one_line_error(capsys.readouterr().err)
    assert "permission denied" in line and str(out.parent) in line


def test_a_full_disk_is_named_and_the_last_checkpoint_kept(tmp_path, monkeypatch, capsys):
    real = checkpoint.atomic_write
    writes = []

    def disk_fills_up(path, write):
        if Path(path).name == "checkpoint.pt":
            writes.append(path)
            if len(writes) == 2:  # the second checkpoint hits a full disk half-way
                def half(tmp):
                    tmp.write_bytes(b"partial")
                    raise OSError(errno.ENOSPC, "No space left on device")

                return real(path, half)
        return real(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", disk_fills_up)
    out = tmp_path / "run"
    assert run_train(out, "--steps", "6", "--checkpoint-every", "2") == 1
    line = one_line_error(capsys.readouterr().err)
    assert "no space left on device (disk full)" in line and "--resume" in line
    assert read_checkpoint(out / "checkpoint.pt")["step"] == 2
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_write_that_fails_on_a_full_disk_without_an_errno_is_named_too(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: SimpleNamespace(total=10**9, used=10**9, free=0))

    def like_torch_save(tmp):  # torch.save reports ENOSPC as "unexpected pos"
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    with pytest.raises(DiskFullError, match="disk full"):
        atomic_write(tmp_path / "checkpoint.pt", like_torch_save)


def test_an_online_dataset_without_its_files_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_LIB_DATA", str(tmp_path / "data"))
    assert run_train(tmp_path / "run", "--steps", "1", "--dataset", "mnist") == 1
    line = one_line_error(capsys.readouterr().err)
    assert "mnist is not available" in line and "mnist5k" in line


def test_sample_into_a_folder_is_one_line(tmp_path, capsys):
    run = tiny_generator_dir(tmp_path / "run")
    assert sample.main([str(run), "--n", "5", "--out", str(tmp_path)]) == 2
    assert "is a folder" in one_line_error(capsys.readouterr().err)


def test_a_broken_solution_notebook_is_one_line(tmp_path, capsys):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "01_empty.ipynb").write_text("")
    args = ["build", "--solutions", str(tmp_path / "solutions"), "--exercises", str(tmp_path / "exercises")]
    assert exercises.main(args) == 2
    assert "01_empty.ipynb is not a valid notebook" in one_line_error(capsys.readouterr().err)


def test_divergence_is_one_line_whose_advice_can_be_followed(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    wrap_steps(monkeypatch, lambda n, logs: {**logs, "g_loss": float("nan")} if n == 5 else None)
    assert run_train(out, "--steps", "8", "--checkpoint-every", "2") == 1
    line = one_line_error(capsys.readouterr().err)
    assert "diverged at step 5" in line and "(step 4), is kept" in line
    monkeypatch.undo()
    command = shlex.split(line.split("e.g.: ", 1)[1])[3:]
    assert "--lr-g" in command and "--resume" in command
    assert train.main(command) == 0  # a new learning rate is accepted on --resume ...
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["lr_changes"] == [{"step": 4, "lr_g": 2.5e-4, "lr_d": 2.5e-4}]  # ... and recorded
    stored = read_checkpoint(out / "checkpoint.pt")
    assert stored["config"]["lr_changes"] == metrics["lr_changes"] and stored["config"]["lr_g"] == 2.5e-4
    assert [g["lr"] for g in stored["optimizers"]["G"]["param_groups"]] == [2.5e-4]
    assert run_train(out, "--steps", "9", "--resume", "--batch-size", "8") == 2  # other settings still may not change


def test_divergence_before_the_first_checkpoint_says_so(tmp_path, monkeypatch, capsys):
    wrap_steps(monkeypatch, lambda n, logs: {**logs, "d_loss": float("inf")} if n == 2 else None)
    assert run_train(tmp_path / "run", "--steps", "8", "--checkpoint-every", "4") == 1
    line = one_line_error(capsys.readouterr().err)
    assert "no checkpoint was written yet" in line and "--force" in line and "last good" not in line


# ---- 8. evaluate refuses what it cannot score ----------------------------------------------------

def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def digits_npz(path: Path, n: int, **arrays) -> Path:
    from course_lib.data import mnist5k

    x = mnist5k("test").x[torch.arange(n) * 1000 // n]
    np.savez(path, to_uint8(x).permute(0, 2, 3, 1).numpy(), **arrays)
    return path


@pytest.mark.parametrize("bad, message", [
    (lambda p: digits_npz(p, 120, labels=np.full(120, 12)), "class indices 0..9"),
    (lambda p: digits_npz(p, 120, labels=-np.ones(120, dtype=np.int64)), "class indices 0..9"),
    (lambda p: digits_npz(p, 10), "at least 100"),
    (lambda p: p.write_bytes(digits_npz(p, 120).read_bytes()[:5000]), "not a readable .npz"),
    (lambda p: p.write_text("0.5, 0.25\n"), "not a readable .npz"),
    (lambda p: p.write_bytes(b""), "not a readable .npz"),
    (lambda p: p.write_bytes(npy_bytes(np.zeros((120, 32, 32, 1), np.uint8))), "single .npy array"),
])
def test_evaluate_refuses_what_it_cannot_score_in_one_line(tmp_path, capsys, bad, message):
    path = tmp_path / "samples.npz"
    bad(path)
    assert evaluate.main([str(path), "--json"]) == 2
    assert message in one_line_error(capsys.readouterr().err)


def test_evaluate_warns_below_the_reference_size_and_checks_a_given_labels_key(tmp_path, capsys):
    path = digits_npz(tmp_path / "samples.npz", 150, labels=np.arange(150) % 10)
    assert evaluate.main([str(path), "--labels-key", "lables"]) == 2
    assert "no 'lables' array" in one_line_error(capsys.readouterr().err)
    assert evaluate.main([str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning: 150 samples, fewer than the 1,000 reference digits" in captured.err
    assert "class_accuracy" in json.loads(captured.out)  # stdout holds the result alone


# ---- 9. sample writes in chunks --------------------------------------------------------------------

def test_sample_writes_in_chunks_the_same_file(tmp_path, monkeypatch):
    model, _ = sample.load_generator(tiny_generator_dir(tmp_path / "run"))
    batches = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda z, y=None, **k: batches.append(len(z)) or forward(z, y, **k))
    sample.write_samples(model, 23, tmp_path / "chunked.npz", seed=3, chunk=5)
    assert max(batches) == 5 and sum(batches) == 23
    images, _ = train.generate(model, 23, seed=3)
    with np.load(tmp_path / "chunked.npz") as data:
        np.testing.assert_array_equal(data["arr_0"], to_uint8(images).permute(0, 2, 3, 1).numpy())


def test_sample_checks_the_free_space_first(tmp_path, monkeypatch, capsys):
    run = tiny_generator_dir(tmp_path / "run")
    monkeypatch.setattr(sample.shutil, "disk_usage", lambda p: SimpleNamespace(total=10**9, used=0, free=10**6))
    assert sample.main([str(run), "--n", "100000", "--out", str(tmp_path / "s.npz")]) == 1
    assert "needs about 102 MB" in one_line_error(capsys.readouterr().err)


# ---- 10. Results on stdout, progress and messages on stderr ----------------------------------------

def test_results_go_to_stdout_and_progress_to_stderr(tmp_path, capsys):
    assert run_train(tmp_path / "run", "--steps", "2") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["steps"] == 2  # nothing but the JSON result
    assert "training" in captured.err  # the progress bar
    assert sample.main([str(tmp_path / "run"), "--n", "100", "--out", str(tmp_path / "s.npz")]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "wrote 100 samples" in captured.err


# ---- Done when: none of the commands prints a traceback --------------------------------------------

@pytest.mark.parametrize("command", [
    "course_lib.sample {run} --n 5 --out {tmp}",
    "course_lib.evaluate {tmp}/text.npz --json",
    "course_lib.exercises build --solutions {tmp}/solutions --exercises {tmp}/exercises",
    "course_lib.train dcgan --steps 1 --out {run} --resume",
])
def test_no_command_prints_a_traceback(tmp_path, command):
    run = tiny_generator_dir(tmp_path / "run")
    (tmp_path / "text.npz").write_text("not an archive")
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "01.ipynb").write_text("")
    words = shlex.split(command.format(run=run, tmp=tmp_path))
    done = subprocess.run([sys.executable, "-m", *words], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert one_line_error(done.stderr)
