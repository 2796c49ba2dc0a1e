"""Synthetic hyperspectral scenes on real ground-truth layouts — for tests and scaling only.

A real ground-truth map (PaviaU, Trento, Salinas, Salinas-A, Houston 2013 in
``$DEEPCLUST_DATA/hsi``) gives the layout; every class gets a smooth random spectrum, each pixel
mixes its class spectrum with a little of another class's (linear mixing) and gets spatially
correlated noise. The layout can be tiled to any size. Never report results on these scenes as
results on the real data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = ["LAYOUTS", "load_layout", "tile_layout", "synthetic_scene"]

#: layout name -> (folder, file, key) under ``<data>/hsi``
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "paviau": ("PaviaU", "PaviaU_gt.mat", "paviaU_gt"),
    "trento": ("Trento", "Trento_gt.mat", "gt"),
    "salinas": ("Salinas", "Salinas_gt.mat", "salinas_gt"),
    "salinas-a": ("SalinasA", "SalinasA_gt.mat", "salinasA_gt"),
    "houston": ("Houston2013", "Houston_gt.mat", "gnd_flag"),
}


def _data_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("DEEPCLUST_DATA"):
        dirs.append(Path(os.environ["DEEPCLUST_DATA"]))
    dirs.append(Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets")
    return dirs


def load_layout(name: str) -> np.ndarray:
    """The (H, W) int64 ground-truth map of a known scene (0 = unlabelled)."""
    import scipy.io as sio

    key = name.lower()
    if key not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    folder, fname, var = LAYOUTS[key]
    for d in _data_dirs():
        path = d / "hsi" / folder / fname
        if path.exists():
            return sio.loadmat(path)[var].astype(np.int64)
    raise FileNotFoundError(
        f"{folder}/{fname} not found under {[str(d / 'hsi') for d in _data_dirs()]}; "
        "set DEEPCLUST_DATA to the folder holding hsi/"
    )


def tile_layout(gt: np.ndarray, n_pixels: int) -> np.ndarray:
    """Tile ``gt`` (mirroring alternate tiles so borders match) until it holds at least
    ``n_pixels`` labelled pixels, then unlabel the labelled pixels beyond the first ``n_pixels``
    in row-major order, so exactly ``n_pixels`` are labelled."""
    per = int((gt > 0).sum())
    if per == 0:
        raise ValueError("the layout has no labelled pixel")
    reps = int(np.ceil(n_pixels / per))
    ry = int(np.ceil(np.sqrt(reps)))
    rx = int(np.ceil(reps / ry))
    rows = [
        np.concatenate([gt if (i + j) % 2 == 0 else gt[:, ::-1] for j in range(rx)], 1)
        for i in range(ry)
    ]
    big = np.concatenate([r if i % 2 == 0 else r[::-1] for i, r in enumerate(rows)], 0)
    flat = big.reshape(-1).copy()
    lab = np.flatnonzero(flat > 0)
    flat[lab[n_pixels:]] = 0
    return flat.reshape(big.shape)


def synthetic_scene(
    layout: str | np.ndarray = "paviau",
    *,
    n_pixels: int | None = None,
    n_bands: int = 103,
    mixing: float = 0.15,
    noise: float = 0.05,
    noise_smoothing: float = 1.5,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic cube on a real layout.

    Parameters
    ----------
    layout : name from :data:`LAYOUTS` or a (H, W) int array (0 = unlabelled)
    n_pixels : int, optional
        Tile the layout so exactly this many pixels are labelled.
    n_bands : int
    mixing : float
        Mean share of another class's spectrum mixed into each pixel (Beta-distributed).
    noise : float
        Std of the additive noise relative to the spectra's std.
    noise_smoothing : float
        Spatial Gaussian sigma (pixels) of the noise: spatially correlated noise.

    Returns
    -------
    cube : (H, W, n_bands) float32 ; gt : (H, W) int64
    """
    rng = np.random.default_rng(random_state)
    gt = load_layout(layout) if isinstance(layout, str) else np.asarray(layout, dtype=np.int64)
    if n_pixels is not None:
        gt = tile_layout(gt, int(n_pixels))
    H, W = gt.shape
    n_classes = int(gt.max()) + 1  # class 0 = background gets a spectrum too
    # smooth, positive class spectra
    raw = np.cumsum(rng.normal(size=(n_classes, n_bands)), axis=1)
    spectra = ndimage.gaussian_filter1d(raw, sigma=3.0, axis=1)
    spectra = (spectra - spectra.min(1, keepdims=True)) + rng.uniform(0.5, 2.0, (n_classes, 1))
    other = (gt + rng.integers(1, n_classes, size=gt.shape)) % n_classes
    m = (
        rng.beta(2.0, 2.0 / max(mixing, 1e-6) - 2.0, size=gt.shape).astype(np.float32)
        if mixing > 0
        else np.zeros(gt.shape, np.float32)
    )
    cube = np.empty((H, W, n_bands), dtype=np.float32)
    scale = float(spectra.std()) * noise
    for b in range(n_bands):  # band by band keeps the memory at one cube
        eps = rng.normal(size=(H, W)).astype(np.float32)
        if noise_smoothing > 0:
            eps = ndimage.gaussian_filter(eps, noise_smoothing)
            eps /= max(float(eps.std()), 1e-12)
        cube[:, :, b] = (1 - m) * spectra[gt, b] + m * spectra[other, b] + scale * eps
    return cube, gt
