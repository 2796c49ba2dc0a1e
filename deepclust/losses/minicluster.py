"""Mini-cluster (non-local) structure loss of SCDSC (eqs. 7-10).

Pixels are grouped into ``l`` mini-clusters (FINCH); ``index`` (N,) holds each pixel's
mini-cluster in ``0..l-1``. Everything is a scatter over ``index``: O(N k) time and memory.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from deepclust.distributed import all_reduce_sum, use_global_batch
from deepclust.losses.dec import kl_divergence, target_distribution
from deepclust.training import fp32_under_autocast

__all__ = ["minicluster_mean", "minicluster_kl"]


@fp32_under_autocast
def minicluster_mean(
    s: torch.Tensor,
    index: torch.Tensor,
    n_mini: int | None = None,
    *,
    global_batch: bool | None = None,
) -> torch.Tensor:
    """Eq. 7: ``m_p = mean of s_q over q in C_p`` -> (l, k), a differentiable scatter-mean.

    Its gradient is eq. 10: ``d m_p / d s_q = 1 / |C_p|`` for every ``q`` in ``C_p``.

    ``global_batch`` (None = automatic: on when a process group with > 1 rank exists): each rank
    holds some of the pixels with their *global* mini-cluster ids; the per-cluster sums and
    counts are all-reduced, so the means are those of all ranks' pixels (identical on every
    rank). ``n_mini`` should then be given (otherwise the largest id over the ranks is used).
    """
    if index.shape[0] != s.shape[0]:
        raise ValueError(f"index has {index.shape[0]} entries but s has {s.shape[0]} rows")
    glob = use_global_batch(global_batch)
    if n_mini is None:
        top = index.max().reshape(1).to(torch.long) if index.numel() else index.new_zeros(1) - 1
        if glob:
            top = top.to(s.device)
            dist.all_reduce(top, op=dist.ReduceOp.MAX)
        n_mini = int(top.item()) + 1
    n_mini = int(n_mini)
    sums = torch.zeros(n_mini, s.shape[1], device=s.device, dtype=s.dtype).index_add(0, index, s)  # (l, k)
    counts = torch.bincount(index, minlength=n_mini).to(s.dtype)  # (l,)
    if glob:
        sums = all_reduce_sum(sums)
        counts = all_reduce_sum(counts)
    return sums / counts.clamp_min(1.0)[:, None]


@fp32_under_autocast
def minicluster_kl(
    s: torch.Tensor,
    index: torch.Tensor,
    n_mini: int | None = None,
    *,
    reduction: str = "mean",
    global_batch: bool | None = None,
) -> torch.Tensor:
    """Eqs. 7-9: ``KL(M~ || M)`` between the mini-cluster means and their sharpened target.

    ``M~`` (eq. 8) has the DEC target's form ``m_pj^2 / sum_p m_pj`` normalised over ``j``, and
    is detached (a fixed target, as in DEC). ``reduction="mean"`` divides the sum of eq. 9 by
    ``l*k`` as the SCDSC authors' code does (so the paper's beta_1 carries over);
    ``"sum"`` is eq. 9 literally. ``global_batch``: see :func:`minicluster_mean` (the KL is
    then that of the global means, identical on every rank).
    """
    M = minicluster_mean(s, index, n_mini, global_batch=global_batch)
    target = target_distribution(M)
    return kl_divergence(target, M, reduction=reduction)
