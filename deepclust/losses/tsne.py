"""t-SNE's cost (van der Maaten & Hinton, 2008) as TDEC's dimension-reduction loss (eqs. 9-11).

Within a mini-batch of n points:

* eq. 11, conditional Gaussian affinities in the feature space,
  ``phi_{j|i} = exp(-||w_i - w_j||^2 / 2 sigma_i^2) / sum_{j' != i} exp(...)``, with each
  ``sigma_i`` found by a binary search so that the perplexity ``2^H(phi_{.|i})`` equals the
  target (t-SNE's rule; H in bits);
* the symmetrised joint ``phi_ij = (phi_{j|i} + phi_{i|j}) / 2n``;
* eq. 10, Student-t joint affinities in the clustering space,
  ``omega_ij = (1 + ||v_i - v_j||^2)^-1 / sum_{a != b} (1 + ||v_a - v_b||^2)^-1``;
* eq. 9, ``L_dim = KL(Phi || Omega) = sum_{i != j} phi_ij log(phi_ij / omega_ij)``.

The n x n matrices here are per mini-batch (n = batch size, 256 in the paper), never per data set.
"""

from __future__ import annotations

import torch

from deepclust.training import fp32_under_autocast

__all__ = [
    "conditional_gaussian_affinity",
    "joint_gaussian_affinity",
    "student_t_joint_affinity",
    "tsne_kl",
    "dim_reduction_loss",
]

_EPS = 1e-12


@fp32_under_autocast
def conditional_gaussian_affinity(
    sq_dist: torch.Tensor, perplexity: float = 30.0, *, tol: float = 1e-5, max_iter: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 11 rows ``phi_{j|i}`` with per-row precision found by binary search.

    Parameters
    ----------
    sq_dist : (n, n)
        Squared distances (the diagonal is ignored).
    perplexity : float
        Target ``2^H`` of every row; must be below n - 1.

    Returns
    -------
    P : (n, n) conditional affinities (row i is ``phi_{.|i}``, zero diagonal), float64.
    beta : (n,) the precisions ``1 / (2 sigma_i^2)`` found.
    """
    n = sq_dist.shape[0]
    if sq_dist.ndim != 2 or sq_dist.shape[1] != n:
        raise ValueError(f"sq_dist must be square (n, n), got {tuple(sq_dist.shape)}")
    if not 1.0 <= perplexity < n - 1:
        raise ValueError(
            f"perplexity must be in [1, n-1) = [1, {n - 1}) for n={n} points, got {perplexity}; "
            "lower the perplexity or use larger batches"
        )
    D = sq_dist.detach().to(torch.float64)
    eye = torch.eye(n, dtype=torch.bool, device=D.device)
    D = D.masked_fill(eye, float("inf"))
    D = D - D.min(1, keepdim=True).values  # shift per row: same P, no underflow
    target = torch.log2(torch.tensor(float(perplexity), dtype=torch.float64, device=D.device))
    beta = torch.ones(n, dtype=torch.float64, device=D.device)
    lo = torch.full_like(beta, 0.0)
    hi = torch.full_like(beta, float("inf"))

    def rows(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.exp(-D * b[:, None])  # diagonal: exp(-inf) = 0
        P = w / w.sum(1, keepdim=True)
        H = -(torch.xlogy(P, P)).sum(1) / torch.log(torch.tensor(2.0, dtype=torch.float64))
        return P, H

    for _ in range(max_iter):
        P, H = rows(beta)
        diff = H - target
        if bool((diff.abs() < tol).all()):
            break
        too_flat = diff > 0  # entropy too high -> increase precision
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        beta = torch.where(
            torch.isinf(hi), beta * 2.0, (lo + hi) / 2.0
        )
    P, _ = rows(beta)
    return P, beta


@fp32_under_autocast
def joint_gaussian_affinity(w: torch.Tensor, perplexity: float = 30.0) -> torch.Tensor:
    """Symmetrised ``phi_ij = (phi_{j|i} + phi_{i|j}) / 2n`` of the feature vectors ``w`` (n, m).

    Computed without gradient (as t-SNE's input affinities), float64, zero diagonal, sums to 1.
    """
    with torch.no_grad():
        w = w.detach().to(torch.float64)
        P, _ = conditional_gaussian_affinity(torch.cdist(w, w).pow(2), perplexity)
        return (P + P.T) / (2.0 * w.shape[0])


@fp32_under_autocast
def student_t_joint_affinity(v: torch.Tensor) -> torch.Tensor:
    """Eq. 10: ``omega_ij`` of the clustering-space points ``v`` (n, c); zero diagonal."""
    n = v.shape[0]
    d2 = (v[:, None, :] - v[None, :, :]).pow(2).sum(-1)  # (n, n); exact zeros on the diagonal
    num = 1.0 / (1.0 + d2)
    num = num.masked_fill(torch.eye(n, dtype=torch.bool, device=v.device), 0.0)
    return num / num.sum()


@fp32_under_autocast
def tsne_kl(phi: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """Eq. 9: ``sum_{i != j} phi_ij log(phi_ij / omega_ij)`` (terms with phi = 0 count zero)."""
    n = phi.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=phi.device)
    p = phi[off].to(omega.dtype)
    q = omega[off]
    return (torch.xlogy(p, p) - p * torch.log(q.clamp_min(_EPS))).sum()


@fp32_under_autocast
def dim_reduction_loss(w: torch.Tensor, v: torch.Tensor, perplexity: float = 30.0) -> torch.Tensor:
    """``L_dim`` of a mini-batch: KL between the feature-space affinities of ``w`` (n, m) and the
    clustering-space affinities of ``v`` (n, c). The perplexity is capped at (n - 1) / 3 for
    small batches (t-SNE's own rule of thumb), so a short last batch still works.
    """
    n = w.shape[0]
    if n < 3:
        return v.sum() * 0.0  # no pairs to compare
    perp = min(float(perplexity), (n - 1) / 3.0)
    phi = joint_gaussian_affinity(w, max(perp, 1.0))
    return tsne_kl(phi, student_t_joint_affinity(v))
