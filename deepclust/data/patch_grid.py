"""Scenes for patch-wise segmentation (RECAL, section 4): bands, a patch grid, the painted map.

* :func:`read_scene`: the cube ``(H, W, B)`` and ground truth that ``deepclust segment`` reads (a
  catalog scene, a UC Merced mosaic of :func:`ucmerced_mosaic`, or a ``.npy`` file), with its
  bands selected: all, given indices, or LISS-IV's green, red and near infrared as means of
  AVIRIS bands (:func:`aviris_band_indices`);
* :func:`scale_bands`: each band to [0, 1] by its 2nd-98th percentiles;
* :func:`grid_patches`: one P x P patch centred on every ``stride x stride`` block of the scene
  (mirrored at the borders), and :func:`blocks_to_map`, which paints one label per block back
  into an (H, W) map.

The module needs numpy only. The per-pixel patches of the scene methods (reflection padding, a
patch around every clustered pixel) are :mod:`deepclust.data.hsi`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = [
    "LISS4_BANDS_UM",
    "aviris_band_indices",
    "blocks_to_map",
    "grid_patches",
    "read_scene",
    "scale_bands",
    "ucmerced_mosaic",
]


#: LISS-IV bands of RECAL's Table 2, in micrometres: green, red, near infrared.
LISS4_BANDS_UM: tuple[tuple[float, float], ...] = ((0.52, 0.59), (0.62, 0.68), (0.77, 0.86))

# AVIRIS water-absorption bands removed in the "corrected" Indian Pines/Salinas cubes
# (1-based 104-108, 150-163, 220 of 224 for Indian Pines; 108-112, 154-167, 224 for Salinas).
_SALINAS_REMOVED_1BASED = [*range(108, 113), *range(154, 168), 224]


def aviris_band_indices(
    ranges_um: Sequence[tuple[float, float]] = LISS4_BANDS_UM,
    *,
    n_bands: int = 204,
) -> list[list[int]]:
    """Indices (0-based, into the cube) of AVIRIS bands whose centre lies in each range.

    AVIRIS has 224 bands about 10 nm apart from 0.4 micrometres: band ``i`` (0-based, of 224) is
    centred at about ``400 + 10 i`` nm (an approximation: the real centres drift by a few nm).
    For a 204-band "corrected" Salinas cube the removed water bands are skipped; the LISS-IV
    ranges lie below them, so the indices are the same in both cubes:
    green 0.52-0.59 -> 12..19, red 0.62-0.68 -> 22..28, NIR 0.77-0.86 -> 37..46.
    """
    if n_bands == 224:
        keep = list(range(224))
    elif n_bands == 204:
        removed = {b - 1 for b in _SALINAS_REMOVED_1BASED}
        keep = [i for i in range(224) if i not in removed]
    else:
        raise ValueError(f"n_bands must be 224 (raw AVIRIS) or 204 (corrected), got {n_bands}")
    out = []
    for lo, hi in ranges_um:
        lo_nm, hi_nm = lo * 1000 - 1e-6, hi * 1000 + 1e-6
        idx = [j for j, i in enumerate(keep) if lo_nm <= 400 + 10 * i <= hi_nm]
        if not idx:
            raise ValueError(f"no AVIRIS band centre lies in {lo}-{hi} micrometres")
        out.append(idx)
    return out


def grid_patches(
    cube: np.ndarray, patch: int, stride: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """P x P patches of a scene (H, W, B), one centred on each ``stride x stride`` block.

    The scene is mirrored by ``patch`` pixels at its borders so every block has a full patch.

    Returns
    -------
    patches : (N, B, P, P) float32, N = ceil(H / stride) * ceil(W / stride), row-major blocks
    centres : (N, 2) int, the (row, col) of each block's centre pixel in the scene
    grid : (ceil(H / stride), ceil(W / stride))
    """
    if patch < 2 or stride < 1:
        raise ValueError(f"patch must be >= 2 and stride >= 1, got patch={patch}, stride={stride}")
    h, w, b = cube.shape
    gh, gw = -(-h // stride), -(-w // stride)
    pad = patch
    padded = np.pad(cube, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    rows = np.minimum(np.arange(gh) * stride + stride // 2, h - 1)
    cols = np.minimum(np.arange(gw) * stride + stride // 2, w - 1)
    off = patch // 2
    out = np.empty((gh * gw, b, patch, patch), np.float32)
    k = 0
    for r in rows:
        r0 = r + pad - off
        for c in cols:
            c0 = c + pad - off
            out[k] = padded[r0:r0 + patch, c0:c0 + patch].transpose(2, 0, 1)
            k += 1
    centres = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
    return out, centres, (gh, gw)


def blocks_to_map(block_labels: np.ndarray, grid: tuple[int, int], stride: int,
                  shape: tuple[int, int]) -> np.ndarray:
    """The (H, W) map of a grid's block labels: each label painted on its ``stride x stride``
    block (the inverse of :func:`grid_patches`' layout), cropped to ``shape``."""
    lab = block_labels.reshape(grid)
    full = np.repeat(np.repeat(lab, stride, axis=0), stride, axis=1)
    return full[: shape[0], : shape[1]].astype(np.int64)


def scale_bands(cube: np.ndarray) -> np.ndarray:
    """Each band to [0, 1] by its 2nd-98th percentiles (robust against a few bright pixels)."""
    cube = cube.astype(np.float32)
    lo = np.percentile(cube, 2, axis=(0, 1), keepdims=True)
    hi = np.percentile(cube, 98, axis=(0, 1), keepdims=True)
    return np.clip((cube - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


def read_scene(data: str, bands: str | None,
               download: bool | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A scene cube (H, W, B), its ground truth (or None) and a description of the bands."""
    # Catalog files go through the data lookup ($DEEPCLUST_DATA, ../shared, cache, checksums).
    from deepclust.data import CATALOG, find_file, load_dataset

    name = data.lower().replace("salinasa", "salinas-a")
    gt = None
    if name in CATALOG and CATALOG[name].kind == "scene":
        ds = load_dataset(name, download=download)
        cube, gt = ds.cube, ds.gt
    elif name in ("ucmerced-mosaic", "ucmerced") or name.startswith("ucmerced-mosaic-"):
        # "ucmerced-mosaic-<S>" draws another mosaic (seed S): a second scene of the same kind
        mseed = int(name.rsplit("-", 1)[1]) if name.startswith("ucmerced-mosaic-") else 0
        cube, gt = ucmerced_mosaic(find_file("images/ucmerced/ucmerced_64x64.npz", download=download), seed=mseed)
    elif os.path.exists(data):
        arr = np.load(data, allow_pickle=False)
        cube = arr if isinstance(arr, np.ndarray) else arr[arr.files[0]]
        cube = np.asarray(cube, np.float32)
    else:
        raise ValueError(
            f"unknown scene {data!r}: use a catalog scene (e.g. salinas-a), ucmerced-mosaic or a .npy path"
        )
    if cube.ndim != 3:
        raise ValueError(f"a scene must be (H, W, B), got shape {cube.shape}")
    desc = f"all {cube.shape[2]} bands"
    if bands is None or bands == "all":
        pass
    elif bands == "liss4":
        if cube.shape[2] not in (204, 224):
            raise ValueError("--bands liss4 needs an AVIRIS cube (204 or 224 bands)")
        groups = aviris_band_indices(n_bands=cube.shape[2])
        cube = np.stack([cube[:, :, g].mean(axis=2) for g in groups], axis=2)
        desc = "LISS-IV green/red/NIR as means of AVIRIS bands " + "; ".join(
            f"{g[0]}..{g[-1]}" for g in groups) + " (0-based)"
    else:
        idx = [int(v) for v in str(bands).split(",")]
        cube = cube[:, :, idx]
        desc = f"bands {idx}"
    return cube, gt, desc


def ucmerced_mosaic(path: str | os.PathLike, *, tiles: int = 6, seed: int = 0,
                    classes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A ``tiles x tiles`` mosaic of UC Merced 64x64 tiles and its per-pixel tile class map.

    Tiles are drawn (seeded) from ``classes`` (default: 6 visually distinct land covers:
    agricultural, beach, buildings, chaparral, forest, river), so the map has a known truth.
    """
    d = np.load(path, allow_pickle=False)
    imgs, labels, names = d["images"], d["labels"], list(d["class_names"])
    if classes is None:
        classes = [names.index(c) for c in
                   ("agricultural", "beach", "buildings", "chaparral", "forest", "river")]
    rng = np.random.default_rng(seed)
    s = imgs.shape[1]
    cube = np.zeros((tiles * s, tiles * s, imgs.shape[3]), np.float32)
    gt = np.zeros((tiles * s, tiles * s), np.int64)
    for i in range(tiles):
        for j in range(tiles):
            cls = int(rng.choice(classes))
            k = int(rng.choice(np.flatnonzero(labels == cls)))
            cube[i * s:(i + 1) * s, j * s:(j + 1) * s] = imgs[k] / 255.0
            gt[i * s:(i + 1) * s, j * s:(j + 1) * s] = cls + 1  # 0 = unlabelled
    return cube, gt
