"""UMAP + k-means presets: one setting for every data set, no tuning per data set.

The UMAP settings are umap-learn's recommendation for clustering (30 neighbours, ``min_dist=0``,
a 10-D embedding; see :class:`deepclust.methods.umap_kmeans.UMAPKMeans`); inputs wider than 100
features go through PCA 50 first. There is no paper set-up to reproduce and no training budget,
so ``paper`` is the same as ``fast``.
"""

_SETTINGS = {
    "n_components": 10,
    "n_neighbors": 30,
    "min_dist": 0.0,
    "metric": "euclidean",
    "clusterer": "kmeans",
    "n_init": 10,
    "pca_components": "auto",
}

PRESETS = {
    "fast": {"default": dict(_SETTINGS)},
    "paper": {"default": dict(_SETTINGS)},
}
