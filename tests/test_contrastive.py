"""Contrastive losses against hand-written / NumPy references."""

import math

import numpy as np
import pytest
import torch

from deepclust.losses.contrastive import (
    cluster_contrastive_loss,
    cluster_entropy,
    cross_level_loss,
    dataset_pseudo_labels,
    instance_contrastive_loss,
    match_pseudo_labels,
    nt_xent,
)


def ref_nt_xent(a, b, tau):
    """Loop reference of eqs. (3)-(6): each anchor vs its positive and the 2(n-1) others."""
    z = np.concatenate([a, b]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(a)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        num = math.exp(z[i] @ z[pos] / tau)
        den = sum(math.exp(z[i] @ z[j] / tau) for j in range(2 * n) if j != i)
        total += -math.log(num / den)
    return total / (2 * n)


@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_nt_xent_vs_reference(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    got = instance_contrastive_loss(torch.tensor(a), torch.tensor(b), 0.5).item()
    assert got == pytest.approx(ref_nt_xent(a, b, 0.5), rel=1e-9)


def test_nt_xent_hand_case():
    # n = 2, orthogonal unit vectors: a1 = b1 = e1, a2 = b2 = e2, tau = 1
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # anchor a1: positive b1 (sim 1), others a2 (0), b2 (0): -log(e / (e + 2))
    expected = -math.log(math.e / (math.e + 2))
    assert nt_xent(a, a.clone(), 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_gradient_and_errors():
    a = torch.randn(3, 4, requires_grad=True)
    nt_xent(a, torch.randn(3, 4), 0.5).backward()
    assert torch.isfinite(a.grad).all()
    with pytest.raises(ValueError):
        nt_xent(torch.randn(3, 4), torch.randn(2, 4), 0.5)
    with pytest.raises(ValueError):
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), 0.0)


def test_cluster_loss_vs_numpy():
    rng = np.random.default_rng(0)
    ca = rng.dirichlet(np.ones(3), size=5)
    cb = rng.dirichlet(np.ones(3), size=5)
    out = cluster_contrastive_loss(torch.tensor(ca), torch.tensor(cb), 1.0)
    # eq. (8) over the M columns, eq. (11) mean over 2M
    contrast = ref_nt_xent(ca.T, cb.T, 1.0)
    pa, pb = ca.sum(0) / ca.sum(), cb.sum(0) / cb.sum()
    h = -(pa * np.log(pa)).sum() - (pb * np.log(pb)).sum()  # eqs. (9)-(10)
    assert out["contrast"].item() == pytest.approx(contrast, rel=1e-9)
    assert out["entropy"].item() == pytest.approx(h, rel=1e-9)
    assert out["loss"].item() == pytest.approx(contrast - h, rel=1e-9)


def test_entropy_uniform_is_max():
    c = torch.full((4, 5), 0.2)
    assert cluster_entropy(c, c).item() == pytest.approx(2 * math.log(5))
    onehot = torch.zeros(4, 5)
    onehot[:, 0] = 1
    assert cluster_entropy(onehot, onehot).item() == pytest.approx(0.0, abs=1e-9)


def test_hungarian_matching_hand_case():
    # head labels (anchor) and k-means labels (pseudo); k-means 0 ~ head 2, 1 ~ head 0, 2 ~ head 1
    anchor = np.array([2, 2, 2, 0, 0, 1, 1, 1, 0])
    pseudo = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    # overlaps w[m, s]: head 2 & km 0: 2, head 2 & km 1: 1, head 0 & km 1: 2, head 0 & km 2: 1,
    # head 1 & km 2: 3 -> best total 2 + 2 + 3 = 7 with 0->2, 1->0, 2->1
    got = match_pseudo_labels(pseudo, anchor, 3)
    assert got.tolist() == [2, 2, 0, 0, 0, 1, 1, 1, 1]


def test_hungarian_fewer_pseudo_clusters():
    got = match_pseudo_labels(np.array([0, 0, 1]), np.array([3, 3, 1]), 4)
    assert got.tolist() == [3, 3, 1]


def test_cross_level_loss_cross_entropy():
    c = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    pseudo = np.array([1, 0, 2, 1])  # matched to head labels [0, 1, 2, 0]
    loss = cross_level_loss(torch.zeros(4, 2), c, 3, pseudo=pseudo)
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.6) + math.log(0.6)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_cross_level_loss_with_kmeans_and_grad():
    g = torch.Generator().manual_seed(0)
    z = torch.cat([torch.randn(6, 2, generator=g) + 5, torch.randn(6, 2, generator=g) - 5])
    logits = torch.randn(12, 2, generator=g, requires_grad=True)
    loss = cross_level_loss(z, logits.softmax(1), 2, seed=0)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad is not None


def test_dataset_pseudo_labels_hand_case():
    """Two well-separated groups; k-means finds them and the matching renames them to the head's
    labels (head says 1 for the first group, 0 for the second, with one disagreement)."""
    z = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [9.0, 9.0], [9.1, 9.0], [9.0, 9.1]])
    anchor = np.array([1, 1, 0, 0, 0, 0])
    got = dataset_pseudo_labels(z, anchor, 2, seed=0)
    assert got.tolist() == [1, 1, 1, 0, 0, 0]


def test_cross_level_loss_with_matched_target_skips_kmeans():
    c = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    target = torch.tensor([0, 2, 2])  # used as given: no k-means, no matching
    loss = cross_level_loss(torch.zeros(3, 2), c, 3, target=target)
    expected = -(math.log(0.7) + math.log(0.1) + math.log(0.6)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
