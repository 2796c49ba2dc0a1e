"""Estimators, one per file, registered by CLI name.

The registry maps a CLI name to ``"module:Class"``; classes are imported on first use so that
``deepclust --help`` stays fast.
"""

from __future__ import annotations

import difflib
import importlib

__all__ = ["METHODS", "METHOD_INFO", "get_method", "normalize_method"]

METHODS: dict[str, str] = {
    "kmeans": "deepclust.methods.kmeans:KMeans",
    "umap-kmeans": "deepclust.methods.umap_kmeans:UMAPKMeans",
    "finch": "deepclust.cluster.finch:FINCH",
    "patch-kmeans": "deepclust.methods.patch_kmeans:PatchKMeans",
    "dec": "deepclust.methods.dec:DEC",
    "idec": "deepclust.methods.dec:IDEC",
    "edesc": "deepclust.methods.edesc:EDESC",
    "scdsc": "deepclust.methods.scdsc:SCDSC",
    "tdec": "deepclust.methods.tdec:TDEC",
    "recal": "deepclust.methods.recal:RECAL",
    "pici": "deepclust.methods.pici:PICI",
    "cc": "deepclust.methods.cc:ContrastiveClustering",
}

#: What ``deepclust methods`` prints: (paper, input kind, what the method is good for). Kept here,
#: beside the registry, so that listing the methods imports no estimator (no torch).
METHOD_INFO: dict[str, tuple[str, str, str]] = {
    "kmeans": ("MacQueen 1967 (scikit-learn; faiss above 200k)", "vectors",
               "the fast reference every table starts from"),
    "umap-kmeans": ("McInnes et al. 2018 (UMAP) + k-means / GMM", "vectors",
                    "the cheap strong peer every deep method must beat"),
    "finch": ("Sarfraz et al., CVPR 2019", "vectors",
              "no parameters to tune; millions of points (O(n) memory)"),
    "patch-kmeans": ("k-means on SCDSC's PCA patches or FINCH mini-clusters", "scene",
                     "the label-free references a scene method must beat (UMAP with embed=umap)"),
    "dec": ("Xie et al., ICML 2016", "vectors", "the classic deep baseline on small image/vector sets"),
    "idec": ("Guo et al., IJCAI 2017", "vectors", "DEC that keeps the reconstruction loss: steadier"),
    "edesc": ("Cai et al., CVPR 2022", "vectors", "data lying on a union of subspaces"),
    "scdsc": ("Li et al., SCDSC (papers/000)", "scene", "hyperspectral scenes: spectra plus spatial context"),
    "tdec": ("Zhang et al., TDEC (papers/002)", "images", "small grey images (MNIST, USPS, Digits)"),
    "recal": ("Saha & Mukhopadhyay, RECAL (papers/003)", "images",
              "images, and patch-wise scene segmentation (deepclust segment)"),
    "pici": ("Zhang et al., PICI (papers/001)", "images", "natural and remote-sensing images (ViT + MAE)"),
    "cc": ("Li et al., AAAI 2021", "images", "colour images with augmentations (contrastive)"),
}


def normalize_method(name: str) -> str:
    """The registry key for ``name``: case-insensitive, ``_`` read as ``-`` (``KMeans`` -> ``kmeans``).

    Unknown names are returned lower-cased (:func:`get_method` then raises with close matches).
    """
    return name.strip().lower().replace("_", "-")


def get_method(name: str):
    """The estimator class registered as ``name`` (case-insensitive)."""
    key = normalize_method(name)
    if key not in METHODS:
        close = difflib.get_close_matches(key, METHODS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown method {name!r}.{hint} Known methods: {', '.join(METHODS)}")
    module_name, cls_name = METHODS[key].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ValueError(f"method {name!r} is not available in this version of deepclust") from exc
        raise
    return getattr(module, cls_name)
