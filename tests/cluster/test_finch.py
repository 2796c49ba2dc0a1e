import numpy as np
import pytest

from deepclust.cluster.finch import FINCH, finch, first_neighbors


def test_hand_made_points_level0():
    # 1-D points: first neighbours 0<->1, 2->1? no: 2 (at 5.0) -> 3 (5.5), 3 -> 2, 4 (20) -> 3
    X = np.array([[0.0], [1.0], [5.0], [5.5], [20.0], [21.0]])
    nn, dist = first_neighbors(X, metric="euclidean")
    assert nn.tolist() == [1, 0, 3, 2, 5, 4]
    np.testing.assert_allclose(dist, [1, 1, 0.5, 0.5, 1, 1])
    parts, counts, _ = finch(X, metric="euclidean")
    assert parts[0].tolist() == [0, 0, 1, 1, 2, 2]
    # level 1 on the means 0.5, 5.25, 20.5: 0.5<->5.25, 20.5->5.25 -> one cluster: dropped
    assert counts == [3]


def test_shared_first_neighbour_links():
    # points 0 and 2 both have 1 as first neighbour -> one component (eq. 1, third case)
    X = np.array([[0.0], [1.0], [2.1], [10.0], [10.2]])
    parts, counts, _ = finch(X, metric="euclidean")
    assert parts[0].tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_identical_to_finch_clust(metric, backend):
    finch_ref = pytest.importorskip("finch")
    rng = np.random.default_rng(1)
    n = 1500
    X = (rng.normal(size=(n, 16)) + 3 * rng.normal(size=(20, 16))[rng.integers(0, 20, n)]).astype(
        np.float32
    )
    c, nc, req = finch_ref.FINCH(X, distance=metric, req_clust=5, verbose=False)
    parts, counts, ours = finch(X, metric=metric, backend=backend, req_clust=5)
    assert counts == list(nc)
    for i, p in enumerate(parts):
        np.testing.assert_array_equal(p, c[:, i])
    np.testing.assert_array_equal(ours, req)


def test_blocked_search_matches_dense():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 5))
    nn, dist = first_neighbors(X, metric="euclidean", block_rows=7)
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    np.fill_diagonal(D, np.inf)
    np.testing.assert_array_equal(nn, D.argmin(1))
    np.testing.assert_allclose(dist, D.min(1), rtol=1e-9)


def test_estimator_levels_and_predict():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0, 0.1, (40, 2)) + [5, 0], rng.normal(0, 0.1, (40, 2)) + [0, 5]])
    est = FINCH(metric="euclidean").fit(X)
    assert est.labels_.dtype == np.int64
    assert len(est.partitions_) == len(est.n_clusters_per_level_) >= 1
    np.testing.assert_array_equal(est.labels_, est.partitions_[-1])
    est2 = FINCH(n_clusters=2, metric="euclidean").fit(X)
    assert len(np.unique(est2.labels_)) == 2
    assert (est2.predict(X) == est2.labels_).all()


def test_bad_input():
    with pytest.raises(ValueError, match="metric"):
        finch(np.zeros((4, 2)), metric="manhattan")
    with pytest.raises(ValueError, match="NaN"):
        finch(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="req_clust"):
        finch(np.random.rand(5, 2), req_clust=10)
    with pytest.raises(ValueError, match="level"):
        FINCH(level=50, metric="euclidean").fit(np.random.default_rng(0).normal(size=(30, 2)))
