"""Lesson 12's library and commands: spectra, attacks, watermarks and their test, detectors, C_T, bias.

Known answers where there are some (the binomial threshold from math.comb, the Mann-Whitney z of two
separated sets, the spectrum of a checkerboard), behaviour otherwise (marks that survive a mild attack
and not a strong one, copies flagged, i.i.d. samples not), on a few real digits; the commands end to end.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from course_lib import detect, evaluate, train, watermark
from course_lib.data import mnist5k
from course_lib.image_quality import psnr
from course_lib import memorisation
from course_lib.responsible import attacks, bias, detectors, spectrum, watermarks
from course_lib.responsible.attacks import to_uint8


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return mnist5k("test").x[::10]  # (100, 1, 32, 32), ten of each class


# ---- the decision: a binomial test on matched bits --------------------------------------------

def test_the_threshold_is_the_smallest_count_that_an_unmarked_image_reaches_at_most_fpr_of_the_time():
    n, fpr = 64, 1e-3
    tail = lambda k: sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n  # noqa: E731
    expected = min(k for k in range(n + 2) if tail(k) <= fpr)
    assert expected == 45  # P[X >= 45] = 7.8e-4, P[X >= 44] = 1.8e-3
    assert watermarks.threshold(n, fpr) == expected
    assert watermarks.p_value(45, 64) == pytest.approx(tail(45), rel=1e-12)
    assert watermarks.threshold(10, 1 / 1024) == 10          # exactly at the rate: P[X >= 10] = 1/1024
    assert watermarks.threshold(10, 1e-4) == 11              # 10 bits cannot reach 1e-4: nothing is flagged
    for bad in (0, 1, -0.5, 2):
        with pytest.raises(ValueError, match="fpr"):
            watermarks.threshold(64, bad)


def test_decide_counts_matched_bits_against_the_key_and_keys_are_checked():
    bits = watermarks.key_bits(7, 64)
    flipped = bits.clone()
    flipped[:20] = 1 - flipped[:20]                          # 44 of 64 match: below 45
    results = watermarks.decide(torch.stack([bits, flipped]), key=7, fpr=1e-3)
    assert [(r.matched, r.marked) for r in results] == [(64, True), (44, False)]
    assert results[0].p_value == 2.0 ** -64
    for key in (-1, 2 ** 63, 1.5, True, "7"):
        with pytest.raises(ValueError, match="key"):
            watermarks.key_bits(key, 8)


# ---- LSB and DCT marks --------------------------------------------------------------------------

def test_the_lsb_mark_round_trips_exactly_and_a_jpeg_erases_it(digits):
    colour = torch.rand(3, 3, 30, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for x in (digits[:10], colour):
        marked = watermarks.lsb_embed(x, key=5)
        assert torch.equal(watermarks.lsb_extract(marked), watermarks.key_bits(5, x[0].numel()).expand(len(x), -1))
        assert (to_uint8(marked).astype(int) - to_uint8(x).astype(int)).__abs__().max() <= 1
    marked = watermarks.lsb_embed(digits[:10], key=5)
    assert all(r.marked for r in watermarks.decide(watermarks.lsb_extract(marked), 5))
    assert not any(r.marked for r in watermarks.decide(watermarks.lsb_extract(attacks.jpeg(marked, 90)), 5))


def test_the_dct_mark_survives_mild_perturbations_and_not_strong_ones(digits):
    x = digits[::5]                                           # 20 digits
    marked = watermarks.dct_embed(x, key=11)
    assert float(psnr(marked, x).mean()) > 37.5
    flagged = lambda y: [r.marked for r in watermarks.decide(watermarks.dct_extract(y, 11), 11)]  # noqa: E731
    assert all(flagged(marked))
    assert all(flagged(attacks.noise(marked, sigma=0.01)))
    assert all(flagged(attacks.jpeg(marked, 90)))
    assert not any(flagged(attacks.noise(marked, sigma=0.3)))
    assert not any(flagged(x))                                # unmarked digits
    assert not any(r.marked for r in watermarks.decide(watermarks.dct_extract(marked, 12), 12))  # another key


def test_the_dct_mark_takes_colour_and_larger_images_and_refuses_small_ones():
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8
    assert all(r.marked for r in watermarks.decide(watermarks.dct_extract(watermarks.dct_embed(x, 3), 3), 3))
    with pytest.raises(ValueError, match="at least 28x28"):
        watermarks.dct_embed(torch.zeros(1, 1, 16, 16), 3)
    patterns = watermarks.dct_patterns(3, (32, 32))
    gram = torch.einsum("ahw,bhw->ab", patterns, patterns)
    assert torch.allclose(gram, torch.eye(len(patterns)), atol=1e-5)  # orthonormal in pixels


# ---- spectra and attacks --------------------------------------------------------------------------

def test_a_checkerboard_puts_its_power_at_the_highest_frequency_and_rings_average_it():
    i = torch.arange(32)
    board = ((-1.0) ** (i[:, None] + i[None, :]))[None, None]   # (1, 1, 32, 32): period 2 in both directions
    s = spectrum.log_spectrum(board)[0]
    assert divmod(int(s.argmax()), 32) == (0, 0)                 # (16, 16) from the centre: Nyquist in both axes
    profile = spectrum.radial_profile(torch.full((2, 32, 32), 3.0))
    assert profile.shape == (2, 17) and torch.allclose(profile, torch.tensor(3.0))


def test_the_attacks_keep_the_shape_and_range_and_are_deterministic(digits):
    x = digits[:4]
    for name in attacks.STANDARD:
        y = attacks.attack(x, name)
        assert y.shape == x.shape and y.abs().max() <= 1, name
        assert torch.equal(y, attacks.attack(x, name)), name
    assert not torch.equal(attacks.noise(x, seed=0), attacks.noise(x, seed=1))
    with pytest.raises(ValueError, match="quality"):
        attacks.jpeg(x, 0)
    with pytest.raises(ValueError, match="attack"):
        attacks.attack(x, "jpeg10")


# ---- detectors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", detectors.DETECTORS)
def test_detectors_separate_real_digits_from_upsampled_ones(kind):
    real = mnist5k("train").x[::10]                          # 400 real digits
    fake = attacks.resize(mnist5k("train").x[5::10], 0.5)     # 400 others, down- and up-sampled: a crude generator
    detector = detectors.train_detector(real[:200], fake[:200], kind, steps=60, seed=0)
    scores = detectors.evaluate(detector, real[200:], fake[200:])
    assert scores["ap"] > 0.95 and scores["accuracy"] > 0.85, scores
    with pytest.raises(ValueError, match="takes images"):
        detectors.score(detector, torch.zeros(2, 3, 32, 32))


# ---- memorisation and bias ------------------------------------------------------------------------

def test_the_mann_whitney_z_of_separated_sets_is_its_extreme():
    m, n = 4, 6
    assert memorisation.mann_whitney_z(np.zeros(m), np.ones(n)) == pytest.approx(
        -m * n / 2 / math.sqrt(m * n * (m + n + 1) / 12))
    assert memorisation.mann_whitney_z(np.ones(m), np.ones(n)) == 0


def test_ct_flags_copies_and_not_fresh_samples_of_the_same_distribution():
    train_x, test_x = mnist5k("train").x[::4], mnist5k("test").x   # 1,000 and 1,000 digits, every class
    copies = memorisation.digit_copying(train_x[::2], train_x, test_x[::2], cells=5)
    fresh = memorisation.digit_copying(test_x[1::2], train_x, test_x[::2], cells=5)
    assert copies.ct < -3
    assert abs(fresh.ct) < 2
    assert sum(z is not None for z in fresh.cell_z) == 5 and sum(fresh.cell_weights) == pytest.approx(1)


def test_class_shares_and_a_minority_subset():
    assert torch.equal(bias.class_shares(torch.tensor([0, 0, 1, 3]), 4), torch.tensor([0.5, 0.25, 0.0, 0.25]))
    labels = mnist5k("train").labels
    keep = bias.minority_subset(labels, minority=7, share=0.02, seed=0)
    assert float(bias.class_shares(labels[keep])[7]) == pytest.approx(0.02, abs=0.001)
    report = bias.share_report(torch.full((10,), 0.1), bias.class_shares(labels[keep]), minority=7)
    assert report["ratio"] == pytest.approx(0.1 / float(bias.class_shares(labels[keep])[7]))
    with pytest.raises(ValueError, match="labels"):
        bias.class_shares(torch.tensor([0, 10]))


# ---- the commands ---------------------------------------------------------------------------------

def save(path, pixels: np.ndarray, **arrays) -> str:
    np.savez(path, pixels, **arrays)
    return str(path)


def test_watermark_embed_and_detect_end_to_end(digits, tmp_path, capsys):
    images = save(tmp_path / "in.npz", to_uint8(digits[:6, :, 2:30, 2:30]), labels=np.arange(6))  # 28x28 grey
    out = str(tmp_path / "out.npz")
    assert watermark.main(["embed", "--key", "42", images, out]) == 0
    with np.load(out) as data:
        assert data["arr_0"].shape == (6, 28, 28, 1) and data["arr_0"].dtype == np.uint8
        assert data["labels"].tolist() == list(range(6))      # the other arrays are kept
    capsys.readouterr()
    assert watermark.main(["detect", "--key", "42", out, "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 6 and all(r["marked"] and r["n_bits"] == 48 for r in records)
    assert set(records[0]) == {"index", "matched", "n_bits", "p_value", "marked"}
    assert watermark.main(["detect", "--key", "42", images, "--json", "--fpr", "1e-3"]) == 0
    assert not any(json.loads(line)["marked"] for line in capsys.readouterr().out.splitlines())

    colour = save(tmp_path / "rgb.npz", np.random.default_rng(0).integers(0, 256, (2, 40, 48, 3), dtype=np.uint8))
    assert watermark.main(["embed", "--key", "1", "--method", "lsb", colour, str(tmp_path / "rgb_out.npz")]) == 0
    capsys.readouterr()
    assert watermark.main(["detect", "--key", "1", "--method", "lsb", str(tmp_path / "rgb_out.npz")]) == 0
    assert "2 of 2 flagged" in capsys.readouterr().err


def test_the_learned_mark_from_a_watermark_run(digits, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = train.default_config("watermark", steps=2, eval_samples=0, base_channels=8, batch_size=4, n_bits=8)
    train.train(cfg, run, device="cpu", show_progress=False)
    images = save(tmp_path / "in.npz", to_uint8(digits[:3]))
    out = str(tmp_path / "out.npz")
    assert watermark.main(["embed", "--key", "3", "--method", "learned", "--model", str(run), images, out]) == 0
    capsys.readouterr()
    assert watermark.main(["detect", "--key", "3", "--method", "learned", "--model", str(run), out, "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 3 and all(r["n_bits"] == 8 for r in records)   # untrained: any verdict, the right form
    big = save(tmp_path / "big.npz", np.zeros((1, 40, 40, 1), np.uint8))
    assert watermark.main(["detect", "--key", "3", "--method", "learned", "--model", str(run), big]) == 2
    assert "the learned mark takes (1, 28 or 32" in capsys.readouterr().err


def test_calibration_makes_every_bit_a_fair_coin_on_unmarked_images(digits):
    from course_lib.responsible.learned_watermark import HiDDeN, HiDDeNConfig, calibrate

    torch.manual_seed(0)
    net = HiDDeN(HiDDeNConfig(n_bits=6, base_channels=8))
    calibrate(net, digits)
    with torch.no_grad():
        ones = (net.eval().decode(digits) > 0).float().mean(0)      # (6,): the share read as 1 on 100 digits
    assert torch.all((ones - 0.5).abs() <= 0.01), ones               # the median itself reads as 0


@pytest.mark.parametrize("arrays, message", [
    ({"arr_0": np.zeros((2, 32, 32, 1), np.float32)}, "must be uint8"),
    ({"arr_0": np.zeros((2, 32, 32), np.uint8)}, "must be (N, H, W, 1 or 3)"),
    ({"arr_0": np.zeros((2, 16, 16, 1), np.uint8)}, "H, W >= 28"),
    ({"arr_0": np.zeros((0, 32, 32, 1), np.uint8)}, "holds no images"),
    ({"images": np.zeros((2, 32, 32, 1), np.uint8)}, "no 'arr_0'"),
])
def test_bad_inputs_are_one_line_errors_naming_the_argument(tmp_path, capsys, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert watermark.main(["detect", "--key", "1", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("watermark: IN:") and message in err and len(err.strip().splitlines()) == 1


def test_bad_keys_flags_and_files_are_refused(digits, tmp_path, capsys):
    images = save(tmp_path / "in.npz", to_uint8(digits[:2]))
    out = tmp_path / "out.npz"
    out.write_bytes(b"keep me")
    cases = [
        (["embed", "--key", "abc", images, str(out)], "--key must be an integer"),
        (["embed", "--key", "-3", images, str(out)], "--key must be an integer"),
        (["embed", "--key", "1", images, str(out)], "exists; pass --force"),
        (["detect", "--key", "1", images, "--fpr", "0"], "--fpr must be in (0, 1)"),
        (["detect", "--key", "1", images, "--method", "learned"], "needs --model"),
        (["detect", "--key", "1", images, "--model", str(tmp_path)], "--model is for --method learned"),
        (["detect", "--key", "1", str(tmp_path / "missing.npz")], "no file at"),
        (["detect", "--key", "1", str(out)], "not a readable .npz"),
    ]
    for argv, message in cases:
        assert watermark.main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert out.read_bytes() == b"keep me"
    assert watermark.main(["embed", "--key", "1", images, str(out), "--force"]) == 0


def test_detect_trains_and_scores_end_to_end(tmp_path, capsys):
    x = mnist5k("train").x[::20]                                               # 200 digits
    real = save(tmp_path / "real.npz", to_uint8(x[::2]))
    fake = save(tmp_path / "fake.npz", to_uint8(attacks.resize(x[1::2], 0.5)))
    model = str(tmp_path / "detector.safetensors")
    assert detect.main(["train", "--real", real, "--fake", fake, "--out", model]) == 0
    assert detect.main(["train", "--real", real, "--fake", fake, "--out", model]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert detect.main(["score", model, "--real", real, "--fake", fake, "--attack", "jpeg90", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["attack"] == "jpeg90" and result["ap"] > 0.9
    assert detect.main(["score", model, fake, "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 100
    assert detect.main(["score", real, fake]) == 2
    assert capsys.readouterr().err.startswith("detect: DETECTOR:")
    colour = save(tmp_path / "rgb.npz", np.zeros((2, 32, 32, 3), np.uint8))
    assert detect.main(["score", model, colour]) == 2
    assert "takes images (1, 32, 32)" in capsys.readouterr().err


def test_evaluate_memorisation_flags_a_file_of_training_digits(tmp_path, capsys):
    copies = save(tmp_path / "copies.npz", to_uint8(mnist5k("train").x[::20, :, 2:30, 2:30]))  # 200, 28x28
    assert evaluate.main([copies, "--memorisation", "--space", "pixel", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ct_pixel"] < -3 and result["copying_pixel"] and "ct_features" not in result
    few = save(tmp_path / "few.npz", to_uint8(mnist5k("train").x[:50]))
    assert evaluate.main([few, "--memorisation"]) == 2
    assert "at least 100" in capsys.readouterr().err
