"""Tiny, seconds-long fits of every registered method (used by test_resume.py and
test_determinism.py, and run as a script by the kill-and-resume subprocess).

Not a test module (no ``test_`` prefix); load it with ``runpy.run_path``.
"""

from __future__ import annotations

CHECKPOINTED = ("scdsc", "edesc", "tdec", "dec", "idec", "pici", "cc", "recal")


def build(method: str, **extra):
    """(estimator, fit args, fit kwargs, y) for ``method``: its probe (:func:`deepclust.fingerprint.probe`);
    ``extra`` (e.g. checkpoint_path, resume) goes to the constructor."""
    from deepclust.fingerprint import probe

    if method == "umap-kmeans":
        import pytest

        pytest.importorskip("umap")  # an optional dependency (the umap extra)
    return probe(method, **extra)


if __name__ == "__main__":  # the kill-and-resume child: fit with a checkpoint, reporting each one
    import os
    import sys
    import time

    import torch

    torch.set_num_threads(1)
    import deepclust.training as T

    _save = T.atomic_torch_save

    def _reporting_save(obj, path):
        _save(obj, path)
        print(f"CKPT {obj['stage']} {obj['epoch']}", flush=True)
        time.sleep(float(os.environ.get("PAUSE", "0")))

    T.atomic_torch_save = _reporting_save
    est, args, kwargs, _ = build(sys.argv[1], checkpoint_path=sys.argv[2], resume=False)
    est.fit(*args, **kwargs)
    print("DONE", flush=True)
