"""One experiment end to end: load, build the estimator, fit, evaluate, write the outputs.

This is what ``deepclust run`` calls. Outputs go to a hidden staging folder beside ``out`` and
are moved into place only when everything succeeded, so a failed run never leaves a
half-written output directory.
"""

from __future__ import annotations

import ast
import difflib
import json
import logging
import os
import platform
import resource
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from deepclust import __version__
from deepclust.metrics import evaluate, nmi

__all__ = ["run_experiment", "parse_overrides", "build_estimator", "cluster_size_report"]

log = logging.getLogger("deepclust")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["lr=0.001", "local=False", "hidden=(500, 500)"]`` -> a dict of Python values.

    Values are read as Python literals when they parse as one, otherwise kept as strings.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key.isidentifier():
            raise ValueError(f"--set key {key!r} is not a valid parameter name")
        raw = raw.strip()
        lowered = raw.lower()
        if lowered in ("true", "false"):
            out[key] = lowered == "true"
        elif lowered in ("none", "null"):
            out[key] = None
        else:
            try:
                out[key] = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                out[key] = raw
    return out


def build_estimator(method: str, *, dataset: str | None, preset: str, seed: int,
                    n_clusters: int, overrides: dict | None = None, device: str | None = None):
    """The estimator for ``method`` with the preset's arguments, then the overrides."""
    from deepclust.methods import get_method
    from deepclust.presets import get_preset

    cls = get_method(method)
    params = get_preset(method, dataset, preset)
    valid = set(cls().get_params())
    for key in list(params) + list(overrides or {}):
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"{method} has no parameter {key!r}.{hint} Its parameters: {', '.join(sorted(valid))}"
            )
    params.update(overrides or {})
    params["n_clusters"] = n_clusters
    if "random_state" in valid:
        params["random_state"] = seed
    if device is not None and "device" in valid:
        params["device"] = device
    return cls(**params)


def cluster_size_report(labels: np.ndarray, n_clusters: int) -> dict:
    """Cluster sizes, empty clusters and the largest cluster's share (collapse detection)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels >= 0], minlength=n_clusters) if labels.size else np.zeros(n_clusters)
    share = float(counts.max() / max(labels.size, 1))
    report = {
        "cluster_sizes": counts.tolist(),
        "n_empty_clusters": int((counts == 0).sum()),
        "largest_cluster_share": share,
        "warnings": [],
    }
    if report["n_empty_clusters"]:
        report["warnings"].append(f"{report['n_empty_clusters']} of {n_clusters} clusters are empty")
    if share > 0.9 and n_clusters > 1:
        report["warnings"].append(f"collapse: one cluster holds {share:.0%} of the samples")
    return report


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 1024.0**2


def _check_writable(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot create its parent folder ({exc.strerror})") from exc
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder; choose another path")
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"--out {out} is not writable; choose a folder you can write to")


def _publish(staging: Path, out: Path) -> None:
    """Move the staged outputs into ``out`` (created if needed), replacing files of the same name."""
    if not out.exists():
        os.replace(staging, out)
        return
    for item in staging.iterdir():
        target = out / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
    staging.rmdir()


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return repr(obj)


def run_experiment(
    method: str,
    *,
    dataset: str | None = None,
    data: str | None = None,
    gt: str | None = None,
    key: str | None = None,
    gt_key: str | None = None,
    preset: str = "fast",
    seed: int = 0,
    out: str | os.PathLike = "runs/latest",
    overrides: dict | None = None,
    n_clusters: int | None = None,
    device: str | None = None,
    pictures: bool = True,
    verbose: bool = False,
    download: bool | None = None,
) -> dict:
    """Run one experiment and write ``metrics.json``, ``labels.npy`` (and for scenes
    ``label_map.npy``), ``model.pt`` for deep methods, and the pictures. Returns the metrics."""
    import torch

    from deepclust.data import load_dataset, load_file

    if (dataset is None) == (data is None):
        raise ValueError("give exactly one of --dataset NAME or --data FILE")
    out = Path(out)
    _check_writable(out)

    if dataset is not None:
        ds = load_dataset(dataset, download=download)
    else:
        ds = load_file(data, gt=gt, key=key, gt_key=gt_key)
    if n_clusters is None:
        if ds.n_clusters is None:
            raise ValueError(
                f"{ds.name} has no labels to infer the number of clusters from; pass --n-clusters K"
            )
        n_clusters = ds.n_clusters
    est = build_estimator(method, dataset=dataset, preset=preset, seed=seed, n_clusters=n_clusters,
                          overrides=overrides, device=device)
    if verbose and "verbose" in est.get_params():
        est.set_params(verbose=True)

    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            if est.input_kind == "scene":
                if ds.kind != "scene":
                    raise ValueError(f"{method} clusters pixels of a hyperspectral scene; {ds.name} is not a scene")
                est.fit(ds.cube, mask=ds.mask)
            else:
                X = ds.X
                if est.input_kind == "images" and ds.kind != "images":
                    raise ValueError(f"{method} clusters images; {ds.name} holds {ds.kind}")
                est.fit(X)
            fit_seconds = time.perf_counter() - t0
        labels = np.asarray(est.labels_, dtype=np.int64)
        np.save(staging / "labels.npy", labels)

        record: dict[str, Any] = {
            "method": method,
            "dataset": ds.name,
            "preset": preset,
            "seed": seed,
            "n_samples": int(labels.shape[0]),
            "n_clusters": int(n_clusters),
        }
        if ds.y is not None:
            res = evaluate(ds.y, labels)
            record.update({k: res[k] for k in ("acc", "nmi", "ari")})
            record["nmi_max"] = nmi(ds.y, labels, average_method="max")
            if ds.kind == "scene":
                record.update({k: res[k] for k in ("oa", "kappa", "per_class")})
        for name, alt in (getattr(est, "extra_labels_", None) or {}).items():
            alt = np.asarray(alt, dtype=np.int64)
            np.save(staging / f"labels_{name}.npy", alt)
            if ds.y is not None:
                r = evaluate(ds.y, alt)
                record[f"{name}"] = {k: r[k] for k in ("acc", "nmi", "ari")}
        record.update(
            fit_seconds=round(fit_seconds, 3),
            peak_rss_mb=round(_peak_rss_mb(), 1),
            device=str(getattr(est, "device_", "cpu")),
            torch_threads=torch.get_num_threads(),
            selection=getattr(est, "selection_", "final model (no selection)"),
            params=_jsonable(est.get_params()),
            sizes=cluster_size_report(labels, n_clusters),
            diagnostics=_jsonable(getattr(est, "diagnostics_", {}) or {}),
            warnings=sorted({str(w.message) for w in caught}),
            deepclust_version=__version__,
            torch_version=torch.__version__,
            machine={"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        )
        for w in record["sizes"]["warnings"]:
            warnings.warn(w, stacklevel=2)

        model = getattr(est, "model_", None)
        if isinstance(model, torch.nn.Module):
            torch.save(model.state_dict(), staging / "model.pt")

        full_map = None
        if ds.kind == "scene":
            label_map = ds.label_map(labels)
            np.save(staging / "label_map.npy", label_map)
            full_map = _full_scene_map(est, ds)
            if full_map is not None:
                np.save(staging / "full_map.npy", full_map)

        if pictures:
            from deepclust import viz

            title = f"{method} on {ds.name} (seed {seed})"
            if ds.y is not None:
                viz.plot_confusion(ds.y, labels, staging / "confusion.png", title=title)
            if ds.kind == "scene":
                viz.plot_cluster_map(label_map, ds.gt, staging / "cluster_map.png", title=title,
                                     full_map=full_map)
            history = getattr(est, "history_", None)
            if history is not None and history.to_dict():
                viz.plot_curves(history.to_dict(), staging / "curves.png", title=title)
            emb = getattr(est, "embedding_", None)
            if emb is not None and np.asarray(emb).ndim == 2 and np.asarray(emb).shape[1] == 2:
                viz.plot_embedding(emb, labels, staging / "embedding.png", title=title)

        with open(staging / "metrics.json", "w") as fh:
            json.dump(_jsonable(record), fh, indent=2)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record


def _full_scene_map(est, ds) -> np.ndarray | None:
    """A label for every pixel of the scene, when the estimator can predict new pixels."""
    h, w, b = ds.cube.shape
    try:
        if est.input_kind == "scene":
            full = est.predict(ds.cube)
        else:
            full = est.predict(ds.cube.reshape(-1, b)).reshape(h, w)
    except (NotImplementedError, AttributeError):
        return None
    return np.asarray(full, dtype=np.int64).reshape(h, w)
