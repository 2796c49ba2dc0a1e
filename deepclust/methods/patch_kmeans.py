"""k-means on SCDSC's own inputs: the cheap label-free references a scene method must beat.

SCDSC clusters 7x7 patches of a scene's 8 PCA bands through an autoencoder. These baselines
cluster the same inputs with no network, so a table shows what the deep model adds:

* ``features="patches"``: k-means on the autoencoder's input, the 7x7x8 patches with the
  per-feature mean removed and one global scale (:class:`deepclust.data.scene.ScenePatches`,
  ``scaling="global"``), flattened;
* ``features="miniclusters"``: SCDSC's FINCH mini-clusters (17x17x8 patches -> PCA 300 -> L2,
  cosine FINCH, the level after the 2nd iteration); weighted k-means (weight = pixels) on the
  mini-clusters' mean features, each pixel labelled as its mini-cluster;
* ``embed="umap"`` (with ``features="patches"``): the patches through the ``umap-kmeans``
  baseline with its preset (:mod:`deepclust.presets.umap_kmeans`), the peer a user tries first.

Every setting is SCDSC's ``fast`` default or the library default; none is tuned per scene.
"""

from __future__ import annotations

import numpy as np

from deepclust.base import DeepClusterer
from deepclust.data.hsi import check_mask

__all__ = ["PatchKMeans"]


class PatchKMeans(DeepClusterer):
    """k-means (or UMAP + k-means) on a scene's PCA patches or on its FINCH mini-cluster means.

    Parameters
    ----------
    n_clusters : int
    features : {"patches", "miniclusters"}, default "patches"
    embed : {None, "umap"}, default None
        ``"umap"``: UMAP + k-means on the patches (needs umap-learn; ``features="patches"`` only).
    n_components, patch : PCA bands (8) and patch side (7), SCDSC's.
    finch_patch, finch_pca : the mini-cluster features (17, 300), SCDSC's.
    n_init : k-means restarts (10); the lowest inertia is kept (label-free).
    random_state, device, verbose
    """

    input_kind = "scene"

    def __init__(self, n_clusters: int = 8, *, features: str = "patches", embed: str | None = None,
                 n_components: int = 8, patch: int = 7, finch_patch: int = 17, finch_pca: int = 300,
                 n_init: int = 10, random_state: int | None = None, device: str = "cpu", verbose: bool = False):
        self.n_clusters, self.features, self.embed = n_clusters, features, embed
        self.n_components, self.patch, self.finch_patch, self.finch_pca = n_components, patch, finch_patch, finch_pca
        self.n_init, self.random_state, self.device, self.verbose = n_init, random_state, device, verbose

    def _fit(self, X: np.ndarray, mask: np.ndarray | None = None) -> None:
        from sklearn.cluster import KMeans

        from deepclust.cluster.finch import minicluster_index
        from deepclust.data.scene import ScenePatches, ScenePreprocessor, patch_pca_features

        if self.features not in ("patches", "miniclusters"):
            raise ValueError(f"features must be 'patches' or 'miniclusters', got {self.features!r}")
        if self.embed not in (None, "umap"):
            raise ValueError(f"embed must be None or 'umap', got {self.embed!r}")
        if self.embed == "umap" and self.features != "patches":
            raise ValueError("embed='umap' clusters the patches: set features='patches'")
        mask = check_mask(mask, X.shape[:2])
        rows, cols = np.nonzero(mask)
        k, seed = int(self.n_clusters), int(self.seed_)
        pca_cube = ScenePreprocessor(int(self.n_components)).fit(X).transform(X)
        if self.features == "patches":
            src = ScenePatches(pca_cube, rows, cols, int(self.patch))
            src.set_normalisation(*src.feature_stats(scaling="global"))
            P = src.materialize().reshape(len(src), -1).numpy()
            if self.embed == "umap":
                from deepclust.methods.umap_kmeans import preset_partition

                m = preset_partition(P, k, seed)
                self.labels_, self.selection_ = np.asarray(m.labels_, dtype=np.int64), m.selection_
                return
            self.labels_ = KMeans(k, n_init=int(self.n_init), random_state=seed).fit(P.astype(np.float64)).labels_
            self.selection_ = f"k-means on the patches, lowest inertia of {self.n_init} restarts (label-free)"
            return
        feats = patch_pca_features(pca_cube, rows, cols, patch=int(self.finch_patch),
                                   n_components=int(self.finch_pca), seed=seed)
        mini, _ = minicluster_index(feats, level=1)
        n_mini = int(mini.max()) + 1
        w = np.bincount(mini, minlength=n_mini).astype(np.float64)
        means = np.zeros((n_mini, feats.shape[1]))
        np.add.at(means, mini, feats.astype(np.float64))
        means /= w[:, None]
        lab = KMeans(k, n_init=int(self.n_init), random_state=seed).fit(means, sample_weight=w).labels_
        self.labels_ = lab[mini].astype(np.int64)
        self.selection_ = (f"weighted k-means on {n_mini} mini-cluster means, lowest inertia of "
                           f"{self.n_init} restarts (label-free)")

    def _predict(self, X: np.ndarray, mask=None) -> np.ndarray:
        raise NotImplementedError("patch-kmeans labels the pixels it was fitted on (labels_); it has no predict")
