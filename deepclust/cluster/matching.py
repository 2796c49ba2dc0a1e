"""Comparing and matching two partitions of the same points.

* :func:`label_change`: the share of points whose cluster changed between two partitions, after
  the best one-to-one matching of their clusters (TDEC's stop test, Algorithm 1 line 7);
* :func:`match_to_previous`: the renumbering that gives a new partition's clusters the identities
  of the previous partition's (TDEC's clusters across refreshes);
* :func:`jaccard_consensus`: the Jaccard similarity of two segmentations with their clusters
  matched (RECAL, eq. 5).

All three work from the contingency table of the two partitions and match clusters one-to-one by
the Hungarian algorithm: on the counts (as :func:`deepclust.metrics.acc` matches clusters to
classes) for the first two, on the Jaccard scores for the third.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from deepclust.metrics import acc, match_labels

__all__ = ["jaccard_consensus", "label_change", "match_to_previous"]


def label_change(previous: np.ndarray, labels: np.ndarray) -> float:
    """Algorithm 1 line 7, ``sum(Y' != Y) / n``, between two *partitions*: the share of points
    whose cluster changed after the best one-to-one matching of the two label sets (Hungarian
    matching on their contingency table, as in :func:`deepclust.metrics.acc`). A renumbering of
    the clusters is no change; the density-peak head numbers its clusters by decreasing gamma,
    which may reorder them at every refresh without moving a point."""
    return 1.0 - acc(previous, labels)


def match_to_previous(previous: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """The order ``(K,)`` that gives the new clusters the identities of the previous ones:
    new cluster ``order[j]`` becomes cluster j. ``order`` is the Hungarian matching of the new
    partition to the previous one that maximises their agreement
    (:func:`deepclust.metrics.match_labels`); clusters left unmatched (empty in one of the two
    partitions) are paired in increasing order. Relabel with ``q[:, order]``, ``centers[order]``.
    """
    mapping = match_labels(previous, labels)  # {new cluster: previous cluster}
    order = np.full(n_clusters, -1, dtype=np.int64)
    for new, old in mapping.items():
        order[old] = new
    free_new = [t for t in range(n_clusters) if t not in mapping]
    order[order < 0] = free_new  # as many free identities as free new clusters
    return order


def jaccard_consensus(map1: np.ndarray, map2: np.ndarray,
                      mask: np.ndarray | None = None) -> dict[str, Any]:
    """Jaccard similarity of two segmentations (eq. 5) with their clusters matched.

    ``J(a, b) = |M1_a intersect M2_b| / |M1_a union M2_b|`` for every cluster a of map 1 and b
    of map 2, from the contingency table (no per-pixel pair matrix). Clusters are matched
    one-to-one by the Hungarian algorithm maximising the summed Jaccard scores.

    Returns
    -------
    dict with ``matrix`` (K1, K2) of scores, ``pairs`` [(a, b, J)], ``mean_matched`` (the mean J
    over matched pairs) and ``weighted_matched`` (weighted by the pixels of map 1's cluster).
    """
    a = np.asarray(map1)
    bb = np.asarray(map2)
    if a.shape != bb.shape:
        raise ValueError(f"the two maps differ in shape: {a.shape} vs {bb.shape}")
    if mask is not None:
        a, bb = a[np.asarray(mask, bool)], bb[np.asarray(mask, bool)]
    a, bb = a.ravel(), bb.ravel()
    ok = (a >= 0) & (bb >= 0)
    a, bb = a[ok], bb[ok]
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(bb, return_inverse=True)
    inter = np.zeros((ua.size, ub.size), np.int64)
    np.add.at(inter, (ia, ib), 1)
    union = inter.sum(1, keepdims=True) + inter.sum(0, keepdims=True) - inter
    jac = inter / np.maximum(union, 1)
    rows, cols = linear_sum_assignment(jac, maximize=True)
    pairs = [(int(ua[r]), int(ub[c]), float(jac[r, c])) for r, c in zip(rows, cols, strict=True)]
    sizes = inter.sum(1)[rows]
    return {
        "labels1": ua.tolist(), "labels2": ub.tolist(), "matrix": jac,
        "pairs": pairs,
        "mean_matched": float(np.mean([p[2] for p in pairs])),
        "weighted_matched": float(np.sum(jac[rows, cols] * sizes) / max(sizes.sum(), 1)),
    }
