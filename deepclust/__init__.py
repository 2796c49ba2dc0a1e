"""deepclust: deep clustering of images and hyperspectral scenes.

Public API: the estimators (imported lazily by name), :func:`load_dataset` and :func:`evaluate`.

>>> from deepclust import KMeans, load_dataset, evaluate     # doctest: +SKIP
>>> ds = load_dataset("digits")
>>> labels = KMeans(n_clusters=10, random_state=0).fit_predict(ds.X)
>>> evaluate(ds.y, labels)["acc"]
"""

from __future__ import annotations

__version__ = "0.1.0"

_ESTIMATORS = {
    "KMeans": "deepclust.methods.kmeans",
    "UMAPKMeans": "deepclust.methods.umap_kmeans",
    "FINCH": "deepclust.cluster.finch",
    "DEC": "deepclust.methods.dec",
    "IDEC": "deepclust.methods.dec",
    "EDESC": "deepclust.methods.edesc",
    "SCDSC": "deepclust.methods.scdsc",
    "TDEC": "deepclust.methods.tdec",
    "RECAL": "deepclust.methods.recal",
    "PICI": "deepclust.methods.pici",
    "ContrastiveClustering": "deepclust.methods.cc",
}

__all__ = ["evaluate", "load_dataset", *_ESTIMATORS]


def __getattr__(name: str):
    import importlib

    # everything is imported on first use, so `deepclust --help` never pays for torch or sklearn
    if name == "load_dataset":
        from deepclust.data import load_dataset

        return load_dataset
    if name == "evaluate":
        from deepclust.metrics import evaluate

        return evaluate
    if name in _ESTIMATORS:
        return getattr(importlib.import_module(_ESTIMATORS[name]), name)
    raise AttributeError(f"module 'deepclust' has no attribute {name!r}")
