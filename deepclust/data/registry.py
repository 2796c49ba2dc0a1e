"""The dataset catalog: every named dataset, its files, checksums, sources and loader.

The catalog is data: ``catalog.toml`` beside this module (shipped with the package), one
``[[dataset]]`` table per dataset; its header documents the keys and where the checksums come
from. This module reads it into :data:`CATALOG` (name -> :class:`DatasetEntry`); the functions
that turn a dataset's files into arrays are in :mod:`deepclust.data.loaders`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from deepclust.data.dataset import Dataset
from deepclust.data.fetch import DataFile
from deepclust.data.loaders import LOADERS, Resolved

__all__ = ["CATALOG", "DatasetEntry", "read_catalog"]


@dataclass(frozen=True)
class DatasetEntry:
    """One catalog dataset.

    ``shape`` is (C, H, W) of one image for image datasets and (H, W, B) of the cube for scenes
    (``None`` where unknown). ``n_samples`` counts images, or labelled (clustered) pixels.
    ``loader(entry, resolved)`` builds the :class:`Dataset` from the resolved files (one
    ``(path, matched DataFile)`` per entry of ``files``, in order).
    """

    name: str
    kind: str
    description: str
    n_samples: int
    n_classes: int
    shape: tuple[int | None, ...]
    files: tuple[DataFile, ...]
    citation: str
    licence: str
    loader: Callable[[DatasetEntry, Resolved], Dataset]
    homepage: str = ""
    note: str = ""
    class_names: tuple[str, ...] | None = None


_FILE_KEYS = {"path", "checksums", "size", "urls", "source", "note", "content_check", "alternatives"}
_ENTRY_KEYS = {f for f in DatasetEntry.__dataclass_fields__} | {"files"}


def _unknown(where: str, row: dict, allowed: set[str]) -> None:
    extra = sorted(set(row) - allowed)
    if extra:
        raise ValueError(
            f"catalog: {where} has unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}"
        )


def _data_file(row: dict, where: str) -> DataFile:
    _unknown(where, row, _FILE_KEYS)
    return DataFile(
        path=row["path"],
        checksums=tuple(row.get("checksums", ())),
        size=row.get("size"),
        urls=tuple(row.get("urls", ())),
        source=row.get("source", ""),
        note=row.get("note", ""),
        alternatives=tuple(_data_file(a, f"{where} alternative") for a in row.get("alternatives", ())),
        content_check=row.get("content_check", ""),
    )


def _entry(row: dict) -> DatasetEntry:
    name = row.get("name", "?")
    _unknown(f"dataset {name!r}", row, _ENTRY_KEYS)
    if row.get("loader") not in LOADERS:
        raise ValueError(f"catalog: dataset {name!r} names loader {row.get('loader')!r}; known: {', '.join(LOADERS)}")
    class_names = row.get("class_names")
    return DatasetEntry(
        name=name,
        kind=row["kind"],
        description=row["description"],
        n_samples=int(row["n_samples"]),
        n_classes=int(row["n_classes"]),
        shape=tuple(None if s == "unknown" else int(s) for s in row["shape"]),
        files=tuple(_data_file(f, f"dataset {name!r} file {f.get('path')!r}") for f in row.get("files", ())),
        citation=row["citation"],
        licence=row["licence"],
        loader=LOADERS[row["loader"]],
        homepage=row.get("homepage", ""),
        note=row.get("note", ""),
        class_names=tuple(class_names) if class_names is not None else None,
    )


def read_catalog(text: str | None = None) -> dict[str, DatasetEntry]:
    """The catalog from TOML ``text`` (default: the package's ``catalog.toml``), in file order."""
    if text is None:
        text = resources.files("deepclust.data").joinpath("catalog.toml").read_text(encoding="utf-8")
    entries = [_entry(row) for row in tomllib.loads(text).get("dataset", [])]
    catalog = {e.name: e for e in entries}
    if len(catalog) != len(entries):
        raise ValueError("catalog: a dataset name appears twice")
    return catalog


CATALOG: dict[str, DatasetEntry] = read_catalog()
