"""The scene pipeline a scene method trains on: band statistics and PCA, patches, patch features.

A scene method reads a cube ``(H, W, B)`` and a mask of the pixels to cluster, and needs the same
pieces whatever its model: the bands standardised and reduced by PCA (:class:`ScenePreprocessor`),
a patch around every clustered pixel as network input (:class:`ScenePatches`), and patch
features for neighbour searches (:func:`patch_pca_features`). They live in the data layer, beside
the array helpers of :mod:`deepclust.data.hsi` they are built on (masks, tiles, padding, patch
gathering), so that a method file holds its model and its training only. They are a module of
their own rather than more of ``hsi.py`` because they need torch, which loading data does not.

Every piece streams: a scene of up to :data:`deepclust.data.hsi.TILE_PIXELS` pixels is processed in
one piece; a larger (e.g. memory-mapped) one is read in tiles of whole image rows with exact
float64 accumulation, and patches are gathered per batch from one padded copy of the reduced
cube, so neither the cube in float64 nor the (N, C, p, p) patch matrix is ever held.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from deepclust.data import hsi

__all__ = ["ScenePatches", "ScenePreprocessor", "patch_pca_features"]


class ScenePreprocessor:
    """Band standardisation over all pixels + PCA to ``n_components`` (fitted once, reusable).

    Scenes of up to ``tile_pixels`` pixels are processed in one piece (the original code path,
    bit-identical). Larger ones (e.g. a memory-mapped cube of millions of pixels) are read in
    tiles of whole image rows: the band means, the band deviations and the covariance of the
    standardised bands are accumulated exactly in float64 over tiles (two passes: means, then
    centred cross products), so no float64 (or float32) copy of the whole cube is ever made and
    the statistics equal the one-piece ones up to float rounding (no sampling).
    """

    def __init__(self, n_components: int = 8, *, tile_pixels: int | None = None):
        self.n_components = int(n_components)
        # None: deepclust.data.hsi.TILE_PIXELS (65,536 pixels), read when constructed
        self.tile_pixels = int(tile_pixels) if tile_pixels is not None else hsi.TILE_PIXELS

    def _tiles(self, cube: np.ndarray):
        # each tile as float32 first (the precision the one-piece path sees), then float64
        for t in hsi.iter_row_tiles(cube, self.tile_pixels):
            yield np.asarray(t, dtype=np.float32).astype(np.float64)

    def fit(self, cube: np.ndarray) -> ScenePreprocessor:
        B = cube.shape[-1]
        if self.n_components > B:
            raise ValueError(f"n_components={self.n_components} exceeds the number of bands ({B})")
        n = cube.shape[0] * cube.shape[1]
        if n <= self.tile_pixels:  # one piece: the original (exact) computation
            X = cube.reshape(-1, B).astype(np.float32).astype(np.float64)
            self.mean_ = X.mean(0)
            std = X.std(0)
            self.scale_ = np.where(std > 0, std, 1.0)
            Xs = (X - self.mean_) / self.scale_
            cov = Xs.T @ Xs / max(1, Xs.shape[0] - 1)
            self.pca_mean_ = Xs.mean(0)
        else:  # tiles: exact two-pass accumulation in float64
            s1 = np.zeros(B)
            for t in self._tiles(cube):
                s1 += t.sum(0)
            self.mean_ = s1 / n
            c1 = np.zeros(B)  # sum of centred values (~0; kept for pca_mean_)
            C = np.zeros((B, B))  # centred cross products
            for t in self._tiles(cube):
                t -= self.mean_
                c1 += t.sum(0)
                C += t.T @ t
            std = np.sqrt(np.clip(np.diag(C) / n, 0.0, None))
            self.scale_ = np.where(std > 0, std, 1.0)
            # Xs^T Xs of the standardised bands = D^-1 C D^-1 (D = diag(scale))
            cov = C / np.outer(self.scale_, self.scale_) / max(1, n - 1)
            self.pca_mean_ = c1 / n / self.scale_
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1][: self.n_components]
        self.components_ = vecs[:, order]  # (B, C)
        return self

    def transform(self, cube: np.ndarray) -> np.ndarray:
        """(H, W, B) -> (H, W, C) float32, tile by tile for large scenes."""
        H, W, B = cube.shape
        if H * W <= self.tile_pixels:
            X = (cube.reshape(-1, B).astype(np.float32).astype(np.float64) - self.mean_) / self.scale_
            return ((X - self.pca_mean_) @ self.components_).astype(np.float32).reshape(H, W, -1)
        out = np.empty((H * W, self.components_.shape[1]), dtype=np.float32)  # (H*W, C)
        a = 0
        for t in self._tiles(cube):
            t = (t - self.mean_) / self.scale_
            out[a : a + t.shape[0]] = (t - self.pca_mean_) @ self.components_
            a += t.shape[0]
        return out.reshape(H, W, -1)


class ScenePatches:
    """Normalised network input of every clustered pixel, gathered per batch (never all at once).

    Holds only the reflect-padded reduced cube (C, H + 2r, W + 2r) (e.g. 8 PCA bands), the
    pixel coordinates and the per-feature mean/scale; ``patches[idx]`` (an index tensor, array
    or slice) returns the (b, C, p, p) float32 patches ``(patch - mean) / scale``: the same
    values, bit for bit, as slicing the materialised (N, C, p, p) array of the original code.
    It quacks like that tensor where the training code needs it (``shape``, ``len``,
    ``numel``, ``device``, ``to``).
    """

    def __init__(
        self,
        pca_cube: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        patch: int,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        device: torch.device | str = "cpu",
    ):
        if patch % 2 == 0 or patch < 1:
            raise ValueError(f"patch size must be an odd integer >= 1, got {patch}")
        r = patch // 2
        H, W, C = pca_cube.shape
        mode = "reflect" if min(H, W) > r else "symmetric"  # a scene smaller than the patch: mirror
        padded = np.pad(pca_cube, ((r, r), (r, r), (0, 0)), mode=mode)  # (H+2r, W+2r, C)
        self.patch = int(patch)
        self.device = torch.device(device)
        self.padded = torch.from_numpy(
            np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32)
        ).to(self.device)  # (C, H + 2r, W + 2r)
        self.index = torch.from_numpy(np.stack([rows, cols], 1).astype(np.int64)).to(self.device)
        self.shape = (int(rows.shape[0]), int(C), self.patch, self.patch)
        self.set_normalisation(mean, scale)

    def set_normalisation(self, mean: np.ndarray | None, scale: np.ndarray | None) -> None:
        shape = self.shape[1:]
        self.mean = None if mean is None else torch.from_numpy(
            np.asarray(mean, dtype=np.float32).reshape(shape)).to(self.device)
        self.scale = None if scale is None else torch.from_numpy(
            np.asarray(scale, dtype=np.float32).reshape(shape)).to(self.device)

    def __len__(self) -> int:
        return self.shape[0]

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def to(self, device) -> ScenePatches:
        device = torch.device(device)
        if device == self.device:
            return self
        new = copy.copy(self)
        new.device = device
        new.padded, new.index = self.padded.to(device), self.index.to(device)
        new.mean = None if self.mean is None else self.mean.to(device)
        new.scale = None if self.scale is None else self.scale.to(device)
        return new

    def raw(self, idx) -> torch.Tensor:
        """(b, C, p, p) un-normalised patches of the pixels ``idx``."""
        if isinstance(idx, slice):
            ij = self.index[idx]
        else:
            ij = self.index[torch.as_tensor(idx, device=self.device, dtype=torch.long)]
        return hsi.extract_patches_torch(None, ij, self.patch, padded=self.padded)

    def __getitem__(self, idx) -> torch.Tensor:
        p = self.raw(idx)
        if self.mean is not None:
            p = (p - self.mean) / self.scale
        return p

    def materialize(self) -> torch.Tensor:
        """All (N, C, p, p) patches as one tensor (what the full-batch path trains on)."""
        return self[slice(None)].contiguous()

    def feature_stats(self, *, exact_below: int | None = None, chunk: int = 16384, scaling: str = "feature"):
        """Per-feature mean and scale (std, zeros -> 1) of the un-normalised patches, float32.

        ``scaling="global"``: the same per-feature means, but one scale for every feature, the
        root mean of the per-feature variances (the total standard deviation of the centred
        patches), so the ratios between the PCA components' variances survive; the returned
        scale is that value repeated per feature. ``"feature"``: each feature's own std.

        Up to ``exact_below`` pixels (default ``deepclust.data.hsi.TILE_PIXELS``): numpy's
        float32 mean/std of the materialised patch matrix
        (the original computation, bit-identical). Above: accumulated over chunks in float64
        (two passes: sums, then centred squares), equal up to float rounding.
        """
        n, f = self.shape[0], int(np.prod(self.shape[1:]))
        exact_below = hsi.TILE_PIXELS if exact_below is None else int(exact_below)
        if scaling not in ("feature", "global"):
            raise ValueError(f"patch_scaling must be 'feature' or 'global', got {scaling!r}")
        if n <= exact_below:
            flat = self.raw(slice(None)).reshape(n, f).cpu().numpy()
            std = flat.std(0)
            return flat.mean(0), _scale(std, scaling)
        s1 = torch.zeros(f, dtype=torch.float64, device=self.device)
        for a in range(0, n, chunk):
            s1 += self.raw(slice(a, a + chunk)).reshape(-1, f).double().sum(0)
        mean = s1 / n
        s2 = torch.zeros(f, dtype=torch.float64, device=self.device)
        for a in range(0, n, chunk):
            s2 += ((self.raw(slice(a, a + chunk)).reshape(-1, f).double() - mean) ** 2).sum(0)
        std = (s2 / n).sqrt().cpu().numpy()
        mean = mean.cpu().numpy().astype(np.float32)
        return mean, _scale(std, scaling)


def _scale(std: np.ndarray, scaling: str) -> np.ndarray:
    """Per-feature scales from per-feature standard deviations (see ``feature_stats``)."""
    if scaling == "global":
        total = float(np.sqrt(np.mean(np.asarray(std, dtype=np.float64) ** 2)))
        return np.full(std.shape, total if total > 0 else 1.0, dtype=np.float32)
    return np.where(std > 0, std, 1.0).astype(np.float32)


def patch_pca_features(
    cube: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    patch: int = 17,
    n_components: int = 300,
    chunk: int = 4096,
    sample: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """FINCH input: patches -> standardise per feature -> PCA -> L2-normalise; (N, n_components).

    Computed in two passes over chunks of patches (feature sums and the Gram matrix, then the
    projection), so the (N, patch*patch*C) patch matrix is never held: memory is
    O(N * n_components + (patch^2 C)^2). The cube is padded once; each chunk gathers its patches.

    ``sample``: when set and ``N > sample``, the feature means, deviations and the PCA are
    fitted on a seeded random sample of ``sample`` pixels (``seed``) instead of all ``N`` (an
    approximation of the exact statistics that cuts the O(N (patch^2 C)^2) Gram cost, e.g.
    ~10^13 flops at 1M pixels of 17x17x8 patches); every pixel is still projected. At or below
    ``sample`` pixels (and with ``sample=None``) the statistics are exact.
    """
    n = rows.shape[0]
    p = patch * patch * cube.shape[-1]
    n_components = min(int(n_components), p, n)
    src = ScenePatches(cube, rows, cols, patch)
    if sample is not None and n > int(sample):
        fit_idx = np.sort(np.random.default_rng(seed).choice(n, size=int(sample), replace=False))
    else:
        fit_idx = None
    n_fit = n if fit_idx is None else fit_idx.shape[0]
    s1 = np.zeros(p)
    s2 = np.zeros((p, p))
    for a in range(0, n_fit, chunk):
        sel = slice(a, a + chunk) if fit_idx is None else fit_idx[a : a + chunk]
        P = src.raw(sel).reshape(-1, p).numpy().astype(np.float64)
        s1 += P.sum(0)
        s2 += P.T @ P
    mean = s1 / n_fit
    cov = s2 / n_fit - np.outer(mean, mean)  # covariance of the raw features
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    std = np.where(std > 0, std, 1.0)
    corr = cov / np.outer(std, std)  # covariance of the standardised features
    vals, vecs = np.linalg.eigh(corr)
    W = vecs[:, np.argsort(vals)[::-1][:n_components]]  # (p, n_components)
    out = np.empty((n, n_components), dtype=np.float32)
    for a in range(0, n, chunk):
        P = src.raw(slice(a, a + chunk)).reshape(-1, p).numpy()
        out[a : a + chunk] = ((P - mean) / std) @ W
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.where(norms > 0, norms, 1.0)  # in place: no second (N, n_components) array
    return out
