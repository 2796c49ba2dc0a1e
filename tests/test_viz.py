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


def test_scene_picture_style_legend_background_scores():
    gt = np.zeros((10, 12), int)
    gt[1:5, 1:6], gt[5:9, 2:10], gt[1:4, 7:11] = 1, 2, 3
    lm = np.where(gt > 0, (gt + 3) % 4, -1)
    lm[0, 0] = 9  # a cluster on an unlabelled pixel: matched to no class
    fig = viz.cluster_map_figure(lm, gt, title="kmeans on x", scores={"acc": 0.9, "oa": 0.9, "nmi": 0.8})
    try:
        title = fig._suptitle.get_text()
        assert "kmeans on x" in title and "OA 0.900" in title and "NMI 0.800" in title
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "class 1 = cluster 0" in texts and "cluster 9 (no class)" in texts
        assert texts[-1] == "unlabelled / not clustered"
        truth, clusters = (ax.images[0].get_array() for ax in fig.axes[:2])
        assert np.allclose(truth[0, 1], 1.0) and np.allclose(clusters[0, 1], 1.0)  # white background in both
        assert np.allclose(truth[2, 2], clusters[2, 2])  # a cluster in its class's colour
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_confusion_has_acc_and_colorbar(tmp_path, monkeypatch):
    import matplotlib.figure

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: saved.append(self))
    y = np.array([0, 0, 1, 1, 2, 2])
    viz.plot_confusion(y, np.array([1, 1, 0, 0, 2, 0]), tmp_path / "c.png", title="t")
    fig = saved[0]
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert "ACC 0.833" in fig.axes[0].get_title()


def test_curves_no_duplicate_loss_ylabel_and_log_scale(tmp_path, monkeypatch):
    import matplotlib.figure

    assert list(viz.curve_terms({"loss": [1.0, 0.5], "rec": [1.0, 0.5]})) == ["rec (= loss)"]
    assert list(viz.curve_terms({"loss": [1.5, 0.6], "rec": [1.0, 0.5], "kl": [0.5, 0.1]})) == ["loss", "rec", "kl"]
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: saved.append(self))
    viz.plot_curves({"pretrain": {"loss": [1.0, 0.5], "rec": [1.0, 0.5]},
                     "train": {"loss": [2.0, 1.0], "kl": [1e-3, 5e-4], "rec": [2.0, 1.0]},
                     "boost": {"loss": [-1.0, -2.0], "ent": [1e-3, 2e-3]}}, tmp_path / "h.png")
    pretrain, train, boost = saved[0].axes
    assert [line.get_label() for line in pretrain.get_lines()] == ["rec (= loss)"]
    assert pretrain.get_ylabel() and pretrain.get_yscale() == "linear"
    assert train.get_yscale() == "log" and boost.get_yscale() == "symlog"
