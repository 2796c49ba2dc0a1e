"""The DEC family's pieces, shared by DEC, IDEC, EDESC, SCDSC and TDEC.

* Student-t soft assignment (DEC eq. 1): ``q_ij = (1 + ||z_i - mu_j||^2 / a)^(-(a+1)/2)``
  normalised over ``j``.
* Sharpened target (DEC eq. 3): ``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')`` with the soft
  cluster frequencies ``f_j = sum_i q_ij``.
* ``KL(P || Q) = sum_i sum_j p_ij log(p_ij / q_ij)``, averaged over samples (``reduction="batchmean"``
  as in DEC/IDEC's reference code) or summed.
"""

from __future__ import annotations

import torch

from deepclust.training import fp32_under_autocast

__all__ = ["student_t_assignment", "target_distribution", "kl_divergence"]

_EPS = 1e-12


@fp32_under_autocast
def student_t_assignment(z: torch.Tensor, centers: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Soft assignment of ``z`` (N, d) to ``centers`` (K, d) with a Student-t kernel.

    ``alpha`` is the degrees of freedom (1 in DEC). Returns (N, K) rows summing to one.
    Computed from ``torch.cdist`` so no (N, K, d) tensor is built.
    """
    d2 = torch.cdist(z, centers).pow(2)
    q = (1.0 + d2 / alpha).pow(-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=1, keepdim=True)


@fp32_under_autocast
def target_distribution(q: torch.Tensor, *, counts: torch.Tensor | None = None) -> torch.Tensor:
    """DEC's sharpened target ``p_ij = (q_ij^2 / f_j) / sum_j (q_ij^2 / f_j)``, detached.

    ``counts`` optionally gives the soft frequencies ``f_j`` computed elsewhere (e.g. over the
    whole data set or all distributed ranks); by default ``f_j = q.sum(0)`` over ``q``'s rows.
    """
    q = q.detach()
    f = q.sum(dim=0) if counts is None else counts.detach()
    w = q.pow(2) / f.clamp_min(_EPS)
    return w / w.sum(dim=1, keepdim=True)


@fp32_under_autocast
def kl_divergence(p: torch.Tensor, q: torch.Tensor, *, reduction: str = "batchmean") -> torch.Tensor:
    """``KL(P || Q)`` for row-stochastic (N, K) matrices; terms with ``p_ij = 0`` count zero.

    ``reduction``: ``"batchmean"`` (sum / N), ``"sum"`` or ``"mean"`` (sum / (N*K)).
    """
    terms = torch.xlogy(p, p) - p * torch.log(q.clamp_min(_EPS))
    total = terms.sum()
    if reduction == "batchmean":
        return total / p.shape[0]
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / p.numel()
    raise ValueError(f"reduction must be 'batchmean', 'sum' or 'mean', got {reduction!r}")
