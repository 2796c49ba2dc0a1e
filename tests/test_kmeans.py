"""k-means baseline: the scikit-learn estimator checks and a sanity check on digits."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepclust.methods.kmeans import KMeans
from deepclust.metrics import acc

# deepclust requires n_clusters >= 2 (a one-cluster "clustering" is always a user error);
# this check sets n_clusters=1.
EXPECTED_FAILED = {
    name: "sets n_clusters=1, which deepclust rejects"
    for name in ("check_dont_overwrite_parameters", "check_methods_subset_invariance",
                 "check_fit2d_1feature", "check_fit2d_predict1d")
}


@parametrize_with_checks(
    [KMeans(n_clusters=2, n_init=2, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_digits_quality_and_reproducibility():
    X, y = load_digits(return_X_y=True)
    a = KMeans(n_clusters=10, random_state=0).fit(X)
    b = KMeans(n_clusters=10, random_state=0).fit(X)
    assert np.array_equal(a.labels_, b.labels_)
    assert acc(y, a.labels_) > 0.6  # k-means on digits is known to reach about 0.65-0.8
    assert np.array_equal(a.predict(X), a.labels_)


def test_faiss_backend_agrees_roughly():
    X, y = load_digits(return_X_y=True)
    km = KMeans(n_clusters=10, backend="faiss", n_init=3, random_state=0).fit(X)
    assert acc(y, km.labels_) > 0.6


def test_bad_params():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="backend"):
        KMeans(n_clusters=2, backend="gpu").fit(X)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        KMeans(n_clusters=30).fit(X)
    with pytest.raises(ValueError, match="expecting 3 features"):
        KMeans(n_clusters=2, random_state=0).fit(X).predict(np.zeros((2, 4)))
