"""Partition comparison: the label change after matching, cluster identities across partitions,
the Jaccard consensus of two maps (eq. 5 of RECAL)."""

from __future__ import annotations

import numpy as np
import pytest

from deepclust.cluster.matching import jaccard_consensus, label_change, match_to_previous


def test_label_change_compares_partitions_not_indices():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=200)
    perm = np.array([2, 0, 3, 1])
    b = perm[a]  # the same partition, renumbered
    assert np.mean(a != b) > 0.5  # raw indices disagree ...
    assert label_change(a, b) == 0.0  # ... the partitions do not
    c = b.copy()
    c[:5] = (c[:5] + 1) % 4  # 5 of 200 points move to another cluster
    assert label_change(a, c) == pytest.approx(5 / 200)
    assert label_change(a, a) == 0.0


def test_match_to_previous_gives_new_clusters_the_previous_identities():
    rng = np.random.default_rng(1)
    prev = rng.integers(0, 4, size=120)
    perm = np.array([3, 1, 0, 2])
    new = perm[prev]
    new[:6] = (new[:6] + 1) % 4  # a few points change cluster as well
    order = match_to_previous(prev, new, 4)
    np.testing.assert_array_equal(order, perm)  # new cluster perm[j] is previous cluster j
    inv = np.argsort(order)
    assert np.mean(inv[new] != prev) == pytest.approx(6 / 120)
    # previous clusters 1 and 2 merge into new cluster 2 and new cluster 0 is empty: the
    # empty cluster still gets an identity (order stays a permutation)
    prev2 = np.repeat(np.arange(3), 10)
    new2 = np.array([1, 2, 2])[prev2]
    order2 = match_to_previous(prev2, new2, 3)
    assert sorted(order2.tolist()) == [0, 1, 2]
    assert order2[0] == 1 and sorted(order2[1:].tolist()) == [0, 2]


def test_jaccard_consensus_hand_example():
    m1 = np.array([[0, 0, 1], [1, 1, 2]])
    m2 = np.array([[5, 5, 5], [7, 7, 9]])  # relabelled, one pixel differs
    out = jaccard_consensus(m1, m2)
    pairs = {a: (b, j) for a, b, j in out["pairs"]}
    # cluster 0 {0,1} vs 5 {0,1,2}: 2/3; cluster 1 {2,3,4} vs 7 {3,4}: 2/3; 2 {5} vs 9 {5}: 1
    assert pairs[0] == (5, pytest.approx(2 / 3))
    assert pairs[1] == (7, pytest.approx(2 / 3))
    assert pairs[2] == (9, pytest.approx(1.0))
    assert out["mean_matched"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert out["matrix"].shape == (3, 3)
    with pytest.raises(ValueError, match="shape"):
        jaccard_consensus(m1, m2[:, :2])
