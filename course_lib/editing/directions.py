"""Edit directions in W: found with labels, with statistics of W, or from the weights alone.

An edit moves a code along a unit direction n: ``w' = w + alpha n``. Three ways to find n:

- **supervised boundary** (InterFaceGAN, Shen et al. 2020): label codes by an attribute (a class, or
  the top and bottom share of a measured score), fit a linear classifier in W; the unit normal of
  its separating hyperplane points from one side to the other. *Conditional* editing removes from n
  its component along the normals of attributes that should stay put (``conditional``).
- **PCA of W** (GANSpace, Härkönen et al. 2020): the principal axes of many mapped w, with no labels;
  the first ones often carry interpretable changes.
- **closed form from the weights** (SeFa, Shen & Zhou 2021): a style is ``s = A w + b``, so moving w
  by n moves the style by ``A n``; the unit n that moves it most maximises ``||A n||^2``, the top
  eigenvectors of ``A^T A``, where A stacks the affine maps of the chosen layers. No data at all.

And the simplest baseline, stepping z up the gradient of a classifier's log-probability for a class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.stylegan import Generator


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


def linear_boundary(codes: torch.Tensor, labels: torch.Tensor, C: float = 1.0) -> torch.Tensor:
    """The unit normal (d,) of a linear SVM separating ``labels == 1`` from ``labels == 0`` codes.

    Args:
        codes: (N, d) codes (w, or flattened w+).
        labels: (N,) 0 or 1; the normal points towards the 1s.
        C: the SVM's inverse regularisation strength.
    """
    from sklearn.svm import LinearSVC

    if codes.dim() != 2 or labels.shape != (codes.shape[0],):
        raise ValueError(f"codes must be (N, d) and labels (N,), got {tuple(codes.shape)} and {tuple(labels.shape)}")
    y = labels.long()
    if set(y.unique().tolist()) != {0, 1}:
        raise ValueError("labels must contain both 0 and 1")
    svm = LinearSVC(C=C, max_iter=20_000).fit(codes.detach().cpu().double().numpy(), y.cpu().numpy())
    return _unit(torch.as_tensor(svm.coef_[0], dtype=codes.dtype))


def score_boundary(codes: torch.Tensor, scores: torch.Tensor, share: float = 0.3) -> torch.Tensor:
    """The boundary between the codes of the top and the bottom ``share`` of a measured score (InterFaceGAN)."""
    if not 0 < share <= 0.5:
        raise ValueError(f"share must be in (0, 0.5], got {share}")
    order = scores.argsort()
    k = max(1, int(share * len(scores)))
    low, high = order[:k], order[-k:]
    labels = torch.cat([torch.zeros(k), torch.ones(k)])
    return linear_boundary(torch.cat([codes[low], codes[high]]), labels)


def conditional(direction: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """``direction`` with its components along ``others`` removed (Gram-Schmidt), renormalised (InterFaceGAN, 2.3)."""
    basis = []
    for other in others:
        v = other.clone()
        for b in basis:
            v = v - (v @ b) * b
        if v.norm() > 1e-8:
            basis.append(_unit(v))
    out = direction.clone()
    for b in basis:
        out = out - (out @ b) * b
    if out.norm() < 1e-6 * direction.norm():
        raise ValueError("the direction lies in the span of the others: nothing is left to edit")
    return _unit(out)


@torch.no_grad()
def pca_directions(G: Generator, k: int = 10, n: int = 10_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """GANSpace: the top ``k`` principal axes of ``n`` mapped w (k, w_dim) and their standard deviations (k,)."""
    g = torch.Generator().manual_seed(seed)
    w = G.mapping(torch.randn(n, G.z_dim, generator=g).to(G.w_avg.device))      # (n, w_dim)
    centred = w - w.mean(dim=0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)                    # rows of vh: principal axes
    return vh[:k], s[:k] / (n - 1) ** 0.5


def style_matrix(G: Generator, layers: list[int] | None = None) -> torch.Tensor:
    """A (sum of style sizes, w_dim): the effective weights of the affine maps w -> style of the chosen convs."""
    convs = G.synthesis.convs
    layers = list(range(len(convs))) if layers is None else layers
    blocks = []
    for i in layers:
        affine = convs[i].affine
        blocks.append(affine.weight * affine.scale)                              # (out, w_dim), as applied
    return torch.cat(blocks, dim=0)


@torch.no_grad()
def sefa_directions(G: Generator, k: int = 10, layers: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SeFa: the top ``k`` eigenvectors (k, w_dim) of A^T A for the chosen layers' affine maps, and their eigenvalues."""
    return sefa_of_matrix(style_matrix(G, layers), k)


def sefa_of_matrix(A: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit vectors n maximising ||A n||, in order: top eigenvectors (k, d) of A^T A and eigenvalues (k,)."""
    values, vectors = torch.linalg.eigh(A.T.double() @ A.double())               # ascending
    order = values.argsort(descending=True)[:k]
    return vectors[:, order].T.to(A.dtype), values[order].to(A.dtype)


def move(codes: torch.Tensor, direction: torch.Tensor, alpha: float | torch.Tensor,
         layers: slice | None = None) -> torch.Tensor:
    """``codes + alpha direction``; for w+ codes (B, num_ws, w_dim) only the ``layers`` given (all by default)."""
    alpha = torch.as_tensor(alpha, dtype=codes.dtype, device=codes.device)
    step = alpha.reshape(-1, *[1] * (codes.dim() - 1)) * direction.to(codes)
    if codes.dim() == 3 and layers is not None:
        mask = torch.zeros(codes.shape[1], 1, device=codes.device, dtype=codes.dtype)
        mask[layers] = 1
        step = step * mask
    return codes + step


def classifier_steps(G: Generator, z: torch.Tensor, classifier: nn.Module, target: int, steps: int = 20,
                     step_size: float = 0.1) -> torch.Tensor:
    """The simplest class edit: gradient ascent on log p(target | G(z)) in Z, ``steps`` normalised steps."""
    z = z.detach().clone()
    for _ in range(steps):
        z.requires_grad_(True)
        logp = F.log_softmax(classifier(G.synthesis(G.broadcast(G.mapping(z)), noise_mode="const")), dim=1)
        grad, = torch.autograd.grad(logp[:, target].sum(), z)
        z = (z + step_size * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)).detach()
    return z
