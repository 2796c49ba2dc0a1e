"""FINCH: parameter-free clustering by first-neighbour relations (Sarfraz et al., CVPR 2019).

The algorithm (SCDSC paper eq. 1; FINCH paper eq. 1):

1. find the first (nearest, non-self) neighbour ``kappa_i`` of every point;
2. link ``i`` and ``j`` when ``j = kappa_i``, ``kappa_j = i`` or ``kappa_i = kappa_j``; the
   connected components of that graph are the clusters of this level. They are exactly the weakly
   connected components of the directed 1-NN graph ``i -> kappa_i`` (sharing a first neighbour
   means being linked through it), so only ``n`` edges are ever stored;
3. replace every cluster by the mean of its points and repeat on the means;
4. stop when a level merges at most one pair (or leaves one cluster); that level is dropped.

Above ``ann_threshold`` points (default 200,000; ``exact=True`` forces exact search) the 1-NN
search uses an approximate faiss ``IndexIVFFlat`` (:func:`approx_first_neighbors`): exact search
is O(n^2 d) time, e.g. ~10^15 flops for 1M points of 300 dimensions. Its recall@1 against exact
search is measured on a seeded random sample of queries and reported per level.

Memory is O(n): the 1-NN search runs in blocks (numpy BLAS products or faiss ``IndexFlat``),
never an ``n x n`` matrix. The widely used implementation (``finch-clust``) builds the dense
distance matrix (about 7 GB in float32 / 15 GB in float64 for 42,776 points).

Compatibility with ``finch-clust`` (its exact mode, ``n <= ann_threshold``): the partitions are
identical at every level, including the label numbering (components are numbered by scipy's
``connected_components`` in both) and the stopping rule, also on data whose cosine distances are
tiny and nearly tied (a large common offset, as raw spectra have). That needs the same first
neighbours bit for bit, so the default search computes the same numbers as ``finch-clust``:

* the input is cast to float32 first (``finch-clust`` does; a float64 input searched in float64
  picks other neighbours among near ties);
* cosine distances are scikit-learn's (``normalize``, a BLAS product, ``clip(1 - S, 0, 2)``)
  rounded to float32, ties to the smallest index (:func:`_first_neighbors_blas`). Normalising
  the rows another way (we used ``torch``'s norm) changes the last bit of ~30 % of the rows;
  with distances ~1e-4 resolved to ~6e-8 in float32, that flipped 6 of 15,000 first neighbours
  of 10 offset Gaussian blobs (ARI 0.996 at level 0, and 0.84 at level 1 through the means);
* cluster means are float32 sums (scipy's sparse product, as ``finch-clust``) divided by the
  counts in float64; their float64 distances are rounded to float32, which makes exact ties.

Two notes:

* ``ensure_early_exit`` in ``finch-clust`` zeroes the pruned edges of a CSR matrix, but scipy's
  csgraph treats explicit zeros in a sparse matrix as edges, so with the installed scipy the
  pruning has no effect. We therefore default to ``ensure_early_exit=False`` (same partitions) and
  implement the pruning as the FINCH paper meant it when ``ensure_early_exit=True``: from level 1
  on, links longer than the largest first-neighbour distance of level 0 are dropped.
* ``req_clust`` follows FINCH's procedure: start from the last level with more than
  ``req_clust`` clusters and merge the closest first-neighbour pair (its two shortest edges),
  recomputing the neighbours of the means, until ``req_clust`` clusters remain.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse import csgraph

from deepclust.base import DeepClusterer

__all__ = ["finch", "first_neighbors", "approx_first_neighbors", "minicluster_index", "FINCH"]

#: Default number of points above which the first-neighbour search goes approximate.
ANN_THRESHOLD = 200_000

Metric = Literal["cosine", "euclidean"]

#: Budget (bytes) of one block of the distance matrix in the blocked searches.
_BLOCK_BYTES = 64 * 2**20


def _check_metric(metric: str) -> None:
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


def first_neighbors(
    X: np.ndarray,
    *,
    metric: Metric = "cosine",
    backend: Literal["blas", "torch", "faiss"] = "blas",
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Index and distance of every point's first (nearest non-self) neighbour.

    Parameters
    ----------
    X : (n, d) array, n >= 2
    metric : "cosine" (``1 - cos``) or "euclidean"
    backend : "blas" (default), "torch" (the same search, its former name) or "faiss"
        ``"blas"``: exact blocked search that reproduces ``finch-clust``'s dense computation
        bit for bit (see :func:`_first_neighbors_blas`): distances as scikit-learn's
        ``pairwise_distances`` computes them in ``X``'s precision, rounded to float32, ties to
        the smallest index. ``"faiss"``: blocked ``IndexFlat`` search in float32; exact up to
        float32 rounding, but it rounds differently, so nearly tied neighbours (tiny cosine
        distances, as on data with a large common offset) can be resolved differently.
    block_rows : int, optional
        Rows per block. Cosine ``"blas"``: square blocks of at most ``max(block_rows, 2048)``
        and at least 1024 rows (one block when ``n`` is smaller), 2048 by default (16 MB in
        float32); euclidean ``"blas"`` and ``"faiss"``: row blocks of ~64 MB by default.

    Returns
    -------
    nn : (n,) int64
    dist : (n,) float32 for ``"blas"`` (exactly ``finch-clust``'s values), float64 for
        ``"faiss"``
    """
    _check_metric(metric)
    X = np.asarray(X)
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"first neighbours need at least 2 points, got {n}")
    if backend == "faiss":
        rows = block_rows or max(1, min(n, _BLOCK_BYTES // (8 * n)))
        return _first_neighbors_faiss(X, metric, rows)
    if backend not in ("blas", "torch"):
        raise ValueError(f"backend must be 'blas', 'torch' or 'faiss', got {backend!r}")
    return _first_neighbors_blas(X, metric, block_rows)


#: Smallest side of an off-diagonal block in the ``"blas"`` search. OpenBLAS computes products
#: below ~10^6 multiply-adds with a different kernel (and a matrix-vector product for one row),
#: whose float32 results differ in the last bit from the large-matrix kernel's.
_MIN_BLOCK = 1024


def _blocks(n: int, side: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into near-equal blocks of at most ``side`` (>= side / 2) rows."""
    k = -(-n // side)
    edges = [round(i * n / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _first_neighbors_blas(
    X: np.ndarray, metric: str, block_rows: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact first neighbours, bit for bit as ``finch-clust``'s dense computation, in O(n) memory.

    ``finch-clust`` (exact mode) computes ``D = sklearn.metrics.pairwise_distances(X, X)``, casts
    it to float32, puts 1e12 on the diagonal and takes ``argmin`` (first index of the minimum).
    For cosine, scikit-learn scales the rows by ``sklearn.preprocessing.normalize`` (in ``X``'s
    precision), multiplies with numpy's BLAS (``Xn @ Xn.T``: a ``syrk``, symmetric) and returns
    ``clip(1 - S, 0, 2)``. On data with a large common offset the cosine distances are tiny
    (1e-4) and nearly tied: in float32 ``1 - S`` resolves them only to ~6e-8, so neighbours
    whose distances differ by one rounding step are common, and exact float32 ties too. Any
    other rounding (another normalisation, another matmul summation order such as torch's or
    faiss's, float64 instead of float32) or another tie rule picks a different first neighbour
    for some points, and FINCH's partitions change (ARI 0.996 at level 0 and 0.84 at level 1 on
    10 offset Gaussian blobs). So this search computes the same numbers:

    * rows scaled by scikit-learn's own ``normalize``; products by numpy's BLAS, in square
      blocks ``Xn[I] @ Xn[J].T``. In float32 (level 0) OpenBLAS gives every product the same
      bits as the whole ``syrk`` as long as every block is large (>= 1024 rows, see
      ``_MIN_BLOCK``) or a diagonal block (itself a ``syrk``); checked on random shapes with
      ``M N K > 10^6``. In float64 (levels >= 1 search float64 cluster means) ``dgemm`` treats
      some column tails differently from ``dsyrk``: ~0.1 % of the products differ in the last
      float64 bit, which survives the rounding to float32 only when the value sits on a float32
      rounding boundary (~1e-8 chance per product);
    * ``1 - S`` and the clip in ``X``'s precision, then float32 (``finch-clust`` rounds float64
      distances to float32, which creates exact ties);
    * ties to the smallest index, as ``np.argmin``.

    The distance matrix is symmetric (``syrk``), so only blocks with ``J >= I`` are computed:
    each serves the rows of ``I`` (row minima) and those of ``J`` (column minima). Euclidean
    distances follow scikit-learn's formula (``-2 X Y^T + |x|^2 + |y|^2`` in float64, then
    ``max(0)``, ``sqrt``, float32) in row blocks; their float64 rounding can differ from
    scikit-learn's in the last bit, which survives the cast to float32 only with probability
    ~2^-29 per pair.
    """
    from sklearn.preprocessing import normalize

    n = X.shape[0]
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X = np.ascontiguousarray(X)
    best = np.full(n, np.inf, dtype=np.float32)
    arg = np.full(n, n, dtype=np.int64)
    if metric == "euclidean":
        return _euclidean_rows(X, block_rows, best, arg)
    Xn = normalize(X)  # scikit-learn's row scaling, in X's precision
    side = max(int(block_rows or 0), 2 * _MIN_BLOCK)
    blocks = _blocks(n, side) if n > side else [(0, n)]
    pairs = [(s, e, t, u) for i, (s, e) in enumerate(blocks) for t, u in blocks[i:]]
    for part in _map_blocks(lambda p: _cosine_block(Xn, *p), pairs):
        for args in part:
            _keep_better(best, arg, *args)
    return arg, best


def _cosine_block(Xn: np.ndarray, s: int, e: int, t: int, u: int) -> list[tuple]:
    """Row (and, off the diagonal, column) minima of the distance block ``(s:e, t:u)``."""
    S = Xn[s:e] @ Xn[t:u].T  # (e - s, u - t); a syrk when t == s
    np.subtract(1.0, S, out=S)  # = sklearn's S *= -1; S += 1, in X's precision
    np.clip(S, 0.0, 2.0, out=S)
    D = S.astype(np.float32, copy=False)  # finch-clust's cast
    if t == s:
        np.fill_diagonal(D, np.inf)
    j = D.argmin(axis=1)  # first index of each row's minimum
    out = [(s, e, D[np.arange(e - s), j], j + t)]
    if t != s:  # the same block, read by columns, serves the rows of J
        cmin = D.min(axis=0)  # (argmin along axis 0 is slow in numpy)
        r, c = np.divmod(np.flatnonzero(D == cmin), u - t)  # row-major order, so
        _, first = np.unique(c, return_index=True)  # each column's first hit first
        out.append((t, u, cmin, r[first] + s))
    return out


def _map_blocks(fn, items: list) -> list:
    """``[fn(x) for x in items]``, on as many threads as numpy's BLAS may use.

    Whole blocks go to the threads, each block's product on one BLAS thread: the reductions
    between products run in parallel too, and no BLAS thread spins waiting for a core that
    another process holds. Results come back in order, so the output does not depend on the
    number of threads (and a product's bits do not depend on BLAS threading)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    workers = min(len(items), min(blas) if blas else 1)
    if workers <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _euclidean_rows(
    X: np.ndarray, block_rows: int | None, best: np.ndarray, arg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean first neighbours with scikit-learn's formula, in row blocks (see above)."""
    from sklearn.utils.extmath import row_norms

    n = X.shape[0]
    X64 = X.astype(np.float64, copy=False)
    sq = row_norms(X64, squared=True)
    single = X.dtype == np.float32
    rows = int(block_rows) if block_rows else _BLOCK_BYTES // (8 * n)
    rows = max(rows, 64)  # no matrix-vector products (see _MIN_BLOCK)
    for s, e in _blocks(n, rows) if n > rows else [(0, n)]:
        D = X64[s:e] @ X64.T
        D *= -2.0
        D += sq[s:e, None]
        D += sq[None, :]
        if single:  # sklearn's float32 path rounds before max(0) and sqrt
            D = D.astype(np.float32)
        np.maximum(D, 0.0, out=D)
        np.sqrt(D, out=D)
        D = D.astype(np.float32, copy=False)
        D[np.arange(e - s), np.arange(s, e)] = np.inf
        j = D.argmin(axis=1)
        _keep_better(best, arg, s, e, D[np.arange(e - s), j], j)
    return arg, best


def _keep_better(
    best: np.ndarray, arg: np.ndarray, s: int, e: int, d: np.ndarray, j: np.ndarray
) -> None:
    """Update rows ``s:e`` with candidates ``(d, j)``: smaller distance, then smaller index."""
    bd, bj = best[s:e], arg[s:e]
    better = (d < bd) | ((d == bd) & (j < bj))
    bd[better] = d[better]
    bj[better] = j[better]


def _first_neighbors_faiss(
    X: np.ndarray, metric: str, block_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    Y = np.ascontiguousarray(X, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(Y, axis=1, keepdims=True)
        Y = Y / np.where(norms > 0, norms, 1.0).astype(np.float32)
        index = faiss.IndexFlatIP(Y.shape[1])
    else:
        index = faiss.IndexFlatL2(Y.shape[1])
    index.add(Y)
    n = Y.shape[0]
    k = min(n, 4)  # self plus a few, to break ties by the smallest index like np.argmin
    nn = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float64)
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        s, i = index.search(Y[start:stop], k)  # (b, k)
        d = (
            (1.0 - s.astype(np.float64)).clip(0.0, 2.0)
            if metric == "cosine"
            else np.sqrt(s.clip(0.0).astype(np.float64))
        )
        own = i == np.arange(start, stop)[:, None]
        d[own | (i < 0)] = np.inf
        # smallest distance, ties to the smallest index
        dmin = d.min(axis=1)
        cand = np.where(d == dmin[:, None], i, np.iinfo(np.int64).max)
        nn[start:stop] = cand.min(axis=1)
        dist[start:stop] = dmin
    return nn, dist


def approx_first_neighbors(
    X: np.ndarray,
    *,
    metric: Metric = "cosine",
    nlist: int | None = None,
    nprobe: int = 16,
    n_recall: int = 1000,
    seed: int = 0,
    block_rows: int = 65536,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Approximate first (non-self) neighbours with a faiss inverted-file index (IVF-Flat).

    The coarse quantiser (``nlist`` k-means centres, default ``4 sqrt(n)``) is trained on a
    seeded sample of ``64 nlist`` points; each query scans the ``nprobe`` nearest lists with
    exact distances. Points whose probed lists hold no other point fall back to exact search.
    The recall@1 is measured on ``n_recall`` seeded random queries against exact search (a hit
    is a returned neighbour at the exact first-neighbour distance, so ties count as hits).

    Returns
    -------
    nn : (n,) int64 ; dist : (n,) float64 ; info : dict (method, nlist, nprobe, recall_at_1,
    n_recall_queries, n_fallback)
    """
    import faiss

    _check_metric(metric)
    Y = np.ascontiguousarray(X, dtype=np.float32)
    n, dim = Y.shape
    if metric == "cosine":
        norms = np.linalg.norm(Y, axis=1, keepdims=True)
        Y = Y / np.where(norms > 0, norms, 1.0).astype(np.float32)
    nlist = int(nlist) if nlist is not None else int(min(65536, max(16, 4 * np.sqrt(n))))
    nlist = max(1, min(nlist, n // 4))
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    quant = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quant, dim, nlist, faiss_metric)
    rng = np.random.default_rng(seed)
    train = Y[np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))]
    index.cp.seed = int(seed)
    index.train(train)
    del train
    index.add(Y)
    index.nprobe = int(min(nprobe, nlist))

    def to_dist(s: np.ndarray) -> np.ndarray:
        s = s.astype(np.float64)
        return (1.0 - s).clip(0.0, 2.0) if metric == "cosine" else np.sqrt(s.clip(0.0))

    k = 3  # self plus two: skips the point itself even when a duplicate ranks first
    nn = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float64)
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        s, i = index.search(Y[start:stop], k)  # (b, k)
        d = to_dist(s)
        d[(i == np.arange(start, stop)[:, None]) | (i < 0)] = np.inf
        j = d.argmin(axis=1)
        nn[start:stop] = i[np.arange(stop - start), j]
        dist[start:stop] = d[np.arange(stop - start), j]
    lost = np.flatnonzero(~np.isfinite(dist))  # no other point in the probed lists
    if lost.size:
        flat = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
        flat.add(Y)
        s, i = flat.search(Y[lost], 2)
        d = to_dist(s)
        d[(i == lost[:, None]) | (i < 0)] = np.inf
        j = d.argmin(axis=1)
        nn[lost] = i[np.arange(lost.size), j]
        dist[lost] = d[np.arange(lost.size), j]
    # recall@1 on a sample of queries, against exact (flat) search over all points
    q = np.sort(rng.choice(n, size=min(n, int(n_recall)), replace=False))
    flat = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
    flat.add(Y)
    s, i = flat.search(Y[q], 2)
    d = to_dist(s)
    d[i == q[:, None]] = np.inf
    exact = d.min(axis=1)
    hits = (nn[q] == i[np.arange(q.size), d.argmin(axis=1)]) | (dist[q] <= exact + 1e-6)
    info = {
        "method": "faiss IVF-Flat",
        "n": int(n),
        "nlist": int(nlist),
        "nprobe": int(index.nprobe),
        "recall_at_1": float(hits.mean()),
        "n_recall_queries": int(q.size),
        "n_fallback": int(lost.size),
    }
    return nn, dist, info


def _search(X: np.ndarray, *, exact: bool, ann_threshold: int, seed: int, levels: list | None,
            **search) -> tuple[np.ndarray, np.ndarray]:
    """Exact blocked search, or the approximate one above ``ann_threshold`` points."""
    if not exact and X.shape[0] > int(ann_threshold):
        nn, dist, info = approx_first_neighbors(X, metric=search["metric"], seed=seed)
    else:
        nn, dist = first_neighbors(X, **search)
        info = {"method": "exact", "n": int(X.shape[0]), "recall_at_1": 1.0}
    if levels is not None:
        levels.append(info)
    return nn, dist


def _components(nn: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Weakly connected components of the 1-NN graph ``i -> nn[i]`` (edges where ``keep``)."""
    n = nn.shape[0]
    rows = np.arange(n)
    cols = nn
    if keep is not None:
        rows, cols = rows[keep], cols[keep]
    A = sp.csr_matrix((np.ones(rows.shape[0], dtype=np.float32), (rows, cols)), shape=(n, n))
    k, labels = csgraph.connected_components(
        A, directed=True, connection="weak", return_labels=True
    )
    return labels.astype(np.int64), int(k)


def _group_means(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, d) float64 mean of the rows of ``X`` in each group ``0..k-1`` (O(n d), no loops).

    Computed as ``finch-clust`` does, so that the next level searches the very same numbers:
    sums in ``X``'s precision (float32 in FINCH) by scipy's sparse product, accumulated in row
    order, then divided by the integer counts, which promotes to float64."""
    n = X.shape[0]
    A = sp.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), labels)), shape=(n, k))
    counts = np.bincount(labels, minlength=k)  # int64
    return np.asarray(A.T @ X) / counts[:, None]


def finch(
    X: np.ndarray,
    *,
    metric: Metric = "cosine",
    req_clust: int | None = None,
    ensure_early_exit: bool = False,
    backend: Literal["blas", "torch", "faiss"] = "blas",
    max_levels: int | None = None,
    block_rows: int | None = None,
    exact: bool = False,
    ann_threshold: int = ANN_THRESHOLD,
    seed: int = 0,
    info: dict | None = None,
) -> tuple[list[np.ndarray], list[int], np.ndarray | None]:
    """Every FINCH partition of ``X``.

    Parameters
    ----------
    X : (n, d) array
        Cast to float32 first, as ``finch-clust`` does (its partitions of a float64 array are
        those of the array rounded to float32; ours too).
    metric : "cosine" (FINCH's recommendation) or "euclidean"
    req_clust : int, optional
        Also return a partition with this many clusters (FINCH's ``req_clust`` procedure).
    ensure_early_exit : bool, default False
        Drop links longer than level 0's largest first-neighbour distance from level 1 on (see
        the module notes; ``finch-clust``'s version of this has no effect).
    backend : "blas" (exact, default; "torch" is its former name) or "faiss"
        How the blocked 1-NN search runs, see :func:`first_neighbors`. ``"blas"`` gives
        ``finch-clust``'s partitions exactly, nearly tied neighbours included.
    max_levels : int, optional
        Stop after this many levels (e.g. 2 when only the second partition is needed).
    block_rows : int, optional
        Rows per block of the 1-NN search.
    exact : bool, default False
        Force exact first-neighbour search at every size.
    ann_threshold : int, default 200_000
        Levels with more points than this use :func:`approx_first_neighbors` (faiss IVF-Flat).
    seed : int
        Seed of the approximate index's training sample and recall queries.
    info : dict, optional
        Filled with ``info["levels"]``: per search, its method, size and recall@1 (1.0 exact).

    Returns
    -------
    partitions : list of (n,) int64 arrays, finest first
    n_clusters : list of int, clusters per level
    requested : (n,) int64 array or None
    """
    _check_metric(metric)
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"FINCH needs at least 2 points, got {n}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values; remove or impute them first")
    X = np.asarray(X, dtype=np.float32, order="C")  # finch-clust's first step
    if req_clust is not None and (int(req_clust) < 1 or int(req_clust) > n):
        raise ValueError(
            f"req_clust must be between 1 and the number of points ({n}), got {req_clust}"
        )
    search = dict(metric=metric, backend=backend, block_rows=block_rows)
    levels: list = []
    if info is not None:
        info["levels"] = levels
    ann = dict(exact=exact, ann_threshold=ann_threshold, seed=seed, levels=levels)

    # level 0: first neighbours of the points themselves (eq. 1)
    nn, dist = _search(X, **ann, **search)
    labels, k = _components(nn)
    min_sim = float(dist.max()) if ensure_early_exit else None
    partitions = [labels]
    counts = [k]
    means = _group_means(X, labels, k)
    while max_levels is None or len(partitions) < max_levels:
        if k < 2:
            break
        nn, dist = _search(means, **ann, **search)
        keep = dist <= min_sim if min_sim is not None else None
        u, k_new = _components(nn, keep)
        merged = k - k_new
        if k_new == 1 or merged <= 1:  # FINCH drops this last level
            break
        labels = u[labels]
        partitions.append(labels)
        counts.append(k_new)
        k = k_new
        means = _group_means(X, labels, k)

    requested = None
    if req_clust is not None:
        req_clust = int(req_clust)
        if req_clust in counts:
            requested = partitions[counts.index(req_clust)]
        elif req_clust > counts[0]:
            requested = partitions[0]
        else:
            start = max(i for i, c in enumerate(counts) if c >= req_clust)
            requested = _merge_to(X, partitions[start], counts[start], req_clust, **search)
    return partitions, counts, requested


def minicluster_index(
    features: np.ndarray,
    *,
    level: int = 1,
    backend: str = "torch",
    exact: bool = False,
    ann_threshold: int = ANN_THRESHOLD,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """The partition (N,) of one FINCH level (cosine) of ``features``: SCDSC's mini-clusters
    (``level`` 1 = the partition after FINCH's second iteration, SCDSC section 4.4.1). Falls back
    to the coarsest available level with a warning when FINCH stops earlier.

    Above ``ann_threshold`` points FINCH's first-neighbour search uses an approximate faiss
    index (``exact=True`` forces the exact search); the recall@1 measured on a sample of
    queries is in the returned info (``finch_search``)."""
    search: dict = {}
    parts, counts, _ = finch(
        features,
        metric="cosine",
        max_levels=level + 1,
        backend=backend,
        exact=exact,
        ann_threshold=ann_threshold,
        seed=seed,
        info=search,
    )
    used = min(level, len(parts) - 1)
    if used != level:
        warnings.warn(
            f"FINCH produced only {len(parts)} level(s); using level {used} for the mini-clusters",
            stacklevel=2,
        )
    return parts[used], {
        "finch_levels": [int(c) for c in counts],
        "finch_level_used": used,
        "finch_search": search["levels"],
    }


def _merge_to(X: np.ndarray, labels: np.ndarray, k: int, req: int, **search) -> np.ndarray:
    """Merge the closest first-neighbour pair of cluster means until ``req`` clusters remain."""
    # relabel densely in order of first label value (as np.unique does)
    _, labels = np.unique(labels, return_inverse=True)
    for _ in range(k - req):
        kk = int(labels.max()) + 1
        if kk <= 1:
            break
        means = _group_means(X, labels, kk)
        nn, dist = first_neighbors(means, **search)
        # the two shortest 1-NN edges, as finch-clust picks them: numpy's default (unstable)
        # argsort of the same float32 distances, so that equal distances resolve alike
        two = np.argsort(dist)[:2]
        keep = np.zeros(kk, dtype=bool)
        keep[two] = True
        u, _ = _components(nn, keep)
        labels = u[labels]
    return labels


class FINCH(DeepClusterer):
    """FINCH clustering as an estimator.

    Parameters
    ----------
    n_clusters : int, optional
        When given, ``labels_`` is FINCH's ``req_clust`` partition with this many clusters;
        otherwise the level chosen by ``level``.
    level : int, default -1
        Which partition is ``labels_`` when ``n_clusters`` is None (0 = finest, -1 = coarsest).
    metric : "cosine" or "euclidean"
    ensure_early_exit : bool, default False
    backend : "blas" (exact; "torch" is its former name) or "faiss"
    exact : bool, default False
        Force exact first-neighbour search at any size.
    ann_threshold : int, default 200_000
        Above this many points the search is approximate (faiss IVF-Flat); the measured
        recall@1 per level is in ``diagnostics_["search"]``.
    random_state : int, optional
        Seeds the approximate index (training sample, recall queries); FINCH itself is
        deterministic.
    device, verbose
        Accepted for API symmetry (FINCH runs on the CPU).

    Attributes
    ----------
    labels_ : (n,) int64
    partitions_ : list of (n,) int64, every level, finest first
    n_clusters_per_level_ : list of int
    cluster_centers_ : (k, d) means of ``labels_``'s clusters (used by ``predict``)
    """

    input_kind = "vectors"

    def __init__(
        self,
        n_clusters: int | None = None,
        *,
        level: int = -1,
        metric: str = "cosine",
        ensure_early_exit: bool = False,
        backend: str = "blas",
        exact: bool = False,
        ann_threshold: int = ANN_THRESHOLD,
        random_state: int | None = None,
        device: str = "cpu",
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.level = level
        self.metric = metric
        self.ensure_early_exit = ensure_early_exit
        self.backend = backend
        self.exact = exact
        self.ann_threshold = ann_threshold
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def fit(self, X, y=None, **fit_params):
        """Run FINCH on ``X`` (n, d); ``y`` is ignored."""
        self._req_clust = self.n_clusters
        if self.n_clusters is None:
            # base.fit checks n_clusters when the attribute exists; None means "no request"
            n_clusters = self.__dict__.pop("n_clusters")
            try:
                return super().fit(X, y, **fit_params)
            finally:
                self.n_clusters = n_clusters
        return super().fit(X, y, **fit_params)

    def _fit(self, X: np.ndarray) -> None:
        search: dict = {}
        parts, counts, req = finch(
            X,
            metric=self.metric,
            req_clust=self._req_clust,
            ensure_early_exit=self.ensure_early_exit,
            backend=self.backend,
            exact=bool(self.exact),
            ann_threshold=int(self.ann_threshold),
            seed=self.seed_,
            info=search,
        )
        self.partitions_ = parts
        self.n_clusters_per_level_ = counts
        if req is not None:
            self.labels_ = np.unique(req, return_inverse=True)[1].astype(np.int64)
            self.selection_ = f"FINCH req_clust={self._req_clust} partition (label-free)"
        else:
            try:
                self.labels_ = parts[int(self.level)]
            except IndexError:
                raise ValueError(
                    f"level={self.level} but FINCH produced {len(parts)} level(s); "
                    f"use a level between {-len(parts)} and {len(parts) - 1}"
                ) from None
            self.selection_ = f"FINCH level {self.level} of {len(parts)} (label-free)"
        k = int(self.labels_.max()) + 1
        self.cluster_centers_ = _group_means(X, self.labels_, k).astype(np.float32)
        self.diagnostics_ = {
            "n_clusters_per_level": [int(c) for c in counts],
            "n_found": k,
            "search": search["levels"],
        }

    def _predict(self, X: np.ndarray) -> np.ndarray:
        C = torch.from_numpy(self.cluster_centers_).double()
        Y = torch.from_numpy(X).double()
        if self.metric == "cosine":
            C = torch.nn.functional.normalize(C, dim=1)
            Y = torch.nn.functional.normalize(Y, dim=1)
            return (Y @ C.T).argmax(dim=1).numpy().astype(np.int64)
        return torch.cdist(Y, C).argmin(dim=1).numpy().astype(np.int64)
