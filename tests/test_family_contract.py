"""The contract every model family keeps, tested for every model name of ``course_lib.train.FAMILIES``.

In the spirit of diffusers' shared model tests: one parametrised test per promise (the family's package
shape, shapes of what a run draws, overfitting one batch, two seeded runs identical, checkpoint round
trips, resume equal to a straight run, the command line), run for every model. A family added to
``FAMILIES`` is tested here as soon as it has a line in ``TINY``. Tiny networks, a few steps, no evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from course_lib import sample, train
from course_lib.checkpoint import read_checkpoint, read_safetensors, write_safetensors
from course_lib.data import ShuffledBatches
from course_lib.run import Run, RunConfig, generate, native_bf16

TINY: dict[str, dict] = {  # the smallest settings of each model: CPU seconds per run
    "dcgan": {"base_channels": 8, "batch_size": 8, "augment_shift": 1},
    "cgan": {"base_channels": 8, "batch_size": 8, "loss": "hinge", "spectral_norm": True},
    "wgan_gp": {"base_channels": 8, "batch_size": 8, "n_critic": 2},
    "vae": {"base_channels": 8, "batch_size": 8, "eval_test_digits": 0},
    "cvae": {"base_channels": 8, "batch_size": 8, "eval_test_digits": 0, "likelihood": "gaussian"},
    "pix2pix": {"base_channels": 8, "batch_size": 4, "task": "inpaint"},
    "cyclegan": {"base_channels": 8, "batch_size": 4, "n_blocks": 1, "pool_size": 4},  # pools full after one step
    "stylegan": {"base_channels": 4, "max_channels": 8, "w_dim": 8, "z_dim": 8, "batch_size": 4, "r1_every": 2},
    "encoder": {"base_channels": 8, "batch_size": 4, "distance": "pixel"},  # into the shipped StyleGAN
    "adain": {"base_channels": 8, "batch_size": 4, "patches": 16, "encoder_layer": "relu2_1"},
    "watermark": {"base_channels": 16, "batch_size": 16, "n_bits": 4, "psnr": 20.0},  # a strong mark: learnt in 40 steps
}
FITS = {  # the logged loss that falls when a run sees one batch over and over
    "dcgan": "d_loss", "cgan": "d_loss", "wgan_gp": "d_loss", "stylegan": "d_loss",  # D memorises the real batch
    "vae": "loss", "cvae": "loss",                                                   # -ELBO of the batch
    "pix2pix": "g_l1", "cyclegan": "cycle", "encoder": "real_rec",                   # the reconstruction terms
    "adain": "loss",                                                                 # Huang & Belongie's decoder loss
    "watermark": "loss",                                                             # the bits' BCE
}
MODELS = list(train.FAMILIES)


def tiny(model: str, **overrides) -> RunConfig:
    return train.default_config(model, **{"steps": 4, "eval_samples": 0, "checkpoint_every": 2, **TINY[model],
                                          **overrides})


def flags(model: str) -> list[str]:
    words = []
    for name, value in TINY[model].items():
        flag = "--" + name.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return words


def state_of(run: Run) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value for name, model in run.state.models.items()
            for key, value in model.state_dict().items()}


def steps(run: Run, n: int) -> list[dict[str, float]]:
    """n steps of a run, counted as ``fit`` counts them (lazy R1 and the EMA warm-up read the count)."""
    logs = []
    for _ in range(n):
        logs.append(run.step_fn())
        run.state.step += 1
    return logs


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@functools.lru_cache(maxsize=None)
def _unpaired_digits_once(split: str = "train", seed: int = 0):
    from course_lib.data.paired import unpaired_digits

    return unpaired_digits(split, seed)


@pytest.fixture(autouse=True)
def digits_once(monkeypatch):
    """A CycleGAN run renders the 4,000 printed training digits on every build (seconds): once for this module."""
    import course_lib.cyclegan.training

    monkeypatch.setattr(course_lib.cyclegan.training, "unpaired_digits", _unpaired_digits_once)


def test_every_model_has_a_family_and_tiny_settings():
    assert set(TINY) == set(train.FAMILIES) == set(FITS), "a new model needs its TINY and FITS lines"
    for model, family in train.FAMILIES.items():
        for name in ("default_config", "build_run", "build_sampler", "sample_arrays"):
            assert callable(getattr(family, name)), f"{family.__name__} lacks {name}"
        cfg = family.default_config(model)
        assert isinstance(cfg, RunConfig) and dataclasses.is_dataclass(cfg) and cfg.model == model
        assert model in cfg.MODELS and cfg.MODELS[model], "MODELS names each model with a line for --help"
        comments = train.settings_help(type(cfg))
        missing = [f.name for f in dataclasses.fields(cfg) if f.name not in comments]
        assert not missing, f"{type(cfg).__name__}: every setting has a comment, its --help ({missing})"
        for name in cfg.LEARNING_RATES + tuple(cfg.ONLY_FOR) + tuple(cfg.CHOICES):
            assert name in comments, name


@pytest.mark.parametrize("model", MODELS)
def test_a_step_logs_finite_floats_and_the_samples_have_image_shapes(model):
    run = train.build_run(tiny(model))
    logs = steps(run, 2)
    assert logs[0].keys() == logs[1].keys() and all(isinstance(v, float) and math.isfinite(v) for v in logs[1].values())
    with torch.no_grad():
        grid = run.sample_grid()
    assert grid.dim() == 4 and grid.shape[2:] == (32, 32) and len(grid) % run.grid_columns == 0
    assert grid.abs().max() <= 1.0
    arrays = list(train.family_of(model).sample_arrays(run.sampler.eval(), dataclasses.asdict(run.cfg), 5))
    images = torch.cat([chunk["arr_0"] for chunk in arrays])
    assert images.shape == (5, grid.shape[1], 32, 32) and images.abs().max() <= 1.0
    assert run.images_per_step >= run.cfg.batch_size


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has no native bf16 (AVX-512 BF16 or AMX)")
@pytest.mark.parametrize("model", MODELS)
def test_bf16_and_channels_last_on_the_cpu_run_the_networks_in_bf16_and_keep_fp32_weights(model):
    """--precision bf16 --channels-last: the same step functions, convolutions in bf16, weights and logs float32."""
    run = train.build_run(tiny(model, precision="bf16", channels_last=True))
    assert run.cfg.bf16("cpu")
    seen = []
    layers = [m for model_ in run.state.models.values() for m in model_.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda module, args, out: seen.append(getattr(out, "dtype", None))) for m in layers]
    logs = steps(run, 2)
    for hook in hooks:
        hook.remove()
    assert torch.bfloat16 in seen, "no layer ran in bf16"
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs[1].values())
    assert all(p.dtype == torch.float32 for model_ in run.state.models.values() for p in model_.parameters())
    assert run.state.config["precision"] == "bf16"
    auto = tiny(model)  # --precision auto, channels_last None: the fast path exactly where it was measured worth it
    measured = "cpu" in type(auto).AUTO_BF16.get(model, ())
    assert auto.bf16("cpu") == auto.use_channels_last("cpu") == measured
    assert tiny(model, channels_last=False).use_channels_last("cpu") is False
    assert tiny(model, precision="fp32").use_channels_last("cpu") is False
    assert tiny(model, precision="fp32", channels_last=True).use_channels_last("cpu") is True


@pytest.mark.parametrize("model", MODELS)
def test_a_run_overfits_one_batch(model, monkeypatch):
    """With the batch sampler fixed to its first batch, the family's training loss falls (D memorises the real
    batch; a VAE's -ELBO, pix2pix's L1 and CycleGAN's cycle error shrink)."""
    first: dict[int, object] = {}
    real_next = ShuffledBatches.__next__

    def same_batch(batches: ShuffledBatches) -> object:
        if id(batches) not in first:
            first[id(batches)] = real_next(batches)
        return first[id(batches)]

    monkeypatch.setattr(ShuffledBatches, "__next__", same_batch)
    lr = ({"lr_vae": 3e-3} if model in ("vae", "cvae") else {"lr": 3e-3} if model in ("encoder", "adain", "watermark")
          else {"lr_g": 2e-3, "lr_d": 2e-3})
    run = train.build_run(tiny(model, **lr))
    losses = [logs[FITS[model]] for logs in steps(run, 40)]
    start, end = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert end < start - 0.1 * abs(start), (model, losses[::5])


@pytest.mark.parametrize("model", MODELS)
def test_two_seeded_runs_are_identical_and_another_seed_is_not(model):
    def weights(seed: int) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
        run = train.build_run(tiny(model, seed=seed))
        logs = steps(run, 3)
        return state_of(run), logs

    (a, logs_a), (b, logs_b), (c, _) = weights(1), weights(1), weights(2)
    assert logs_a == logs_b and same(a, b)
    assert not same(a, c)


@pytest.mark.parametrize("model", MODELS)
def test_checkpoints_round_trip(model, tmp_path):
    """The training checkpoint restores every model and optimiser; generator.safetensors rebuilds the sampler."""
    run = train.build_run(tiny(model))
    steps(run, 2)
    run.state.save(tmp_path / "checkpoint.pt")
    other = train.build_run(tiny(model, seed=5))
    other.state.load(tmp_path / "checkpoint.pt")
    assert other.state.step == 2 and same(state_of(other), state_of(run))
    for name, opt in run.state.optimizers.items():
        mine, theirs = opt.state_dict(), other.state.optimizers[name].state_dict()
        assert mine["param_groups"] == theirs["param_groups"] and mine["state"].keys() == theirs["state"].keys()
        for index, moments in mine["state"].items():
            assert same(moments, theirs["state"][index])

    train.save_generator(tmp_path / "generator.safetensors", run.sampler, run.sampler.cfg, run.cfg)
    loaded, meta = sample.load_generator(tmp_path)
    assert type(loaded) is type(run.sampler) and not loaded.training
    assert same(loaded.state_dict(), run.sampler.state_dict())
    assert meta["model"] == model and meta["train"] == dataclasses.asdict(run.cfg)
    family = train.family_of(model)
    run.sampler.eval()
    torch.manual_seed(0)  # noise inputs (StyleGAN) draw from the global stream
    a = next(iter(family.sample_arrays(run.sampler, meta["train"], 4, seed=3)))
    torch.manual_seed(0)
    b = next(iter(family.sample_arrays(loaded, meta["train"], 4, seed=3)))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("model", MODELS)
def test_a_resumed_run_equals_a_straight_run(model, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train.train(tiny(model), straight, device="cpu", show_progress=False)
    train.train(tiny(model, steps=2), resumed, device="cpu", show_progress=False)  # "interrupted" at step 2
    result = train.train(tiny(model), resumed, device="cpu", resume=True, show_progress=False)
    assert result["steps"] == 4
    assert same(load_file(str(straight / "generator.safetensors")), load_file(str(resumed / "generator.safetensors")))
    first, second = read_checkpoint(straight / "checkpoint.pt"), read_checkpoint(resumed / "checkpoint.pt")
    for name in first["models"]:  # every model of the run, CycleGAN's history pools included
        assert same(first["models"][name], second["models"][name]), name


def old_flat_config(cfg: RunConfig) -> dict:
    """The config a run stored before the configs were split by family: every family's settings in one dict."""
    flat = {}
    for model in train.FAMILIES:
        flat.update(dataclasses.asdict(train.default_config(model)))
    return {**flat, **dataclasses.asdict(cfg)}


@pytest.mark.parametrize("model", MODELS)
def test_a_run_written_before_the_configs_were_split_resumes_and_loads(model, tmp_path):
    """Old runs stored one flat config of every family's settings: --resume reads their family's, and the
    sampler of an old generator.safetensors loads with its metadata read as the family's settings."""
    straight, old = tmp_path / "straight", tmp_path / "old"
    train.train(tiny(model), straight, device="cpu", show_progress=False)
    train.train(tiny(model, steps=2), old, device="cpu", show_progress=False)
    flat = old_flat_config(tiny(model, steps=2))
    stored = torch.load(old / "checkpoint.pt", weights_only=True)
    stored["config"] = flat
    del stored["checksums"]  # the checksums cover the config; old checkpoints may predate them too
    torch.save(stored, old / "checkpoint.pt")
    tensors, metadata = read_safetensors(old / "generator.safetensors")
    meta = json.loads(metadata["config"])
    meta["train"] = flat
    if model == "stylegan":  # the architecture field StyleGANConfig had for the sampling code's duck typing
        meta["architecture"]["num_classes"] = 0
    write_safetensors(old / "generator.safetensors", tensors, {**metadata, "config": json.dumps(meta)})

    loaded, meta = sample.load_generator(old)
    assert meta["train"].keys() <= {f.name for f in dataclasses.fields(tiny(model))}
    train.train(tiny(model), old, device="cpu", resume=True, show_progress=False)
    assert same(load_file(str(straight / "generator.safetensors")), load_file(str(old / "generator.safetensors")))


@pytest.mark.parametrize("model", MODELS)
def test_the_command_line_trains_samples_and_knows_only_the_models_options(model, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main([model, "--out", str(out), "--steps", "2", "--eval-samples", "0", *flags(model)]) == 0
    for name in ("checkpoint.pt", "generator.safetensors", "samples.png", "metrics.json", "config.json"):
        assert (out / name).is_file(), name
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["model"] == model and metrics["steps"] == 2
    fields = {f.name for f in dataclasses.fields(train.default_config(model))}
    assert set(json.loads((out / "config.json").read_text())) == fields  # the family's settings, nothing else
    assert set(read_checkpoint(out / "checkpoint.pt")["config"]) == fields
    assert sample.main([str(out), "--n", "6", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as data:
        assert data["arr_0"].shape[:3] == (6, 32, 32) and data["arr_0"].dtype == np.uint8

    with pytest.raises(SystemExit):
        train.main([model, "--help"])
    shown = capsys.readouterr().out
    options = train.options_of(model)
    foreign = sorted(set().union(*(train.options_of(m) for m in train.FAMILIES)) - options)
    assert all(flag in shown for flag in options if not flag.startswith("--no-"))
    assert not [flag for flag in foreign if f"{flag} " in shown or f"{flag}," in shown]
    if foreign:  # an option of another model is an error that names it
        with pytest.raises(SystemExit) as refused:
            train.main([model, "--out", str(tmp_path / "x"), foreign[0], "1"])
        assert refused.value.code == 2 and f"{foreign[0]} is not an option of {model}" in capsys.readouterr().err
        assert not (tmp_path / "x").exists()


def test_generate_draws_the_same_images_for_any_batch_size():
    run = train.build_run(tiny("cvae"))
    a, labels_a = generate(run.sampler, 23, seed=3, batch_size=5)
    b, labels_b = generate(run.sampler, 23, seed=3)
    assert torch.allclose(a, b, atol=1e-6) and torch.equal(labels_a, labels_b)  # the same z; only the rounding of
    assert labels_a.tolist()[:10] == list(range(10))                             # batches of another size differs


# ---- adding a family: its package and one line in FAMILIES ------------------------------------

@dataclasses.dataclass
class ToyArchitecture:
    z_dim: int = 8  # size of z


class ToyGenerator(torch.nn.Module):
    """z (B, z_dim) -> a 32x32 grey image through one linear layer: the smallest sampler there is."""

    def __init__(self, cfg: ToyArchitecture) -> None:
        super().__init__()
        self.cfg, self.z_dim, self.num_classes = cfg, cfg.z_dim, 0
        self.linear = torch.nn.Linear(cfg.z_dim, 32 * 32)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.linear(z)).view(-1, 1, 32, 32)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self(z, labels)


@dataclasses.dataclass
class ToyTrainConfig(RunConfig):
    """A run of the toy family: a linear G regressing real digits from noise."""

    model: str = "toy"                # toy
    z_dim: int = 8                    # size of z
    lr: float = 1e-2                  # Adam learning rate

    MODELS = {"toy": "a toy family, added by a test"}
    LEARNING_RATES = ("lr",)


def toy_family():
    """What a new family's package holds, here as a module built by the test."""
    import types

    from course_lib.data import load_dataset
    from course_lib.device import seed_everything
    from course_lib.run import adam, architecture_of, fixed_noise, generated_arrays, make_config, sample_metrics, sample_z
    from course_lib.training import TrainState

    def default_config(model="toy", **overrides):
        return make_config(ToyTrainConfig, {"model": model}, overrides)

    def build_run(cfg, device="cpu"):
        data = load_dataset(cfg.dataset, "train")
        generator = seed_everything(cfg.seed)
        G = ToyGenerator(ToyArchitecture(cfg.z_dim)).to(device)
        opt = adam(G, cfg.lr, (0.9, 0.999))
        batches = ShuffledBatches(data.x, batch_size=cfg.batch_size, generator=generator)

        def step():
            x = next(batches).to(device)
            loss = (G(sample_z(len(x), cfg.z_dim, generator, device)) - x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": loss.item()}

        state = TrainState(models={"G": G}, optimizers={"G": opt}, generator=generator, batches=batches,
                           config=dataclasses.asdict(cfg))
        fixed_z, _ = fixed_noise(cfg, cfg.z_dim, conditional=False, device=torch.device(device))
        return Run(cfg, state, step, G, grid=lambda: G(fixed_z), evaluate=lambda: sample_metrics(G, cfg.eval_samples,
                   cfg.seed), images_per_step=cfg.batch_size, fixed_z=fixed_z)

    def build_sampler(architecture, where="the weights file"):
        return ToyGenerator(architecture_of(ToyArchitecture, architecture, where))

    def sample_arrays(model, train, n, *, seed=0, chunk=500):
        return generated_arrays(model, n, seed, chunk)

    family = types.ModuleType("toy")
    family.__dict__.update(default_config=default_config, build_run=build_run, build_sampler=build_sampler,
                           sample_arrays=sample_arrays)
    return family


def test_a_new_family_needs_its_package_and_one_line_in_families(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(train.FAMILIES, "toy", toy_family())  # the one line
    out = tmp_path / "toy"
    assert train.main(["toy", "--out", str(out), "--steps", "2", "--eval-samples", "0", "--z-dim", "4"]) == 0
    capsys.readouterr()
    assert train.main(["toy", "--out", str(out), "--steps", "4", "--eval-samples", "0", "--z-dim", "4",
                       "--lr", "5e-3", "--resume"]) == 0  # its learning rate may change on --resume, as any family's
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["steps"] == 4 and metrics["lr_changes"] == [{"step": 2, "lr": 5e-3}]
    assert json.loads((out / "config.json").read_text())["z_dim"] == 4
    assert sample.main([str(out), "--n", "3", "--out", str(tmp_path / "toy.npz")]) == 0
    with np.load(tmp_path / "toy.npz") as data:
        assert data["arr_0"].shape == (3, 32, 32, 1)
    with pytest.raises(SystemExit):
        train.main(["--help"])
    assert "toy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        train.main(["toy", "--help"])
    shown = capsys.readouterr().out
    assert "--z-dim N" in shown and "size of z" in shown and "--lr X" in shown and "--lr-g" not in shown


def test_channels_last_takes_true_false_or_none():
    with pytest.raises(ValueError, match="channels_last must be True, False or None"):
        tiny("dcgan", channels_last="yes")
