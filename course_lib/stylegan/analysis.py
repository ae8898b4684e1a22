"""Measuring a style-based generator: the truncation trade-off, path lengths in Z and W, droplets.

- ``truncation_sweep``: FD, precision and recall of samples at several truncation strengths psi
  (Karras et al. 2019 and Brock et al. 2019 trade diversity for quality this way).
- ``path_length``: the perceptual path length of Karras et al. 2019 (section 4.1), with the course
  classifier's 128-d features in place of VGG: how much the image features change along small
  steps of an interpolation in Z (slerp) or in W (lerp). A shorter, less erratic path in W is
  the paper's evidence that the mapping network disentangles.
- ``feature_peaks``: how much one pixel dominates each feature map (max |x| over the median |x|),
  the signature of StyleGAN's "droplet" artefact (Karras et al. 2020, section 2): AdaIN normalises
  every map by its own statistics, and a generator can smuggle a strong local spike past the
  normalisation to control them. Demodulation normalises the weights instead, so no spike pays.
"""

from __future__ import annotations

import torch

from course_lib.classifier import classify, load_classifier
from course_lib.evaluate import evaluate
from course_lib.latent import slerp
from course_lib.run import generate
from course_lib.stylegan.model import Generator


@torch.no_grad()
def truncation_sweep(G: Generator, psis: list[float], n: int = 1000, seed: int = 0) -> list[dict[str, float]]:
    """Course metrics (``course_lib.evaluate``) of n samples for each psi, with the same z for every psi.

    Returns:
        One dict per psi: ``{"psi", "fd", "precision", "recall", "modes", ...}``.
    """
    rows = []
    for psi in psis:
        images, _ = generate(G, n, seed=seed, truncation_psi=psi)
        rows.append({"psi": float(psi), **evaluate(images)})
    return rows


@torch.no_grad()
def path_length(G: Generator, space: str = "w", n: int = 500, eps: float = 1e-2, seed: int = 0,
                classifier: torch.nn.Module | None = None) -> dict[str, float]:
    """Perceptual path length ``E[ ||f(g(l(t))) - f(g(l(t + eps)))||^2 / eps^2 ]`` in Z or W.

    z0, z1 ~ N(0, I) and t ~ U(0, 1); in Z the endpoints are slerped and each point mapped, in W
    the mapped endpoints are lerped (the paper's choices). f is the course classifier's feature
    map; the noise inputs are held fixed (``noise_mode="const"``). As in the paper the values below
    the 1st and above the 99th percentile are discarded before averaging.

    Returns:
        ``{"mean", "median"}`` of the per-pair lengths.
    """
    if space not in ("z", "w"):
        raise ValueError(f"space must be 'z' or 'w', got {space!r}")
    classifier = classifier if classifier is not None else load_classifier()
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    z0, z1 = torch.randn(2, n, G.z_dim, generator=gen).to(device)          # (n, z_dim) each
    t = torch.rand(n, 1, generator=gen).to(device)                          # (n, 1)
    was_training = G.training
    G.eval()
    try:
        if space == "z":  # latent.slerp takes one t for all rows: one call per pair
            along = lambda dt: torch.stack([slerp(a, b, float(s) + dt) for a, b, s in zip(z0, z1, t)])  # noqa: E731
            w_a, w_b = G.mapping(along(0.0)), G.mapping(along(eps))
        else:
            w0, w1 = G.mapping(z0), G.mapping(z1)
            w_a, w_b = torch.lerp(w0, w1, t), torch.lerp(w0, w1, t + eps)
        images = [G.synthesis(G.broadcast(w), noise_mode="const").clamp(-1, 1) for w in (w_a, w_b)]
    finally:
        G.train(was_training)
    f_a, f_b = (classify(classifier, x.float().cpu())[1] for x in images)  # (n, 128) each
    lengths = (f_a - f_b).pow(2).sum(dim=1) / eps ** 2                      # (n,)
    lo, hi = torch.quantile(lengths, torch.tensor([0.01, 0.99]))
    kept = lengths[(lengths >= lo) & (lengths <= hi)]
    return {"mean": kept.mean().item(), "median": kept.median().item()}


@torch.no_grad()
def feature_peaks(G: Generator, n: int = 64, seed: int = 0) -> list[float]:
    """Per synthesis layer, the median over samples of the largest peak ratio among its feature maps.

    A feature map's peak ratio is ``max |x| / median |x|`` over its pixels; a droplet is a map
    whose energy sits in one spot (ratios of tens or hundreds). Noise is held fixed.

    Returns:
        One float per conv layer of the synthesis network (4x4 first).
    """
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    z = torch.randn(n, G.z_dim, generator=gen).to(device)
    was_training = G.training
    G.eval()
    try:
        _, features = G.synthesis(G.broadcast(G.mapping(z)), noise_mode="const", return_features=True)
    finally:
        G.train(was_training)
    peaks = []
    for x in features:                                                      # (n, C, r, r)
        a = x.float().abs().flatten(2)                                      # (n, C, r*r)
        ratio = a.amax(dim=2) / a.median(dim=2).values.clamp_min(1e-8)      # (n, C)
        peaks.append(ratio.amax(dim=1).median().item())
    return peaks
