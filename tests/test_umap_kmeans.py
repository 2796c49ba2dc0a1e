"""UMAP + k-means / GMM baseline: quality on a digits subset, determinism, predict, bad
parameters, and the message when umap-learn is missing."""

import builtins
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from deepclust.methods import get_method
from deepclust.methods.umap_kmeans import UMAP_INSTALL_HINT, UMAPKMeans


@pytest.fixture(scope="module")
def digits500():
    X, y = load_digits(return_X_y=True)
    return (X[:500] / 16.0).astype(np.float32), y[:500]


@pytest.fixture(scope="module")
def fitted(digits500):
    pytest.importorskip("umap")
    X, _ = digits500
    return UMAPKMeans(n_clusters=10, random_state=0).fit(X)


def test_registered_with_presets():
    from deepclust.presets import get_preset

    assert get_method("umap-kmeans") is UMAPKMeans
    assert get_method("UMAP_KMeans") is UMAPKMeans
    fast = get_preset("umap-kmeans", "digits", "fast")
    assert fast == get_preset("umap-kmeans", "mnist", "fast") == get_preset("umap-kmeans", None, "paper")
    assert fast["n_neighbors"] == 30 and fast["min_dist"] == 0.0 and fast["n_components"] == 10
    assert set(fast) <= set(UMAPKMeans().get_params())


def test_digits_subset_clearly_better_than_chance(digits500, fitted):
    X, y = digits500
    assert fitted.embedding_.shape == (500, 10) and fitted.labels_.shape == (500,)
    assert fitted.pca_ is None  # 64 features: "auto" keeps them
    # chance is ARI 0; k-means on these pixels reaches about 0.6, UMAP + k-means about 0.8
    assert adjusted_rand_score(y, fitted.labels_) > 0.5


def test_same_seed_same_labels(digits500, fitted):
    X, _ = digits500
    again = UMAPKMeans(n_clusters=10, random_state=0).fit(X)
    np.testing.assert_array_equal(fitted.labels_, again.labels_)
    np.testing.assert_array_equal(fitted.embedding_, again.embedding_)


def test_predict_on_training_data_agrees(digits500, fitted):
    X, _ = digits500
    assert (fitted.predict(X) == fitted.labels_).mean() > 0.9
    assert fitted.transform(X[:7]).shape == (7, 10)
    with pytest.raises(ValueError, match="expecting 64 features"):
        fitted.predict(np.zeros((2, 5)))


def test_gmm_pca_and_images(digits500):
    pytest.importorskip("umap")
    X, y = digits500
    images = X[:300].reshape(-1, 1, 8, 8)  # images are flattened per sample, as kmeans does
    m = UMAPKMeans(n_clusters=10, clusterer="gmm", pca_components=20, n_init=2, random_state=1).fit(images)
    assert m.pca_.n_components_ == 20 and m.embedding_.shape == (300, 10)
    assert "Gaussian-mixture" in m.selection_ and "PCA 20" in m.selection_
    assert adjusted_rand_score(y[:300], m.labels_) > 0.5
    assert (m.predict(images) == m.labels_).mean() > 0.9


def test_auto_pca_only_for_wide_inputs():
    est = UMAPKMeans()
    assert est._pca_size(1000, 64) is None and est._pca_size(1000, 100) is None
    assert est._pca_size(1000, 784) == 50 and est._pca_size(30, 784) == 30
    assert UMAPKMeans(pca_components=None)._pca_size(1000, 784) is None
    assert UMAPKMeans(pca_components=80)._pca_size(1000, 64) is None  # nothing to reduce


@pytest.mark.parametrize("params, match", [
    ({"clusterer": "dbscan"}, "clusterer must be 'kmeans' or 'gmm'"),
    ({"n_components": 0}, "n_components must be an integer >= 1"),
    ({"n_neighbors": 1}, "n_neighbors must be an integer >= 2"),
    ({"n_neighbors": 2.5}, "n_neighbors must be an integer"),
    ({"min_dist": -0.1}, r"min_dist must be a number in \[0, 1\]"),
    ({"n_init": 0}, "n_init must be an integer >= 1"),
    ({"pca_components": "all"}, "pca_components must be 'auto', None or an integer"),
    ({"pca_components": 0}, "pca_components must be 'auto', None or an integer"),
])
def test_bad_params(params, match):
    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match=match):
        UMAPKMeans(n_clusters=2, **params).fit(X)


def test_too_many_clusters():
    with pytest.raises(ValueError, match="larger than the number of samples"):
        UMAPKMeans(n_clusters=30).fit(np.random.default_rng(0).normal(size=(20, 3)))


def _without_umap(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "umap" or name.startswith("umap."):
            raise ModuleNotFoundError("No module named 'umap'", name="umap")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    for mod in [m for m in sys.modules if m == "umap" or m.startswith("umap.")]:
        monkeypatch.delitem(sys.modules, mod)


def test_missing_umap_says_how_to_install(monkeypatch):
    _without_umap(monkeypatch)
    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ImportError, match="umap-learn") as info:
        UMAPKMeans(n_clusters=2, random_state=0).fit(X)
    assert UMAP_INSTALL_HINT in str(info.value) and 'deepclust[umap]' in str(info.value)
    assert not hasattr(UMAPKMeans(n_clusters=2), "labels_")  # no silent fallback


def test_missing_umap_is_a_one_line_cli_error(monkeypatch, tmp_path, capsys):
    from deepclust.cli import main

    _without_umap(monkeypatch)
    code = main(["run", "umap-kmeans", "--dataset", "digits", "--out", str(tmp_path / "o"), "--no-pictures"])
    err = capsys.readouterr().err
    assert code == 2 and "deepclust[umap]" in err and "unexpected" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_extras_list_umap_learn():
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]
    for name in ("umap", "bench", "test"):
        assert any(dep.startswith("umap-learn") for dep in extras[name]), name


def test_methods_listing_shows_it():
    proc = subprocess.run([sys.executable, "-m", "deepclust", "methods"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    row = next(line for line in proc.stdout.splitlines() if line.startswith("umap-kmeans "))
    assert "McInnes" in row and "vectors" in row


def test_torch_thread_count_survives_umap():
    """umap-learn's numba kernels reset the process's OpenMP thread count (torch's too); fit and
    predict put torch's back, so a method that runs UMAP and then trains keeps the user's setting."""
    pytest.importorskip("umap")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        X = np.random.default_rng(0).random((120, 5)).astype(np.float32)
        est = UMAPKMeans(n_clusters=3, random_state=0).fit(X)
        assert torch.get_num_threads() == 1
        est.predict(X[:10])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cluster_means_by_hand_and_empty_clusters():
    """``cluster_means``: the mean row of each cluster; an empty cluster gets +inf (never nearest)."""
    from deepclust.methods.umap_kmeans import cluster_means

    z = np.array([[0.0, 2.0], [2.0, 4.0], [10.0, 10.0]])
    got = cluster_means(z, np.array([0, 0, 2]), 3)
    np.testing.assert_array_equal(got[0], [1.0, 3.0])
    assert np.isinf(got[1]).all() and got[1][0] > 0
    np.testing.assert_array_equal(got[2], [10.0, 10.0])
