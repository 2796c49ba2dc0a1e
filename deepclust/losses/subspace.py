"""Subspace affinity and basis dissimilarity constraint (EDESC, Cai et al. 2022; SCDSC eqs. 3-4).

The bases of ``k`` subspaces live in one matrix ``D`` of shape (latent, k*d): columns
``j*d .. (j+1)*d - 1`` are the ``d`` basis vectors of subspace ``j``.
"""

from __future__ import annotations

import torch

from deepclust.training import fp32_under_autocast

__all__ = ["subspace_affinity", "basis_constraint", "block_offdiag_mask"]


@fp32_under_autocast
def subspace_affinity(
    z: torch.Tensor, D: torch.Tensor, *, n_clusters: int, d: int, eta: float = 5.0
) -> torch.Tensor:
    """Soft assignment of ``z`` (N, latent) to the subspaces spanned by ``D`` (latent, k*d).

    SCDSC eq. 3 / EDESC eq. 9, in EDESC's form (the issue's reading of eq. 3):
    ``s_ij = (||z_i D_j||^2 + eta*d) / ((eta+1)*d)``, normalised over ``j``. The paper's eq. 3
    writes the un-squared norm and the smoothing constant as ``theta*r``; we follow EDESC (the
    model SCDSC builds on), where the projection energy is squared. The ``(eta+1)*d``
    denominator cancels in the normalisation and is kept only to mirror the formula.

    Returns (N, k) rows summing to one. Cost O(N * latent * k*d); no (N, N) matrix.
    """
    if D.shape[1] != n_clusters * d:
        raise ValueError(f"D has {D.shape[1]} columns but n_clusters*d = {n_clusters * d}")
    proj = (z @ D).pow(2)  # (N, k*d)
    energy = proj.view(z.shape[0], n_clusters, d).sum(dim=2)  # (N, k) = ||z_i D_j||^2
    s = (energy + eta * d) / ((eta + 1.0) * d)
    return s / s.sum(dim=1, keepdim=True)


def block_offdiag_mask(
    n_clusters: int, d: int, *, device=None, dtype=torch.float32
) -> torch.Tensor:
    """``O`` of eq. 4: (k*d, k*d) ones with the ``d x d`` diagonal blocks set to zero."""
    blocks = torch.block_diag(*[torch.ones(d, d, device=device, dtype=dtype)] * n_clusters)
    return 1.0 - blocks


@fp32_under_autocast
def basis_constraint(
    D: torch.Tensor, *, n_clusters: int, d: int, squared: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of SCDSC eq. 4 (EDESC's basis constraints), returned separately.

    ``between = ||D^T D (.) O||_F^2`` pushes the bases of different subspaces apart,
    ``unit = ||D^T D (.) I - I||_F^2`` makes every basis vector unit-norm. With
    ``squared=False`` the plain Frobenius norms are returned instead (a variant some
    implementations use). The caller weights each term (1e-3 in the papers, ``beta`` in eq. 17).
    """
    G = D.T @ D  # (k*d, k*d)
    O = block_offdiag_mask(n_clusters, d, device=D.device, dtype=D.dtype)
    eye = torch.eye(G.shape[0], device=D.device, dtype=D.dtype)
    between = (G * O).pow(2).sum()
    unit = (G * eye - eye).pow(2).sum()
    if not squared:
        between, unit = between.sqrt(), unit.sqrt()
    return between, unit
