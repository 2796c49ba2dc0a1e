"""Clustering metrics as the papers report them.

* ``acc``: clustering accuracy after the best one-to-one matching of clusters to classes
  (Hungarian algorithm, scipy ``linear_sum_assignment``). With more clusters than classes the
  unmatched clusters count as errors; with fewer, the unmatched classes do.
* ``nmi``: normalised mutual information, ``average_method`` as in scikit-learn
  (``"arithmetic"`` by default; TDEC's paper uses ``"max"``).
* ``ari``: adjusted Rand index.
* ``oa``: overall accuracy after matching (the hyperspectral papers' name for ``acc``).
* ``kappa``: Cohen's kappa between the matched predictions and the truth.
* ``per_class``: the accuracy of each class after matching (the share of its samples whose
  cluster is matched to it).

Labels may be any integers; pass ``mask`` to keep only some samples (e.g. labelled pixels of a
scene, where the ground truth uses 0 or -1 for "unlabelled").
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = [
    "contingency",
    "match_labels",
    "acc",
    "nmi",
    "ari",
    "oa",
    "kappa",
    "per_class_accuracy",
    "evaluate",
    "size_summary",
]


def _as_array(a) -> np.ndarray:
    """A numpy array of ``a``; torch tensors on any device (a CUDA tensor has no ``__array__``
    that numpy can use) are copied to the host first."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _check_pair(y_true, y_pred, mask=None) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_array(y_true)
    y_pred = _as_array(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {y_true.shape} and {y_pred.shape}"
        )
    if mask is not None:
        mask = _as_array(mask)
        if mask.dtype != bool:
            raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
        if mask.shape != y_true.shape:
            raise ValueError(f"mask has shape {mask.shape} but the labels have {y_true.shape}")
        y_true, y_pred = y_true[mask], y_pred[mask]
    y_true, y_pred = y_true.ravel(), y_pred.ravel()
    if y_true.size == 0:
        raise ValueError("no samples to evaluate (empty labels, or a mask that selects nothing)")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                continue
            raise ValueError(f"{name} must hold integer labels, got dtype {y.dtype}")
    return y_true, y_pred


def contingency(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``C[i, j]`` of samples of class ``classes[i]`` in cluster ``clusters[j]``."""
    classes, ti = np.unique(y_true, return_inverse=True)
    clusters, pj = np.unique(y_pred, return_inverse=True)
    table = np.zeros((classes.size, clusters.size), dtype=np.int64)
    np.add.at(table, (ti, pj), 1)
    return table, classes, clusters


def match_labels(y_true, y_pred, mask=None) -> dict:
    """The Hungarian matching of clusters to classes that maximises the agreement.

    Returns ``{cluster_label: class_label}`` for the matched clusters; unmatched clusters (when
    there are more clusters than classes) are absent.
    """
    y_true, y_pred = _check_pair(y_true, y_pred, mask)
    table, classes, clusters = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {clusters[c].item(): classes[r].item() for r, c in zip(rows, cols)}


def _matched(y_true, y_pred, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` and the predictions relabelled by the matching; unmatched get a fresh label."""
    y_true, y_pred = _check_pair(y_true, y_pred, mask)
    mapping = match_labels(y_true, y_pred)
    unmatched = np.min(y_true) - 1  # a label no class has
    mapped = np.array([mapping.get(v.item(), unmatched) for v in np.unique(y_pred)])
    clusters, inv = np.unique(y_pred, return_inverse=True)
    return y_true, mapped[inv]


def acc(y_true, y_pred, mask=None) -> float:
    """Clustering accuracy with the Hungarian matching (in [0, 1])."""
    y_true, y_hat = _matched(y_true, y_pred, mask)
    return float(np.mean(y_true == y_hat))


def oa(y_true, y_pred, mask=None) -> float:
    """Overall accuracy after matching (same as :func:`acc`; the HSI papers' name)."""
    return acc(y_true, y_pred, mask)


def nmi(y_true, y_pred, mask=None, *, average_method: str = "arithmetic") -> float:
    """Normalised mutual information (``average_method``: arithmetic, max, geometric, min)."""
    y_true, y_pred = _check_pair(y_true, y_pred, mask)
    return float(normalized_mutual_info_score(y_true, y_pred, average_method=average_method))


def ari(y_true, y_pred, mask=None) -> float:
    """Adjusted Rand index."""
    y_true, y_pred = _check_pair(y_true, y_pred, mask)
    return float(adjusted_rand_score(y_true, y_pred))


def kappa(y_true, y_pred, mask=None) -> float:
    """Cohen's kappa between the truth and the matched predictions.

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement (= OA) and ``p_e``
    the agreement expected by chance from the two label marginals. When several matchings
    tie on agreement (e.g. more clusters than classes), kappa depends on the one the Hungarian
    solver returns, so it is not invariant to relabelling the clusters in such ties.
    """
    y_true, y_hat = _matched(y_true, y_pred, mask)
    n = y_true.size
    p_o = np.mean(y_true == y_hat)
    labels = np.union1d(y_true, y_hat)
    t = np.searchsorted(labels, y_true)
    h = np.searchsorted(labels, y_hat)
    p_e = float(np.dot(np.bincount(t, minlength=labels.size), np.bincount(h, minlength=labels.size))) / n**2
    if p_e == 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return float((p_o - p_e) / (1.0 - p_e))


def per_class_accuracy(y_true, y_pred, mask=None) -> dict:
    """``{class_label: accuracy}``: the share of each class's samples in its matched cluster."""
    y_true, y_hat = _matched(y_true, y_pred, mask)
    out = {}
    for c in np.unique(y_true):
        sel = y_true == c
        out[c.item()] = float(np.mean(y_hat[sel] == c))
    return out


def evaluate(
    y_true,
    y_pred,
    mask=None,
    *,
    average_method: str = "arithmetic",
) -> dict:
    """All metrics in one dict: ``acc``, ``nmi``, ``ari``, and (always computed) ``oa``,
    ``kappa``, ``per_class`` (keys are class labels as strings, for JSON). With a non-default
    ``average_method`` the NMI is also stored under ``nmi_<method>``.
    """
    y_true, y_pred = _check_pair(y_true, y_pred, mask)
    accuracy = acc(y_true, y_pred)
    out = {
        "acc": accuracy,
        "nmi": nmi(y_true, y_pred, average_method=average_method),
        "ari": ari(y_true, y_pred),
        "oa": accuracy,
        "kappa": kappa(y_true, y_pred),
        "per_class": {str(k): v for k, v in per_class_accuracy(y_true, y_pred).items()},
    }
    if average_method != "arithmetic":
        out[f"nmi_{average_method}"] = out["nmi"]
    return out


def size_summary(labels, n_clusters: int) -> dict:
    """Label-free summary of a partition: how many of the ``n_clusters`` ids hold a sample, and
    the share of the samples in the largest cluster."""
    sizes = np.bincount(np.asarray(labels), minlength=int(n_clusters))
    return {"n_nonempty_clusters": int((sizes > 0).sum()), "largest_cluster_share": float(sizes.max() / sizes.sum())}
