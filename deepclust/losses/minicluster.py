"""Mini-cluster (non-local) structure loss of SCDSC (eqs. 7-10).

Pixels are grouped into ``l`` mini-clusters (FINCH); ``index`` (N,) holds each pixel's
mini-cluster in ``0..l-1``. Everything is a scatter over ``index``: O(N k) time and memory.
"""

from __future__ import annotations

import torch

from deepclust.losses.dec import kl_divergence, target_distribution

__all__ = ["minicluster_mean", "minicluster_kl"]


def minicluster_mean(
    s: torch.Tensor, index: torch.Tensor, n_mini: int | None = None
) -> torch.Tensor:
    """Eq. 7: ``m_p = mean of s_q over q in C_p`` -> (l, k), a differentiable scatter-mean.

    Its gradient is eq. 10: ``d m_p / d s_q = 1 / |C_p|`` for every ``q`` in ``C_p``.
    """
    if index.shape[0] != s.shape[0]:
        raise ValueError(f"index has {index.shape[0]} entries but s has {s.shape[0]} rows")
    n_mini = int(index.max()) + 1 if n_mini is None else int(n_mini)
    sums = torch.zeros(n_mini, s.shape[1], device=s.device, dtype=s.dtype).index_add(0, index, s)
    counts = torch.bincount(index, minlength=n_mini).to(s.dtype).clamp_min(1.0)
    return sums / counts[:, None]


def minicluster_kl(
    s: torch.Tensor, index: torch.Tensor, n_mini: int | None = None, *, reduction: str = "mean"
) -> torch.Tensor:
    """Eqs. 7-9: ``KL(M~ || M)`` between the mini-cluster means and their sharpened target.

    ``M~`` (eq. 8) has the DEC target's form ``m_pj^2 / sum_p m_pj`` normalised over ``j``, and
    is detached (a fixed target, as in DEC). ``reduction="mean"`` divides the sum of eq. 9 by
    ``l*k`` as the SCDSC authors' code does (so the paper's beta_1 carries over);
    ``"sum"`` is eq. 9 literally.
    """
    M = minicluster_mean(s, index, n_mini)
    target = target_distribution(M)
    return kl_divergence(target, M, reduction=reduction)
