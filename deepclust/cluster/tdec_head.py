"""TDEC's clustering head over a whole set (sec. 3.2, Algorithm 1 lines 4 and 6).

:func:`head_assign` picks the K density peaks of the clustering space (eqs. 2-4,
:func:`deepclust.cluster.density_peaks.density_peaks`), the k nearest other points of every point
(:func:`~deepclust.cluster.density_peaks.knn_indices`) and the neighbour-weighted Student-t
assignments (eqs. 5-6, :func:`neighbor_q`); optionally it renumbers the new clusters after the
previous refresh's (:func:`deepclust.cluster.matching.match_to_previous`). Under a process group
the density peaks, the kNN lists and the matching are computed on rank 0 and broadcast.
:func:`head_predict` assigns new points against the fitted clustering space with the same
functions, so that the prediction of the training points reproduces the fit's labels.
"""

from __future__ import annotations

import numpy as np
import torch

from deepclust import distributed as ddp
from deepclust.cluster.density_peaks import density_peaks, knn_indices, knn_query, neighbor_assignment
from deepclust.cluster.matching import match_to_previous

__all__ = ["head_assign", "head_predict", "neighbor_q"]


def neighbor_q(z: torch.Tensor, bank: torch.Tensor, knn: torch.Tensor, centers: torch.Tensor,
               chunk: int = 8192) -> torch.Tensor:
    """Eqs. 5-6 for the rows of ``z`` with neighbours ``bank[knn]``, in chunks of rows (the
    refresh and :meth:`deepclust.methods.tdec.TDEC.predict` use this same function, so they agree
    exactly)."""
    with torch.no_grad():
        return torch.cat([
            neighbor_assignment(z[i : i + chunk], bank[knn[i : i + chunk]], centers)
            for i in range(0, len(z), chunk)
        ])


def head_assign(z_v: torch.Tensor, n_clusters: int, *, n_neighbors: int, neighbor_rate: float,
                seed: int, previous: np.ndarray | None = None, chunk: int = 8192) -> dict:
    """Clustering head over the whole set: density-peak centres (eqs. 2-4), kNN lists and the
    neighbour-weighted assignments (eqs. 5-6). Under a process group the density peaks and kNN
    lists are computed on rank 0 and broadcast (``z_v`` is the same on every rank).

    ``previous`` (labels of the last refresh): the centres are reordered so that each new
    cluster keeps the identity of the previous cluster it matches best
    (:func:`deepclust.cluster.matching.match_to_previous`, on rank 0, broadcast); None keeps the
    density-peak order (decreasing gamma)."""
    Z = z_v.detach().cpu().double().numpy()
    k = int(min(n_neighbors, len(Z) - 1))

    def peaks_and_knn():
        dp = density_peaks(Z, n_clusters, neighbor_rate=neighbor_rate, random_state=seed)
        return dp.centers, knn_indices(Z, k), np.asarray(dp.dc, dtype=np.float64)

    center_index, knn_np, dc = ddp.run_on_rank0(peaks_and_knn)
    knn = torch.from_numpy(knn_np).to(z_v.device)  # (n, k)
    centers = z_v[torch.from_numpy(center_index).to(z_v.device)]  # (K, c)
    q = neighbor_q(z_v, z_v, knn, centers, chunk)
    if previous is not None:
        labels = q.argmax(1).cpu().numpy()
        order = ddp.run_on_rank0(lambda: match_to_previous(previous, labels, n_clusters))
        center_index = center_index[order]
        order_t = torch.from_numpy(order).to(z_v.device)
        centers, q = centers[order_t], q[:, order_t]
    return {"q": q, "centers": centers, "knn": knn, "bank": z_v.detach().clone(), "dc": float(dc),
            "center_index": center_index}


def head_predict(z: torch.Tensor, bank: np.ndarray, centers: np.ndarray, *, n_neighbors: int) -> torch.Tensor:
    """Eqs. 5-6 for new points ``z`` (B, c) against a fitted clustering space: the training
    embeddings ``bank`` (n, c) and the centres ``centers`` (K, c), on ``z``'s device. Each point's
    k neighbours are the k nearest training embeddings (k as in the fit: ``min(n_neighbors,
    n - 1)``); a point whose embedding coincides with a training embedding (distance exactly 0: a
    training sample) is that sample and is left out of its own neighbours, as in the fit (eq. 5
    would give it a weight of ~1e12 and eq. 6 would collapse to its own kernel)."""
    k = int(min(n_neighbors, len(bank) - 1))
    knn = knn_query(bank, z.detach().cpu().double().numpy(), k)
    bank_t = torch.from_numpy(bank).to(z.device)
    centers_t = torch.from_numpy(centers).to(z.device)
    return neighbor_q(z, bank_t, torch.from_numpy(knn).to(z.device), centers_t)
