"""One experiment end to end: load, build the estimator, fit, evaluate, write the outputs.

This is what ``deepclust run`` calls. Outputs go to a hidden staging folder beside ``out`` and
are moved into place only when everything succeeded, so a failed run never leaves a
half-written output directory.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import inspect
import json
import logging
import os
import platform
import resource
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepclust import __version__
from deepclust.metrics import evaluate, nmi

__all__ = [
    "DegenerateClusteringWarning",
    "run_experiment",
    "parse_overrides",
    "build_estimator",
    "cluster_size_report",
]

log = logging.getLogger("deepclust")


class DegenerateClusteringWarning(UserWarning):
    """Empty clusters or a collapse into one cluster (see :func:`cluster_size_report`)."""


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
    reserved = {"n_clusters": "--n-clusters K", "random_state": "--seed S"}
    for key in overrides or {}:
        if key in reserved:
            raise ValueError(
                f"--set {key}=... is not used: {key} is set by the command line; use {reserved[key]} instead"
            )
    for key in list(params) + list(overrides or {}):
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"{method} has no parameter {key!r}.{hint} Its parameters: {', '.join(sorted(valid))}"
            )
    defaults = cls().get_params()
    signature = inspect.signature(cls.__init__).parameters
    for key, value in (overrides or {}).items():
        annotation = signature[key].annotation if key in signature else ""
        _check_override_type(method, key, value, defaults[key] if defaults[key] is not None else params.get(key),
                             annotation if isinstance(annotation, str) else str(annotation))
    params.update(overrides or {})
    params["n_clusters"] = n_clusters
    if "random_state" in valid:
        params["random_state"] = seed
    if device is not None and "device" in valid:
        params["device"] = device
    return cls(**params)


def _check_override_type(method: str, key: str, value: Any, reference: Any, annotation: str = "") -> None:
    """``--set key=value`` must have the type of the parameter's default (or preset value) when
    that is a number or a boolean: ``n_init=abc`` is refused naming the parameter and the type,
    before the estimator sees it. None and strings pass where the parameter's annotation allows
    them (``int | None``, ``int | str``); other types are validated by the estimator in ``fit``."""
    if (value is None and "None" in annotation) or (isinstance(value, str) and "str" in annotation):
        return
    if isinstance(reference, bool):
        ok, expected = isinstance(value, bool), "True or False"
    elif isinstance(reference, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(reference, float):
        ok, expected = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    else:
        return
    if not ok:
        raise ValueError(
            f"--set {key}={value!r}: {method}'s parameter {key} expects {expected} (default {reference!r}), "
            f"got {type(value).__name__} {value!r}"
        )


#: A cluster holding more than this share of the samples is a candidate collapse.
COLLAPSE_SHARE = 0.9
#: Samples used by the k-means reference of the collapse rule (a random subset beyond this).
COLLAPSE_REFERENCE_SAMPLES = 5000


def cluster_size_report(labels: np.ndarray, n_clusters: int, X: np.ndarray | None = None,
                        *, seed: int = 0) -> dict:
    """Cluster sizes, empty clusters and collapse detection (label-free).

    Empty clusters: any of the ``n_clusters`` ids with no sample.

    Collapse rule: the largest cluster holds more than ``COLLAPSE_SHARE`` (90%) of the samples
    **and the data has more structure than that**, judged without labels: k-means with the same
    ``n_clusters`` on the same data (``X``, flattened per sample; a random subset of
    ``COLLAPSE_REFERENCE_SAMPLES`` when larger; 3 restarts) puts at most 90% of the samples in its
    largest cluster. When k-means also puts more than 90% in one cluster, the data itself is
    dominated by one group: that is recorded as ``dominant_cluster`` with a note, not as a
    collapse. Without ``X`` the size rule alone decides (``collapse_reference`` is then None).
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels >= 0], minlength=n_clusters) if labels.size else np.zeros(n_clusters, int)
    share = float(counts.max() / max(labels.size, 1))
    report = {
        "cluster_sizes": counts.tolist(),
        "n_empty_clusters": int((counts == 0).sum()),
        "largest_cluster_share": share,
        "collapse": False,
        "collapse_reference": None,
        "dominant_cluster": False,
        "warnings": [],
    }
    if report["n_empty_clusters"]:
        report["warnings"].append(
            f"{report['n_empty_clusters']} of {n_clusters} clusters are empty: the model uses fewer "
            "clusters than asked for"
        )
    if share > COLLAPSE_SHARE and n_clusters > 1:
        ref = _kmeans_largest_share(X, n_clusters, seed) if X is not None else None
        report["collapse_reference"] = ref
        if ref is None or ref <= COLLAPSE_SHARE:
            report["collapse"] = True
            why = (f"; k-means on the same data puts at most {ref:.0%} in one cluster" if ref is not None
                   else "")
            report["warnings"].append(
                f"collapse: one cluster holds {share:.0%} of the samples{why}. Try another seed, a "
                "lower learning rate or more pretraining"
            )
        else:
            report["dominant_cluster"] = True
            report["note"] = (
                f"one cluster holds {share:.0%} of the samples, but k-means also puts {ref:.0%} in one "
                "cluster: the data itself is dominated by one group (not counted as a collapse)"
            )
    return report


def _kmeans_largest_share(X: np.ndarray, n_clusters: int, seed: int) -> float:
    from sklearn.cluster import KMeans as SKKMeans

    X = np.asarray(X).reshape(len(X), -1)
    if X.shape[0] > COLLAPSE_REFERENCE_SAMPLES:
        rows = np.random.default_rng(seed).choice(X.shape[0], COLLAPSE_REFERENCE_SAMPLES, replace=False)
        X = X[np.sort(rows)]
    k = min(int(n_clusters), X.shape[0])
    lab = SKKMeans(n_clusters=k, n_init=3, random_state=seed).fit(X.astype(np.float32)).labels_
    return float(np.bincount(lab).max() / lab.size)


def _gpu_name(device) -> str | None:
    """The CUDA device's name for metrics.json (None off CUDA)."""
    import torch

    if device is None or torch.device(device).type != "cuda":
        return None
    return torch.cuda.get_device_name(torch.device(device))


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 1024.0**2


def _peak_rss_per_rank() -> list[float]:
    """Every rank's peak RSS (MB), in rank order (a collective under a process group)."""
    import torch

    from deepclust.distributed import gather_rows

    mine = torch.tensor([_peak_rss_mb()], dtype=torch.float64)
    return [round(float(v), 1) for v in gather_rows(mine)]


def _check_writable(out: Path) -> None:
    """Refuse an ``--out`` that cannot be written, *before* any work and without creating
    anything: the nearest existing ancestor must be a writable folder."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder; choose another path")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"--out {out}: {probe} is a file, so the folder cannot be created there")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out} is not writable ({probe} is read-only); choose a folder you can write to")


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created (deepest last), to undo on failure."""
    created = []
    for p in reversed([folder, *folder.parents]):
        if not p.exists():
            try:
                p.mkdir()
            except OSError as exc:
                raise ValueError(f"cannot create the output folder {p} ({exc.strerror})") from exc
            created.append(p)
    return created


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


@contextlib.contextmanager
def staged_output(out: str | os.PathLike):
    """Yield a hidden staging folder beside ``out``; move its content into ``out`` when the block
    succeeds, remove it (and the parents it created) when anything -- an error, Ctrl-C, SIGTERM --
    interrupts it. ``run`` and ``segment`` both write through this, so no interrupted command
    leaves a half-written or empty output folder behind."""
    out = Path(out)
    _check_writable(out)
    created = _make_parents(out.parent)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):  # the parents this run made, now empty again
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def to_jsonable(obj):
    """Nested dicts/lists of numpy and Python values -> JSON-able values (others by repr)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return repr(obj)


def _world_size() -> int:
    from deepclust.distributed import world_size as ws

    return ws()


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
    progress: bool = False,
    notify: Callable[[str], None] | None = None,
    download: bool | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    kind: str | None = None,
) -> dict:
    """Run one experiment and write ``metrics.json``, ``labels.npy`` (and for scenes
    ``label_map.npy``), ``model.pt`` for deep methods, and the pictures. Returns the metrics.

    ``progress``: progress bars of the training stages (the estimator's ``verbose``).
    ``notify``: called with one-line notes (the stage reached, how a ``data`` array was read);
    the CLI prints them on stderr unless ``-q``. ``kind``: how to read a ``data`` array
    (images, scene or vectors; see :func:`deepclust.data.load_file`).
    """
    import torch

    from deepclust.data import load_dataset, load_file

    if (dataset is None) == (data is None):
        raise ValueError("give exactly one of --dataset NAME or --data FILE")
    out = Path(out)
    _check_writable(out)

    def note(message: str) -> None:
        if notify is not None:
            notify(message)

    if dataset is not None:
        if progress:
            note(f"loading {dataset}")
        ds = load_dataset(dataset, download=download)
    else:
        ds = load_file(data, gt=gt, key=key, gt_key=gt_key, kind=kind)
        if ds.info.get("kind_reason"):
            note(ds.info["kind_reason"])
    if n_clusters is None:
        if ds.n_clusters is None:
            raise ValueError(
                f"{ds.name} has no labels to infer the number of clusters from; pass --n-clusters K"
            )
        n_clusters = ds.n_clusters
    est = build_estimator(method, dataset=dataset, preset=preset, seed=seed, n_clusters=n_clusters,
                          overrides=overrides, device=device)
    if "verbose" in est.get_params() and "verbose" not in (overrides or {}):
        est.set_params(verbose=bool(progress))
    checkpoint = _setup_checkpoint(est, method, ds.name, seed, checkpoint_dir, resume)

    with staged_output(out) as staging:
        if progress:
            what = f"{ds.n_samples:,} {'pixels' if ds.kind == 'scene' else ds.kind}"
            note(f"fitting {method} (preset {preset}, seed {seed}) on {ds.name}: {what}, k={n_clusters}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0, c0 = time.perf_counter(), time.process_time()
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
            fit_cpu_seconds = time.process_time() - c0  # every thread of this process
        seen: set[str] = set()
        for w in caught:  # shown once each (they are also recorded in metrics.json)
            if str(w.message) not in seen:
                seen.add(str(w.message))
                warnings.warn(w.message, stacklevel=2)
        labels = np.asarray(est.labels_, dtype=np.int64)
        np.save(staging / "labels.npy", labels)

        record: dict[str, Any] = {
            "method": method,
            "dataset": ds.name,
            "preset": preset,
            "seed": seed,
            "n_samples": int(labels.shape[0]),
            "n_clusters": int(n_clusters),
            "nproc": _world_size(),  # processes that trained (torch.distributed world size)
        }
        if data is not None:  # how the user's array was read, and why
            record["data_kind"] = {"kind": ds.kind, "how": ds.info.get("kind_reason") or "given or unambiguous"}
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
        sizes = cluster_size_report(labels, n_clusters, ds.X, seed=seed)
        if _world_size() > 1:
            record["peak_rss_mb_per_rank"] = _peak_rss_per_rank()
        record.update(
            fit_seconds=round(fit_seconds, 3),
            fit_cpu_seconds=round(fit_cpu_seconds, 3),
            peak_rss_mb=round(_peak_rss_mb(), 1),
            device=str(getattr(est, "device_", "cpu")),
            precision=str(getattr(est, "precision_", "fp32")),
            gpu=_gpu_name(getattr(est, "device_", None)),
            torch_threads=torch.get_num_threads(),
            selection=getattr(est, "selection_", "final model (no selection)"),
            checkpoint=checkpoint,
            params=to_jsonable(est.get_params()),
            sizes=sizes,
            diagnostics=to_jsonable(getattr(est, "diagnostics_", {}) or {}),
            warnings=sorted({str(w.message) for w in caught} | set(sizes["warnings"])),
            deepclust_version=__version__,
            torch_version=torch.__version__,
            machine={"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        )
        for w in record["sizes"]["warnings"]:
            warnings.warn(w, DegenerateClusteringWarning, stacklevel=2)

        if progress:
            note("evaluating and writing the outputs" + (" and pictures" if pictures else ""))
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
                                     full_map=full_map, scores=record)
            history = getattr(est, "history_", None)
            if history is not None and history.to_dict():
                viz.plot_curves(history.to_dict(), staging / "curves.png", title=title)
            emb = getattr(est, "embedding_", None)
            if emb is not None and np.asarray(emb).ndim == 2 and np.asarray(emb).shape[1] == 2:
                viz.plot_embedding(emb, labels, staging / "embedding.png", title=title)

        with open(staging / "metrics.json", "w") as fh:
            json.dump(to_jsonable(record), fh, indent=2)
    return record


def _setup_checkpoint(est, method: str, name: str, seed: int, checkpoint_dir, resume: bool) -> dict | None:
    """Point the estimator's ``checkpoint_path`` into ``checkpoint_dir`` (one file per method,
    dataset and seed) and set ``resume``. Returns what metrics.json records about it."""
    if checkpoint_dir is None:
        if resume:
            raise ValueError("--resume needs --checkpoint-dir DIR: the folder the interrupted run wrote to")
        return None
    params = est.get_params()
    if "checkpoint_path" not in params:
        raise ValueError(
            f"{method} does not write checkpoints (it has no training loop to resume); drop --checkpoint-dir"
        )
    folder = Path(checkpoint_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--checkpoint-dir {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--checkpoint-dir {folder} is not writable")
    path = folder / f"{method}-{name}-seed{seed}.pt"
    if resume and not path.exists():
        warnings.warn(f"--resume: no checkpoint at {path}; starting from the beginning", UserWarning, stacklevel=3)
    est.set_params(checkpoint_path=str(path), resume=bool(resume))
    if "checkpoint_every" in params and not params["checkpoint_every"]:
        est.set_params(checkpoint_every=1)
    return {"path": str(path), "resumed": bool(resume and path.exists())}


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
