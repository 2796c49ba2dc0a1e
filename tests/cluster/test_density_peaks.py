"""Density peaks (TDEC eqs. 2-4) against the O(n^2) definition; eqs. 5-6 on a hand example."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust.cluster.density_peaks import (
    choose_dc,
    density_peaks,
    knn_indices,
    local_density,
    nearest_denser,
    neighbor_assignment,
)


def _reference(Z: np.ndarray, dc: float):
    """Eqs. 2-4 with explicit Python loops (independent of the module's code)."""
    n = len(Z)
    rho = np.zeros(n)
    for i in range(n):
        for j in range(n):
            rho[i] += np.exp(-np.sum((Z[i] - Z[j]) ** 2) / dc**2)
    delta = np.zeros(n)
    for i in range(n):
        dists = [np.linalg.norm(Z[i] - Z[j]) for j in range(n) if rho[j] > rho[i]]
        delta[i] = min(dists) if dists else max(np.linalg.norm(Z[i] - Z[j]) for j in range(n))
    return rho, delta, rho * delta


def _blobs(n_per=40, k=4, seed=0, d=2):
    rng = np.random.default_rng(seed)
    means = rng.uniform(-10, 10, size=(k, d))
    return np.concatenate([m + rng.normal(size=(n_per, d)) for m in means])


def test_dc_is_the_neighbour_rate_quantile():
    Z = _blobs(n_per=30)
    dc = choose_dc(Z, 0.02)
    D = np.linalg.norm(Z[:, None] - Z[None], axis=-1)
    neighbours = ((D < dc).sum(1) - 1).mean()  # minus self
    assert neighbours == pytest.approx(0.02 * (len(Z) - 1), rel=0.05)
    # sampled estimate on larger n stays close to the exact quantile
    Zb = _blobs(n_per=600, seed=1)
    exact = choose_dc(Zb, 0.02)
    approx = choose_dc(Zb, 0.02, max_pairs=200_000, random_state=0)
    assert approx == pytest.approx(exact, rel=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_equals_direct_definition(seed):
    Z = _blobs(n_per=25, seed=seed)
    dc = choose_dc(Z)
    rho_ref, delta_ref, gamma_ref = _reference(Z, dc)
    # untruncated density: exactly the definition
    np.testing.assert_allclose(local_density(Z, dc, truncate=None, query_chunk=7, block=50),
                               rho_ref, rtol=1e-12)
    rho = local_density(Z, dc, truncate=4.0, query_chunk=7, block=50)
    assert np.all(rho <= rho_ref + 1e-12) and np.all(rho_ref - rho <= len(Z) * np.exp(-16))
    # delta with a tiny k forces the exact fallback for many points
    delta, nearest = nearest_denser(Z, rho_ref, k=3)
    np.testing.assert_allclose(delta, delta_ref, rtol=1e-12)
    top = np.argmax(rho_ref)
    assert nearest[top] == -1
    for method in ("fast", "exact"):
        res = density_peaks(Z, 4, dc=dc, method=method)
        np.testing.assert_allclose(res.gamma, gamma_ref, rtol=1e-6)
        np.testing.assert_array_equal(res.centers, np.argsort(-gamma_ref, kind="stable")[:4])
    # one centre per blob
    res = density_peaks(Z, 4)
    assert sorted(res.centers // 25) == [0, 1, 2, 3]


def test_density_peaks_higher_dim_and_bad_input():
    Z = _blobs(n_per=20, k=3, d=10, seed=3)
    a = density_peaks(Z, 3, method="fast")
    b = density_peaks(Z, 3, method="exact")
    np.testing.assert_array_equal(a.centers, b.centers)
    with pytest.raises(ValueError, match="method"):
        density_peaks(Z, 3, method="nope")
    with pytest.raises(ValueError, match="n_clusters"):
        density_peaks(Z, 0)
    with pytest.raises(ValueError, match="NaN"):
        density_peaks(np.full((5, 2), np.nan), 2)


def test_knn_indices_exclude_self():
    Z = _blobs(n_per=10, k=2)
    Z[1] = Z[0]  # a duplicate
    idx = knn_indices(Z, 5)
    assert idx.shape == (20, 5)
    assert not np.any(idx == np.arange(20)[:, None])
    D = np.linalg.norm(Z[:, None] - Z[None], axis=-1)
    np.fill_diagonal(D, np.inf)
    np.testing.assert_allclose(np.take_along_axis(D, idx, 1), np.sort(D, 1)[:, :5])


def test_neighbor_assignment_paper_example():
    """Fig. 1 right: x_i is nearest to the centre of "3", but 5 of its 8 neighbours are in "5"
    and 3 in "3"; eqs. 5-6 must put it in "5" while the plain Student-t kernel says "3"."""
    centers = torch.tensor([[0.0, 0.0], [4.0, 0.0], [2.0, 3.0]], dtype=torch.float64)  # 3, 5, 4
    z = torch.tensor([[1.9, 0.0]], dtype=torch.float64)  # closest to centre "3"
    nb5 = torch.tensor([[2.5, 0.1], [2.6, -0.2], [2.55, 0.3], [2.45, -0.3], [2.7, 0.15]])
    nb3 = torch.tensor([[1.3, 0.0], [1.35, 0.3], [1.3, -0.3]])
    neighbors = torch.cat([nb5, nb3]).to(torch.float64)[None]  # (1, 8, 2)
    q = neighbor_assignment(z, neighbors, centers)
    # hand computation of eqs. 5-6 with NumPy
    zs, c, zi = neighbors[0].numpy(), centers.numpy(), z[0].numpy()
    inv = 1.0 / ((zs - zi) ** 2).sum(1)
    theta = inv / inv.sum()
    kern = 1.0 / (1.0 + ((zs[:, None] - c[None]) ** 2).sum(-1))
    ref = (theta[:, None] * kern).sum(0)
    ref /= ref.sum()
    np.testing.assert_allclose(q[0].numpy(), ref, rtol=1e-12)
    plain = 1.0 / (1.0 + ((zi - c) ** 2).sum(1))
    assert np.argmax(plain) == 0  # distance alone says "3"
    assert int(q.argmax()) == 1  # neighbours say "5"
    assert q[0].sum().item() == pytest.approx(1.0)
    # gradients flow to z through eq. 5
    z.requires_grad_(True)
    neighbor_assignment(z, neighbors, centers)[0, 1].backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_knn_query_leaves_out_itself_and_keeps_k_for_new_points():
    from deepclust.cluster.density_peaks import knn_query

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 2))
    # the training set against itself: the same lists as knn_indices (self left out)
    np.testing.assert_array_equal(knn_query(Z, Z, 7), knn_indices(Z, 7))
    np.testing.assert_array_equal(knn_query(Z, Z[[5, 3]], 7), knn_indices(Z, 7)[[5, 3]])
    # new points: their k nearest bank points, by brute force
    new = rng.normal(size=(9, 2))
    d = np.linalg.norm(new[:, None] - Z[None], axis=-1)
    np.testing.assert_array_equal(knn_query(Z, new, 7), np.argsort(d, 1, kind="stable")[:, :7])
    # exact duplicates: the same neighbour coordinates as knn_indices
    Zd = np.concatenate([Z, Z[:4]])
    np.testing.assert_array_equal(Zd[knn_query(Zd, Zd, 5)], Zd[knn_indices(Zd, 5)])
    zero = (np.linalg.norm(Zd[knn_query(Zd, Zd, 5)] - Zd[:, None], axis=-1) == 0).sum(1)
    np.testing.assert_array_equal(zero, np.isin(np.arange(64), [0, 1, 2, 3, 60, 61, 62, 63]))
    with pytest.raises(ValueError, match="k must be"):
        knn_query(Z, new, 60)
    with pytest.raises(ValueError, match="like the bank"):
        knn_query(Z, rng.normal(size=(3, 3)), 5)
