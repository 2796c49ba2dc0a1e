"""FINCH's approximate first-neighbour search above a size threshold."""

import numpy as np
import pytest

from deepclust.cluster.finch import FINCH, approx_first_neighbors, finch, first_neighbors


def blobs(n=3000, d=16, k=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4.0
    return (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_approximate_first_neighbours_recall(metric):
    X = blobs()
    nn, dist, info = approx_first_neighbors(X, metric=metric, n_recall=500, seed=0)
    exact_nn, exact_dist = first_neighbors(X, metric=metric)
    assert (nn != np.arange(len(X))).all()
    true_recall = float(np.mean(np.isclose(dist, exact_dist, atol=1e-5)))
    assert info["recall_at_1"] >= 0.99 and true_recall >= 0.99
    assert info["n_recall_queries"] == 500 and info["method"] == "faiss IVF-Flat"
    # the sampled recall estimates the true one
    assert abs(info["recall_at_1"] - true_recall) < 0.02


def test_finch_switches_to_approximate_above_threshold():
    X = blobs(seed=1)
    exact_parts, exact_counts, _ = finch(X, exact=True, ann_threshold=10)
    info: dict = {}
    parts, counts, _ = finch(X, ann_threshold=1000, seed=0, info=info)
    assert info["levels"][0]["method"] == "faiss IVF-Flat" and info["levels"][0]["n"] == 3000
    assert info["levels"][0]["recall_at_1"] >= 0.99
    assert all(lv["method"] == "exact" for lv in info["levels"][1:])  # means: below threshold
    assert counts == exact_counts
    for a, b in zip(parts, exact_parts, strict=True):
        np.testing.assert_array_equal(a, b)
    # below the threshold nothing changes and the search is reported exact
    info2: dict = {}
    below = finch(X, info=info2)
    assert [lv["method"] for lv in info2["levels"]] == ["exact"] * len(info2["levels"])
    np.testing.assert_array_equal(below[0][0], exact_parts[0])


def test_finch_estimator_reports_search():
    X = blobs(n=1500, seed=2)
    est = FINCH(ann_threshold=500, random_state=0).fit(X)
    assert est.diagnostics_["search"][0]["recall_at_1"] >= 0.99
    assert FINCH(ann_threshold=500, exact=True).fit(X).diagnostics_["search"][0]["method"] == "exact"
