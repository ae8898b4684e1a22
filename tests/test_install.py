"""`pip install .` gives a working course_lib without the repository: package data, subpackages, CLIs.

A wheel is built from a copy of the tree (so the checkout gets no build/ or egg-info) and installed
into a fresh virtual environment. The dependencies (torch & co.) are not downloaded again: a ``.pth``
file puts the course environment's site-packages on the new environment's path. Such a path is only
appended to ``sys.path``; the ``.pth`` files inside it are not run, so the course environment's
editable install (a finder that maps ``course_lib`` to the repository) does not leak in, and the test
checks that ``course_lib`` is imported from the new environment. Every command runs from a temporary
folder outside the repository, without ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_lib"
COMMAND_TIMEOUT_S = 120


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, (f"`{' '.join(map(str, command))}` failed with status {done.returncode}\n"
                                  f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")
    return done


def package_files() -> set[str]:
    """What the wheel must hold: every module and asset of course_lib, as ``course_lib/...`` paths."""
    ignored = {"__pycache__"}
    return {path.relative_to(ROOT).as_posix() for path in PACKAGE.rglob("*")
            if path.is_file() and not ignored & set(path.parts) and path.suffix not in (".pyc", ".pyo")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built, without network or build isolation, from a copy of the files a build reads."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "course_lib", ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "-w", str(tmp / "dist"), str(source)], cwd=tmp)
    wheels = list((tmp / "dist").glob("course_lib-*.whl"))
    assert len(wheels) == 1, f"expected one course_lib wheel, found {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def environment(wheel, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed and the course environment's dependencies visible."""
    tmp = tmp_path_factory.mktemp("installed")
    env_dir = tmp / "env"
    run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=tmp)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=tmp).stdout.strip())
    ours = sysconfig.get_paths()
    dependencies = dict.fromkeys([ours["purelib"], ours["platlib"]])  # the course environment's site-packages
    (purelib / "course_dependencies.pth").write_text("".join(f"{path}\n" for path in dependencies))
    variables = {name: value for name, value in os.environ.items()
                 if name not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "COURSE_CHECKPOINTS")}
    variables.update(PYTHONNOUSERSITE="1", PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    work = tmp / "work"   # every command runs here, outside the repository
    work.mkdir()
    # pip comes from the course environment too; --ignore-installed: never touch the editable course-lib there
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
         "--disable-pip-version-check", "--quiet", str(wheel)], cwd=work, env=variables)
    return {"python": str(python), "purelib": purelib, "work": work, "env": variables}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_holds_every_module_and_asset(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = sorted(package_files() - names)
    assert not missing, (f"the wheel misses {missing}: add them to [tool.setuptools.packages.find] or "
                         "[tool.setuptools.package-data] in pyproject.toml")
    assert "course_lib/assets/digit_classifier.safetensors" in names and "course_lib/checks/lesson09/__init__.py" in names


CHECK = """
import json, os, sys
from pathlib import Path
import course_lib
from course_lib.checkpoint import CheckpointError
from course_lib.classifier import load_classifier
from course_lib.evaluate import read_reference
from course_lib.sample import load_generator, shipped_checkpoint

load_classifier("cpu")                       # course_lib/assets/digit_classifier.safetensors, checksum verified
tensors, _ = read_reference()                # course_lib/assets/reference_test.safetensors
report = {"course_lib": course_lib.__file__, "sys_path": sys.path,
          "modules": sorted(m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)),
          "reference": list(tensors["features"].shape)}
try:
    shipped_checkpoint("dcgan")
    report["default"] = "found"
except CheckpointError as err:
    report["default"] = str(err)
report["by_argument"] = str(shipped_checkpoint("dcgan", root=sys.argv[1]))
os.environ["COURSE_CHECKPOINTS"] = sys.argv[1]
report["by_variable"] = str(shipped_checkpoint("dcgan"))
model, config = load_generator(report["by_variable"])
report["model"] = config["model"]
print(json.dumps(report))
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_installed_library_loads_its_assets_and_finds_checkpoints_when_told_where(environment):
    checkpoints = ROOT / "checkpoints"
    done = run([environment["python"], "-c", CHECK, str(checkpoints)], cwd=environment["work"], env=environment["env"])
    report = json.loads(done.stdout.strip().splitlines()[-1])

    installed = Path(report["course_lib"]).resolve()
    assert installed.is_relative_to(environment["purelib"].resolve()), \
        f"course_lib was imported from {installed}, not from the new environment's {environment['purelib']}"
    assert str(ROOT) not in report["sys_path"] and "" not in report["sys_path"][1:]
    leaked = [path for path in report["modules"] if Path(path).resolve().is_relative_to(PACKAGE)]
    assert not leaked, f"modules imported from the repository instead of the wheel: {leaked[:5]}"
    assert report["reference"][0] > 0

    # without the repository next to the package, the error says where it looked and what to do
    message = report["default"]
    assert message != "found", "an installed course_lib found checkpoints without being told where they are"
    assert "COURSE_CHECKPOINTS" in message and "root=" in message and "generator.safetensors" in message, message
    assert report["by_argument"] == report["by_variable"] == str(checkpoints / "dcgan")
    assert report["model"] == "dcgan"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_command_line_tools_run_from_the_installed_package(environment, tmp_path):
    python, work, env = environment["python"], environment["work"], environment["env"]
    for module in ("course_lib.train", "course_lib.sample", "course_lib.grade"):
        done = run([python, "-m", module, "--help"], cwd=work, env=env)
        assert f"python -m {module}" in done.stdout, done.stdout[:500]

    # evaluate a small samples file: 100 real test digits, with their labels
    from course_lib.data import mnist5k

    test = mnist5k("test")
    pixels = ((test.x[:100] + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()  # (100, 32, 32, 1)
    samples = tmp_path / "samples.npz"
    np.savez(samples, pixels, labels=test.labels[:100].numpy())
    done = run([python, "-m", "course_lib.evaluate", str(samples), "--json"], cwd=work, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["class_accuracy"] > 0.9, result   # real digits, the shipped classifier
    assert np.isfinite(result["fd"]), result


def test_shipped_checkpoint_looks_in_root_then_course_checkpoints_then_the_repository(monkeypatch, tmp_path):
    from course_lib.checkpoint import CheckpointError
    from course_lib.sample import shipped_checkpoint

    mine = tmp_path / "mine"
    (mine / "dcgan").mkdir(parents=True)
    (mine / "dcgan" / "generator.safetensors").write_bytes(b"")
    monkeypatch.delenv("COURSE_CHECKPOINTS", raising=False)
    assert shipped_checkpoint("dcgan") == ROOT / "checkpoints" / "dcgan"            # a clone finds its own
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(mine))
    assert shipped_checkpoint("dcgan") == mine / "dcgan"                             # the variable wins
    assert shipped_checkpoint("dcgan", root=ROOT / "checkpoints") == ROOT / "checkpoints" / "dcgan"  # the argument wins

    with pytest.raises(CheckpointError, match=r"'vae'.*mine/vae/generator.safetensors.*COURSE_CHECKPOINTS.*\['dcgan'\]"):
        shipped_checkpoint("vae")
    with pytest.raises(CheckpointError, match=r"nowhere.*from the root argument.*not a folder.*root=.*COURSE_CHECKPOINTS="):
        shipped_checkpoint("dcgan", root=tmp_path / "nowhere")
