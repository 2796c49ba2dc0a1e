import numpy as np
import pytest
import torch

from deepclust.losses.minicluster import minicluster_kl, minicluster_mean
from deepclust.losses.spatial import check_window, masked_box_filter, spatial_kl, to_grid
from deepclust.losses.subspace import basis_constraint, subspace_affinity


def test_subspace_affinity_hand_computed():
    # latent 2, k=2 subspaces of d=1 basis vector: D = [e1, e2]
    D = torch.eye(2)
    z = torch.tensor([[3.0, 1.0]])
    eta, d = 5.0, 1
    s = subspace_affinity(z, D, n_clusters=2, d=1, eta=eta)
    a = (9 + eta * d) / ((eta + 1) * d)
    b = (1 + eta * d) / ((eta + 1) * d)
    np.testing.assert_allclose(s.numpy(), [[a / (a + b), b / (a + b)]], rtol=1e-6)


def test_subspace_affinity_numpy_reference():
    rng = np.random.default_rng(0)
    k, d, lat = 3, 2, 5
    z, D = rng.normal(size=(7, lat)), rng.normal(size=(lat, k * d))
    ref = np.stack([((z @ D[:, j * d : (j + 1) * d]) ** 2).sum(1) for j in range(k)], 1)
    ref = (ref + 5 * d) / (6 * d)
    ref /= ref.sum(1, keepdims=True)
    s = subspace_affinity(torch.tensor(z), torch.tensor(D), n_clusters=k, d=d)
    np.testing.assert_allclose(s.numpy(), ref, rtol=1e-10)
    with pytest.raises(ValueError, match="columns"):
        subspace_affinity(torch.tensor(z), torch.tensor(D), n_clusters=2, d=2)


def test_basis_constraint_numpy_reference():
    rng = np.random.default_rng(1)
    k, d, lat = 3, 2, 6
    D = rng.normal(size=(lat, k * d))
    G = D.T @ D
    O = np.ones((k * d, k * d))
    for j in range(k):
        O[j * d : (j + 1) * d, j * d : (j + 1) * d] = 0
    I = np.eye(k * d)
    between, unit = basis_constraint(torch.tensor(D), n_clusters=k, d=d)
    np.testing.assert_allclose(between.item(), np.linalg.norm(G * O) ** 2, rtol=1e-10)
    np.testing.assert_allclose(unit.item(), np.linalg.norm(G * I - I) ** 2, rtol=1e-10)
    b2, u2 = basis_constraint(torch.tensor(D), n_clusters=k, d=d, squared=False)
    np.testing.assert_allclose(b2.item(), np.linalg.norm(G * O), rtol=1e-10)
    # orthonormal bases satisfy the constraint exactly
    Q = np.linalg.qr(rng.normal(size=(lat, k * d)))[0]
    b, u = basis_constraint(torch.tensor(Q), n_clusters=k, d=d)
    assert b.item() < 1e-20 and u.item() < 1e-20


def test_minicluster_mean_and_gradient():
    s = torch.tensor(
        [[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.5, 0.5]],
        dtype=torch.float64,
        requires_grad=True,
    )
    index = torch.tensor([0, 0, 1, 1, 1])
    M = minicluster_mean(s, index)
    np.testing.assert_allclose(M.detach().numpy(), [[0.8, 0.2], [1.1 / 3, 1.9 / 3]])
    # eq. 10: d m_p / d s_q = 1/|C_p|
    M[:, 0].sum().backward()
    np.testing.assert_allclose(s.grad[:, 0].numpy(), [0.5, 0.5, 1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(s.grad[:, 1].numpy(), 0.0)


def test_minicluster_kl_reference_and_gradient_shared():
    rng = np.random.default_rng(2)
    s_np = rng.dirichlet(np.ones(3), size=10)
    idx = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    M = np.stack([s_np[idx == p].mean(0) for p in range(4)])
    T = M**2 / M.sum(0)
    T /= T.sum(1, keepdims=True)
    ref = (T * np.log(T / M)).sum()
    s = torch.tensor(s_np, requires_grad=True)
    loss_sum = minicluster_kl(s, torch.tensor(idx), reduction="sum")
    np.testing.assert_allclose(loss_sum.item(), ref, rtol=1e-10)
    loss = minicluster_kl(s, torch.tensor(idx))
    np.testing.assert_allclose(loss.item(), ref / (4 * 3), rtol=1e-10)
    loss.backward()
    g = s.grad.numpy()
    # eq. 10: members of one mini-cluster receive the same gradient
    np.testing.assert_allclose(g[0], g[1])
    np.testing.assert_allclose(g[2], g[4])


def test_masked_box_filter_against_loop():
    rng = np.random.default_rng(3)
    H, W, k, w = 6, 7, 3, 3
    mask = rng.random((H, W)) < 0.6
    mask[2, 3] = True
    grid = rng.random((k, H, W)) * mask
    out = masked_box_filter(torch.tensor(grid), torch.tensor(mask), w).numpy()
    r = w // 2
    for x in range(H):
        for y in range(W):
            num, den = np.zeros(k), 0.0
            for u in range(max(0, x - r), min(H, x + r + 1)):
                for v in range(max(0, y - r), min(W, y + r + 1)):
                    num += mask[u, v] * grid[:, u, v]
                    den += mask[u, v]
            expect = num / den if den > 0 else np.zeros(k)
            np.testing.assert_allclose(out[:, x, y], expect, rtol=1e-10, atol=1e-12)


def test_spatial_kl_reference_and_detached_target():
    rng = np.random.default_rng(4)
    H, W, k = 5, 4, 2
    mask = rng.random((H, W)) < 0.7
    flat = np.flatnonzero(mask)
    s_np = rng.dirichlet(np.ones(k), size=flat.size)
    grid = to_grid(torch.tensor(s_np), torch.tensor(flat), (H, W)).numpy()
    F_ = masked_box_filter(torch.tensor(grid), torch.tensor(mask), 3).numpy().reshape(k, -1).T[flat]
    ref = (F_ * np.log(F_ / s_np)).sum()
    s = torch.tensor(s_np, requires_grad=True)
    loss = spatial_kl(s, torch.tensor(flat), torch.tensor(mask), 3, reduction="sum")
    np.testing.assert_allclose(loss.item(), ref, rtol=1e-10)
    loss.backward()
    # F is detached: d/ds of sum F log(F/s) = -F/s
    np.testing.assert_allclose(s.grad.numpy(), -F_ / s_np, rtol=1e-10)


def test_window_validation():
    with pytest.raises(ValueError, match="odd"):
        check_window(4, (10, 10))
    with pytest.raises(ValueError, match="larger than the scene"):
        check_window(9, (5, 20))
    assert check_window(7, (7, 7)) == 7
