"""Property-based tests of deepclust.metrics (hypothesis): invariances, bounds, and agreement with
scikit-learn and with independent brute-force / NumPy references.

Each test keeps ``max_examples`` modest so the file runs in a few seconds.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from deepclust import metrics as M

FAST = settings(max_examples=40, deadline=None)
# scikit-learn's cohen_kappa_score warns on one-label inputs (the reference is then skipped)
pytestmark = [
    pytest.mark.filterwarnings("ignore:A single label was found"),
    pytest.mark.filterwarnings("ignore:.*cohen_kappa_score. is undefined"),
]


@st.composite
def label_pairs(draw, max_classes=5, max_clusters=5, min_size=1, max_size=50):
    """(y_true, y_pred) of equal length with small label sets (arbitrary integer ids)."""
    n = draw(st.integers(min_size, max_size))
    kt = draw(st.integers(1, max_classes))
    kp = draw(st.integers(1, max_clusters))
    y = draw(st.lists(st.integers(0, kt - 1), min_size=n, max_size=n))
    p = draw(st.lists(st.integers(0, kp - 1), min_size=n, max_size=n))
    # arbitrary (negative, large, non-contiguous) ids for the classes and the clusters
    ids_t = draw(st.lists(st.integers(-1000, 1000), min_size=kt, max_size=kt, unique=True))
    ids_p = draw(st.lists(st.integers(-(10**9), 10**9), min_size=kp, max_size=kp, unique=True))
    return np.array(ids_t)[y], np.array(ids_p)[p]


def brute_force_acc(y, p) -> float:
    """Best one-to-one matching of clusters to classes by trying every assignment."""
    classes, clusters = np.unique(y), np.unique(p)
    best = 0
    # assign each cluster to a distinct class or to "nothing" (None), all possibilities
    slots = list(classes) + [None] * len(clusters)
    for perm in set(itertools.permutations(slots, len(clusters))):
        used = [c for c in perm if c is not None]
        if len(used) != len(set(used)):
            continue
        hits = sum(int(np.sum((p == k) & (y == c))) for k, c in zip(clusters, perm) if c is not None)
        best = max(best, hits)
    return best / y.size


def numpy_nmi(y, p) -> float:
    """NMI (arithmetic mean normalisation) from the contingency table, written out in NumPy."""
    table, _, _ = M.contingency(y, p)
    n = table.sum()
    pij = table / n
    pi, pj = pij.sum(1), pij.sum(0)
    nz = pij > 0
    mi = float(np.sum(pij[nz] * np.log(pij[nz] / np.outer(pi, pj)[nz])))
    h = lambda q: float(-np.sum(q[q > 0] * np.log(q[q > 0])))  # noqa: E731
    hy, hp = h(pi), h(pj)
    if hy == 0.0 and hp == 0.0:
        return 1.0  # both one-cluster partitions: identical (scikit-learn's convention)
    if hy == 0.0 or hp == 0.0:
        return 0.0
    return mi / ((hy + hp) / 2)


def numpy_ari(y, p) -> float:
    """Adjusted Rand index (Hubert & Arabie) from pair counts."""
    table, _, _ = M.contingency(y, p)
    comb = lambda x: x * (x - 1) / 2  # noqa: E731
    n = table.sum()
    s_ij = comb(table).sum()
    s_i, s_j = comb(table.sum(1)).sum(), comb(table.sum(0)).sum()
    expected = s_i * s_j / comb(n) if n > 1 else 0.0
    maximum = (s_i + s_j) / 2
    if maximum == expected:
        return 1.0  # degenerate (e.g. both one cluster or all singletons): scikit-learn's convention
    return float((s_ij - expected) / (maximum - expected))


@FAST
@given(label_pairs(max_classes=4, max_clusters=4, max_size=25))
def test_acc_equals_brute_force_matching(pair):
    y, p = pair
    assert M.acc(y, p) == pytest.approx(brute_force_acc(y, p))


@FAST
@given(label_pairs())
def test_nmi_ari_agree_with_sklearn_and_numpy(pair):
    y, p = pair
    assert M.nmi(y, p) == pytest.approx(skm.normalized_mutual_info_score(y, p), abs=1e-12)
    assert M.ari(y, p) == pytest.approx(skm.adjusted_rand_score(y, p), abs=1e-12)
    assert M.nmi(y, p) == pytest.approx(numpy_nmi(y, p), abs=1e-9)
    assert M.ari(y, p) == pytest.approx(numpy_ari(y, p), abs=1e-9)
    for method in ("max", "min", "geometric"):
        assert M.nmi(y, p, average_method=method) == pytest.approx(
            skm.normalized_mutual_info_score(y, p, average_method=method), abs=1e-12)


@FAST
@given(label_pairs(), st.randoms(use_true_random=False))
def test_invariances(pair, rnd):
    y, p = pair
    base = M.evaluate(y, p)
    # 1. renaming the clusters (any injective relabelling) changes nothing
    ids = np.unique(p)
    new_ids = np.array(rnd.sample(range(-50, 50), ids.size))
    p2 = new_ids[np.searchsorted(ids, p)]
    # 2. renaming the classes changes nothing
    cls = np.unique(y)
    y2 = np.array(rnd.sample(range(100, 200), cls.size))[np.searchsorted(cls, y)]
    # 3. shuffling the samples (both arrays together) changes nothing
    order = np.array(rnd.sample(range(y.size), y.size))
    for yy, pp in ((y, p2), (y2, p), (y[order], p[order])):
        other = M.evaluate(yy, pp)
        for k in ("acc", "nmi", "ari"):
            assert other[k] == pytest.approx(base[k], abs=1e-12), k
    # symmetric scores: swapping truth and prediction changes nothing
    assert M.nmi(p, y) == pytest.approx(base["nmi"], abs=1e-12)
    assert M.ari(p, y) == pytest.approx(base["ari"], abs=1e-12)


@FAST
@given(label_pairs())
def test_bounds_and_consistency(pair):
    y, p = pair
    r = M.evaluate(y, p)
    n = y.size
    table, _, _ = M.contingency(y, p)
    assert table.max() / n - 1e-12 <= r["acc"] <= 1.0  # at least one cluster's best class
    assert 0.0 <= r["nmi"] <= 1.0 + 1e-12
    assert -1.0 <= r["ari"] <= 1.0 + 1e-12
    assert -1.0 <= r["kappa"] <= 1.0 + 1e-12
    assert r["oa"] == r["acc"]
    # acc is the class-size-weighted mean of the per-class accuracies
    classes, counts = np.unique(y, return_counts=True)
    weighted = sum(r["per_class"][str(c)] * k for c, k in zip(classes, counts)) / n
    assert weighted == pytest.approx(r["acc"])
    # kappa is Cohen's kappa of the truth against the matched predictions
    mapping = M.match_labels(y, p)
    y_hat = np.array([mapping.get(v, np.min(y) - 1) for v in p.tolist()])
    sk_kappa = skm.cohen_kappa_score(y, y_hat)
    if not math.isnan(sk_kappa):
        assert r["kappa"] == pytest.approx(sk_kappa, abs=1e-9)


@FAST
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=40))
def test_perfect_clustering_scores_one(ys):
    y = np.array(ys)
    p = 7 * y + 1  # a relabelling
    r = M.evaluate(y, p)
    assert r["acc"] == 1.0 and r["nmi"] == pytest.approx(1.0) and r["ari"] == pytest.approx(1.0)
    assert r["kappa"] == pytest.approx(1.0)


@FAST
@given(label_pairs(), st.data())
def test_mask_equals_subset(pair, data):
    y, p = pair
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=y.size, max_size=y.size)))
    if not mask.any():
        with pytest.raises(ValueError, match="no samples"):
            M.evaluate(y, p, mask)
        return
    a, b = M.evaluate(y, p, mask), M.evaluate(y[mask], p[mask])
    for k in ("acc", "nmi", "ari", "kappa"):
        assert a[k] == pytest.approx(b[k], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=8),
        st.lists(st.integers(-5, 5), min_size=0, max_size=8),
        st.lists(st.text(max_size=2), min_size=0, max_size=8),
        st.lists(st.booleans(), min_size=0, max_size=8),
    ),
    st.lists(st.integers(-5, 5), min_size=0, max_size=8),
)
def test_garbage_labels_raise_only_value_or_type_error(a, b):
    try:
        r = M.evaluate(np.array(a), np.array(b))
    except (ValueError, TypeError):
        return
    assert 0.0 <= r["acc"] <= 1.0
