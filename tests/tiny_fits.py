"""Tiny, seconds-long fits of every registered method (used by test_resume.py and
test_determinism.py, and run as a script by the kill-and-resume subprocess).

Not a test module (no ``test_`` prefix); load it with ``runpy.run_path``.
"""

from __future__ import annotations

import numpy as np

CHECKPOINTED = ("scdsc", "edesc", "tdec", "dec", "idec", "pici", "cc", "recal")


def _scene():
    rng = np.random.default_rng(0)
    gt = np.zeros((14, 12), dtype=int)
    gt[:7, :6], gt[:7, 6:], gt[7:, :] = 1, 2, 3
    cube = (rng.uniform(0.5, 2.0, size=(4, 10))[gt] + 0.05 * rng.normal(size=(14, 12, 10))).astype(np.float32)
    return cube, gt


def _bars():
    rng = np.random.default_rng(0)
    X = 0.05 * rng.random((90, 1, 8, 8)).astype(np.float32)
    for c in range(3):
        X[c * 30 : (c + 1) * 30, 0, :, 2 * c + 1 : 2 * c + 3] += 0.9
    return np.clip(X, 0, 1), np.repeat(np.arange(3), 30)


def _colours(n=25, side=16):
    rng = np.random.default_rng(0)
    X = rng.random((n, 3, side, side)).astype(np.float32) * 0.3
    y = np.arange(n) % 3
    for c in range(3):
        X[y == c, c] += 0.6
    return X, y


def _blobs():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    X = (np.eye(3, 6)[y] * 6 + rng.normal(size=(90, 6))).astype(np.float32)
    return X, y


def build(method: str, **extra):
    """(estimator, fit args, fit kwargs, y) for ``method``; ``extra`` (e.g. checkpoint_path,
    resume) goes to the constructor."""
    from deepclust.methods import get_method

    cls = get_method(method)
    common = dict(n_clusters=3, random_state=0, **extra)
    if method == "scdsc":
        cube, gt = _scene()
        est = cls(n_components=4, patch=3, channels=4, finch_patch=5, finch_pca=10, window=3, epochs=4,
                  pretrain_epochs=2, pretrain_batch_size=64, kmeans_n_init=2, beta2=1.0, device="cpu", **common)
        return est, (cube,), {"mask": gt > 0}, gt[gt > 0]
    if method == "tdec":
        X, y = _bars()
        est = cls(depth=1, embed_dim=8, hidden_dims=(32, 32, 32), latent_dim=4, dr_dims=(16, 16), n_neighbors=5,
                  pretrain_epochs=3, epochs=4, batch_size=32, perplexity=5.0, lr=3e-3, tol=0.0, device="cpu",
                  **common)
        return est, (X,), {}, y
    if method == "pici":
        X, y = _colours()
        est = cls(img_size=16, patch_size=4, vit_size=None, embed_dim=32, depth=1, num_heads=2, decoder_dim=16,
                  decoder_depth=1, decoder_heads=2, feature_dim=8, batch_size=10, pretrain_epochs=2,
                  train_epochs=2, boost_epochs=2, lr=1e-3, device="cpu", **common)
        return est, (X,), {}, y
    if method == "cc":
        X, y = _colours(n=24)
        est = cls(img_size=16, arch="resnet18", width=4, feature_dim=8, epochs=3, batch_size=8, lr=1e-3,
                  device="cpu", **common)
        return est, (X,), {}, y
    if method == "recal":
        X, y = _colours(n=48)
        est = cls(width=0.0625, epochs=4, batch_size=16, lr=0.01, kmeans_n_init=2, device="cpu", **common)
        if "checkpoint_path" in extra:
            est.set_params(checkpoint_every=1)
        return est, (X,), {}, y
    if method in ("dec", "idec"):
        X, y = _blobs()
        est = cls(hidden_dims=(32, 32), latent_dim=3, pretrain_epochs=3, pretrain_lr=1e-2, lr=1e-3, batch_size=32,
                  max_iter=12, update_interval=5, n_init=2, tol=0.0, device="cpu", **common)
        return est, (X,), {}, y
    if method == "edesc":
        X, y = _blobs()
        est = cls(hidden=(32, 32), latent=8, n_subspace_dims=2, pretrain_epochs=2, epochs=3, batch_size=32,
                  kmeans_n_init=2, device="cpu", **common)
        return est, (X,), {}, y
    if method == "kmeans":
        X, y = _blobs()
        return cls(n_init=2, **common), (X,), {}, y
    if method == "finch":
        X, y = _blobs()
        return cls(**common), (X,), {}, y
    if method == "umap-kmeans":
        import pytest

        pytest.importorskip("umap")  # an optional dependency (the umap extra)
        X, y = _blobs()
        return cls(n_neighbors=10, n_init=2, **common), (X,), {}, y
    raise ValueError(f"no tiny fit for {method!r}")


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
