"""Loaders: build a :class:`~deepclust.data.dataset.Dataset` from a catalog entry's resolved files.

The catalog (``catalog.toml``) names each dataset's loader by a key of :data:`LOADERS`; a loader is
called as ``loader(entry, resolved)`` with one ``(path, matched DataFile)`` per file of the entry,
in the catalog's order. A new dataset in an existing layout (IDX pairs, a ``.mat`` scene and its
ground truth, ...) needs no code, only a catalog row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepclust.data.dataset import Dataset
from deepclust.data.fetch import DataFile
from deepclust.data.files import read_mat
from deepclust.data.hsi import scene_dataset
from deepclust.data.images import read_idx, read_image_zip, read_npz, to_nchw_unit

if TYPE_CHECKING:
    from deepclust.data.registry import DatasetEntry

__all__ = ["LOADERS", "Resolved", "ucmerced_from_originals"]

Resolved = list[tuple[Path, DataFile]]  # aligned with DatasetEntry.files


def _load_digits(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.data.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8)
    return Dataset(
        name=entry.name,
        kind="images",
        X=np.ascontiguousarray(X),
        y=d.target.astype(np.int64),
        class_names=list(entry.class_names or ()),
        info={"source": "sklearn.datasets.load_digits"},
    )


def _idx_pairs(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    """IDX image/label pairs, concatenated in catalog order (train before test)."""
    images, labels = [], []
    for (img_path, _), (lab_path, _) in zip(resolved[0::2], resolved[1::2], strict=True):
        x = read_idx(img_path)
        y = read_idx(lab_path)
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{img_path} {x.shape} and {lab_path} {y.shape} do not form a dataset")
        images.append(x)
        labels.append(y)
    x = np.concatenate(images) if len(images) > 1 else images[0]  # (N, 28, 28) uint8
    X, note = to_nchw_unit(x, layout="NHW")
    y = np.concatenate(labels).astype(np.int64)
    return Dataset(
        name=entry.name,
        kind="images",
        X=X,
        y=y,
        class_names=list(entry.class_names or ()),
        info={"scaling": note, "split_sizes": [int(a.shape[0]) for a in images]},
    )


def _npz(path: Path, *keys: str) -> dict[str, np.ndarray]:
    """Arrays ``keys`` of an npz; ValueError naming the missing ones (a different file)."""
    z = read_npz(path)
    missing = [k for k in keys if k not in z]
    if missing:
        raise ValueError(
            f"{path}: lacks the arrays {', '.join(missing)} (it holds {', '.join(z) or 'none'}); "
            "it is not the catalog's file"
        )
    return z


def _load_usps(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    path, spec = resolved[0]
    if path.suffix == ".npz":
        z = _npz(path, "x_train", "y_train", "x_test", "y_test")
        parts = [(z["x_train"], z["y_train"]), (z["x_test"], z["y_test"])]
    else:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                parts = [
                    (f[s]["data"][()].reshape(-1, 16, 16), f[s]["target"][()])
                    for s in ("train", "test")
                ]
        except (OSError, KeyError) as exc:
            raise ValueError(
                f"{path}: expected groups train/test with data and target ({exc})"
            ) from exc
    x = np.concatenate([p[0] for p in parts]).astype(np.float32)  # (9298, 16, 16) in [0, 1]
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    X, note = to_nchw_unit(x, layout="NHW")
    return Dataset(
        name=entry.name,
        kind="images",
        X=X,
        y=y,
        class_names=list(entry.class_names or ()),
        info={"scaling": note, "split_sizes": [int(p[0].shape[0]) for p in parts]},
    )


_COIL_NAME = re.compile(r"obj(\d+)__(\d+)\.png$")


def _load_coil20(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    path, spec = resolved[0]
    if path.suffix == ".npz":
        z = _npz(path, "images", "labels", "pose")
        X, note = to_nchw_unit(z["images"], layout="NHW")  # (1440, 1, 128, 128)
        y = z["labels"].astype(np.int64)
        info = {"scaling": note, "pose": z["pose"].astype(np.int64)}
    else:  # the original coil-20-proc.zip of PNGs: order obj1 poses 0..71, obj2, ...
        X, names = read_image_zip(path)
        keys = []
        for n in names:
            m = _COIL_NAME.search(n)
            if m is None:
                raise ValueError(f"{path}: unexpected member {n!r} (expected objO__P.png)")
            keys.append((int(m.group(1)), int(m.group(2))))
        order = sorted(range(len(keys)), key=keys.__getitem__)
        X = X[order]
        y = np.asarray([keys[i][0] - 1 for i in order], dtype=np.int64)
        info = {
            "scaling": "uint8/255",
            "pose": np.asarray([keys[i][1] for i in order], dtype=np.int64),
        }
    return Dataset(name=entry.name, kind="images", X=X, y=y, info=info)


# sha256 of SHA256SUMS_original_tifs.txt (shared/datasets/images/ucmerced): the text
# "<sha256>  UCMerced_LandUse/Images/<class>/<file>.tif\n" for the 2,100 original TIFs, sorted by
# path. Rebuilding that text from the TIFs read and hashing it verifies every image's bytes
# without shipping 2,100 hashes.
UCMERCED_TIFS_LISTING_SHA256 = "905817e4f12f15aeb7217bf0baf1779bc817056c00a5971b7c730785b161406b"
_UCM_MEMBER = re.compile(r"(?:^|/)UCMerced_LandUse/Images/([^/]+)/([^/]+\.tif)$")


def _load_ucmerced(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    path, _ = resolved[0]
    if path.suffix == ".npz":
        z = _npz(path, "images", "labels", "class_names", "filenames")
        X, note = to_nchw_unit(z["images"], layout="NHWC")  # (2100, 3, 64, 64)
        return Dataset(
            name=entry.name,
            kind="images",
            X=X,
            y=z["labels"].astype(np.int64),
            class_names=[str(c) for c in z["class_names"]],
            info={"scaling": note, "files": [str(f) for f in z["filenames"]]},
        )
    return ucmerced_from_originals(path, image_size=entry.shape[1:], name=entry.name)


def ucmerced_from_originals(
    path: str | Path,
    *,
    image_size: int | tuple[int, int] | None = 64,
    name: str = "ucmerced",
    expected_digest: str | None = None,
) -> Dataset:
    """UC Merced from the original TIFs: ``UCMerced_LandUse.zip`` or its unzipped ``Images`` folder.

    Every TIF's sha256 is checked against the published list (through the digest of the list,
    :data:`UCMERCED_TIFS_LISTING_SHA256`); a mismatch raises :class:`ChecksumError`. Images are
    converted to RGB and resized with a box filter to ``image_size`` (64 reproduces the
    catalog's 64x64 npz exactly; None keeps 256x256 but then the 44 off-size originals make it
    fail: pass 256 to resize them). Order: by class (alphabetical), then file name.
    """
    import hashlib

    from deepclust.data.fetch import ChecksumError
    from deepclust.data.images import _as_size, _read_images

    path = Path(path)
    digests: dict = {}
    size = _as_size(image_size)
    if path.is_dir():
        files = sorted(path.rglob("*.tif"))
        rel = {f: "UCMerced_LandUse/Images/" + "/".join(f.relative_to(path).parts) for f in files}
        members = sorted(files, key=rel.__getitem__)
        X = _read_images(members, lambda f: open(f, "rb"), size=size, digests=digests)
        keys = [rel[f] for f in members]
    else:
        import zipfile

        try:
            with zipfile.ZipFile(path) as zf:
                names = sorted(n for n in zf.namelist() if _UCM_MEMBER.search(n))
                if not names:
                    raise ValueError(f"{path}: no UCMerced_LandUse/Images/<class>/*.tif inside")
                X = _read_images(names, zf.open, size=size, digests=digests)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path}: not a readable zip archive ({exc})") from exc
        members = names
        keys = [n[n.index("UCMerced_LandUse/") :] for n in names]
    listing = "".join(f"{digests[m]}  {k}\n" for m, k in zip(members, keys, strict=True))
    got = hashlib.sha256(listing.encode()).hexdigest()
    want = expected_digest or UCMERCED_TIFS_LISTING_SHA256
    if got != want:
        raise ChecksumError(
            f"{path}: the {len(keys)} TIFs do not match the published sha256 list of the 2,100 "
            f"UC Merced originals (listing digest {got}, expected {want}); some images are "
            "missing, extra or modified"
        )
    classes = sorted({k.split("/")[2] for k in keys})
    y = np.asarray([classes.index(k.split("/")[2]) for k in keys], dtype=np.int64)
    return Dataset(
        name=name,
        kind="images",
        X=X,
        y=y,
        class_names=classes,
        info={"files": ["/".join(k.split("/")[2:]) for k in keys], "source": str(path)},
    )


def _load_scene(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    (cube_path, _), (gt_path, _) = resolved[0], resolved[1]
    cube = read_mat(cube_path)
    gt = read_mat(gt_path)
    H, W = entry.shape[0], entry.shape[1]
    B = entry.shape[2] if len(entry.shape) > 2 else None
    if cube.ndim != 3 or cube.shape[:2] != (H, W) or (B is not None and cube.shape[2] != B):
        raise ValueError(
            f"{cube_path}: the cube has shape {cube.shape}, expected ({H}, {W}, {B or 'B'}) "
            f"for {entry.name}; it is a different version of the scene or stored transposed"
        )
    ds = scene_dataset(entry.name, cube, gt, info={"cube_dtype": str(cube.dtype)})
    if entry.class_names is not None:
        ids = np.unique(ds.y)
        ds.class_names = [
            entry.class_names[i - 1] if 1 <= i <= len(entry.class_names) else str(i) for i in ids
        ]
    return ds


#: Loader keys of ``catalog.toml`` -> functions.
LOADERS: dict[str, Callable[[DatasetEntry, Resolved], Dataset]] = {
    "digits": _load_digits,
    "idx_pairs": _idx_pairs,
    "usps": _load_usps,
    "coil20": _load_coil20,
    "ucmerced": _load_ucmerced,
    "scene": _load_scene,
}
