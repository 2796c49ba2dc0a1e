"""Degenerate results: empty clusters and collapse are detected, warned about (CLI: one
``deepclust: warning:`` line each) and recorded in metrics.json; the collapse rule is label-free."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from deepclust.cli import main
from deepclust.methods.kmeans import KMeans
from deepclust.runner import DegenerateClusteringWarning, cluster_size_report, run_experiment

RNG = np.random.default_rng(0)


def _blobs(n_per=40, k=3, d=4):
    centres = np.eye(k, d) * 20
    X = np.concatenate([c + RNG.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(k), n_per)
    return X, y


def test_healthy_partition_is_not_flagged():
    X, y = _blobs()
    r = cluster_size_report(y, 3, X)
    assert r["cluster_sizes"] == [40, 40, 40] and r["n_empty_clusters"] == 0
    assert not r["collapse"] and not r["dominant_cluster"] and r["warnings"] == []
    assert r["collapse_reference"] is None  # the reference is only computed for a candidate collapse


def test_empty_clusters_are_counted_and_warned():
    r = cluster_size_report(np.array([0, 0, 2, 2, 4]), 5)
    assert r["cluster_sizes"] == [2, 0, 2, 0, 1] and r["n_empty_clusters"] == 2
    assert any("2 of 5 clusters are empty" in w for w in r["warnings"])


def test_collapse_when_the_data_has_more_structure():
    X, _ = _blobs()
    labels = np.zeros(len(X), dtype=np.int64)
    labels[:5] = 1  # 115 of 120 samples (96%) in one cluster of three well separated blobs
    r = cluster_size_report(labels, 3, X)
    assert r["collapse"] and r["largest_cluster_share"] == pytest.approx(115 / 120)
    assert r["collapse_reference"] == pytest.approx(1 / 3, abs=0.01)  # k-means finds the 3 blobs
    assert any(w.startswith("collapse: one cluster holds 96%") for w in r["warnings"])


def test_dominant_cluster_in_the_data_is_not_a_collapse():
    # 97 identical samples and 3 distant ones: any sensible 2-clustering puts 97% in one cluster
    X = np.zeros((100, 2), dtype=np.float32)
    X[97:] = [[50, 0], [0, 50], [50, 50]]
    labels = (np.arange(100) >= 97).astype(np.int64)
    r = cluster_size_report(labels, 2, X)
    assert not r["collapse"] and r["dominant_cluster"] and r["collapse_reference"] > 0.9
    assert r["warnings"] == [] and "dominated by one group" in r["note"]


def test_without_data_the_size_rule_alone_decides():
    r = cluster_size_report(np.array([0] * 95 + [1] * 5), 2)
    assert r["collapse"] and r["collapse_reference"] is None


def test_reference_uses_a_bounded_subsample(monkeypatch):
    import deepclust.runner as runner

    monkeypatch.setattr(runner, "COLLAPSE_REFERENCE_SAMPLES", 50)
    X, _ = _blobs(n_per=200)
    labels = np.zeros(len(X), dtype=np.int64)
    labels[0] = 1
    r = cluster_size_report(labels, 3, X, seed=1)
    assert r["collapse"] and 0.2 < r["collapse_reference"] < 0.5


@pytest.fixture
def collapsing_kmeans(monkeypatch):
    """KMeans whose fit puts every sample but one in cluster 0 (a collapsed deep model)."""

    def collapsed(self, X):
        self.labels_ = np.zeros(X.shape[0], dtype=np.int64)
        self.labels_[-1] = 1
        self.cluster_centers_ = np.zeros((self.n_clusters, X.shape[1]), np.float32)

    monkeypatch.setattr(KMeans, "_fit", collapsed)


def test_run_records_and_warns_collapse(tmp_path, collapsing_kmeans):
    X, y = _blobs()
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    with pytest.warns(DegenerateClusteringWarning) as rec:
        record = run_experiment("kmeans", data=str(tmp_path / "x.npy"), gt=str(tmp_path / "y.npy"),
                                out=tmp_path / "o", pictures=False)
    texts = [str(w.message) for w in rec]
    assert any(t.startswith("collapse:") for t in texts) and any("1 of 3 clusters are empty" in t for t in texts)
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["sizes"]["collapse"] is True and m["sizes"]["n_empty_clusters"] == 1
    assert m["sizes"]["cluster_sizes"] == [119, 1, 0]
    assert any(w.startswith("collapse:") for w in m["warnings"])
    assert record["sizes"] == m["sizes"]


def test_cli_shows_degenerate_warnings_in_one_line_each(tmp_path, capsys, collapsing_kmeans):
    X, _ = _blobs()
    np.save(tmp_path / "x.npy", X)
    code = main(["run", "kmeans", "--data", str(tmp_path / "x.npy"), "--n-clusters", "3",
                 "--out", str(tmp_path / "o"), "--no-pictures"])
    err = capsys.readouterr().err
    assert code == 0  # a degenerate result is reported, not an error
    lines = err.strip().splitlines()
    assert any(ln.startswith("deepclust: warning: collapse: one cluster holds 99%") for ln in lines), err
    assert all(ln.startswith("deepclust: warning: ") for ln in lines), err


def test_normal_run_records_sizes_without_warnings(tmp_path):
    X, y = _blobs()
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateClusteringWarning)
        run_experiment("kmeans", data=str(tmp_path / "x.npy"), gt=str(tmp_path / "y.npy"), out=tmp_path / "o",
                       pictures=False, overrides={"n_init": 2})
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["sizes"]["collapse"] is False and sorted(m["sizes"]["cluster_sizes"]) == [40, 40, 40]
    assert m["acc"] == 1.0
