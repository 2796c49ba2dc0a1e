"""Contrastive clustering losses: instance NT-Xent, cluster contrast + marginal entropy, and
PICI's cross-level interaction (CLI).

Equation numbers refer to PICI (Liu et al., section 3.2.2 and 3.3); the instance and cluster
losses are those of Contrastive Clustering (Li et al., AAAI 2021), which PICI reuses.

Ambiguity, and our choice: eqs. (5) and (8) write the denominator as a sum over *all* 2N (2M)
entries, which would include the anchor's similarity with itself; the text says the anchor has
one positive and 2(N-1) negatives, so we exclude the self-pair (as NT-Xent and CC's code do).
Eq. (10) divides by ``||Y_i^k||_1``, which would make every marginal 1; we read it as the column
sum divided by the total mass (the cluster marginal), as CC does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from deepclust.distributed import all_gather_with_grad, all_reduce_sum, use_global_batch
from deepclust.training import fp32_under_autocast

__all__ = [
    "nt_xent",
    "instance_contrastive_loss",
    "cluster_contrastive_loss",
    "cluster_entropy",
    "match_pseudo_labels",
    "cross_level_loss",
    "dataset_pseudo_labels",
]


@fp32_under_autocast
def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy over the 2n rows of two views.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are positives; each anchor's negatives are the other
    2(n-1) rows (the self-pair is excluded). Cosine similarity (eqs. 3/4, 7). Returns the mean over
    the 2n anchors (eq. 6, eq. 11's first term). Works for any n >= 1 (n = 1 gives 0).

    Parameters
    ----------
    a, b : (n, d) the two views' vectors (need not be normalised).
    temperature : tau > 0.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"the two views must both be (n, d), got {tuple(a.shape)} and {tuple(b.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b], dim=0), dim=1)  # (2n, d)
    sim = z @ z.T / temperature  # (2n, 2n), eq. (4) / tau
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    idx = torch.arange(n, device=z.device)
    target = torch.cat([idx + n, idx])  # a_i <-> b_i
    return F.cross_entropy(sim, target)  # eqs. (5)+(6) / (8)


def instance_contrastive_loss(
    z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5, *, global_batch: bool | None = None
) -> torch.Tensor:
    """L_ins (eqs. 3-6): NT-Xent over the instance projections (n, d) of the two views.

    ``global_batch`` (None = automatic: on when a process group with > 1 rank exists): gather
    every rank's rows with gradient first, so the negatives are those of the global batch and the
    value equals the single-process loss on the union batch (identical on every rank; see
    :mod:`deepclust.distributed` for the gradient convention).
    """
    if use_global_batch(global_batch):
        z_a, z_b = all_gather_with_grad(z_a), all_gather_with_grad(z_b)  # (N, d) global
    return nt_xent(z_a, z_b, temperature)


@fp32_under_autocast
def cluster_entropy(
    c_a: torch.Tensor, c_b: torch.Tensor, eps: float = 1e-12, *, global_batch: bool | None = None
) -> torch.Tensor:
    """H(C) (eqs. 9-10): entropy of the cluster marginals of both views, summed.

    ``P(Y_i^k) = sum_j C^k_ji / sum_{j,m} C^k_jm``; ``H = -sum_i [P_a log P_a + P_b log P_b]``.
    ``global_batch`` (None = automatic): the column sums are all-reduced over the ranks.
    """
    glob = use_global_batch(global_batch)
    out = c_a.new_zeros(())
    for c in (c_a, c_b):
        p = c.sum(dim=0)  # (M,)
        if glob:
            p = all_reduce_sum(p)  # global column sums
        p = p / p.sum()  # (M,)
        out = out - (p * torch.log(p.clamp_min(eps))).sum()
    return out


@fp32_under_autocast
def cluster_contrastive_loss(
    c_a: torch.Tensor,
    c_b: torch.Tensor,
    temperature: float = 1.0,
    *,
    entropy_weight: float = 1.0,
    global_batch: bool | None = None,
) -> dict[str, torch.Tensor]:
    """L_clu (eqs. 7-11) for soft assignments (n, M) of the two views.

    Returns ``{"loss": contrast - entropy_weight * H, "contrast": ..., "entropy": H}``; the
    contrast is NT-Xent between the M columns of the two views (1/(2M) sum of eq. 8).
    ``global_batch`` (None = automatic: on when a process group with > 1 rank exists): the
    cluster columns are built from every rank's rows (gathered with gradient), so both terms
    equal the single-process values on the union batch.
    """
    if c_a.shape != c_b.shape or c_a.ndim != 2:
        raise ValueError(f"the two views must both be (n, M), got {tuple(c_a.shape)} and {tuple(c_b.shape)}")
    if use_global_batch(global_batch):
        c_a, c_b = all_gather_with_grad(c_a), all_gather_with_grad(c_b)  # (N, M) global
    contrast = nt_xent(c_a.T, c_b.T, temperature)
    h = cluster_entropy(c_a, c_b, global_batch=False)  # already global
    return {"loss": contrast - entropy_weight * h, "contrast": contrast, "entropy": h}


def match_pseudo_labels(pseudo: np.ndarray, anchor: np.ndarray, n_clusters: int) -> np.ndarray:
    """Map k-means pseudo-labels onto the cluster head's labels by maximum matching (Hungarian).

    ``w[m, s] = #{i : anchor_i = m, pseudo_i = s}``; the assignment maximises the total overlap
    and pseudo-label ``s`` becomes head label ``m`` (the one-hot ``p~`` of section 3.3).

    Parameters
    ----------
    pseudo : (n,) ints in [0, S) from k-means (S <= n_clusters).
    anchor : (n,) ints in [0, n_clusters), argmax of the cluster head (eq. 14).

    Returns
    -------
    (n,) matched labels in [0, n_clusters).
    """
    pseudo = np.asarray(pseudo, dtype=np.int64)
    anchor = np.asarray(anchor, dtype=np.int64)
    if pseudo.shape != anchor.shape or pseudo.ndim != 1:
        raise ValueError("pseudo and anchor labels must be 1-D arrays of the same length")
    n_pseudo = int(pseudo.max()) + 1
    if n_pseudo > n_clusters or int(anchor.max()) >= n_clusters:
        raise ValueError(f"labels exceed n_clusters={n_clusters}")
    w = np.zeros((n_clusters, n_pseudo), dtype=np.int64)
    np.add.at(w, (anchor, pseudo), 1)
    rows, cols = linear_sum_assignment(w, maximize=True)  # every pseudo label gets a head label
    mapping = np.empty(n_pseudo, dtype=np.int64)
    mapping[cols] = rows
    return mapping[pseudo]


def _kmeans_labels(z: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = min(k, len(np.unique(z, axis=0)))
    if k < 2:
        return np.zeros(len(z), dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z)
    return km.labels_.astype(np.int64)


def dataset_pseudo_labels(z: np.ndarray, anchor: np.ndarray, n_clusters: int, *, seed: int = 0,
                          n_init: int = 3) -> np.ndarray:
    """CLI targets over the whole data set (section 3.3, "pseudo-labels of all samples"): k-means
    on the instance features ``z`` (N, d) of every sample (eqs. 12-13), matched (eq. 14) to the
    cluster head's labels ``anchor`` (N,) of the same samples. Returns the (N,) matched labels
    that :func:`cross_level_loss` takes as ``target``."""
    pseudo = _kmeans_labels(np.asarray(z, dtype=np.float64), n_clusters, seed, n_init)
    return match_pseudo_labels(pseudo, anchor, n_clusters)


@fp32_under_autocast
def cross_level_loss(
    z: torch.Tensor,
    c: torch.Tensor,
    n_clusters: int,
    *,
    seed: int = 0,
    n_init: int = 3,
    pseudo: np.ndarray | None = None,
    target: torch.Tensor | None = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """CLI for one view (eqs. 12-15): k-means on the instance features ``z`` (n, d) (eqs. 12-13),
    Hungarian match of the pseudo-labels to ``argmax c`` (eq. 14), then the cross-entropy
    ``-1/n sum_i log c[i, p~_i]`` of the cluster head's probabilities ``c`` (n, M).

    The pseudo-labels carry no gradient. ``pseudo`` skips the k-means (precomputed labels);
    ``target`` (n,) skips the k-means and the matching too (labels already matched to the head,
    e.g. the rows of :func:`dataset_pseudo_labels`). Eq. (15) averages the two views with 1/2;
    call this per view and average.
    """
    if target is not None:
        return F.nll_loss(torch.log(c.clamp_min(eps)), target.to(c.device))
    if pseudo is None:
        pseudo = _kmeans_labels(z.detach().float().cpu().numpy(), n_clusters, seed, n_init)
    anchor = c.detach().argmax(dim=1).cpu().numpy()
    target = torch.as_tensor(match_pseudo_labels(pseudo, anchor, n_clusters), device=c.device)
    return F.nll_loss(torch.log(c.clamp_min(eps)), target)
