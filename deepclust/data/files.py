"""Loading a user's own data: ``.mat`` (v5 and v7.3), ``.npy``/``.npz``, ``.h5``, IDX, folders.

:func:`load_file` turns a file (or a folder of images) into a :class:`Dataset`. How a 3-D array
is read (documented rule; pass ``kind=`` to override):

* with a ground truth ``gt`` that is 2-D: a **scene** (H, W, B), the gt must be (H, W);
* with 1-D labels ``gt``: an **image** stack (N, H, W);
* without ``gt``: an image stack (N, S, S) when its last two axes are equal (square images), a
  scene (H, W, B) otherwise (hyperspectral cubes have many more bands than a square side rarely
  equals).

A 3-D array read by this rule is never read silently: ``Dataset.info["kind_reason"]`` says which
reading was taken, why, and the ``kind=`` (``--kind``) that gives the other one; ``deepclust run``
prints it. Labels whose length fits the *other* reading (N entries for a cube read as a scene, or
H*W entries for a stack read as images) are refused with a message saying so.

4-D arrays are images ((N, H, W, C) when the last axis has 1, 3 or 4 entries, else (N, C, H, W));
2-D arrays are vectors (N, D). Images are scaled to [0, 1] (see
:func:`deepclust.data.images.to_nchw_unit`).

Array-file keys: when a ``.mat``/``.npz``/``.h5`` holds exactly one array it is used; otherwise a
``ValueError`` lists the keys and asks for ``key=``. Labels may come from the same file
(``gt_key=`` without ``gt``), e.g. ``load_file("coil20.npz", key="images", gt_key="labels")``.
"""

from __future__ import annotations

import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from deepclust.data.dataset import Dataset
from deepclust.data.hsi import scene_dataset
from deepclust.data.images import load_image_folder, read_idx, to_nchw_unit

__all__ = ["load_file", "read_array", "read_mat"]

_IDX_HINTS = ("-ubyte", ".idx", "idx1", "idx3")
_MAT_NON_NUMERIC = ("struct", "cell", "char", "object", "function_handle", "opaque", "sparse")


def _pick_key(path: Path, keys: list[str], key: str | None, what: str = "array") -> str:
    if key is not None:
        if key not in keys:
            raise ValueError(
                f"{path}: has no {what} {key!r}; its {what}s are: {', '.join(keys) or '(none)'}"
            )
        return key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise ValueError(f"{path}: holds no numeric {what}")
    raise ValueError(
        f"{path}: holds several {what}s ({', '.join(keys)}); pass key=NAME to say which one to load "
        "(command line: --key NAME; labels in the same file: gt_key= / --gt-key)"
    )


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(128)
    if b"MATLAB 7.3" in head:
        return True
    # HDF5 signature at offset 0 (plain .h5) or 512 (MATLAB v7.3's user block)
    for off in (0, 512, 1024):
        with open(path, "rb") as f:
            f.seek(off)
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                return True
    return False


def _h5_datasets(f) -> dict:
    import h5py

    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.startswith("#") and "/#" not in name:
            cls = obj.attrs.get("MATLAB_class", b"")
            cls = cls.decode() if isinstance(cls, bytes) else str(cls)
            if cls in _MAT_NON_NUMERIC or "MATLAB_empty" in obj.attrs:
                return  # MATLAB text (stored as uint16), cells, empty arrays
            if np.issubdtype(obj.dtype, np.number) or obj.dtype == np.bool_:
                out[name] = obj

    f.visititems(visit)
    return out


def _read_h5(path: Path, key: str | None, *, matlab: bool) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            dsets = _h5_datasets(f)
            name = _pick_key(path, sorted(dsets), key, "dataset" if not matlab else "array")
            arr = np.asarray(dsets[name][()])
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise  # our own message (key choice)
        raise ValueError(
            f"{path}: not a readable HDF5/MATLAB v7.3 file, truncated or corrupt ({exc})"
        ) from exc
    except (OSError, KeyError, RuntimeError, IndexError, TypeError, AttributeError, SystemError) as exc:
        # h5py reports a corrupt file as any of these (KeyError: "invalid dataset size, likely
        # file corruption", found by tests/data/test_loaders_fuzz.py)
        raise ValueError(
            f"{path}: not a readable HDF5/MATLAB v7.3 file, truncated or corrupt ({exc})"
        ) from exc
    # MATLAB writes column-major: h5py sees the axes reversed; undo it.
    return np.ascontiguousarray(arr.T) if matlab else arr


def read_mat(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """One array from a MATLAB file: v4/v5/v7 via scipy, v7.3 (HDF5) via h5py, transposed back
    to MATLAB's axis order. ``key`` is chosen automatically when the file holds one array."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if _is_hdf5(path):
        return _read_h5(path, key, matlab=True)
    try:
        names = [
            n
            for n, _, cls in scipy.io.whosmat(path)
            if not n.startswith("__") and cls not in _MAT_NON_NUMERIC
        ]
        chosen = _pick_key(path, names, key)
        d = scipy.io.loadmat(path, variable_names=[chosen])
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(
            f"{path}: not a readable MATLAB file, truncated or corrupt ({exc})"
        ) from exc
    except (
        scipy.io.matlab.MatReadError,
        TypeError,
        OSError,
        EOFError,
        zlib.error,
        struct.error,
        NotImplementedError,
        IndexError,
        KeyError,
        UnboundLocalError,  # scipy's v5 reader on some corrupt headers (found by test_loaders_fuzz.py)
    ) as exc:
        raise ValueError(
            f"{path}: not a readable MATLAB file, truncated or corrupt ({exc})"
        ) from exc
    if chosen not in d:
        raise ValueError(f"{path}: variable {chosen!r} could not be read (truncated file?)")
    arr = np.asarray(d[chosen])
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{path}: variable {chosen!r} is not a numeric array (it is {arr.dtype})")
    return arr


# What numpy raises on a corrupt .npy header or body (a header is parsed with Python's literal
# parser, so a broken one gives SyntaxError or tokenize.TokenError; found by the loader fuzz tests).
_NPY_ERRORS = (
    ValueError, OSError, EOFError, SyntaxError, TypeError, KeyError, IndexError, MemoryError,
    OverflowError, tokenize.TokenError, zipfile.BadZipFile, zlib.error, struct.error,
)


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) of an open .npy stream, without reading the data."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = reader(fh)
    return tuple(int(d) for d in shape), np.dtype(dtype), fh.tell()


#: ``.npy`` files with at least this many data bytes are opened memory-mapped (read-only).
MMAP_BYTES = 64 * 2**20


def _npy_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def _read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        magic = fh.read(6)
        fh.seek(0)
        if magic != b"\x93NUMPY":  # np.load would take any other bytes for a pickle
            raise ValueError(
                f"{path}: not a readable .npy file, truncated or corrupt (it does not start with "
                "the NumPy header); re-save it with numpy.save"
            )
        try:
            shape, dtype, offset = _npy_header(fh)
        except _NPY_ERRORS as exc:
            raise ValueError(f"{path}: not a readable .npy file, its header is corrupt ({exc})") from exc
    if dtype.hasobject:
        raise ValueError(f"{path}: holds Python objects; deepclust never unpickles data files")
    need = offset + _npy_nbytes(shape, dtype)
    size = path.stat().st_size
    if size < need:  # checked before np.load allocates what a corrupt header claims
        raise ValueError(
            f"{path}: not a readable .npy file, truncated or corrupt: it has {size:,} bytes but its "
            f"header ({shape} {dtype}) needs {need:,}"
        )
    try:
        # a large file is memory-mapped (read-only): scene code reads it in tiles, never whole
        mmap = "r" if _npy_nbytes(shape, dtype) >= MMAP_BYTES else None
        return np.load(path, allow_pickle=False, mmap_mode=mmap)
    except _NPY_ERRORS as exc:
        raise ValueError(f"{path}: not a readable .npy file, truncated or corrupt ({exc})") from exc


def _read_npz_member(path: Path, key: str | None) -> np.ndarray:
    """One numeric array of an .npz; only the chosen member's data is read (headers for the rest)."""
    try:
        with zipfile.ZipFile(path) as zf:
            numeric = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    shape, dtype, offset = _npy_header(fh)
                if dtype.kind in "biuf" and not dtype.hasobject:
                    if info.file_size < offset + _npy_nbytes(shape, dtype):
                        raise ValueError(
                            f"{path}: not a readable npz archive: member {info.filename} is shorter "
                            f"than its header ({shape} {dtype}) says"
                        )
                    numeric[info.filename[: -len(".npy")]] = info
            chosen = _pick_key(path, list(numeric), key)
            with zf.open(numeric[chosen]) as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable npz archive, truncated or corrupt ({exc})") from exc
    except _NPY_ERRORS as exc:
        raise ValueError(f"{path}: not a readable npz archive, truncated or corrupt ({exc})") from exc


def _no_key(path: Path, key: str | None, why: str) -> None:
    if key is not None:
        raise ValueError(
            f"{path}: a key ({key!r}) was given but {why}; drop --key/--gt-key (key=/gt_key=), which "
            "only choose among the arrays of a .mat, .npz or .h5 file"
        )


def read_array(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """One numeric array from ``.mat``, ``.npy``, ``.npz``, ``.h5``/``.hdf5`` or an IDX file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    name = path.name.lower()
    if suffix == ".mat":
        return read_mat(path, key)
    if suffix == ".npy":
        _no_key(path, key, "a .npy file holds one array")
        return _read_npy(path)
    if suffix == ".npz":
        return _read_npz_member(path, key)
    if suffix in (".h5", ".hdf5", ".he5"):
        return _read_h5(path, key, matlab=False)
    if any(h in name for h in _IDX_HINTS) or suffix == ".gz":
        _no_key(path, key, "an IDX file holds one array")
        return read_idx(path)
    raise ValueError(
        f"{path}: unsupported file type {suffix or '(no suffix)'}; deepclust reads .mat, .npy, "
        ".npz, .h5, IDX (.gz or raw *-ubyte) files and folders of images"
    )


def _as_labels(y: np.ndarray, n: int, source: str) -> np.ndarray:
    y = np.asarray(y).squeeze()
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"labels from {source} have shape {np.shape(y)}, expected ({n},) for {n} samples"
        )
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(y == np.round(y)):
            raise ValueError(f"labels from {source} are not integers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels from {source} must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _guess_3d(path: Path, shape: tuple, gt_arr: np.ndarray | None, source: str) -> tuple[str, str]:
    """The documented rule for a 3-D array without ``kind``: (kind, the sentence that says why)."""
    a, b, c = shape
    as_images = f"{a:,} images of {b}x{c}"
    as_scene = f"a scene of {a}x{b} = {a * b:,} pixels with {c} bands"
    if gt_arr is not None and gt_arr.squeeze().ndim == 2:
        return "scene", (f"read {path.name} {shape} as {as_scene}: the ground truth {source} is a 2-D map "
                         "(pass --kind images to read it otherwise)")
    if gt_arr is not None:
        return "images", (f"read {path.name} {shape} as {as_images}: the labels {source} are 1-D "
                          "(pass --kind scene with an (H, W) map to read it otherwise)")
    if b == c:
        return "images", (f"read {path.name} {shape} as {as_images}: no labels, and the last two axes are "
                          f"equal (square images); pass --kind scene to read it as {as_scene}")
    return "scene", (f"read {path.name} {shape} as {as_scene}: no labels, and the last two axes differ (a cube "
                     f"H x W x bands); pass --kind images to read it as {as_images}")


def _check_labels_fit(path: Path, shape: tuple, gt_arr: np.ndarray, source: str, kind: str) -> None:
    """Refuse labels that do not fit ``kind`` but fit another reading, saying which one."""
    a, b, c = shape
    g = np.asarray(gt_arr)
    flat = g.size if (g.ndim == 1 or (g.ndim == 2 and 1 in g.shape)) else None
    if kind == "scene":
        if flat is not None and flat == a and g.shape != (a, b):
            raise ValueError(
                f"the labels from {source} hold {flat:,} entries, one per image if {path.name} {shape} is read "
                f"as {a:,} images of {b}x{c}, but it is read as a scene that needs an ({a}, {b}) map; "
                "pass --kind images"
            )
    elif flat is not None and flat != a:
        hint = ""
        if flat == a * b:
            hint = (f"; {flat:,} = {a}x{b} is the pixel count if it is read as a scene (H, W, B): pass "
                    f"--kind scene with the labels as an ({a}, {b}) map")
        raise ValueError(
            f"labels from {source} have shape ({flat},), expected ({a},) for {path.name} {shape} read as {kind} "
            f"({a:,} samples){hint}"
        )
    elif g.ndim == 2 and 1 not in g.shape and g.shape == (a, b):
        raise ValueError(
            f"the ground truth from {source} is an ({a}, {b}) map, which fits {path.name} {shape} read as a scene, "
            f"but it is read as {kind}; pass --kind scene"
        )


def load_file(
    path: str | os.PathLike,
    *,
    gt: str | os.PathLike | np.ndarray | None = None,
    key: str | None = None,
    gt_key: str | None = None,
    kind: str | None = None,
    image_size: int | tuple[int, int] | None = None,
) -> Dataset:
    """Load a user's data file or image folder as a :class:`Dataset`.

    Parameters
    ----------
    path
        ``.mat`` (v5 or v7.3), ``.npy``, ``.npz``, ``.h5``, IDX (``.gz`` or raw), or a folder of
        images (one sub-folder per class gives labels; a flat folder gives ``y=None``).
    gt
        Ground truth: a file (same formats) or an array. 2-D (H, W) for a scene (0 or negative =
        unlabelled), 1-D (N,) labels for images or vectors.
    key, gt_key
        Array names inside multi-array files. ``gt_key`` without ``gt`` reads the labels from
        ``path`` itself.
    kind
        ``"scene"``, ``"images"`` or ``"vectors"`` to override the rule in the module docstring.
    image_size
        Image folders only: resize every image to this int or (H, W) with a box filter (needed
        when the images differ in size).

    Raises
    ------
    ValueError
        Unreadable/truncated file, ambiguous key, a gt that does not fit the data.
    FileNotFoundError
        ``path`` (or ``gt``) does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if kind not in (None, "scene", "images", "vectors"):
        raise ValueError(f"kind must be 'scene', 'images', 'vectors' or None, got {kind!r}")
    name = path.name.split(".")[0] if path.is_file() else path.name
    if path.is_dir():
        if gt is not None or gt_key is not None:
            raise ValueError(
                f"{path} is an image folder: its labels come from its sub-folders; drop gt="
            )
        if key is not None:
            raise ValueError(f"{path} is an image folder, not an array file; drop --key (key=)")
        if kind not in (None, "images"):
            raise ValueError(f"{path} is an image folder: it can only be read as images, not as {kind}")
        X, y, names, files = load_image_folder(path, image_size=image_size)
        return Dataset(
            name=name,
            kind="images",
            X=X,
            y=y,
            class_names=names,
            info={"source": str(path), "files": files},
        )

    if image_size is not None:
        raise ValueError("image_size= applies to image folders only")
    arr = read_array(path, key)
    if arr.size == 0:
        raise ValueError(f"{path}: the array is empty (shape {arr.shape}); there is nothing to cluster")
    if gt is not None:
        source = str(gt) if not isinstance(gt, np.ndarray) else "the gt array"
        gt_arr = np.asarray(gt) if isinstance(gt, np.ndarray) else read_array(gt, gt_key)
    elif gt_key is not None:
        source = f"{path}[{gt_key}]"
        gt_arr = read_array(path, gt_key)
    else:
        source, gt_arr = "", None
    if gt_arr is not None and gt_arr.ndim == 2 and 1 in gt_arr.shape and arr.ndim != 3:
        gt_arr = gt_arr.reshape(-1)  # a MATLAB column/row vector of labels

    if gt_arr is not None and gt_arr.ndim == 2 and arr.ndim != 3 and kind in (None, "scene"):
        raise ValueError(
            f"the ground truth from {source} is a 2-D map {gt_arr.shape}, which needs a 3-D "
            f"hyperspectral cube (H, W, B), but {path} holds a {arr.ndim}-D array {arr.shape}"
        )
    reason = ""
    if kind is None:
        if arr.ndim == 3:
            kind, reason = _guess_3d(path, arr.shape, gt_arr, source)
        elif arr.ndim == 4:
            kind = "images"
        elif arr.ndim == 2:
            kind = "vectors"
        else:
            raise ValueError(
                f"{path}: cannot use a {arr.ndim}-D array {arr.shape}; expected 2-D "
                "vectors (N, D), 3-D images (N, H, W) or a scene (H, W, B), or 4-D images"
            )
    if arr.ndim == 3 and gt_arr is not None:
        _check_labels_fit(path, arr.shape, gt_arr, source, kind)
    info: dict = {"source": str(path)}
    if reason:
        info["kind_reason"] = reason
    if kind == "scene":
        if arr.ndim != 3:
            raise ValueError(f"{path}: a scene must be a 3-D cube (H, W, B), got shape {arr.shape}")
        if gt_arr is not None and gt_arr.ndim == 1:
            raise ValueError(
                f"the ground truth from {source} is 1-D {gt_arr.shape} but the scene {arr.shape} "
                f"needs an (H, W) = {arr.shape[:2]} map"
            )
        return scene_dataset(name, arr, gt_arr, info=info)
    if kind == "images":
        if arr.ndim not in (3, 4):
            raise ValueError(f"{path}: images must be 3-D (N, H, W) or 4-D, got shape {arr.shape}")
        X, note = to_nchw_unit(arr, name=str(path))
        info["scaling"] = note
    else:
        if arr.ndim < 2:
            raise ValueError(f"{path}: vectors must be 2-D (N, D), got shape {arr.shape}")
        X = np.ascontiguousarray(arr.reshape(arr.shape[0], -1), dtype=np.float32)
        if not np.all(np.isfinite(X)):
            bad = int(np.count_nonzero(~np.isfinite(X)))
            raise ValueError(
                f"{path}: holds {bad} NaN or Inf value(s); remove or impute them "
                "(e.g. sklearn.impute.SimpleImputer) before clustering"
            )
    y = _as_labels(gt_arr, X.shape[0], source) if gt_arr is not None else None
    return Dataset(name=name, kind=kind, X=X, y=y, info=info)
