"""RECAL's entropy loss (Saha & Mukhopadhyay, eq. 3) and its virtual batches (Algorithm 2).

Eq. 2:  p_ml = softmax(r_m)_l
Eq. 3:  L     = lambda * H_Phi - H_Psi
        H_Phi = -(1/M) sum_m sum_l p_ml log p_ml          (classification entropy, mean per sample)
        H_Psi = -sum_l p_l log p_l                         (class entropy of the batch marginal)
        p_l   = sum_m p_ml / sum_l sum_m p_ml

Virtual batches (section 2.3) compute eq. 3 over the union of ``t`` mini-batches while holding
only one mini-batch's graph. Two modes:

``"paper"`` — Algorithm 2. The first t-1 mini-batches are forwarded without a graph and only
    K+1 running numbers are kept (h_phi, the sum of p log p, and h_psi, the K column sums); the
    t-th mini-batch adds its own terms *with* a graph and the loss of the union is
    back-propagated. The gradient therefore flows through the t-th mini-batch only: the stored
    terms of the others are constants. It is *not* the gradient of eq. 3 on the union (it is
    roughly 1/t of the H_Phi gradient and a gradient of H_Psi through the last batch only).
    Two evident typos of Algorithm 2 are fixed, as the text around it requires: lines 7-8 give
    H_Phi = +h_phi / size (the sign of eq. 3 is restored: H_Phi = -h_phi / size), and line 14
    resets only the size counter; we reset h_phi and h_psi with it (otherwise the sums would
    grow across virtual batches while the divisor restarts).

``"exact"`` — our addition. A first pass without a graph computes the union's marginal
    p_l = s_l / S (s_l = sum_i p_il, S = sum_l s_l) and H_Psi. By the chain rule,
        dH_Psi/ds_j = -(log p_j + H_Psi) / S,
    so  dL/dtheta = sum_b sum_{i in b} sum_l
                        [ -lambda/N (log p_il + 1) + (log p_l + H_Psi)/S ] dp_il/dtheta,
    which is the gradient of the per-mini-batch surrogate
        L_b = -lambda/N sum_{i in b} sum_l p_il log p_il + sum_{i in b} sum_l g_l p_il,
        g_l = (log p_l + H_Psi) / S   (held fixed),
    back-propagated one mini-batch at a time (the gradients add up). The sum of the L_b
    gradients equals the gradient of eq. 3 on the union exactly (tested to 1e-5). Cost: two
    forwards per mini-batch instead of one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from deepclust.distributed import all_reduce_sum, use_global_batch, world_size
from deepclust.training import fp32_under_autocast

__all__ = [
    "recal_entropies",
    "recal_loss",
    "PaperVirtualBatch",
    "paper_virtual_batch_loss",
    "exact_virtual_batch_backward",
]

_EPS = 1e-12


def _class_entropy(col_sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """H_Psi and p_l from the column sums s_l (K,) (eq. 3, last two lines)."""
    p_l = col_sums / col_sums.sum()  # (K,)
    h_psi = -(p_l * torch.log(p_l.clamp_min(_EPS))).sum()
    return h_psi, p_l


@fp32_under_autocast
def recal_entropies(
    logits: torch.Tensor, *, global_batch: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """H_Phi and H_Psi of eq. 3 for logits r (M, K).

    Probabilities are eq. 2 (softmax); log p is taken with ``log_softmax`` for stability.
    ``global_batch`` (None = automatic: on when a process group with > 1 rank exists): the sum of
    ``p log p``, the sample count and the column sums ``s_l`` are all-reduced over the ranks, so
    both entropies are those of the union batch (identical on every rank; gradient convention in
    :mod:`deepclust.distributed`).
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (n_samples, n_clusters), got shape {tuple(logits.shape)}")
    log_p = F.log_softmax(logits, dim=1)  # (M, K)
    p = log_p.exp()
    if use_global_batch(global_batch):
        plogp = all_reduce_sum((p * log_p).sum().reshape(1))[0]  # sum over all ranks' samples
        n = all_reduce_sum(torch.tensor([float(p.shape[0])], dtype=p.dtype, device=p.device))[0]
        h_phi = -plogp / n  # eq. 3, H_Phi of the union
        h_psi, _ = _class_entropy(all_reduce_sum(p.sum(dim=0)))  # eq. 3, global marginal p_l
        return h_phi, h_psi
    h_phi = -(p * log_p).sum(dim=1).mean()  # eq. 3, H_Phi
    h_psi, _ = _class_entropy(p.sum(dim=0))  # eq. 3, H_Psi with p_l
    return h_phi, h_psi


def recal_loss(
    logits: torch.Tensor, lambda_: float = 1.0, *, global_batch: bool | None = None
) -> dict[str, torch.Tensor]:
    """Eq. 3: ``{"loss": lambda*H_Phi - H_Psi, "h_phi": H_Phi, "h_psi": H_Psi}``.

    ``global_batch``: see :func:`recal_entropies`.
    """
    h_phi, h_psi = recal_entropies(logits, global_batch=global_batch)
    return {"loss": lambda_ * h_phi - h_psi, "h_phi": h_phi, "h_psi": h_psi}


class PaperVirtualBatch:
    """Algorithm 2's K+1 running numbers: h_phi (scalar) and h_psi (K,), plus the sample count.

    ``add(logits)`` is lines 4 and 16-18 (a mini-batch that is not the t-th: its terms are stored
    as numbers, without a graph); ``loss(logits, lambda_)`` is lines 4 and 7-12 (the t-th
    mini-batch: its terms join the stored ones with a graph) and then resets (line 14, see the
    module docstring for the reset of h_phi and h_psi).
    """

    def __init__(self, n_clusters: int) -> None:
        self.n_clusters = int(n_clusters)
        self.reset()

    def reset(self) -> None:
        self.h_phi = torch.zeros(())  # sum_m sum_l p_ml log p_ml over stored mini-batches
        self.h_psi = torch.zeros(self.n_clusters)  # sum_m p_ml, (K,)
        self.size = 0  # "mini-batch-size" of Algorithm 2

    @staticmethod
    @fp32_under_autocast
    def _terms(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_p = F.log_softmax(logits, dim=1)  # (M, K)
        p = log_p.exp()
        return (p * log_p).sum(), p.sum(dim=0)  # lines 7/16 and 9/17 for one mini-batch

    def add(self, logits: torch.Tensor) -> None:
        """Store one mini-batch's terms (Algorithm 2, lines 4, 16-18)."""
        with torch.no_grad():
            phi, psi = self._terms(logits)
        self.h_phi = self.h_phi.to(phi.device) + phi
        self.h_psi = self.h_psi.to(psi.device) + psi
        self.size += int(logits.shape[0])

    def loss(self, logits: torch.Tensor, lambda_: float = 1.0) -> dict[str, torch.Tensor]:
        """Loss of the virtual batch ending with ``logits`` (lines 4, 7-12); then reset (14)."""
        phi, psi = self._terms(logits)
        size = self.size + int(logits.shape[0])  # line 4
        h_phi = self.h_phi.to(phi.device) + phi  # line 7
        h_psi = self.h_psi.to(psi.device) + psi  # line 9
        if use_global_batch(None):  # the union of the ranks' virtual batches (same value everywhere)
            h_phi = all_reduce_sum(h_phi.reshape(1))[0]
            h_psi = all_reduce_sum(h_psi)
            size = float(all_reduce_sum(torch.tensor([float(size)], dtype=torch.float64, device=phi.device))[0])
        big_h_phi = -h_phi / size  # line 8 with eq. 3's sign
        big_h_psi, _ = _class_entropy(h_psi)  # lines 10-11
        self.reset()  # line 14
        return {"loss": lambda_ * big_h_phi - big_h_psi, "h_phi": big_h_phi, "h_psi": big_h_psi}


def paper_virtual_batch_loss(
    forward: Callable[[Any], torch.Tensor],
    batches: Sequence[Any],
    lambda_: float = 1.0,
    n_clusters: int | None = None,
) -> dict[str, torch.Tensor]:
    """Algorithm 2 over one virtual batch: returns the loss whose graph holds the last batch.

    The first ``len(batches) - 1`` mini-batches are forwarded without a graph (their terms are
    stored, lines 16-18); the last one is forwarded with a graph (lines 7-12). The caller
    back-propagates ``["loss"]`` and steps (line 13).
    """
    if len(batches) == 0:
        raise ValueError("a virtual batch needs at least one mini-batch")
    acc: PaperVirtualBatch | None = None if n_clusters is None else PaperVirtualBatch(n_clusters)
    for b in batches[:-1]:
        with torch.no_grad():
            logits = forward(b)
        if acc is None:
            acc = PaperVirtualBatch(logits.shape[1])
        acc.add(logits)
    logits = forward(batches[-1])
    if acc is None:
        acc = PaperVirtualBatch(logits.shape[1])
    return acc.loss(logits, lambda_)


def exact_virtual_batch_backward(
    forward: Callable[[Any], torch.Tensor],
    batches: Sequence[Any],
    lambda_: float = 1.0,
    *,
    before_second_pass: Callable[[], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Accumulate into ``.grad`` the exact gradient of eq. 3 on the union of ``batches``.

    Parameters
    ----------
    forward
        ``forward(batch) -> logits (M_b, K)``; called twice per mini-batch (it must give the same
        logits both times, e.g. no dropout).
    batches
        The t mini-batches of the virtual batch.
    lambda_
        The weight of H_Phi.
    before_second_pass
        Called between the passes (RECAL restores BatchNorm running statistics there, so the
        first pass does not count twice).

    Returns
    -------
    dict of detached tensors: ``loss``, ``h_phi``, ``h_psi`` of the union (values of eq. 3).
    The caller zeroes the gradients before and steps the optimizer after.
    """
    if len(batches) == 0:
        raise ValueError("a virtual batch needs at least one mini-batch")
    # pass 1: the union's marginal without a graph
    with torch.no_grad():
        col = None
        plogp = 0.0
        n = 0
        for b in batches:
            log_p = F.log_softmax(forward(b), dim=1)  # (M_b, K)
            p = log_p.exp()
            col = p.sum(dim=0) if col is None else col + p.sum(dim=0)  # s_l, (K,)
            plogp = plogp + (p * log_p).sum()
            n += int(p.shape[0])
        w = world_size() if use_global_batch(None) else 1
        if w > 1:  # the union of the ranks' virtual batches: sums and count over the ranks
            col = all_reduce_sum(col)
            plogp = all_reduce_sum(torch.as_tensor(plogp, dtype=col.dtype, device=col.device).reshape(1))[0]
            n = int(all_reduce_sum(torch.tensor([n], dtype=torch.long, device=col.device))[0])
        h_psi, p_l = _class_entropy(col)
        h_phi = -plogp / n
        s_total = col.sum()
        g = (torch.log(p_l.clamp_min(_EPS)) + h_psi) / s_total  # g_l = (log p_l + H_Psi)/S, (K,)
    if before_second_pass is not None:
        before_second_pass()
    # pass 2: per-mini-batch surrogate L_b, gradients accumulate across backward calls
    for b in batches:
        log_p = F.log_softmax(forward(b), dim=1)
        p = log_p.exp()
        surrogate = -(lambda_ / n) * (p * log_p).sum() + (p * g).sum()
        if w > 1:  # this rank's exact share, times W: the loop then averages over the W ranks
            surrogate = surrogate * w
        surrogate.backward()
    loss = lambda_ * h_phi - h_psi
    return {"loss": loss.detach(), "h_phi": h_phi.detach(), "h_psi": h_psi.detach()}
