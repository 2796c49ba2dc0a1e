"""Metrics against scikit-learn and hand-computed cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    adjusted_rand_score,
    cohen_kappa_score,
    normalized_mutual_info_score,
)

from deepclust import metrics as M


def test_acc_perfect_under_permutation():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([5, 5, 3, 3, 9, 9])
    assert M.acc(y, p) == 1.0
    assert M.match_labels(y, p) == {5: 0, 3: 1, 9: 2}


def test_acc_hand_case():
    # classes  : 0 0 0 1 1 1 ; clusters: a a b b b b  -> best map a->0, b->1: 2 + 3 = 5 / 6
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([7, 7, 8, 8, 8, 8])
    assert M.acc(y, p) == pytest.approx(5 / 6)
    assert M.per_class_accuracy(y, p) == {0: pytest.approx(2 / 3), 1: 1.0}


def test_acc_more_clusters_than_classes():
    # 3 clusters for 2 classes: cluster 2 cannot be matched and counts as wrong.
    y = np.array([0, 0, 1, 1, 1, 1])
    p = np.array([0, 0, 1, 1, 2, 2])
    assert M.acc(y, p) == pytest.approx(4 / 6)


def test_acc_fewer_clusters_than_classes():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 1, 1, 1, 1])
    assert M.acc(y, p) == pytest.approx(4 / 6)
    pc = M.per_class_accuracy(y, p)
    assert sorted(pc.values()) == [0.0, 1.0, 1.0]


def test_kappa_hand_case():
    # matched predictions equal y except one; p_o = 5/6.
    y = np.array([1, 1, 1, 2, 2, 2])
    p = np.array([1, 1, 2, 2, 2, 2])
    # marginals: truth (3, 3), pred (2, 4) -> p_e = (3*2 + 3*4) / 36 = 0.5
    assert M.kappa(y, p) == pytest.approx((5 / 6 - 0.5) / 0.5)


def test_kappa_matches_sklearn_after_matching():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.7, (y + 1) % 4, rng.integers(0, 4, 300))
    mapping = M.match_labels(y, p)
    mapped = np.array([mapping[v] for v in p])
    assert M.kappa(y, p) == pytest.approx(cohen_kappa_score(y, mapped))
    assert M.oa(y, p) == pytest.approx(accuracy_score(y, mapped))


def test_nmi_ari_against_sklearn_and_average_method():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 200)
    p = rng.integers(0, 7, 200)
    assert M.nmi(y, p) == pytest.approx(normalized_mutual_info_score(y, p))
    assert M.nmi(y, p, average_method="max") == pytest.approx(
        normalized_mutual_info_score(y, p, average_method="max")
    )
    assert M.ari(y, p) == pytest.approx(adjusted_rand_score(y, p))


def test_mask_and_any_integer_labels():
    gt = np.array([[0, 3, 3], [-1, 4, 4]])
    pred = np.array([[9, 1, 1], [9, 0, 0]])
    mask = gt > 0
    res = M.evaluate(gt, pred, mask)
    assert res["acc"] == 1.0 and res["oa"] == 1.0 and res["kappa"] == 1.0
    assert res["per_class"] == {"3": 1.0, "4": 1.0}


def test_evaluate_keys_and_max_nmi():
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 1, 1, 1])
    res = M.evaluate(y, p, average_method="max")
    assert {"acc", "nmi", "ari", "oa", "kappa", "per_class", "nmi_max"} <= set(res)


@pytest.mark.parametrize(
    "y,p,mask,err",
    [
        ([0, 1], [0, 1, 1], None, ValueError),
        ([0.5, 1], [0, 1], None, ValueError),
        ([0, 1], [0, 1], np.array([0, 1]), TypeError),
        ([0, 1], [0, 1], np.array([False, False]), ValueError),
    ],
)
def test_bad_input(y, p, mask, err):
    with pytest.raises(err):
        M.evaluate(y, p, mask)


labels = st.lists(st.integers(0, 5), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(labels, st.randoms(use_true_random=False))
def test_fuzz_permutation_invariance_and_bounds(ys, rnd):
    y = np.array(ys)
    p = np.array([rnd.randint(0, 4) for _ in ys])
    perm = np.array(rnd.sample(range(10), 10))
    r1 = M.evaluate(y, p)
    r2 = M.evaluate(y, perm[p])
    # kappa is left out: when several matchings tie on agreement, kappa depends on which one
    # the Hungarian solver returns (documented in metrics.kappa).
    for k in ("acc", "nmi", "ari"):
        assert r1[k] == pytest.approx(r2[k])
    assert -1.0 <= r1["kappa"] <= 1.0
    assert 0.0 <= r1["acc"] <= 1.0 and 0.0 <= r1["nmi"] <= 1.0 + 1e-12
    # one cluster alone can always be matched to the class it overlaps most
    table, _, _ = M.contingency(y, p)
    assert r1["acc"] >= table.max() / y.size - 1e-12


def test_size_summary_hand_computed():
    from deepclust.metrics import size_summary

    assert size_summary([0, 0, 0, 2], 4) == {"n_nonempty_clusters": 2, "largest_cluster_share": 0.75}
