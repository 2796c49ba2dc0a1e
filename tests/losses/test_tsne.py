"""t-SNE affinities and KL (TDEC eqs. 9-11) against NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepclust.losses.tsne import (
    conditional_gaussian_affinity,
    dim_reduction_loss,
    dim_reduction_terms,
    joint_gaussian_affinity,
    student_t_joint_affinity,
    student_t_kernel,
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


def _three_points():
    """v = (0, 0), (1, 0), (0, 2): squared distances 1 (0-1), 4 (0-2), 5 (1-2), kernels 1/2,
    1/5, 1/6, Z = 2 (1/2 + 1/5 + 1/6) = 26/15, omega = 15/52, 6/52, 5/52; phi = 0.3, 0.15,
    0.05 on the pairs (each ordered pair, so it sums to 1)."""
    v = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    phi = torch.tensor([[0.0, 0.3, 0.15], [0.3, 0.0, 0.05], [0.15, 0.05, 0.0]], dtype=torch.float64)
    return v, phi


def test_exaggerated_kl_by_hand():
    v, phi = _three_points()
    num = student_t_kernel(v)
    torch.testing.assert_close(num, torch.tensor([[0, 1 / 2, 1 / 5], [1 / 2, 0, 1 / 6], [1 / 5, 1 / 6, 0]],
                                                 dtype=torch.float64))
    omega = student_t_joint_affinity(v)
    torch.testing.assert_close(omega, num / (26 / 15))
    kl = 2 * (0.3 * math.log(0.3 / (15 / 52)) + 0.15 * math.log(0.15 / (6 / 52)) + 0.05 * math.log(0.05 / (5 / 52)))
    assert tsne_kl(phi, omega).item() == pytest.approx(kl, rel=1e-12)
    assert kl == pytest.approx(0.036849, abs=1e-6)
    # a = 12: KL - (a - 1) sum phi log k = KL + 11 * 2 (0.3 log 2 + 0.15 log 5 + 0.05 log 6)
    attraction = 2 * (0.3 * math.log(2) + 0.15 * math.log(5) + 0.05 * math.log(6))
    ex = kl + 11 * attraction
    assert ex == pytest.approx(11.893701, abs=1e-6)
    z = num.sum()
    assert tsne_kl(phi, omega, 12.0, kernel_sum=z).item() == pytest.approx(ex, rel=1e-12)
    # the same as sum phi log phi - a sum phi log k + log Z ("P multiplied by a" in the attraction)
    off = ~torch.eye(3, dtype=torch.bool)
    alt = (phi[off] * phi[off].log()).sum() - 12 * (phi[off] * num[off].log()).sum() + z.log()
    assert alt.item() == pytest.approx(ex, rel=1e-12)
    obj, plain = dim_reduction_terms(None, v, phi=phi, exaggeration=12.0)
    assert obj.item() == pytest.approx(ex, rel=1e-12) and plain.item() == pytest.approx(kl, rel=1e-12)
    with pytest.raises(ValueError, match="kernel_sum"):
        tsne_kl(phi, omega, 12.0)
    assert tsne_kl(phi, omega, 1.0).item() == pytest.approx(kl, rel=1e-12)  # a = 1: eq. 9


@pytest.mark.parametrize("a", [1.0, 4.0, 12.0])
def test_exaggerated_gradient_is_tsnes(a):
    """d/dv_i = 4 sum_j (a phi_ij - omega_ij) k_ij (v_i - v_j) (van der Maaten & Hinton 2008,
    eq. 5 with P multiplied by a, as t-SNE's early exaggeration)."""
    rng = np.random.default_rng(3)
    w = torch.from_numpy(rng.normal(size=(25, 6)))
    v = torch.from_numpy(rng.normal(size=(25, 2))).requires_grad_(True)
    phi = joint_gaussian_affinity(w, 5.0)
    obj, kl = dim_reduction_terms(w, v, 5.0, exaggeration=a)
    (grad,) = torch.autograd.grad(obj, v)
    P, V = phi.numpy(), v.detach().numpy()
    K = 1.0 / (1.0 + ((V[:, None] - V[None]) ** 2).sum(-1))
    np.fill_diagonal(K, 0.0)
    Q = K / K.sum()
    ref = 4 * (((a * P - Q) * K)[:, :, None] * (V[:, None] - V[None])).sum(1)
    np.testing.assert_allclose(grad.numpy(), ref, rtol=1e-9, atol=1e-12)
    # the recorded L_dim is eq. 9 whatever a is; dim_reduction_loss gives the objective
    assert kl.item() == pytest.approx(dim_reduction_loss(w, v, 5.0).item(), rel=1e-12)
    assert dim_reduction_loss(w, v, 5.0, exaggeration=a).item() == pytest.approx(obj.item(), rel=1e-12)
    # given affinities are used as they are
    same, _ = dim_reduction_terms(None, v, phi=phi, exaggeration=a)
    assert same.item() == pytest.approx(obj.item(), rel=1e-12)
