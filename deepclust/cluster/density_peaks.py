"""Density peaks (Rodriguez & Laio, 2014) as TDEC's clustering head, without an n x n matrix.

TDEC (sec. 3.2) picks the K cluster centres in its 2-D clustering space as density peaks:

* eq. 2, Gaussian density ``rho_i = sum_j exp(-||z_i - z_j||^2 / dc^2)`` (the sum includes
  ``j = i``, as written), with ``dc`` set so that the average number of neighbours closer than
  ``dc`` is 2% of n (Rodriguez & Laio's rule: ``dc`` is the 2% quantile of pairwise distances);
* eq. 3, ``delta_i`` = distance to the nearest point of strictly higher density, or the largest
  distance to any point for a point with no denser point;
* eq. 4, ``gamma_i = rho_i * delta_i``; the K largest gammas are the centres.

Then it assigns by the neighbour-weighted Student-t kernel (eqs. 5-6, :func:`neighbor_assignment`)
over each point's k nearest *other* points (:func:`knn_indices` for the fitted set,
:func:`knn_query` for the prediction of any points against it).

Scalable computation (``method="fast"``; memory O(n), never an n x n array):

* ``dc``: the exact quantile while n(n-1)/2 <= ``max_pairs`` (2,000,000), else the quantile of
  ``max_pairs`` random distinct pairs (an unbiased estimate; ``random_state`` fixes it).
* ``rho``: all neighbours within ``truncate * dc`` are summed (and some farther ones). Each term
  left out is below
  ``exp(-truncate^2)`` (truncate = 4: 1.1e-7), so ``rho`` is low by at most
  ``n * exp(-truncate^2)`` (0.008 at n = 70,000) against a density of at least 1. The
  candidates are the 3 x 3 cells of a grid of cell size ``truncate * dc`` on the first two
  coordinates (points sorted by cell; each neighbouring column is one contiguous range);
  distances are evaluated in blocks of at most ``block`` entries (one ``addmm`` + ``exp`` per
  block), in float64 up to 20,000 points and float32 above. ``truncate=None`` sums every
  term (exact, O(n^2) time, still O(n) memory).
* ``delta``: a kNN search (scipy cKDTree) gives, for most points, the nearest denser point among
  the ``k_delta`` nearest neighbours, which *is* the nearest denser point overall (the list is
  sorted by distance). The few points with no denser point among them (local maxima) fall back
  to a blocked exact search over all points.

``method="exact"`` is the direct O(n^2) definition (n <= 20,000), kept as the faithful reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepclust.training import fp32_under_autocast

__all__ = [
    "DensityPeaks",
    "choose_dc",
    "local_density",
    "nearest_denser",
    "density_peaks",
    "knn_indices",
    "knn_query",
    "neighbor_assignment",
]


@dataclass(frozen=True)
class DensityPeaks:
    """Result of :func:`density_peaks`.

    centers : (K,) indices of the centres, by decreasing gamma.
    rho, delta, gamma : (n,) eqs. 2-4.
    nearest_higher : (n,) index of the nearest denser point (-1 for a point with none).
    dc : the bandwidth used.
    """

    centers: np.ndarray
    rho: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    nearest_higher: np.ndarray
    dc: float


def _as_points(Z) -> np.ndarray:
    if isinstance(Z, torch.Tensor):
        Z = Z.detach().cpu().numpy()
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise ValueError(f"Z must be (n_points >= 2, n_dims), got shape {Z.shape}")
    if not np.isfinite(Z).all():
        raise ValueError("Z contains NaN or infinite coordinates")
    return np.ascontiguousarray(Z)


def choose_dc(
    Z,
    neighbor_rate: float = 0.02,
    *,
    max_pairs: int = 2_000_000,
    random_state: int | np.random.Generator | None = 0,
) -> float:
    """Bandwidth ``dc``: the ``neighbor_rate`` quantile of the pairwise distances.

    Then on average ``neighbor_rate * (n - 1)`` points lie within ``dc`` of a point (TDEC: 2%).
    Exact while the number of pairs is at most ``max_pairs``; otherwise estimated from
    ``max_pairs`` random distinct pairs drawn from ``random_state``.
    """
    Z = _as_points(Z)
    if not 0 < neighbor_rate < 1:
        raise ValueError(f"neighbor_rate must be in (0, 1), got {neighbor_rate}")
    n = Z.shape[0]
    if n * (n - 1) // 2 <= max_pairs:
        from scipy.spatial.distance import pdist

        d = pdist(Z)
    else:
        rng = np.random.default_rng(random_state)
        i = rng.integers(0, n, size=max_pairs)
        j = (i + rng.integers(1, n, size=max_pairs)) % n  # j != i
        d = np.sqrt(((Z[i] - Z[j]) ** 2).sum(1))
    dc = float(np.quantile(d, neighbor_rate))
    if dc <= 0:  # many duplicates: fall back to the smallest positive distance
        pos = d[d > 0]
        if pos.size == 0:
            raise ValueError("all points of Z coincide; density peaks are undefined")
        dc = float(pos.min())
    return dc


def _grid_ranges(P: np.ndarray, radius: float) -> tuple[np.ndarray, list]:
    """Sort points by a grid of cell size ``radius`` over their first two coordinates.

    Returns ``(order, cells)``: ``cells`` lists, per occupied cell, its ``(start, stop)`` in the
    sorted order and the (start, stop) ranges of the 3 x 3 block of cells around it (three
    contiguous ranges, one per neighbouring column). Every point within ``radius`` of a cell's
    point lies in that block (necessary condition on the first two coordinates).
    """
    xy = P[:, :2] if P.shape[1] >= 2 else np.concatenate([P, np.zeros_like(P)], 1)
    cell = np.floor((xy - xy.min(0)) / radius).astype(np.int64) + 1  # >= 1, so cy - 1 >= 0
    ny = int(cell[:, 1].max()) + 2
    key = cell[:, 0] * ny + cell[:, 1]
    order = np.argsort(key, kind="stable")
    skey = key[order]
    uniq, starts = np.unique(skey, return_index=True)
    stops = np.append(starts[1:], len(skey))
    cx, cy = uniq // ny, uniq % ny
    cells = []
    for u in range(len(uniq)):
        nb = []
        for dx in (-1, 0, 1):
            lo_key = (cx[u] + dx) * ny + cy[u] - 1
            lo = int(np.searchsorted(skey, lo_key, side="left"))
            hi = int(np.searchsorted(skey, lo_key + 2, side="right"))
            if hi > lo:
                nb.append((lo, hi))
        cells.append((int(starts[u]), int(stops[u]), nb))
    return order, cells


def local_density(
    Z,
    dc: float,
    *,
    truncate: float | None = 4.0,
    block: int = 1 << 22,
    query_chunk: int = 2048,
    dtype: torch.dtype = torch.float64,
) -> np.ndarray:
    """Eq. 2, ``rho_i = sum_j exp(-||z_i - z_j||^2 / dc^2)``, in O(n) memory.

    Every term with ``||z_i - z_j|| <= truncate * dc`` is summed; terms farther away (each below
    ``exp(-truncate^2)``) may be skipped, so ``rho`` is low by at most ``n * exp(-truncate^2)``
    (module note). Candidates come from a grid of cell size ``truncate * dc`` on the first two
    coordinates (the 3 x 3 cells around each cell). ``truncate=None`` sums all terms.
    ``dtype=torch.float32`` halves the time on large n (relative error ~1e-6).
    """
    Z = _as_points(Z)
    if not dc > 0:
        raise ValueError(f"dc must be > 0, got {dc}")
    n = Z.shape[0]
    if truncate is None:
        order, cells = np.arange(n), [(0, n, [(0, n)])]
    else:
        order, cells = _grid_ranges(Z, float(truncate) * dc)
    Zs = torch.from_numpy(Z[order] / dc).to(dtype)  # units of dc: the kernel is exp(-d^2)
    sq = Zs.pow(2).sum(1)  # (n,)
    rho_sorted = torch.zeros(n, dtype=torch.float64)
    for start, stop, ranges in cells:
        cand = torch.cat([torch.arange(lo, hi) for lo, hi in ranges]) if len(ranges) > 1 else None
        Zc = Zs[cand] if cand is not None else Zs[ranges[0][0] : ranges[0][1]]
        sqc = sq[cand] if cand is not None else sq[ranges[0][0] : ranges[0][1]]
        for a in range(start, stop, query_chunk):
            b = min(stop, a + query_chunk)
            q, sq_q = Zs[a:b], sq[a:b]
            step = max(1, block // (b - a))
            acc = torch.zeros(b - a, dtype=dtype)
            for c in range(0, len(Zc), step):
                e = min(len(Zc), c + step)
                # -d^2 = 2 q.x - |q|^2 - |x|^2, clamped at 0 against rounding; (b-a, e-c)
                w = torch.addmm(sq_q[:, None] + sqc[None, c:e], q, Zc[c:e].T, beta=-1.0, alpha=2.0)
                acc += w.clamp_(max=0.0).exp_().sum(1)
            rho_sorted[a:b] = acc.to(torch.float64)
    rho = np.empty(n)
    rho[order] = rho_sorted.numpy()
    return rho


def nearest_denser(
    Z, rho: np.ndarray, *, k: int = 32, block: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 3: ``(delta, nearest_higher)`` by a kNN search with an exact fallback.

    ``nearest_higher[i]`` is -1 where no point is strictly denser; there ``delta_i`` is the
    largest distance from ``z_i`` to any point.
    """
    from scipy.spatial import cKDTree

    Z = _as_points(Z)
    rho = np.asarray(rho, dtype=np.float64)
    n = Z.shape[0]
    kk = int(min(n, k + 1))
    dist, idx = cKDTree(Z).query(Z, k=kk)  # (n, kk), sorted by distance, self usually first
    dist, idx = dist.reshape(n, kk), idx.reshape(n, kk)
    denser = rho[idx] > rho[:, None]  # self is never strictly denser than itself
    found = denser.any(1)
    first = denser.argmax(1)
    rows = np.arange(n)
    delta = np.where(found, dist[rows, first], 0.0)
    nearest = np.where(found, idx[rows, first], -1).astype(np.int64)
    todo = np.flatnonzero(~found)
    if todo.size:
        Zt = torch.from_numpy(Z)
        rho_t = torch.from_numpy(rho)
        chunk = max(1, block // n)
        for a in range(0, todo.size, chunk):
            sel = todo[a : a + chunk]
            d = torch.cdist(Zt[sel], Zt)  # (chunk, n)
            mask = rho_t[None, :] > rho_t[sel][:, None]
            has = mask.any(1)
            dmin, amin = d.masked_fill(~mask, float("inf")).min(1)
            dmax = d.max(1).values
            delta[sel] = torch.where(has, dmin, dmax).numpy()
            nearest[sel] = torch.where(has, amin, torch.full_like(amin, -1)).numpy()
    return delta, nearest


def _density_peaks_exact(Z: np.ndarray, dc: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eqs. 2-3 straight from the definition with the full n x n distance matrix."""
    if Z.shape[0] > 20_000:
        raise ValueError(
            f"method='exact' builds an n x n matrix; n={Z.shape[0]} is too large, use method='fast'"
        )
    Zt = torch.from_numpy(Z)
    D = torch.cdist(Zt, Zt)  # (n, n)
    rho = torch.exp(-(D**2) / dc**2).sum(1)  # eq. 2
    higher = rho[None, :] > rho[:, None]  # higher[i, j]: rho_j > rho_i
    has = higher.any(1)
    dmin, amin = D.masked_fill(~higher, float("inf")).min(1)
    delta = torch.where(has, dmin, D.max(1).values)  # eq. 3
    nearest = torch.where(has, amin, torch.full_like(amin, -1))
    return rho.numpy(), delta.numpy(), nearest.numpy().astype(np.int64)


def density_peaks(
    Z,
    n_clusters: int,
    *,
    dc: float | None = None,
    neighbor_rate: float = 0.02,
    method: str = "fast",
    truncate: float | None = 4.0,
    k_delta: int = 32,
    random_state: int | np.random.Generator | None = 0,
) -> DensityPeaks:
    """The K density peaks of ``Z`` (n, d): eqs. 2-4 of TDEC.

    Parameters
    ----------
    Z : array (n, d)
        Points (TDEC: the 2-D clustering space).
    n_clusters : int
        K, the number of centres (largest ``gamma = rho * delta``; ties by lower index).
    dc : float, optional
        Bandwidth; by default :func:`choose_dc` with ``neighbor_rate``.
    method : {"fast", "exact"}
        ``fast``: O(n) memory (module note); ``exact``: the n x n definition (n <= 20,000).
    truncate, k_delta
        See :func:`local_density` and :func:`nearest_denser`.
    """
    Z = _as_points(Z)
    n = Z.shape[0]
    if not 1 <= int(n_clusters) <= n:
        raise ValueError(f"n_clusters must be in [1, n={n}], got {n_clusters}")
    if dc is None:
        dc = choose_dc(Z, neighbor_rate, random_state=random_state)
    if method == "exact":
        rho, delta, nearest = _density_peaks_exact(Z, float(dc))
    elif method == "fast":
        dtype = torch.float32 if n > 20_000 else torch.float64
        rho = local_density(Z, float(dc), truncate=truncate, dtype=dtype)
        delta, nearest = nearest_denser(Z, rho, k=k_delta)
    else:
        raise ValueError(f"method must be 'fast' or 'exact', got {method!r}")
    gamma = rho * delta  # eq. 4
    centers = np.argsort(-gamma, kind="stable")[: int(n_clusters)]
    return DensityPeaks(centers.astype(np.int64), rho, delta, gamma, nearest, float(dc))


def knn_indices(Z, k: int) -> np.ndarray:
    """(n, k) indices of each point's k nearest *other* points (scipy cKDTree), nearest first."""
    from scipy.spatial import cKDTree

    Z = _as_points(Z)
    n = Z.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n-1={n - 1}], got {k}")
    _, idx = cKDTree(Z).query(Z, k=k + 1)
    idx = idx.reshape(n, k + 1)
    is_self = idx == np.arange(n)[:, None]
    no_self = ~is_self.any(1)
    is_self[no_self, -1] = True  # a duplicate pushed self out of the list: drop the farthest
    first_self = is_self.argmax(1)
    keep = np.ones_like(is_self)
    keep[np.arange(n), first_self] = False
    return idx[keep].reshape(n, k).astype(np.int64)


def knn_query(bank, Z, k: int) -> np.ndarray:
    """(m, k) indices of the k nearest ``bank`` points of each row of ``Z``, nearest first.

    A query that coincides with a bank point (distance exactly 0) is taken to *be* that point and
    is left out of its own list, as :func:`knn_indices` leaves each point out of its own: the
    ``k + 1`` nearest are looked up and the first is dropped where its distance is 0, else the
    last. So ``knn_query(Z, Z, k)`` gives each point the neighbours of ``knn_indices(Z, k)`` (the
    same indices; with exact duplicates possibly the duplicate's index instead of the point's
    own, which has the same coordinates), and a new point keeps its k nearest bank points.
    """
    from scipy.spatial import cKDTree

    bank = _as_points(bank)
    Z = np.asarray(Z.detach().cpu().numpy() if isinstance(Z, torch.Tensor) else Z, dtype=np.float64)
    n = bank.shape[0]
    if Z.ndim != 2 or Z.shape[1] != bank.shape[1]:
        raise ValueError(f"Z must be (m, {bank.shape[1]}) like the bank, got shape {Z.shape}")
    if not np.isfinite(Z).all():
        raise ValueError("Z contains NaN or infinite coordinates")
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n_bank-1={n - 1}], got {k}")
    m = Z.shape[0]
    if m == 0:
        return np.zeros((0, k), dtype=np.int64)
    dist, idx = cKDTree(bank).query(Z, k=k + 1)
    dist, idx = dist.reshape(m, k + 1), idx.reshape(m, k + 1)
    drop = np.where(dist[:, 0] == 0.0, 0, k)  # itself (distance 0) or the (k+1)-th nearest
    keep = np.ones(idx.shape, dtype=bool)
    keep[np.arange(m), drop] = False
    return idx[keep].reshape(m, k).astype(np.int64)


@fp32_under_autocast  # a Student-t kernel and a normalisation: fp32 under bf16 autocast
def neighbor_assignment(
    z: torch.Tensor, neighbors: torch.Tensor, centers: torch.Tensor, *, eps: float = 1e-12
) -> torch.Tensor:
    """TDEC eqs. 5-6: soft assignment of each point through its k neighbours.

    Parameters
    ----------
    z : (B, d)
        The points being assigned (gradients flow through the weights of eq. 5).
    neighbors : (B, k, d)
        The embeddings of each point's k nearest neighbours.
    centers : (K, d)
        Cluster centres c_t.

    Returns
    -------
    q : (B, K), rows summing to one, with
        ``theta_i(s) = ||z_s - z_i||^-2 / sum_s' ||z_s' - z_i||^-2``   (eq. 5) and
        ``q_it ∝ sum_s theta_i(s) (1 + ||z_s - c_t||^2)^-1``           (eq. 6).
    A neighbour at distance 0 gets the weight of distance ``sqrt(eps)``.
    """
    if neighbors.ndim != 3 or neighbors.shape[0] != z.shape[0] or neighbors.shape[2] != z.shape[1]:
        raise ValueError(
            f"neighbors must be (B, k, d) matching z (B, d)={tuple(z.shape)}, "
            f"got {tuple(neighbors.shape)}"
        )
    inv = 1.0 / (neighbors - z[:, None, :]).pow(2).sum(-1).clamp_min(eps)  # (B, k)
    theta = inv / inv.sum(1, keepdim=True)  # eq. 5
    B, k, d = neighbors.shape
    d2 = torch.cdist(neighbors.reshape(B * k, d), centers).pow(2).reshape(B, k, -1)  # (B, k, K)
    kern = 1.0 / (1.0 + d2)
    num = (theta[:, :, None] * kern).sum(1)  # (B, K), eq. 6 numerator
    return num / num.sum(1, keepdim=True)
