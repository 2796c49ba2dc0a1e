"""Readers for image data: IDX files (MNIST family), image folders, npz archives.

Every reader raises a ``ValueError`` naming the file and what is wrong when a file is truncated
or not what it claims to be, instead of letting a low-level traceback through.
"""

from __future__ import annotations

import gzip
import os
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "load_image_folder",
    "read_idx",
    "read_npz",
    "read_image_zip",
    "to_nchw_unit",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".webp")

# IDX type byte -> big-endian numpy dtype ("THE IDX FILE FORMAT", http://yann.lecun.com/exdb/mnist/)
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed when it starts with the gzip magic).

    Returns the array in native byte order with the shape stored in the header, e.g.
    (60000, 28, 28) uint8 for ``train-images-idx3-ubyte.gz``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                buf = f.read()
        else:
            buf = path.read_bytes()
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(
            f"{path}: cannot read the IDX file, the gzip stream is broken ({exc})"
        ) from exc
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (the first bytes {buf[:4]!r} are not the magic "
            "0 0 <type> <ndim>)"
        )
    dtype = _IDX_DTYPES[buf[2]]
    ndim = buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(f"{path}: IDX header is truncated ({len(buf)} bytes)")
    dims = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(buf) != expected:
        raise ValueError(
            f"{path}: IDX file has {len(buf):,} bytes but its header {dims} needs {expected:,}; "
            "the file is truncated or corrupt"
        )
    arr = np.frombuffer(buf, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (``allow_pickle=False``), read eagerly; clear errors."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(
                f"{path}: holds Python objects (pickled); deepclust never unpickles data files. "
                "Re-save it with plain numeric/string arrays"
            ) from exc
        raise ValueError(f"{path}: cannot read the npz archive ({exc})") from exc
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, KeyError, SyntaxError, TypeError,
            IndexError, MemoryError, tokenize.TokenError) as exc:  # numpy parses a header as a literal
        raise ValueError(
            f"{path}: not a readable npz archive, truncated or corrupt ({exc})"
        ) from exc


def to_nchw_unit(
    images: np.ndarray, *, layout: str = "auto", name: str = "images"
) -> tuple[np.ndarray, str]:
    """Images to (N, C, H, W) float32 in [0, 1].

    ``layout``: ``"NHW"`` (grey), ``"NHWC"``, ``"NCHW"`` or ``"auto"`` (3-D is NHW; 4-D is NHWC
    when the last axis has 1, 3 or 4 entries and axis 1 does not, else NCHW). Scaling: uint8 /255,
    uint16 /65535, other integers by their maximum, floats already in [0, 1] unchanged, other
    floats min-max scaled over the whole array. Returns the array and a note on the scaling.
    """
    a = np.asarray(images)
    if layout == "auto":
        if a.ndim == 3:
            layout = "NHW"
        elif a.ndim == 4:
            layout = "NHWC" if a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4) else "NCHW"
        else:
            raise ValueError(
                f"{name}: expected 3-D (N,H,W) or 4-D image arrays, got shape {a.shape}"
            )
    if layout == "NHW":
        a = a[:, None]
    elif layout == "NHWC":
        a = a.transpose(0, 3, 1, 2)
    elif layout != "NCHW":
        raise ValueError(f"unknown layout {layout!r}")
    if a.dtype in (np.uint8, np.uint16):
        # one float32 allocation (no astype temporary); same values as astype(float32) / scale
        scale = 255 if a.dtype == np.uint8 else 65535
        out = np.empty(a.shape, dtype=np.float32)
        np.divide(a, np.float32(scale), out=out)
        note = f"{a.dtype}/{scale}"
    elif np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        hi = float(a.max()) if a.size else 1.0
        lo = float(a.min()) if a.size else 0.0
        if lo < 0:
            out = (a.astype(np.float32) - lo) / np.float32(max(hi - lo, 1.0))
            note = "min-max"
        else:
            out, note = a.astype(np.float32) / np.float32(max(hi, 1.0)), "divided by the maximum"
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float32)
        if not np.isfinite(out).all():
            bad = int(np.count_nonzero(~np.isfinite(out)))
            raise ValueError(f"{name}: contains {bad} NaN or Inf value(s); replace them before clustering")
        lo, hi = float(out.min()), float(out.max())
        if lo >= 0.0 and hi <= 1.0:
            note = "unchanged (already in [0, 1])"
        else:
            out = (out - lo) / np.float32(max(hi - lo, 1e-12))
            note = f"min-max scaled from [{lo:g}, {hi:g}]"
    else:
        raise TypeError(f"{name}: images must be numeric, got dtype {a.dtype}")
    return np.ascontiguousarray(out, dtype=np.float32), note


def _pil_to_array(img, size: tuple[int, int] | None = None) -> np.ndarray:
    """One PIL image to (C, H, W) float32 in [0, 1]; grey stays 1 channel, colour becomes RGB.

    ``size`` = (H, W) resizes with Pillow's box filter (the exact block mean when downsampling
    by an integer factor), after the conversion to L/RGB and before scaling.
    """
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        if size is not None:
            a = np.asarray(Image.fromarray(a, mode="F").resize(size[::-1], Image.BOX))
        if img.mode.startswith("I;16"):
            return a[None] / np.float32(65535)
        if img.mode == "I":
            return a[None] / np.float32(max(float(a.max()), 1.0))
        return np.clip(a, 0, 1)[None]
    if img.mode in ("1", "L", "LA"):
        img = img.convert("L")
    else:
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        img = img.convert("RGB")
    if size is not None:
        img = img.resize(size[::-1], Image.BOX)
    a = np.asarray(img, dtype=np.float32) / np.float32(255)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _as_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    size = tuple(int(v) for v in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be an int or (H, W) of positive ints, got {size!r}")
    return size


def _read_images(
    files: list, open_fn, *, size: tuple[int, int] | None = None, digests: dict | None = None
) -> np.ndarray:
    """Decode ``files`` (opened with ``open_fn``) into (N, C, H, W) float32 in [0, 1].

    With ``digests`` (a dict) the sha256 of each file's bytes is stored under its name.
    """
    import hashlib
    import io

    from PIL import Image, UnidentifiedImageError

    arrays = []
    first_shape = None
    first_file = None
    for f in files:
        try:
            with open_fn(f) as fh:
                data = fh.read()
            if digests is not None:
                digests[f] = hashlib.sha256(data).hexdigest()
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                a = _pil_to_array(img, size)
        except UnidentifiedImageError as exc:
            raise ValueError(
                f"{f}: cannot read the image: Pillow does not recognise it (a corrupt or truncated "
                "file, or not an image); remove or replace it"
            ) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{f}: cannot read the image ({exc}); remove or replace it") from exc
        if first_shape is None:
            first_shape, first_file = a.shape[1:], f
        elif a.shape[1:] != first_shape:
            raise ValueError(
                f"images have mixed sizes: {first_file} is {first_shape[1]}x{first_shape[0]} "
                f"(WxH) but {f} is {a.shape[2]}x{a.shape[1]}; resize them to one size first "
                "(load_file(..., image_size=(H, W)) does it)"
            )
        arrays.append(a)
    channels = max(a.shape[0] for a in arrays)
    if channels > 1:  # mixed grey/colour: promote grey to RGB
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    return np.stack(arrays).astype(np.float32, copy=False)


def load_image_folder(
    path: str | os.PathLike, *, image_size: int | tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, list[str]]:
    """Read a folder of images.

    ``image_size`` (int or (H, W)) resizes every image with a box filter; without it the
    images must share one size.

    With one sub-folder per class (``root/<class>/<image>``) the labels are the sub-folder
    indices in sorted order; a flat folder of images gives ``y = None``. Images must share one
    size; grey images give one channel, otherwise RGB (grey promoted when mixed).

    Returns
    -------
    X : (N, C, H, W) float32 in [0, 1]
    y : (N,) int64 or None
    class_names : list of str or None
    files : list of str, relative paths in sample order
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")

    def is_image(p: Path) -> bool:
        return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")

    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    flat = sorted(p for p in root.iterdir() if is_image(p))
    if subdirs and flat:
        raise ValueError(
            f"{root} mixes images ({flat[0].name}, ...) and sub-folders ({subdirs[0].name}, ...); "
            "use either one sub-folder per class or a flat folder of images"
        )
    if subdirs:
        files, labels, names = [], [], []
        for cls in subdirs:
            imgs = sorted(p for p in cls.rglob("*") if is_image(p))
            if not imgs:
                continue
            names.append(cls.name)
            files.extend(imgs)
            labels.extend([len(names) - 1] * len(imgs))
        if not files:
            raise ValueError(
                f"{root}: its sub-folders hold no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        X = _read_images(files, lambda f: open(f, "rb"), size=_as_size(image_size))
        return (
            X,
            np.asarray(labels, dtype=np.int64),
            names,
            [str(f.relative_to(root)) for f in files],
        )
    if not flat:
        raise ValueError(f"{root}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    X = _read_images(flat, lambda f: open(f, "rb"), size=_as_size(image_size))
    return X, None, None, [f.name for f in flat]


def read_image_zip(
    path: str | os.PathLike,
    *,
    prefix: str = "",
    image_size: int | tuple[int, int] | None = None,
    digests: dict | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Images stored in a zip archive (members under ``prefix`` with an image suffix, sorted).

    Returns (N, C, H, W) float32 in [0, 1] and the member names. ``image_size`` resizes (box
    filter); ``digests`` (a dict) receives the sha256 of each member's bytes.
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a readable zip archive ({exc})") from exc
    with zf:
        names = sorted(
            n
            for n in zf.namelist()
            if n.startswith(prefix) and Path(n).suffix.lower() in IMAGE_SUFFIXES
        )
        if not names:
            raise ValueError(f"{path}: no images under {prefix or 'the archive root'}")
        try:
            X = _read_images(names, zf.open, size=_as_size(image_size), digests=digests)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ValueError(f"{path}: the archive is corrupt ({exc})") from exc
    return X, names
