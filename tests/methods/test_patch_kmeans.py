"""patch-kmeans: SCDSC's inputs clustered without a network (the scene references)."""

import numpy as np
import pytest
from sklearn.cluster import KMeans

from deepclust.data.scene import ScenePatches, ScenePreprocessor
from deepclust.fingerprint import _scene
from deepclust.methods.patch_kmeans import PatchKMeans
from deepclust.metrics import evaluate

TINY = dict(n_components=4, patch=3, finch_patch=5, finch_pca=10, n_init=2)


def test_patches_are_kmeans_on_the_globally_scaled_patches():
    cube, gt = _scene()
    mask = gt > 0
    m = PatchKMeans(n_clusters=3, random_state=0, **TINY).fit(cube, mask=mask)
    rows, cols = np.nonzero(mask)
    src = ScenePatches(ScenePreprocessor(4).fit(cube).transform(cube), rows, cols, 3)
    src.set_normalisation(*src.feature_stats(scaling="global"))
    P = src.materialize().reshape(len(src), -1).numpy().astype(np.float64)
    np.testing.assert_array_equal(m.labels_, KMeans(3, n_init=2, random_state=0).fit(P).labels_)
    assert evaluate(gt[mask], m.labels_)["oa"] > 0.9  # three flat regions: easy


def test_miniclusters_label_every_pixel_as_its_minicluster():
    cube, gt = _scene()
    m = PatchKMeans(n_clusters=3, features="miniclusters", random_state=0, **TINY).fit(cube, mask=gt > 0)
    assert m.labels_.shape == ((gt > 0).sum(),) and "mini-cluster means" in m.selection_


def test_umap_embedding():
    pytest.importorskip("umap")
    cube, gt = _scene()
    m = PatchKMeans(n_clusters=3, embed="umap", random_state=0, **TINY).fit(cube, mask=gt > 0)
    assert set(np.unique(m.labels_)) <= {0, 1, 2}


@pytest.mark.parametrize("kw, msg", [({"features": "pixels"}, "features must be"), ({"embed": "tsne"}, "embed must be"),
                                     ({"embed": "umap", "features": "miniclusters"}, "features='patches'")])
def test_bad_parameters_say_what_to_do(kw, msg):
    cube, gt = _scene()
    with pytest.raises(ValueError, match=msg):
        PatchKMeans(n_clusters=3, **{**TINY, **kw}).fit(cube, mask=gt > 0)


def test_no_predict():
    cube, gt = _scene()
    m = PatchKMeans(n_clusters=3, random_state=0, **TINY).fit(cube, mask=gt > 0)
    with pytest.raises(NotImplementedError, match="labels_"):
        m.predict(cube)
