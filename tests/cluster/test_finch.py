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
    assert dist.dtype == np.float32  # finch-clust rounds its distance matrix to float32
    np.testing.assert_allclose(dist, D.min(1), rtol=1e-6)


def offset_blobs() -> np.ndarray:
    """10 Gaussian blobs of 1,500 points in 30-D, blob c ~ N(4c, 1) on every axis (float64).

    The common offset makes cosine distances tiny (~1e-4) and nearly tied, as on raw spectra."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(4.0 * c, 1.0, (1500, 30)) for c in range(10)])


def _dense_first_neighbors(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """finch-clust's exact 1-NN: dense sklearn distances, float32, 1e12 diagonal, argmin."""
    from sklearn.metrics import pairwise_distances

    D = pairwise_distances(X, X, metric="cosine").astype(np.float32, copy=False)
    np.fill_diagonal(D, np.float32(1e12))
    nn = np.argmin(D, axis=1)
    return nn, D[np.arange(len(X)), nn]


@pytest.mark.parametrize("block_rows", [None, 5000])
def test_blocked_cosine_search_is_bitwise_dense_sklearn(block_rows):
    # level 0 (float32 points) and level 1 (float64 cluster means) of every other offset-blob
    # point: 4 or 2 blocks, nearly tied distances (6 first neighbours differ with torch's row
    # normalisation) and 4 exact float32 ties (the first index wins)
    from deepclust.cluster.finch import _components, _group_means

    X = offset_blobs().astype(np.float32)[::2]
    nn, dist = first_neighbors(X, block_rows=block_rows)
    ref_nn, ref_dist = _dense_first_neighbors(X)
    np.testing.assert_array_equal(nn, ref_nn)
    np.testing.assert_array_equal(dist, ref_dist)
    labels, k = _components(nn)
    means = _group_means(X, labels, k)
    assert means.dtype == np.float64
    nn1, dist1 = first_neighbors(means, block_rows=block_rows)
    ref_nn1, ref_dist1 = _dense_first_neighbors(means)
    np.testing.assert_array_equal(nn1, ref_nn1)
    np.testing.assert_array_equal(dist1, ref_dist1)


def test_blocked_search_does_not_depend_on_threads():
    from threadpoolctl import threadpool_limits

    X = offset_blobs().astype(np.float32)[::3]  # 5000 points: 3 blocks, 6 block pairs
    out = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            out.append(first_neighbors(X))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


@pytest.fixture(scope="module")
def finch_clust_offset_blobs():
    # finch-clust's first step casts its input to float32, so this one run (on the float64
    # array) is also its result for the float32 array
    finch_ref = pytest.importorskip("finch")
    c, nc, _ = finch_ref.FINCH(offset_blobs(), distance="cosine", verbose=False)
    return c, list(nc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_offset_blobs_identical_to_finch_clust(dtype, finch_clust_offset_blobs):
    """Nearly tied cosine distances (large common offset): every level identical to finch-clust.

    The partitions used to differ (ARI 0.996 at level 0, 0.84 at level 1) because our rows were
    normalised by torch (last-bit differences from scikit-learn's ``normalize`` flip nearly tied
    first neighbours) and float64 input was searched in float64 (finch-clust casts to float32)."""
    c, nc = finch_clust_offset_blobs
    parts, counts, _ = finch(offset_blobs().astype(dtype), metric="cosine")
    assert counts == nc and len(counts) >= 4
    for i, p in enumerate(parts):
        np.testing.assert_array_equal(p, c[:, i])


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
