"""The repository tracks sources, not environments: no links out of the checkout, no build artefacts.

A committed ``.venv`` link (to the author's machine) broke every fresh clone once; ``git add -A``
picks such things up silently. The test reads git's index (``git ls-files -s``), never the working
tree, so an ignored local ``.venv`` or ``__pycache__`` does not count; only what a clone would get.
"""

from __future__ import annotations

import posixpath
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYMLINK_MODE = "120000"
ENVIRONMENT_DIRS = {".venv", "venv", "__pycache__", ".ipynb_checkpoints", "build", "dist", ".eggs"}  # at any depth
ROOT_ONLY_DIRS = {"runs"}  # training output folders; a lesson may well have a sub-folder called runs


class Entry(NamedTuple):
    """One tracked path: its git mode, its path (``/``-separated) and, for a link, where it points."""

    mode: str
    path: str
    target: str | None = None


def link_problem(entry: Entry, tracked: set[str]) -> str | None:
    """Why a tracked symbolic link is wrong (points outside the repository, or at nothing), or None."""
    target = entry.target or ""
    if posixpath.isabs(target) or (len(target) > 1 and target[1] == ":"):
        return f"a symbolic link to the absolute path {target!r}"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), target))
    if resolved == ".." or resolved.startswith("../"):
        return f"a symbolic link to {target!r}, outside the repository"
    if resolved not in tracked and not any(path.startswith(resolved + "/") for path in tracked):
        return f"a symbolic link to {target!r}, which the repository does not contain (dangling)"
    return None


def artefact_problem(path: str) -> str | None:
    """Why a tracked path is an environment or build artefact, or None."""
    parts = path.split("/")
    folders, name = parts[:-1], parts[-1]
    for part in parts:  # the path itself may be the artefact (a link or file named .venv)
        if part in ENVIRONMENT_DIRS or part.startswith(".venv-"):
            return f"inside {part!r} (an environment or build output)"
        if part.endswith(".egg-info"):
            return f"inside {part!r} (setuptools build metadata)"
    if parts[0] in ROOT_ONLY_DIRS:
        return f"inside {parts[0] + '/'!r} (training runs)"
    if name.endswith((".pyc", ".pyo")):
        return "compiled Python"
    if name.endswith(".pt") and (not folders or folders[0] != "checkpoints"):
        return "a PyTorch checkpoint outside checkpoints/"
    return None


def offending_paths(entries: list[Entry]) -> list[str]:
    """Every tracked path that should not be, as ``"path: why"`` lines (empty when all is well)."""
    tracked = {entry.path for entry in entries}
    problems = []
    for entry in entries:
        why = artefact_problem(entry.path)
        if why is None and entry.mode == SYMLINK_MODE:
            why = link_problem(entry, tracked)
        if why:
            problems.append(f"{entry.path}: {why}")
    return problems


def failure_message(problems: list[str]) -> str:
    listing = "\n".join(f"  {line}" for line in problems)
    return (f"the repository tracks {len(problems)} path(s) a clone must not get:\n{listing}\n"
            "Stop tracking them (the files stay on disk) with `git rm -r --cached -- <path>`, make sure "
            ".gitignore covers them (without a trailing slash, so that links are ignored too), and commit.")


def git_index(root: Path) -> list[Entry]:
    """The index of the git checkout at ``root``: mode, path and, for links, the committed target."""
    listing = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=root, capture_output=True, check=True,
                             timeout=60).stdout.decode()
    rows = []
    for record in filter(None, listing.split("\0")):
        meta, path = record.split("\t", 1)
        mode, blob, _stage = meta.split()
        rows.append((mode, blob, path))
    links = [(blob, path) for mode, blob, path in rows if mode == SYMLINK_MODE]
    targets = {}
    if links:  # a link's blob holds its target
        out = subprocess.run(["git", "cat-file", "--batch"], cwd=root, capture_output=True, check=True, timeout=60,
                             input="".join(blob + "\n" for blob, _ in links).encode()).stdout
        for blob, _ in links:
            header, out = out.split(b"\n", 1)
            size = int(header.split()[2])
            targets[blob], out = out[:size].decode(errors="replace"), out[size + 1:]
    return [Entry(mode, path, targets.get(blob) if mode == SYMLINK_MODE else None) for mode, blob, path in rows]


def in_git_checkout(root: Path) -> bool:
    if shutil.which("git") is None:
        return False
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, timeout=60)
    return done.returncode == 0 and Path(done.stdout.decode().strip()).resolve() == root


def test_the_repository_tracks_no_outside_links_and_no_environment_or_build_artefacts():
    if not in_git_checkout(ROOT):
        pytest.skip(f"{ROOT} is not the top of a git checkout (an unpacked archive?): there is no index to check")
    entries = git_index(ROOT)
    assert entries, "git ls-files listed nothing"
    problems = offending_paths(entries)
    assert not problems, failure_message(problems)


# The detection itself, on synthetic listings (the real index is never touched).

SOURCES = [Entry("100644", "course_lib/gan.py"), Entry("100644", "notebooks/02_dcgan.ipynb"),
           Entry("100644", "checkpoints/dcgan/generator.safetensors"), Entry("100755", "scripts/ensure_venv.py")]


def flagged(*entries: Entry) -> list[str]:
    return [line.split(":", 1)[0] for line in offending_paths(SOURCES + list(entries))]


def test_a_clean_listing_passes():
    assert offending_paths(SOURCES) == []
    assert flagged(Entry("100644", "checkpoints/dcgan/checkpoint.pt"),           # a checkpoint where it belongs
                   Entry("100644", "course_lib/build_run.py"),                  # names that only look alike
                   Entry("100644", "docs/runs/index.md"),
                   Entry("100644", "course_lib/venvironment.txt")) == []


@pytest.mark.parametrize("path, target", [("gan.py", "course_lib/gan.py"), ("docs/gan.py", "../course_lib/gan.py"),
                                          ("docs/dcgan", "../checkpoints/dcgan"), ("docs/lib", "../course_lib/")])
def test_a_link_to_a_tracked_file_or_folder_passes(path, target):
    assert flagged(Entry(SYMLINK_MODE, path, target)) == []


@pytest.mark.parametrize("path, target", [
    (".venv", "/home/someone/envs/course"),           # the link that broke fresh clones
    ("data", "../shared/mnist"),                       # out of the checkout, relative
    ("docs/gan.py", "../../course_lib/gan.py"),        # out of the checkout through a sub-folder
    ("docs/gan.py", "missing.py"),                     # dangling inside the checkout
    ("lib", "C:\\Users\\someone\\lib"),                 # a Windows path
])
def test_a_link_outside_the_repository_or_dangling_is_flagged(path, target):
    assert flagged(Entry(SYMLINK_MODE, path, target)) == [path]


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "venv/pyvenv.cfg", ".venv-cpu/pyvenv.cfg", "course_lib/__pycache__/gan.cpython-311.pyc",
    "scripts/old.pyc", "course_lib.egg-info/PKG-INFO", "build/lib/course_lib/gan.py", "dist/course_lib-0.1.0.whl",
    "runs/dcgan/generator.safetensors", "notebooks/.ipynb_checkpoints/02_dcgan-checkpoint.ipynb",
    "dcgan.pt", "notebooks/G.pt",
])
def test_environment_and_build_artefacts_are_flagged(path):
    assert flagged(Entry("100644", path)) == [path]


def test_the_failure_message_lists_the_paths_and_says_how_to_fix():
    message = failure_message(offending_paths(SOURCES + [Entry(SYMLINK_MODE, ".venv", "/opt/env"),
                                                         Entry("100644", "dcgan.pt")]))
    assert ".venv: " in message and "dcgan.pt: " in message
    assert "git rm -r --cached" in message and ".gitignore" in message


def test_git_index_reads_modes_and_link_targets(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    (tmp_path / "course_lib").mkdir()
    (tmp_path / "course_lib" / "gan.py").write_text("G = None\n")
    (tmp_path / ".venv").symlink_to("/home/someone/envs/course")
    (tmp_path / "gan.py").symlink_to("course_lib/gan.py")
    subprocess.run(["git", "add", "-A", "-f", "."], cwd=tmp_path, check=True, timeout=60)
    entries = sorted(git_index(tmp_path), key=lambda entry: entry.path)
    assert entries == [Entry(SYMLINK_MODE, ".venv", "/home/someone/envs/course"),
                       Entry("100644", "course_lib/gan.py", None),
                       Entry(SYMLINK_MODE, "gan.py", "course_lib/gan.py")]
    assert [line.split(":")[0] for line in offending_paths(entries)] == [".venv"]
