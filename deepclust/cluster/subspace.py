"""Subspace bases from a partition: the initialisation of the basis-representation models.

EDESC and SCDSC represent cluster ``j`` by ``d`` orthonormal basis vectors ``D_j`` in the latent
space (SCDSC eq. 5). They are initialised from a partition of the codes: per cluster the top-``d``
right singular vectors of its codes, no centring (:func:`init_bases`), or the same from each
cluster's Gram matrix in O(latent^2) memory (:func:`init_bases_gram`). Directions a cluster lacks
are drawn at random (:func:`complete_basis`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["complete_basis", "init_bases", "init_bases_gram"]


def init_bases(
    z: np.ndarray, labels: np.ndarray, n_clusters: int, d: int, *, rng: np.random.Generator
) -> np.ndarray:
    """Initial bases (latent, k*d): per cluster the top-``d`` right singular vectors of its codes.

    No centring (the subspaces pass through the origin). A cluster with fewer than ``d``
    independent codes (or none) gets its missing directions from a random Gaussian matrix,
    orthonormalised, so ``D`` always has ``k*d`` unit columns.
    """
    latent = z.shape[1]
    if d > latent:
        raise ValueError(f"n_subspace_dims={d} exceeds the latent dimension {latent}")
    D = np.zeros((latent, n_clusters * d), dtype=np.float64)
    for j in range(n_clusters):
        Zj = z[labels == j].astype(np.float64)
        V = np.zeros((0, latent))
        if Zj.shape[0] > 0:
            _, sv, Vt = np.linalg.svd(Zj, full_matrices=False)
            V = Vt[: min(d, int((sv > sv.max() * 1e-10).sum()) if sv.size else 0)]
        V = complete_basis(V, d, rng)
        D[:, j * d : (j + 1) * d] = V.T
    return D.astype(np.float32)


def complete_basis(V: np.ndarray, d: int, rng: np.random.Generator) -> np.ndarray:
    """(r, latent) orthonormal rows -> (d, latent): missing directions drawn at random, orthogonal to V."""
    if V.shape[0] >= d:
        return V
    R = rng.normal(size=(d - V.shape[0], V.shape[1]))
    R -= (R @ V.T) @ V
    Q, _ = np.linalg.qr(R.T)
    return np.concatenate([V, Q.T[: d - V.shape[0]]], axis=0)


def init_bases_gram(
    z: np.ndarray, labels: np.ndarray, n_clusters: int, d: int, *, rng: np.random.Generator,
    chunk: int = 8192,
) -> np.ndarray:
    """The bases of :func:`init_bases` (per cluster the top-``d`` right
    singular vectors of its codes, no centring) from each cluster's Gram matrix ``Z_j^T Z_j``
    (latent x latent, accumulated over chunks) instead of an SVD of ``Z_j``: memory
    O(latent^2) instead of O(n_j latent). The right singular vectors are the Gram matrix's
    eigenvectors (equal up to sign, which eq. 3's ``||z D_j||^2`` and eq. 4 do not see, and up
    to float rounding). Directions a cluster lacks are filled at random, as ``init_bases`` does.
    """
    latent = z.shape[1]
    if d > latent:
        raise ValueError(f"n_subspace_dims={d} exceeds the latent dimension {latent}")
    D = np.zeros((latent, n_clusters * d), dtype=np.float64)
    for j in range(n_clusters):
        rows = np.flatnonzero(labels == j)
        G = np.zeros((latent, latent))
        for a in range(0, rows.shape[0], chunk):
            Zj = z[rows[a : a + chunk]].astype(np.float64)
            G += Zj.T @ Zj
        vals, vecs = np.linalg.eigh(G)  # ascending
        vals, vecs = vals[::-1], vecs[:, ::-1]
        # rank as init_bases counts it: singular values > 1e-10 * the largest (squared here)
        rank = int((vals > max(vals[0], 0.0) * 1e-20).sum()) if rows.size else 0
        V = vecs[:, : min(d, rank)].T  # (<= d, latent)
        V = complete_basis(V, d, rng)
        D[:, j * d : (j + 1) * d] = V.T
    return D.astype(np.float32)
