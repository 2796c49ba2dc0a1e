"""t-SNE affinities and KL (TDEC eqs. 9-11) against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust.losses.tsne import (
    conditional_gaussian_affinity,
    dim_reduction_loss,
    joint_gaussian_affinity,
    student_t_joint_affinity,
    tsne_kl,
)


@pytest.mark.parametrize("perplexity", [2.0, 5.0, 10.0])
def test_perplexity_is_reached(perplexity):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(40, 6))
    D2 = ((w[:, None] - w[None]) ** 2).sum(-1)
    P, beta = conditional_gaussian_affinity(torch.from_numpy(D2), perplexity)
    P = P.numpy()
    np.testing.assert_allclose(np.diag(P), 0.0)
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-10)
    H = -np.sum(np.where(P > 0, P * np.log2(np.where(P > 0, P, 1)), 0), axis=1)
    np.testing.assert_allclose(2**H, perplexity, rtol=1e-3)
    # rows are eq. 11 with sigma_i from beta = 1 / (2 sigma_i^2)
    b = beta.numpy()
    for i in (0, 17):
        e = np.exp(-D2[i] * b[i])
        e[i] = 0
        np.testing.assert_allclose(P[i], e / e.sum(), rtol=1e-8)


def test_joint_affinity_and_kl_match_numpy():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(12, 5))
    v = rng.normal(size=(12, 2))
    phi = joint_gaussian_affinity(torch.from_numpy(w), 3.0).numpy()
    wt = torch.from_numpy(w)
    Pc, _ = conditional_gaussian_affinity(torch.cdist(wt, wt) ** 2, 3.0)
    Pc = Pc.numpy()
    np.testing.assert_allclose(phi, (Pc + Pc.T) / 24, rtol=1e-12)
    assert phi.sum() == pytest.approx(1.0)
    # eq. 10
    num = 1.0 / (1.0 + ((v[:, None] - v[None]) ** 2).sum(-1))
    np.fill_diagonal(num, 0.0)
    omega_ref = num / num.sum()
    omega = student_t_joint_affinity(torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(omega, omega_ref, rtol=1e-12)
    # eq. 9
    off = ~np.eye(12, dtype=bool)
    kl_ref = np.sum(phi[off] * np.log(phi[off] / omega_ref[off]))
    kl = tsne_kl(torch.from_numpy(phi), torch.from_numpy(omega)).item()
    assert kl == pytest.approx(kl_ref, rel=1e-10)
    assert kl > 0
    same = tsne_kl(torch.from_numpy(phi), torch.from_numpy(phi)).item()
    assert same == pytest.approx(0, abs=1e-12)


def test_dim_reduction_loss_trains_v_only_and_handles_small_batches():
    rng = np.random.default_rng(2)
    w = torch.from_numpy(rng.normal(size=(20, 5))).requires_grad_(True)
    v = torch.from_numpy(rng.normal(size=(20, 2))).requires_grad_(True)
    loss = dim_reduction_loss(w, v, perplexity=30.0)  # capped to (n-1)/3
    loss.backward()
    assert w.grad is None and v.grad.abs().sum() > 0
    assert dim_reduction_loss(w[:2], v[:2]).item() == 0.0
    with pytest.raises(ValueError, match="perplexity"):
        conditional_gaussian_affinity(torch.zeros(5, 5), 10.0)
