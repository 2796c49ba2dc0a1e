"""Pictures are written and colour clusters like their matched classes."""

import numpy as np
import pytest

from deepclust import viz


def test_matched_colors_follow_matching():
    gt = np.array([[1, 1, 2], [2, 0, 3]])
    lm = np.array([[5, 5, 7], [7, -1, 9]])
    class_color, cluster_color = viz.matched_colors(gt, lm)
    assert np.allclose(cluster_color[5], class_color[1])
    assert np.allclose(cluster_color[7], class_color[2])
    assert np.allclose(cluster_color[9], class_color[3])


def test_pictures_written(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    p = (y + 1) % 3
    assert viz.plot_confusion(y, p, tmp_path / "c.png").stat().st_size > 1000
    gt = rng.integers(0, 4, (10, 12))
    lm = np.where(gt > 0, gt + 10, -1)
    assert viz.plot_cluster_map(lm, gt, tmp_path / "m.png", full_map=gt + 10).stat().st_size > 1000
    hist = {"pretrain": {"rec": [1.0, 0.5]}, "train": {"loss": [2.0, 1.0], "kl": [0.1, 0.05]}}
    assert viz.plot_curves(hist, tmp_path / "h.png").stat().st_size > 1000
    assert viz.plot_embedding(rng.normal(size=(30, 2)), y[:30], tmp_path / "e.png").exists()
    with pytest.raises(ValueError):
        viz.plot_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError):
        viz.plot_embedding(rng.normal(size=(30, 3)), y[:30], tmp_path / "e.png")
