"""Determinism on CPU: the same seed gives identical labels, run to run.

Estimators seed only local generators (``make_generators``), never the global ones, so two fits
with the same ``random_state`` in one process — with other random draws in between — must agree
exactly; so must two ``deepclust run`` invocations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust.cli import main
from deepclust.methods.kmeans import KMeans

RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(loc=c, size=(60, 5)) for c in (0.0, 1.5, 3.0)]).astype(np.float32)


def _disturb_global_rngs():
    """Consume global random state: a correct estimator must not depend on it."""
    np.random.seed(12345)
    np.random.rand(7)
    torch.manual_seed(999)
    torch.rand(3)


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_kmeans_same_seed_identical_labels(backend):
    a = KMeans(n_clusters=3, n_init=2, backend=backend, random_state=7).fit(X)
    _disturb_global_rngs()
    b = KMeans(n_clusters=3, n_init=2, backend=backend, random_state=7).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_kmeans_seed_is_used():
    """Different seeds reach different initialisations (the seed is not ignored)."""
    inits = {KMeans(n_clusters=3, n_init=1, max_iter=1, random_state=s).fit(X).inertia_ for s in range(5)}
    assert len(inits) > 1


def test_cli_same_seed_identical_outputs(tmp_path, capsys):
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        assert main(["run", "kmeans", "--dataset", "digits", "--seed", "3", "--out", str(out), "--no-pictures",
                     "--set", "n_init=2"]) == 0
        outs.append(out)
        _disturb_global_rngs()
    capsys.readouterr()
    np.testing.assert_array_equal(np.load(outs[0] / "labels.npy"), np.load(outs[1] / "labels.npy"))
