"""Datasets: the catalog, its loaders, a user's own files and hyperspectral helpers.

>>> from deepclust.data import load_dataset          # doctest: +SKIP
>>> ds = load_dataset("mnist")                       # (70000, 1, 28, 28) float32 in [0, 1]
>>> scene = load_dataset("salinas-a")                # cube (83, 86, 204), gt, mask, index, X, y

Files are looked for in ``data_dir`` (only there, when given), else ``$DEEPCLUST_DATA``, then
``shared/datasets`` beside the checkout, then the user cache; they are downloaded (checksum
verified) only with ``download=True`` or ``DEEPCLUST_DOWNLOAD=1``. See
:mod:`deepclust.data.fetch` for the details and :mod:`deepclust.data.files` for ``load_file``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from deepclust.data.dataset import Dataset
from deepclust.data.fetch import (
    ChecksumError,
    DataFile,
    DatasetNotFoundError,
    data_roots,
    locate,
    resolve,
)
from deepclust.data.files import load_file, read_array, read_mat
from deepclust.data.registry import CATALOG, DatasetEntry

__all__ = [
    "CATALOG",
    "ChecksumError",
    "DataFile",
    "Dataset",
    "DatasetEntry",
    "DatasetNotFoundError",
    "dataset_status",
    "find_file",
    "get_entry",
    "load_dataset",
    "load_file",
    "read_array",
    "read_mat",
]


def get_entry(name: str) -> DatasetEntry:
    """The catalog entry for ``name`` (case-insensitive, ``_`` read as ``-``).

    Raises ``ValueError`` listing the close matches and the known names for an unknown name.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key in CATALOG:
        return CATALOG[key]
    close = difflib.get_close_matches(key, list(CATALOG), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown dataset {name!r}{hint} Known datasets: {', '.join(CATALOG)}. "
        "For your own file use load_file(path) (CLI: --data FILE)"
    )


def find_file(
    file: DataFile | str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    verify: bool = True,
) -> Path:
    """Path of a catalog file, found in the data roots (or downloaded) and checksum-verified.

    ``file`` is a :class:`DataFile` or a catalog path such as
    ``"images/mnist/t10k-labels-idx1-ubyte.gz"``.
    Raises :class:`DatasetNotFoundError` or :class:`ChecksumError`.
    """
    if isinstance(file, str):
        spec = _file_by_path(file)
    elif isinstance(file, DataFile):
        spec = file
    else:
        raise TypeError(f"file must be a DataFile or a catalog path, got {type(file).__name__}")
    path, _ = resolve(spec, data_dir=data_dir, download=download, verify=verify)
    return path


def _file_by_path(path: str) -> DataFile:
    known = {}
    for entry in CATALOG.values():
        for f in entry.files:
            for cand in (f, *f.alternatives):
                known[cand.path] = cand
    if path in known:
        return known[path]
    close = difflib.get_close_matches(path, list(known), n=3)
    raise ValueError(
        f"{path!r} is not a catalog file" + (f"; did you mean {', '.join(close)}?" if close else "")
    )


def load_dataset(
    name: str, *, data_dir: str | os.PathLike | None = None, download: bool | None = None
) -> Dataset:
    """Load a catalog dataset.

    Parameters
    ----------
    name
        A catalog name (``deepclust.data.CATALOG``): digits, mnist, mnist-test, usps,
        fashion-mnist, coil20, ucmerced, salinas-a, paviau, trento, houston, indian-pines, salinas.
    data_dir
        Look only in this folder (same layout as ``shared/datasets``), and download into it.
    download
        Download missing files (checksum verified). Default: ``DEEPCLUST_DOWNLOAD=1`` in the
        environment, else no network access.

    Returns
    -------
    Dataset
        Images: ``X`` (N, C, H, W) float32 in [0, 1], ``y`` (N,) int64 (MNIST-style sets: train
        then test). Scenes: ``cube`` (H, W, B) float32, ``gt`` (H, W) int64 with 0 = unlabelled,
        ``mask = gt > 0``, ``index`` (N, 2) row-major (row, col), ``X = cube[mask]``,
        ``y = gt[mask]``.

    Raises
    ------
    ValueError
        Unknown name (close matches listed), or a file with unexpected content.
    DatasetNotFoundError
        A file is missing; the message names it, the folder to put it in and where to get it.
    ChecksumError
        A file does not match the catalog's checksum.
    """
    entry = get_entry(name)
    resolved = [resolve(f, data_dir=data_dir, download=download) for f in entry.files]
    ds = entry.loader(entry, resolved)
    _check_loaded(entry, ds)
    ds.info["data_files"] = {spec.path: str(p) for p, spec in resolved}  # what was read
    ds.info["description"] = entry.description
    ds.info["citation"] = entry.citation
    return ds


def _check_loaded(entry: DatasetEntry, ds: Dataset) -> None:
    what = "labelled pixels" if entry.kind == "scene" else "samples"
    if ds.n_samples != entry.n_samples:
        raise ValueError(
            f"{entry.name}: the files hold {ds.n_samples:,} {what}, the catalog expects "
            f"{entry.n_samples:,}; they are a different version of the dataset"
        )
    if entry.kind == "images" and tuple(ds.X.shape[1:]) != tuple(entry.shape):
        raise ValueError(
            f"{entry.name}: images have shape {tuple(ds.X.shape[1:])}, expected {entry.shape}"
        )
    if ds.y is not None and ds.n_clusters != entry.n_classes:
        raise ValueError(
            f"{entry.name}: the labels hold {ds.n_clusters} classes, expected {entry.n_classes}"
        )


def dataset_status(name: str, *, data_dir: str | os.PathLike | None = None) -> dict:
    """What the catalog knows about ``name`` and which of its files are present locally.

    No checksum is computed and nothing is downloaded (fast; for ``deepclust datasets``).
    Returns a JSON-able dict: name, kind, description, n_samples, n_classes, shape, citation,
    licence, homepage, note, ``available`` (every file present, or no files needed) and
    ``files``: one dict per file with path, ``found`` (the path found or None), ``origin``
    (data_dir / DEEPCLUST_DATA / shared / cache), checksum description, url, source, note.
    """
    entry = get_entry(name)
    roots = data_roots(data_dir)
    files = []
    for f in entry.files:
        hit = locate(f, data_dir)
        origin = None
        if hit is not None:
            for o, r in roots:
                try:
                    hit[0].relative_to(r)
                    origin = o
                    break
                except ValueError:
                    continue
        matched = hit[1] if hit else f
        files.append(
            {
                "path": f.path,
                "found": str(hit[0]) if hit else None,
                "matched": matched.path,
                "origin": origin,
                "checksum": matched.describe_checksums(),
                "url": (matched.urls or f.urls or ("",))[0],
                "source": f.source,
                "note": f.note,
            }
        )
    return {
        "name": entry.name,
        "kind": entry.kind,
        "description": entry.description,
        "n_samples": entry.n_samples,
        "n_classes": entry.n_classes,
        "shape": list(entry.shape),
        "citation": entry.citation,
        "licence": entry.licence,
        "homepage": entry.homepage,
        "note": entry.note,
        "available": all(x["found"] for x in files),
        "files": files,
    }
