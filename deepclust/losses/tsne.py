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

Early exaggeration (t-SNE's optimisation trick, van der Maaten & Hinton 2008, sec. 3.4; factor 12
in van der Maaten 2014 and openTSNE) is the optional ``exaggeration`` argument of
:func:`tsne_kl` / :func:`dim_reduction_loss`: the input affinities are multiplied by the factor
``a`` in the attraction term, which gives t-SNE's exaggerated gradient
``4 sum_j (a phi_ij - omega_ij)(1 + ||v_i - v_j||^2)^-1 (v_i - v_j)``. It is *not* ``a`` times
the KL (that only rescales the gradient, which Adam undoes); ``a = 1`` is eq. 9.

The n x n matrices here are per mini-batch (n = batch size, 256 in the paper), never per data set.
"""

from __future__ import annotations

import torch

from deepclust.training import fp32_under_autocast

__all__ = [
    "conditional_gaussian_affinity",
    "joint_gaussian_affinity",
    "student_t_kernel",
    "student_t_joint_affinity",
    "tsne_kl",
    "capped_perplexity",
    "dim_reduction_terms",
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
    D0 = D.masked_fill(eye, 0.0)  # for sum_j D_ij w_ij (w_ii = 0; inf * 0 would be NaN)
    target = torch.log2(torch.tensor(float(perplexity), dtype=torch.float64, device=D.device))
    beta = torch.ones(n, dtype=torch.float64, device=D.device)
    lo = torch.full_like(beta, 0.0)
    hi = torch.full_like(beta, float("inf"))
    ln2 = torch.log(torch.tensor(2.0, dtype=torch.float64))
    neg_D = D.neg()
    w, Dw = torch.empty_like(D), torch.empty_like(D)  # reused: no (n, n) allocation per step

    def rows(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        torch.mul(neg_D, b[:, None], out=w)
        w.exp_()  # diagonal: exp(-inf) = 0
        S = w.sum(1)  # >= 1: the nearest neighbour's shifted distance is 0
        # H = -sum_j P_j log P_j with P = w / S and log w = -b D: log S + b sum_j D_j w_j / S
        torch.mul(D0, w, out=Dw)
        H = (torch.log(S) + b * Dw.sum(1) / S) / ln2
        return w, H

    for _ in range(max_iter):
        _, H = rows(beta)
        diff = H - target
        if bool((diff.abs() < tol).all()):
            break
        too_flat = diff > 0  # entropy too high -> increase precision
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        beta = torch.where(
            torch.isinf(hi), beta * 2.0, (lo + hi) / 2.0
        )
    w, _ = rows(beta)
    return w / w.sum(1, keepdim=True), beta


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
def student_t_kernel(v: torch.Tensor) -> torch.Tensor:
    """The unnormalised Student-t kernel of eq. 10, ``(1 + ||v_i - v_j||^2)^-1`` (n, n), of the
    clustering-space points ``v`` (n, c); zero diagonal."""
    n = v.shape[0]
    d2 = (v[:, None, :] - v[None, :, :]).pow(2).sum(-1)  # (n, n); exact zeros on the diagonal
    num = 1.0 / (1.0 + d2)
    return num.masked_fill(torch.eye(n, dtype=torch.bool, device=v.device), 0.0)


@fp32_under_autocast
def student_t_joint_affinity(v: torch.Tensor) -> torch.Tensor:
    """Eq. 10: ``omega_ij`` of the clustering-space points ``v`` (n, c); zero diagonal."""
    num = student_t_kernel(v)
    return num / num.sum()


def _kl_parts(phi: torch.Tensor, omega: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sum p log p, sum p log omega, sum p)`` over the pairs i != j (the diagonal is zeroed,
    not indexed out: a boolean mask of n^2 entries would cost more than the sums)."""
    eye = torch.eye(phi.shape[0], dtype=torch.bool, device=phi.device)
    p = phi.to(omega.dtype).masked_fill(eye, 0.0)
    log_q = torch.log(omega.clamp_min(_EPS))
    return torch.xlogy(p, p).sum(), (p * log_q).sum(), p.sum()


def _exaggerated(kl: torch.Tensor, cross: torch.Tensor, p_sum: torch.Tensor, kernel_sum: torch.Tensor,
                 exaggeration: float) -> torch.Tensor:
    """``KL - (a - 1) sum p log k`` with ``sum p log k = sum p log omega + (sum p) log Z``."""
    log_k = cross + p_sum * torch.log(kernel_sum.to(cross.dtype))
    return kl - (float(exaggeration) - 1.0) * log_k


@fp32_under_autocast
def tsne_kl(
    phi: torch.Tensor, omega: torch.Tensor, exaggeration: float = 1.0, *,
    kernel_sum: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 9: ``sum_{i != j} phi_ij log(phi_ij / omega_ij)`` (terms with phi = 0 count zero).

    ``exaggeration`` a != 1: t-SNE's early exaggeration, the input affinities multiplied by
    ``a`` in the attraction term,
    ``KL - (a - 1) sum_{i != j} phi_ij log((1 + ||v_i - v_j||^2)^-1)``
    ``= sum phi log phi - a sum phi log k_ij + log Z`` (k the Student-t kernel, Z = sum k, the
    ``kernel_sum`` that normalised ``omega``; required then, with its gradient). Its gradient in
    v_i is t-SNE's exaggerated ``4 sum_j (a phi_ij - omega_ij) k_ij (v_i - v_j)``: attraction
    ``a`` times stronger, repulsion unchanged. (``a`` times the KL would only rescale the
    gradient, which Adam undoes.)
    """
    plogp, cross, p_sum = _kl_parts(phi, omega)
    kl = plogp - cross
    if float(exaggeration) == 1.0:
        return kl
    if kernel_sum is None:
        raise ValueError("exaggeration != 1 needs kernel_sum, the sum of the Student-t kernel "
                         "that normalised omega (see dim_reduction_terms)")
    return _exaggerated(kl, cross, p_sum, kernel_sum, exaggeration)


def capped_perplexity(n: int, perplexity: float) -> float:
    """The perplexity used for a batch of n points: capped at (n - 1) / 3 (t-SNE's own rule of
    thumb), at least 1."""
    return max(min(float(perplexity), (n - 1) / 3.0), 1.0)


@fp32_under_autocast
def dim_reduction_terms(
    w: torch.Tensor | None, v: torch.Tensor, perplexity: float = 30.0, *,
    exaggeration: float = 1.0, phi: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(objective, L_dim)`` of a mini-batch: the KL of eq. 9 between the feature-space
    affinities of ``w`` (n, m) and the clustering-space affinities of ``v`` (n, c), and the
    objective to minimise (the same KL, or its early-exaggerated form with ``exaggeration`` != 1,
    see :func:`tsne_kl`). ``phi`` (n, n): the input affinities when already computed (then ``w``
    is not used); else they are computed from ``w`` at :func:`capped_perplexity`.
    """
    n = v.shape[0]
    if n < 3:
        zero = v.sum() * 0.0  # no pairs to compare
        return zero, zero
    if phi is None:
        phi = joint_gaussian_affinity(w, capped_perplexity(n, perplexity))
    num = student_t_kernel(v)
    z = num.sum()
    plogp, cross, p_sum = _kl_parts(phi, num / z)  # one pass for both values (as tsne_kl)
    kl = plogp - cross
    if float(exaggeration) == 1.0:
        return kl, kl
    return _exaggerated(kl, cross, p_sum, z, exaggeration), kl


@fp32_under_autocast
def dim_reduction_loss(
    w: torch.Tensor, v: torch.Tensor, perplexity: float = 30.0, exaggeration: float = 1.0
) -> torch.Tensor:
    """``L_dim`` of a mini-batch: KL between the feature-space affinities of ``w`` (n, m) and the
    clustering-space affinities of ``v`` (n, c). The perplexity is capped at (n - 1) / 3 for
    small batches (t-SNE's own rule of thumb), so a short last batch still works.
    ``exaggeration`` != 1: t-SNE's early-exaggerated objective instead (:func:`tsne_kl`).
    """
    return dim_reduction_terms(w, v, perplexity, exaggeration=exaggeration)[0]
