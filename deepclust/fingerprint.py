"""Behaviour fingerprints of the methods: is a stored result still the code's result?

A benchmark result is only worth keeping while the method that produced it still behaves the
same. :func:`fingerprint` runs a method's *probe*, a seconds-long seeded fit on a tiny
synthetic problem with the method's ``fast`` default preset under a tiny budget, and hashes
what comes out (the labels and every loss term of every epoch, rounded to 6 significant digits)
together with all the method's presets and the package version. Any change to the code a fit
runs, to a default or to a preset changes it; moving code without changing what it computes
does not. ``deepclust bench`` stores the fingerprint in each results file, and the test suite
fails when a file in ``benchmarks/results/`` carries another fingerprint than the code's
(``tests/test_results_current.py``): such a result must be re-run or moved to
``benchmarks/results/superseded/``.

A probe exercises the code paths of the ``fast`` default preset at a tiny size; a change that
only touches a path the probe does not reach (for example a large-scene branch) is not seen.

Each quality result (``deepclust bench``) stores the fingerprint of its method on its data set and
preset (the presets entered as the keyword arguments they resolve to there); performance records
store the method-wide one (all presets).

Run as a script it prints ``{method: fingerprint}`` (method-wide) as JSON for the methods named
(default: all): ``python -m deepclust.fingerprint tdec dec``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import sys

import numpy as np

__all__ = ["probe", "fingerprint", "current_fingerprint", "PROBED"]

#: every registered method has a probe
PROBED = ("scdsc", "tdec", "pici", "cc", "recal", "dec", "idec", "edesc", "kmeans", "finch", "umap-kmeans",
          "patch-kmeans")

# the entries of a ``fast`` preset that a probe must not take (they size the data or the machine)
_NOT_FROM_PRESET = {"device", "chunk_size", "kmeans_sample", "finch_pca_sample", "ann_threshold", "vit_size",
                    "num_workers", "img_size", "checkpoint_every"}


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


def _tiny(method: str):
    """(tiny constructor arguments, fit args, fit kwargs, y) of ``method``'s probe."""
    if method == "scdsc":
        cube, gt = _scene()
        kw = dict(n_components=4, patch=3, channels=4, finch_patch=5, finch_pca=10, window=3, epochs=4,
                  pretrain_epochs=2, pretrain_batch_size=64, kmeans_n_init=2, beta2=1.0, device="cpu")
        return kw, (cube,), {"mask": gt > 0}, gt[gt > 0]
    if method == "patch-kmeans":
        cube, gt = _scene()
        return dict(n_components=4, patch=3, n_init=2), (cube,), {"mask": gt > 0}, gt[gt > 0]
    if method == "tdec":
        X, y = _bars()
        kw = dict(depth=1, embed_dim=8, hidden_dims=(32, 32, 32), latent_dim=4, dr_dims=(16, 16), n_neighbors=5,
                  pretrain_epochs=3, epochs=4, batch_size=32, perplexity=5.0, lr=3e-3, tol=0.0, device="cpu")
        return kw, (X,), {}, y
    if method == "pici":
        X, y = _colours()
        kw = dict(img_size=16, patch_size=4, vit_size=None, embed_dim=32, depth=1, num_heads=2, decoder_dim=16,
                  decoder_depth=1, decoder_heads=2, feature_dim=8, batch_size=10, pretrain_epochs=2,
                  train_epochs=2, boost_epochs=2, lr=1e-3, device="cpu")
        return kw, (X,), {}, y
    if method == "cc":
        X, y = _colours(n=24)
        kw = dict(img_size=16, arch="resnet18", width=4, feature_dim=8, epochs=3, batch_size=8, lr=1e-3, device="cpu")
        return kw, (X,), {}, y
    if method == "recal":
        X, y = _colours(n=48)
        kw = dict(width=0.0625, epochs=4, batch_size=16, lr=0.01, kmeans_n_init=2, device="cpu")
        return kw, (X,), {}, y
    if method in ("dec", "idec"):
        X, y = _blobs()
        kw = dict(hidden_dims=(32, 32), latent_dim=3, pretrain_epochs=3, pretrain_lr=1e-2, lr=1e-3, batch_size=32,
                  max_iter=12, update_interval=5, n_init=2, tol=0.0, device="cpu")
        return kw, (X,), {}, y
    if method == "edesc":
        X, y = _blobs()
        kw = dict(hidden=(32, 32), latent=8, n_subspace_dims=2, pretrain_epochs=2, epochs=3, batch_size=32,
                  kmeans_n_init=2, device="cpu")
        return kw, (X,), {}, y
    if method == "kmeans":
        X, y = _blobs()
        return dict(n_init=2), (X,), {}, y
    if method == "finch":
        X, y = _blobs()
        return {}, (X,), {}, y
    if method == "umap-kmeans":
        X, y = _blobs()
        return dict(n_neighbors=10, n_init=2), (X,), {}, y
    raise ValueError(f"no probe for {method!r}; methods with one: {', '.join(PROBED)}")


def probe(method: str, *, with_preset: bool = False, **extra):
    """(estimator, fit args, fit kwargs, y): ``method``'s tiny seeded fit, not yet run.

    ``with_preset``: start from the method's ``fast`` default preset (less what sizes the data
    or the machine) and put the tiny budget over it, so that the probe runs the preset's code
    paths. ``extra`` (e.g. ``checkpoint_path``, ``resume``) goes to the constructor.
    """
    from deepclust.methods import get_method
    from deepclust.presets import get_preset

    kw, args, kwargs, y = _tiny(method)
    params = {}
    if with_preset:
        params = {k: v for k, v in get_preset(method, None, "fast").items() if k not in _NOT_FROM_PRESET}
    params.update(kw)
    est = get_method(method)(n_clusters=3, random_state=0, **params, **extra)
    if method == "recal" and "checkpoint_path" in extra:
        est.set_params(checkpoint_every=1)
    return est, args, kwargs, y


def _rounded(value):
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return format(value, ".6g")
    return value


def _probe_outcome(method: str) -> dict:
    """The probe's fit: its labels and every loss term of every epoch (rounded)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reductions in a fixed order: the same bits on every machine of a kind
    try:
        est, args, kwargs, _ = probe(method, with_preset=True)
        est.fit(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)
    history = getattr(est, "history_", None)
    return {"labels": np.asarray(est.labels_).astype(int).tolist(),
            "history": _rounded(history.to_dict()) if history is not None else None}


def _digest(method: str, outcome: dict, dataset: str | None, preset: str | None) -> str:
    import deepclust

    try:
        presets = importlib.import_module(f"deepclust.presets.{method.replace('-', '_')}").PRESETS
    except ModuleNotFoundError:  # a method without presets (its class defaults are the probe's)
        presets = {}
    if dataset is not None and presets:
        from deepclust.presets import get_preset

        presets = {"dataset": dataset, "preset": preset or "fast",
                   "resolved": get_preset(method, dataset, preset or "fast")}
    payload = {
        "method": method,
        "version": deepclust.__version__,
        "presets": _rounded(json.loads(json.dumps(presets, default=str))),
        **outcome,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(method: str, dataset: str | None = None, preset: str | None = None) -> str:
    """A hex digest of ``method``'s behaviour: its probe's outcome, the version, and the presets.

    Without ``dataset``: all of the method's presets (what a performance record, which runs parts
    of a method outside the presets, is compared with). With ``dataset`` (and ``preset``, default
    ``fast``): the keyword arguments that preset resolves to on that data set
    (:func:`deepclust.presets.get_preset`) instead, so that a result on one data set stays current
    when only another data set's preset entry changes; the probe still sees every change to the
    code and to the ``fast`` default entry."""
    return _digest(method, _probe_outcome(method), dataset, preset)


@functools.cache
def _current_outcome(method: str) -> dict:
    return _probe_outcome(method)


def current_fingerprint(method: str, dataset: str | None = None, preset: str | None = None) -> str:
    """:func:`fingerprint` with the probe run once per process and method (what the freshness
    tests compare with)."""
    return _digest(method, _current_outcome(method), dataset, preset)


if __name__ == "__main__":
    names = sys.argv[1:] or list(PROBED)
    print(json.dumps({m: fingerprint(m) for m in names}, indent=1))
