"""course_lib.classifier (and the second network, course_lib.mlp_classifier): shapes, the 32 -> 28 centre crop,
the checksum, the shipped accuracy, batching."""

import dataclasses
import shutil

import pytest
import torch
import torch.nn.functional as F

import course_lib.classifier as classifier
from course_lib.checkpoint import CheckpointError, load_weights
from course_lib.classifier import (WEIGHTS_PATH, ClassifierConfig, DigitClassifier, classify,
                                   file_sha256, load_classifier)
from course_lib.data import mnist5k
from course_lib.mlp_classifier import MLP_WEIGHTS_PATH, DigitMLP, MLPConfig, load_digit_mlp


@pytest.fixture(scope="module")
def test_set():
    return mnist5k("test")


@pytest.fixture(scope="module")
def shipped():
    return load_classifier()


def random_model(seed=0):
    torch.manual_seed(seed)
    return DigitClassifier(ClassifierConfig()).eval()


@pytest.mark.parametrize("size", [28, 32])
def test_shapes(size):
    model = random_model()
    x = torch.rand(3, 1, size, size) * 2 - 1
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, ClassifierConfig().feature_dim) == (3, 128)


def test_32_is_the_centre_crop_of_28(test_set):
    model = random_model()
    x32 = test_set.x[:16]  # (16, 1, 32, 32), border -1
    x28 = x32[..., 2:30, 2:30]  # the digits as 28x28
    assert torch.equal(F.pad(x28, (2, 2, 2, 2), value=-1.0), x32)
    assert torch.equal(model(x28), model(x32))
    assert torch.equal(model.features(x28), model.features(x32))
    # cropped, never resized: the 2-pixel border does not reach the network
    x32_marked = x32.clone()
    x32_marked[..., :2, :] = 1.0
    x32_marked[..., :, -2:] = 1.0
    assert torch.equal(model(x32_marked), model(x32))


@pytest.mark.parametrize("shape", [(2, 1, 30, 30), (2, 1, 64, 64), (2, 1, 28, 32), (1, 28, 28),
                                   (2, 3, 32, 32), (2, 1, 8, 8)])
def test_bad_shapes_raise_value_error(shape):
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\) or \(B, 1, 32, 32\).*got"):
        random_model()(torch.zeros(shape))


def test_integer_images_raise_value_error():
    with pytest.raises(ValueError, match="float"):
        random_model()(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_shipped_weights_match_the_checksum_and_the_default_config(shipped):
    assert file_sha256(WEIGHTS_PATH) == classifier.WEIGHTS_SHA256
    assert WEIGHTS_PATH.stat().st_size < 2_000_000
    _, config = load_weights(WEIGHTS_PATH)
    assert config == dataclasses.asdict(ClassifierConfig())
    assert isinstance(shipped, DigitClassifier) and not shipped.training
    assert next(shipped.parameters()).device.type == "cpu"


def test_load_classifier_rejects_a_corrupt_file(tmp_path):
    damaged = tmp_path / WEIGHTS_PATH.name
    shutil.copyfile(WEIGHTS_PATH, damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte inside a weight tensor
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupt(.|\n)*python scripts/train_classifier.py"):
        load_classifier(path=damaged)
    damaged.write_bytes(WEIGHTS_PATH.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="corrupt"):
        load_classifier(path=damaged)
    with pytest.raises(CheckpointError, match="missing"):
        load_classifier(path=tmp_path / "nowhere.safetensors")


def test_load_classifier_checks_the_expected_checksum(monkeypatch):
    monkeypatch.setattr(classifier, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(CheckpointError, match="expected 0000"):
        load_classifier()


def test_shipped_classifier_accuracy_on_mnist5k_test(shipped, test_set):
    logits, features = classify(shipped, test_set.x)
    assert logits.shape == (1000, 10) and features.shape == (1000, 128)
    accuracy = (logits.argmax(1) == test_set.labels).float().mean().item()
    assert accuracy >= 0.985
    assert (features >= 0).all()


def test_classify_batches_match_one_big_batch(shipped, test_set):
    x = test_set.x[::10]  # (100, 1, 32, 32)
    logits, features = classify(shipped, x, batch_size=len(x))
    logits_b, features_b = classify(shipped, x, batch_size=7)
    torch.testing.assert_close(logits_b, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(features_b, features, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(logits, shipped(x), rtol=1e-5, atol=1e-5)


def test_classify_uses_eval_mode_and_restores_it(test_set):
    model = random_model().train()
    x = test_set.x[:20]
    logits, _ = classify(model, x, batch_size=3)
    assert model.training
    torch.testing.assert_close(logits, classify(model.eval(), x)[0], rtol=1e-5, atol=1e-5)


def test_classify_edge_cases():
    model = random_model()
    logits, features = classify(model, torch.zeros(0, 1, 32, 32))
    assert logits.shape == (0, 10) and features.shape == (0, 128)
    with pytest.raises(ValueError, match="batch_size"):
        classify(model, torch.zeros(2, 1, 28, 28), batch_size=0)
    with pytest.raises(ValueError, match="images must have shape"):
        classify(model, torch.zeros(2, 1, 16, 16))


# The second feature network (lesson 03: FD depends on its features) ---------------------------

def test_the_mlp_loads_with_its_checksum_and_reads_the_test_digits(test_set):
    mlp = load_digit_mlp()
    assert isinstance(mlp, DigitMLP) and not mlp.training and mlp.cfg == MLPConfig()
    logits, features = classify(mlp, test_set.x)
    assert logits.shape == (len(test_set), 10) and features.shape == (len(test_set), 64) and (features >= 0).all()
    assert (logits.argmax(1) == test_set.labels).float().mean() >= 0.95
    assert torch.equal(mlp.features(test_set.x[:8]), mlp.features(test_set.x[:8, :, 2:30, 2:30]))  # 32 = crop of 28


def test_the_mlp_rejects_a_changed_file_and_bad_images(tmp_path):
    changed = tmp_path / "digit_mlp.safetensors"
    changed.write_bytes(MLP_WEIGHTS_PATH.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="corrupt or was changed"):
        load_digit_mlp(path=changed)
    with pytest.raises(CheckpointError, match="missing"):
        load_digit_mlp(path=tmp_path / "nothing.safetensors")
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        DigitMLP()(torch.zeros(2, 1, 30, 30))
