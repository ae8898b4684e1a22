"""Retrain the checkpoints shipped in ``checkpoints/`` (the lessons' "load the shipped checkpoint").

    python scripts/train_checkpoints.py                 # all of them, one after the other
    python scripts/train_checkpoints.py dcgan cgan      # some of them

Each run is ``course_lib.train.train`` with the settings below (fixed seeds and step counts, 2 CPU
threads, so a rerun on the same PyTorch gives the same weights up to thread-order rounding), into
``checkpoints/<name>/``. The resumable ``checkpoint.pt`` is deleted afterwards: the directory keeps
what ``python -m course_lib.sample`` needs (``generator.safetensors``, at most a few MB) and the
run's ``samples.png``, ``metrics.json`` and ``config.json``, and a ``MODEL_CARD.md`` written afterwards by
``scripts/write_model_cards.py``. The script prints every run's metrics and time, the figures the README's
table quotes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from course_lib.train import CHECKPOINT, default_config, train

ROOT = Path(__file__).resolve().parents[1] / "checkpoints"
MAX_BYTES = 5_000_000  # the limit per shipped directory

# name -> the model and its overrides of default_config(model); longer than the laptop profile's 5 minutes, so they do better
SHIPPED = {
    "dcgan": {"model": "dcgan", "steps": 8000, "base_channels": 32, "lr_g": 2e-4, "lr_d": 2e-4},  # Radford et al.'s rate
    "cgan": {"model": "cgan", "steps": 6000, "base_channels": 32},
    "wgan_gp": {"model": "wgan_gp", "steps": 1500, "base_channels": 32},
    # VAEs: about 19.5 steps/s on 2 threads (batch 64, W 32, latent 16): 4.3 min (vae) and 4.8 min (cvae) of
    # training, plus about 30 s for the test likelihood (1,000 digits x 100 importance samples)
    "vae": {"model": "vae", "steps": 5000, "base_channels": 32},
    "cvae": {"model": "cvae", "steps": 5000, "base_channels": 32},
    # pix2pix on the photo tasks with lambda_l1 = 10,000: PSNR rewards a close guess, not a plausible texture, and at the paper's 100
    # the GAN term's textures cost superres 0.6 dB against bicubic (33.1 vs 33.7 dB after 1,500 steps, on the
    # earlier held-out strips); every photo task calibrates its correction scale on the val blocks (default_config)
    **{f"pix2pix_{task}": {"model": "pix2pix", "task": task, "steps": 3000, "lambda_l1": 1e4}
       for task in ("denoise", "superres", "colorize")},
    # inpainting with L2 (the conditional mean, Pathak et al. 2016's Context Encoders): on the earlier held-out
    # strips the hole's L1 median tied the mean-fill baseline (33.77 vs 33.91 dB), L2 gave 34.08 dB
    "pix2pix_inpaint": {"model": "pix2pix", "task": "inpaint", "steps": 3000, "lambda_l1": 1e4, "reconstruction": "l2"},
    "pix2pix_edges2digits": {"model": "pix2pix", "task": "edges2digits", "steps": 2000},  # the paper's lambda_l1 = 100
    # identity kept drifts down with longer training (A->B / B->A: 92% / 88% after 1,000 steps, 77% / 81% after 5,000)
    "cyclegan": {"model": "cyclegan", "steps": 2000},
    # StyleGAN (width 16 at 32x32, 128 at 4x4; batch 32; R1 gamma 10: 0.05 and 1 collapsed to a few digits within
    # 2,000 steps); AdaIN for lesson 09's droplet comparison
    "stylegan": {"model": "stylegan", "steps": 10062, "r1_gamma": 10.0},
    "stylegan_adain": {"model": "stylegan", "steps": 1500, "r1_gamma": 10.0, "style_mode": "adain"},
    # lesson 10's encoder into the shipped StyleGAN's W+ (retrain it after the stylegan): its defaults, 3,000 steps
    "encoder": {"model": "encoder", "steps": 3000, "stylegan": "stylegan"},
    # lesson 11's AdaIN decoder, its defaults (a width-16 random encoder up to relu2_1, batch 16, Adam at 1e-3,
    # lambda_style 1) for 1,500 steps: under 10 minutes of a busy 2-core CPU
    "adain": {"model": "adain", "steps": 1500},
    # lesson 12's learned watermark (HiDDeN-style, 32 bits at a 38 dB budget): its defaults, 4,000 steps
    "watermark": {"model": "watermark", "steps": 4000},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=list(SHIPPED), help=f"which to retrain (default: all of {list(SHIPPED)})")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the GANs and VAEs used 2; pix2pix and cyclegan 1 each, two runs side by side)")
    args = parser.parse_args()
    unknown = set(args.names) - set(SHIPPED)
    if unknown:
        parser.error(f"unknown checkpoint(s) {sorted(unknown)}; choose from {list(SHIPPED)}")
    torch.set_num_threads(args.threads)
    failed: list[str] = []
    for name in args.names:
        settings = dict(SHIPPED[name])
        cfg = default_config(settings.pop("model"), **settings)
        target = ROOT / name
        with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:  # the old checkpoint stays until the new one is done
            start = time.perf_counter()
            result = train(cfg, Path(tmp) / name, device="cpu")
            (Path(tmp) / name / CHECKPOINT).unlink()
            size = sum(f.stat().st_size for f in (Path(tmp) / name).iterdir())
            if size > MAX_BYTES:  # keep the trained run for inspection, go on with the others
                kept = Path(tempfile.mkdtemp(prefix=f"{name}_"))  # in the system temp directory
                shutil.move(str(Path(tmp) / name), kept)
                print(f"{name}: {size / 1e6:.1f} MB is over the {MAX_BYTES / 1e6:.0f} MB limit; not shipped, "
                      f"the run is in {kept}", file=sys.stderr)
                failed.append(name)
                continue
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(Path(tmp) / name), target)
        print(f"{name}: {time.perf_counter() - start:.0f} s, {size / 1e6:.2f} MB")
        print(json.dumps(result, indent=2))
    import write_model_cards  # scripts/ is on the path of a script run from it

    write_model_cards.main([])  # the retrained folders' cards (MODEL_CARD.md) from their new config and metrics
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
