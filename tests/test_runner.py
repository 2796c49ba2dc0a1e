"""Runner pieces that need no data: --set parsing, estimator building, cluster-size report."""

import json

import numpy as np
import pytest

from deepclust.bench import render_results
from deepclust.runner import build_estimator, cluster_size_report, parse_overrides


def test_parse_overrides():
    got = parse_overrides(["lr=1e-3", "local=False", "hidden=(5, 6)", "name=abc", "x=None"])
    assert got == {"lr": 1e-3, "local": False, "hidden": (5, 6), "name": "abc", "x": None}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])
    with pytest.raises(ValueError, match="valid parameter"):
        parse_overrides(["1x=2"])


def test_build_estimator_unknown_key_suggests():
    est = build_estimator("kmeans", dataset="digits", preset="fast", seed=3, n_clusters=4,
                          overrides={"n_init": 2})
    assert est.n_init == 2 and est.random_state == 3 and est.n_clusters == 4
    with pytest.raises(ValueError, match="Did you mean n_init"):
        build_estimator("kmeans", dataset=None, preset="fast", seed=0, n_clusters=2,
                        overrides={"n_inits": 2})
    with pytest.raises(ValueError, match="unknown preset"):
        build_estimator("kmeans", dataset=None, preset="slow", seed=0, n_clusters=2)
    with pytest.raises(ValueError, match="Did you mean kmeans"):
        build_estimator("kmean", dataset=None, preset="fast", seed=0, n_clusters=2)


def test_cluster_size_report_flags_collapse_and_empty():
    r = cluster_size_report(np.array([0] * 95 + [1] * 5), 3)
    assert r["n_empty_clusters"] == 1 and r["largest_cluster_share"] == 0.95
    assert any("collapse" in w for w in r["warnings"]) and any("empty" in w for w in r["warnings"])


def test_render_results_keeps_notes(tmp_path):
    (tmp_path / "results").mkdir()
    runs = [{"seed": s, "acc": 0.5 + s / 10, "nmi": 0.4, "ari": 0.3, "fit_seconds": 1.0,
             "peak_rss_mb": 100.0} for s in (0, 1)]
    (tmp_path / "results" / "kmeans__usps__fast.json").write_text(json.dumps(
        {"method": "kmeans", "dataset": "usps", "preset": "fast", "tag": None, "status": "ok",
         "runs": runs, "failures": [], "command": "deepclust bench --methods kmeans --datasets usps"}))
    (tmp_path / "results" / "scdsc__paviau__fast.json").write_text(json.dumps(
        {"method": "scdsc", "dataset": "paviau", "preset": "fast", "tag": None,
         "status": "data not present", "runs": []}))
    (tmp_path / "RESULTS.md").write_text("# Results\n\nhand notes\n")
    text = render_results(tmp_path).read_text()
    assert "hand notes" in text
    assert "| kmeans | 0,1 | 0.550 ± 0.050 | 0.400 ± 0.000" in text
    assert "`deepclust bench --methods kmeans --datasets usps`" in text  # each row with its command
    assert "0.668 / 0.627" in text  # the TDEC paper's k-means number on USPS
    assert "data not present" in text
    text2 = render_results(tmp_path).read_text()
    assert text2 == text  # idempotent
