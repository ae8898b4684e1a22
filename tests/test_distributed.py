"""Training on several processes (``course_lib.run.distributed``), on the CPU with gloo and 2 processes.

Each multi-process test starts 2 processes with ``torch.multiprocessing`` (spawn), 1 thread each,
that meet through a file in the test's temporary folder (no port), run with a time limit and
always destroy their process group. They check: one DDP step on 2 x (B/2) equals the step of one
process on B (WGAN-GP with its gradient penalty, StyleGAN with R1, a VAE); the ranks hold identical
networks after a run, G_ema and buffers included; a resumed 2-process run equals a straight one;
only rank 0 writes files; and ``torchrun`` runs the command line end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from course_lib import train
from course_lib.data import ShuffledBatches
from course_lib.gan.model import DCGANConfig, Discriminator as DCGANDiscriminator, Generator as DCGANGenerator
from course_lib.gan.training import wgan_gp_step
from course_lib.run import distributed, train_run
from course_lib.stylegan.model import Discriminator as StyleDiscriminator, Generator as StyleGenerator, StyleGANConfig
from course_lib.stylegan.training import stylegan_step
from course_lib.vae.model import VAE, VAEConfig
from course_lib.vae.training import vae_step

WORLD = 2           # processes in every multi-process test
B = 8               # the global batch of the step comparisons: 4 images per rank
TIMEOUT = 120       # seconds a group of processes may take before the test fails (they take ~10 s here)
TINY = {  # as tests/test_family_contract.py's TINY, 4 steps with a checkpoint at 2
    "dcgan": {"base_channels": 8, "batch_size": 8, "augment_shift": 1},
    "stylegan": {"base_channels": 4, "max_channels": 8, "w_dim": 8, "z_dim": 8, "batch_size": 8, "r1_every": 2},
}


# ----------------------------------------------------------------------------------------------
# Running a function on 2 processes
# ----------------------------------------------------------------------------------------------

def _in_group(rank: int, world_size: int, rendezvous: str, target: Callable[..., None], args: tuple) -> None:
    """One rank: 1 thread, a gloo group met through ``rendezvous`` (a file), ``target(rank, *args)``, then no group."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        target(rank, *args)
    finally:
        dist.destroy_process_group()


def run_ranks(target: Callable[..., None], folder: Path, *args: Any, timeout: float = TIMEOUT) -> None:
    """``target(rank, *args)`` on WORLD spawned processes; fails the test on an error or after ``timeout`` seconds."""
    rendezvous = folder / f"rendezvous-{time.monotonic_ns()}"  # a fresh file for every group
    context = mp.start_processes(_in_group, args=(WORLD, str(rendezvous), target, args), nprocs=WORLD,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                pytest.fail(f"{WORLD} processes running {target.__name__} did not finish within {timeout} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


# ----------------------------------------------------------------------------------------------
# Without processes: the shards, the environment
# ----------------------------------------------------------------------------------------------

def test_the_shards_of_an_epoch_are_disjoint_and_together_the_single_process_batches():
    x = torch.arange(20)  # 20 samples, global batch 8: 2 batches per epoch, 4 samples left out of each
    whole = ShuffledBatches(x, batch_size=8, generator=torch.Generator().manual_seed(3))
    ranks = [ShuffledBatches(x, batch_size=8, generator=torch.Generator().manual_seed(3), rank=r, world_size=2)
             for r in range(2)]
    for epoch in range(3):
        shards = []
        for _ in range(2):
            batch, parts = next(whole), [next(r) for r in ranks]
            assert all(len(p) == 4 for p in parts)
            assert torch.equal(torch.cat(parts).sort().values, batch.sort().values)  # the ranks split the same batch
            shards += parts
        seen = torch.cat(shards).tolist()
        assert len(set(seen)) == len(seen) == 16, f"epoch {epoch}: the shards overlap"
    assert ranks[0].state_dict()["epoch"] == ranks[1].state_dict()["epoch"] == 2  # one state for every rank
    assert torch.equal(ranks[0].state_dict()["permutation"], ranks[1].state_dict()["permutation"])


def test_shards_refuse_batches_that_do_not_split_evenly():
    x = torch.arange(20)
    with pytest.raises(ValueError, match="batch_size .6. must divide by world_size .4."):
        ShuffledBatches(x, batch_size=6, rank=0, world_size=4)
    with pytest.raises(ValueError, match="drop_last"):
        ShuffledBatches(x, batch_size=8, rank=1, world_size=2, drop_last=False)
    with pytest.raises(ValueError, match="rank must be in"):
        ShuffledBatches(x, batch_size=8, rank=2, world_size=2)


def test_the_world_comes_from_torchruns_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.environment() == distributed.World(0, 1, 0)
    assert distributed.world() == distributed.World() and distributed.is_main()  # no group: one process
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.environment() == distributed.World(rank=3, size=4, local_rank=1)
    assert not distributed.environment().is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4, WORLD_SIZE=4"):
        distributed.environment()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="RANK must be an int"):
        distributed.environment()


def test_a_single_process_is_left_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.process_group("cpu") as device:
        assert device == torch.device("cpu") and not dist.is_initialized()
    G = DCGANGenerator(DCGANConfig(z_dim=8, base_channels=4))
    assert distributed.wrap(G) is G
    generator = torch.Generator().manual_seed(0)
    assert distributed.batch_generator(generator, seed=0) is generator and distributed.shard() == {
        "rank": 0, "world_size": 1}
    assert distributed.agree({"loss": 1.5}, True) == ({"loss": 1.5}, [True])
    assert distributed.noise_seed(0, 0, 1) != distributed.noise_seed(0, 1, 0) != distributed.noise_seed(1, 0, 0)


@pytest.mark.gpu
def test_each_rank_computes_on_the_gpu_of_its_local_rank():
    assert distributed.device_of("cuda", distributed.World(rank=1, size=2, local_rank=0)) == torch.device("cuda", 0)
    assert distributed.device_of("cpu", distributed.World(rank=1, size=2, local_rank=0)) == torch.device("cpu")
    with pytest.raises(ValueError, match="LOCAL_RANK"):
        distributed.device_of("cuda:0", distributed.World(rank=1, size=2, local_rank=0))


# ----------------------------------------------------------------------------------------------
# One DDP step on 2 x (B/2) equals one step on B
# ----------------------------------------------------------------------------------------------

RANDOM = ("randn", "rand", "randint")  # the draws of the step functions (noise, mixing, eps, noise maps)


@contextmanager
def tape(draws: list[torch.Tensor], rank: int | None = None) -> Any:
    """Record the random draws of a single-process step on B (``rank`` None), or replay a rank's share of them.

    A draw of k*B rows (k = 2 for StyleGAN's two latents) is the single process's; rank r's draw of k*(B/2)
    rows gets rows ``r::WORLD`` of each of its k blocks, the samples of the batch that rank r holds.
    """
    originals = {name: getattr(torch, name) for name in RANDOM}

    def drawing(original: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def draw(*args: Any, **kwargs: Any) -> torch.Tensor:
            value = original(*args, **kwargs)
            if rank is None:
                draws.append(value.detach().clone())
                return value
            recorded = draws.pop(0)
            blocks = recorded.shape[0] // B
            share = torch.cat([block[rank::WORLD] for block in recorded.split(B)])
            assert blocks * B == recorded.shape[0] and share.shape == value.shape and share.dtype == value.dtype, \
                f"draw {tuple(value.shape)} does not match the recorded {tuple(recorded.shape)}"
            return share.to(value.device)
        return draw

    for name, original in originals.items():
        setattr(torch, name, drawing(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch, name, original)


def _case(name: str) -> tuple[dict[str, torch.nn.Module], torch.Tensor, Callable[..., dict[str, float]]]:
    """A seeded comparison case: its networks, the global batch (B, 1, 32, 32), and ``step(networks, x, opt)``.

    ``step`` takes the networks as the step function gets them (DDP wrappers on 2 processes) and
    SGD optimisers (linear in the gradient, so the updates compare to float tolerance).
    """
    torch.manual_seed(0)
    x = (torch.rand(B, 1, 32, 32) > 0.5).float() * 2 - 1  # (B, 1, 32, 32) in {-1, 1}
    if name == "wgan_gp":
        cfg = DCGANConfig(z_dim=8, base_channels=4, critic=True)
        G, D = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
        G.eval()  # G's batch norm on its running statistics: per-rank statistics differ from B's by design

        def step(nets: dict, x: torch.Tensor, opt: dict) -> dict[str, float]:
            return wgan_gp_step(nets["G"], nets["D"], opt["G"], opt["D"], [x, x], lambda_gp=10.0,
                                generator=torch.Generator().manual_seed(1))
        return {"G": G, "D": D}, x, step
    if name == "stylegan":  # B/2 = 4 images per rank: the minibatch-std groups are the same as on B
        cfg = StyleGANConfig(z_dim=8, w_dim=8, mapping_layers=2, base_channels=4, max_channels=8)
        G, D = StyleGenerator(cfg), StyleDiscriminator(cfg)

        def step(nets: dict, x: torch.Tensor, opt: dict) -> dict[str, float]:
            return stylegan_step(nets["G"], nets["D"], opt["G"], opt["D"], x, step=0, r1_gamma=10.0, r1_every=4,
                                 mixing_prob=0.5, generator=torch.Generator().manual_seed(1),
                                 mapping=nets.get("mapping"), synthesis=nets.get("synthesis"))
        return {"G": G, "D": D}, x, step
    vae = VAE(VAEConfig(latent_dim=4, base_channels=4))

    def step(nets: dict, x: torch.Tensor, opt: dict) -> dict[str, float]:
        return vae_step(nets["vae"], opt["vae"], x, generator=torch.Generator().manual_seed(1))
    return {"vae": vae}, x, step


CASES = ("wgan_gp", "stylegan", "vae")


def _sgd(nets: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
    return {name: torch.optim.SGD(net.parameters(), lr=0.05) for name, net in nets.items()}


def _params(nets: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": p.detach().clone() for name, net in nets.items() for key, p in net.named_parameters()}


def _ddp_steps(rank: int, folder: Path) -> None:
    for name in CASES:
        nets, x, step = _case(name)
        draws = torch.load(folder / f"{name}.draws.pt", weights_only=True)
        wrapped = {key: distributed.wrap(net) for key, net in nets.items()}
        if name == "stylegan":  # as build_run: the mapping and synthesis networks in DDP, the G step uses them
            wrapped = {"G": nets["G"], "D": wrapped["D"], "mapping": distributed.wrap(nets["G"].mapping),
                       "synthesis": distributed.wrap(nets["G"].synthesis)}
        with tape(draws, rank):
            step(wrapped, x[rank::WORLD], _sgd(nets))  # this rank's share of the batch
        assert not draws, f"{name}: {len(draws)} recorded draws were not used"
        torch.save(_params(nets), folder / f"{name}.rank{rank}.pt")


def test_one_ddp_step_on_two_halves_equals_one_step_on_the_whole_batch(tmp_path):
    before, after = {}, {}
    for name in CASES:
        nets, x, step = _case(name)
        before[name] = _params(nets)
        draws: list[torch.Tensor] = []
        with tape(draws):
            step(nets, x, _sgd(nets))
        torch.save(draws, tmp_path / f"{name}.draws.pt")
        after[name] = _params(nets)
    run_ranks(_ddp_steps, tmp_path, tmp_path)
    for name in CASES:
        ranks = [torch.load(tmp_path / f"{name}.rank{r}.pt", weights_only=True) for r in range(WORLD)]
        for key in before[name]:
            assert torch.equal(ranks[0][key], ranks[1][key]), f"{name}: {key} differs between the ranks"
            update, ddp_update = after[name][key] - before[name][key], ranks[0][key] - before[name][key]
            scale = update.abs().max().item()
            error = (ddp_update - update).abs().max().item()
            assert error <= 1e-4 * scale + 1e-9, f"{name}: {key}'s update differs by {error:.3g} (update {scale:.3g})"
        moved = max((after[name][k] - before[name][k]).abs().max().item() for k in before[name])
        assert moved > 1e-4, f"{name}: the step did not move the parameters"


# ----------------------------------------------------------------------------------------------
# Runs on 2 processes: identical ranks, exact resume, files from rank 0 only
# ----------------------------------------------------------------------------------------------

def _written_under(folder: Path, writes: list[str]) -> None:
    """Record in ``writes`` every file this process opens for writing, renames or removes under ``folder``."""
    root = str(folder)

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path, mode, flags = os.fsdecode(args[0]), args[1], args[2]
            writing = (any(c in mode for c in "wax+") if isinstance(mode, str)
                       else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
            if writing and path.startswith(root):
                writes.append(path)
        elif event in ("os.rename", "os.remove", "os.mkdir") and args and isinstance(args[0], (str, os.PathLike)):
            if os.fsdecode(args[0]).startswith(root):
                writes.append(f"{event} {os.fsdecode(args[0])}")

    sys.addaudithook(hook)


def _runs(rank: int, model: str, folder: Path) -> None:
    writes: list[str] = []
    _written_under(folder / "runs", writes)
    family = train.FAMILIES[model]
    built = []

    def build(device: torch.device):
        built.append(family.build_run(cfg, device))
        return built[-1]

    settings = {"steps": 4, "eval_samples": 0, "checkpoint_every": 2, **TINY[model]}
    cfg = family.default_config(model, **settings)
    metrics = train_run(build, cfg, folder / "runs" / "straight", device="cpu", show_progress=False)
    cfg = family.default_config(model, **{**settings, "steps": 2})
    train_run(build, cfg, folder / "runs" / "resumed", device="cpu", show_progress=False)
    cfg = family.default_config(model, **settings)
    train_run(build, cfg, folder / "runs" / "resumed", device="cpu", show_progress=False, resume=True)
    states = {f"{name}.{key}": value for name, module in built[0].state.models.items()
              for key, value in module.state_dict().items()}
    torch.save(states, folder / f"models.rank{rank}.pt")
    (folder / f"result.rank{rank}.json").write_text(json.dumps({"metrics": metrics, "writes": writes}))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dcgan", "stylegan"])
def test_two_processes_train_identical_networks_resume_exactly_and_only_rank_0_writes(model, tmp_path):
    run_ranks(_runs, tmp_path, model, tmp_path)
    ranks = [torch.load(tmp_path / f"models.rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert any(key.startswith("G_ema.") for key in ranks[0])
    for key in ranks[0]:  # parameters, G_ema and buffers (batch-norm statistics, w_avg): the same on both ranks
        assert torch.equal(ranks[0][key], ranks[1][key]), f"{key} differs between the ranks after 4 steps"

    straight = torch.load(tmp_path / "runs" / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "runs" / "resumed" / "checkpoint.pt", weights_only=True)
    assert straight["step"] == resumed["step"] == 4
    for name, state in straight["models"].items():
        for key, value in state.items():
            assert torch.equal(value, resumed["models"][name][key]), f"resumed {name}.{key} differs from a straight run"
    for key, value in ranks[0].items():  # the checkpoint is the state every rank holds
        name, rest = key.split(".", 1)
        assert torch.equal(value, straight["models"][name][rest])

    results = [json.loads((tmp_path / f"result.rank{r}.json").read_text()) for r in range(WORLD)]
    assert results[0]["metrics"] == results[1]["metrics"] and results[0]["metrics"]["processes"] == WORLD
    assert results[1]["writes"] == [], f"rank 1 wrote {results[1]['writes']}"
    written = " ".join(results[0]["writes"])
    for name in ("checkpoint.pt", "config.json", "metrics.json", "samples.png", "generator.safetensors"):
        assert name in written, f"rank 0 did not write {name}"


# ----------------------------------------------------------------------------------------------
# The command line under torchrun
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_torchrun_trains_from_the_command_line(tmp_path):
    out = tmp_path / "dcgan"
    flags = [w for k, v in TINY["dcgan"].items() for w in ("--" + k.replace("_", "-"), str(v))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
               "-m", "course_lib.train", "dcgan", "--out", str(out), "--steps", "4", "--checkpoint-every", "2",
               "--eval-samples", "0", "--device", "cpu", *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count('"steps": 4') == 1, "rank 0 alone prints the metrics"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["processes"] == WORLD and metrics["device"] == "cpu"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoint.pt", "config.json", "generator.safetensors", "metrics.json", "samples.png"])


OTHER_MODELS = [model for model in train.FAMILIES if model not in TINY]  # dcgan and stylegan: the test above


def _other_models(rank: int, folder: Path) -> None:
    from test_family_contract import TINY as FAMILY_TINY  # the smallest settings of every model

    for model in OTHER_MODELS:
        cfg = train.default_config(model, **{"steps": 2, "eval_samples": 0, "checkpoint_every": 2,
                                             **FAMILY_TINY[model]})
        built = []
        train_run(lambda device: built.append(train.FAMILIES[model].build_run(cfg, device)) or built[-1], cfg,
                  folder / model, device="cpu", show_progress=False)
        torch.save({f"{name}.{key}": value for name, module in built[0].state.models.items()
                    for key, value in module.state_dict().items()}, folder / f"{model}.rank{rank}.pt")


@pytest.mark.slow
def test_every_other_model_trains_on_two_processes_with_identical_ranks(tmp_path):
    run_ranks(_other_models, tmp_path, tmp_path, timeout=2 * TIMEOUT)
    for model in OTHER_MODELS:
        metrics = json.loads((tmp_path / model / "metrics.json").read_text())
        assert metrics["steps"] == 2 and metrics["processes"] == WORLD, model
        ranks = [torch.load(tmp_path / f"{model}.rank{r}.pt", weights_only=True) for r in range(WORLD)]
        for key in ranks[0]:
            assert torch.equal(ranks[0][key], ranks[1][key]), f"{model}: {key} differs between the ranks"
