"""Estimators, one per file, registered by CLI name.

The registry maps a CLI name to ``"module:Class"``; classes are imported on first use so that
``deepclust --help`` stays fast.
"""

from __future__ import annotations

import difflib
import importlib

__all__ = ["METHODS", "get_method"]

METHODS: dict[str, str] = {
    "kmeans": "deepclust.methods.kmeans:KMeans",
    "finch": "deepclust.cluster.finch:FINCH",
    "dec": "deepclust.methods.dec:DEC",
    "idec": "deepclust.methods.dec:IDEC",
    "edesc": "deepclust.methods.edesc:EDESC",
    "scdsc": "deepclust.methods.scdsc:SCDSC",
    "tdec": "deepclust.methods.tdec:TDEC",
    "recal": "deepclust.methods.recal:RECAL",
    "pici": "deepclust.methods.pici:PICI",
    "cc": "deepclust.methods.cc:ContrastiveClustering",
}


def get_method(name: str):
    """The estimator class registered as ``name`` (case-insensitive)."""
    key = name.lower()
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
