"""Presets: the constructor arguments of a method for a dataset.

Each method has a module ``deepclust/presets/<method>.py`` defining ``PRESETS`` (a ``-`` in the
method's name is ``_`` in the module's: ``umap-kmeans`` -> ``umap_kmeans.py``):
``{"fast": {"default": {...}, "<dataset>": {...}}, "paper": {...}}``. A dataset's entry is
merged over ``"default"``. ``fast`` is a CPU budget of minutes on 2 cores; ``paper`` is the
paper's settings (for a GPU). Presets and CLI parsing are the only places that hold configuration.
"""

from __future__ import annotations

import importlib

__all__ = ["PRESET_NAMES", "get_preset"]

PRESET_NAMES = ("fast", "paper")


def get_preset(method: str, dataset: str | None, preset: str) -> dict:
    """Constructor keyword arguments for ``method`` on ``dataset`` under ``preset``."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    try:
        module = importlib.import_module(f"deepclust.presets.{method.lower().replace('-', '_')}")
    except ModuleNotFoundError:
        return {}
    table = module.PRESETS.get(preset, {})
    out = dict(table.get("default", {}))
    if dataset is not None:
        out.update(table.get(dataset, {}))
    return out
