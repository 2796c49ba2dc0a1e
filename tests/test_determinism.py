"""Determinism on CPU: the same seed gives identical labels, run to run.

Estimators seed only local generators (``make_generators``), never the global ones, so two fits
with the same ``random_state`` in one process — with other random draws in between — must agree
exactly; so must two ``deepclust run`` invocations.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from deepclust.cli import main
from deepclust.methods import METHODS
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


_tiny = runpy.run_path(str(Path(__file__).with_name("tiny_fits.py")))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_same_seed_identical_labels(method):
    """Every registered method, tiny settings, CPU: two fits with one seed agree exactly, even with
    the global NumPy/torch generators used in between (estimators must only use local ones)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        est, args, kwargs, _ = _tiny["build"](method)
        a = est.fit(*args, **kwargs).labels_.copy()
        _disturb_global_rngs()
        est2, args, kwargs, _ = _tiny["build"](method)
        b = est2.fit(*args, **kwargs).labels_
    finally:
        torch.set_num_threads(n)
    np.testing.assert_array_equal(a, b)
    for key, value in (getattr(est, "extra_labels_", None) or {}).items():
        np.testing.assert_array_equal(value, est2.extra_labels_[key], err_msg=key)
