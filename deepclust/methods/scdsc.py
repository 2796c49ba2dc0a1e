"""SCDSC: scalable context-preserving model-aware deep clustering of hyperspectral scenes.

Li, Nadisic, Huang, Deligiannis, Pizurica (paper ``000_2a1b3e70c0180514``). Equation map:

* eq. 3  soft assignment ``S``            -> :func:`deepclust.losses.subspace.subspace_affinity`
* eq. 4  basis dissimilarity ``phi(D)``   -> :func:`deepclust.losses.subspace.basis_constraint`
* eqs. 1 (FINCH) mini-clusters            -> :func:`minicluster_index` (-> ``cluster.finch``)
* eqs. 7-10 mini-cluster KL ``L_NL``      -> :func:`deepclust.losses.minicluster.minicluster_kl`
* eqs. 11-12 local KL ``L_L``             -> :func:`deepclust.losses.spatial.spatial_kl`
* eq. 13 reconstruction ``L_R``           -> ``F.mse_loss`` in :func:`_train_scdsc` (see note)
* eq. 17 total loss                       -> ``_scdsc_terms`` in :func:`_train_scdsc`
* Algorithm 1 (FINCH, pretrain, k-means + SVD, joint training) -> :meth:`SCDSC._fit`

Choices where the paper is silent or ambiguous (each is marked in the code):

* ``L_R``: mean squared error per entry (eq. 13 sums over each patch's 392 entries and halves;
  with entry-averaged KL terms that would make the reconstruction dominate by ~200x).
* Every KL is averaged over all its entries (``n*k``; ``l*k`` for mini-clusters), as the
  authors' code does, so the paper's ``beta_1``, ``beta_2`` carry over.
* ``nonlocal_=False`` (Baseline and L rows of Table 5) uses EDESC's pixel-level
  ``KL(P || S)`` in place of the mini-cluster KL: the baseline is the basis model of [18], which
  is exactly the mini-cluster loss with every pixel its own mini-cluster.
* The reported epoch: the one with the largest share of pixels whose max ``s`` exceeds 0.9
  (label-free, the authors' rule); the first such epoch wins ties. When no epoch has a single
  pixel above 0.9 the rule cannot rank epochs and the last epoch is reported (said in
  ``selection_``). ``selection="last"`` reports the last epoch; both label sets are kept.
* ``chunk_size``: the paper trains full-batch. With ``chunk_size`` set, the same full-batch
  gradient is accumulated over chunks (two passes: a no-grad pass gives ``S`` for the
  scene-wide targets, then each chunk back-propagates its share), so memory is bounded; the only
  difference is that BatchNorm sees per-chunk statistics.
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from deepclust import base as _base
from deepclust import distributed as ddp
from deepclust.base import DeepClusterer, check_n_clusters, iter_row_tiles
from deepclust.cluster.finch import finch
from deepclust.data.hsi import extract_patches_torch
from deepclust.losses.dec import kl_divergence, target_distribution
from deepclust.losses.minicluster import minicluster_kl
from deepclust.losses.spatial import check_window, spatial_kl
from deepclust.methods.edesc import (
    BasisClusteringNet,
    complete_basis,
    encode_all,
    init_bases,
    kmeans_codes,
    pretrain_autoencoder,
    seeded_init,
)
from deepclust.nn.conv_ae import ConvPatchAutoencoder
from deepclust.training import History, average_buffers, fit_loop, pack_state, unpack_state

#: Default size above which FINCH's first-neighbour search goes approximate (faiss IVF).
ANN_THRESHOLD = 200_000

__all__ = [
    "SCDSC",
    "ScenePreprocessor",
    "ScenePatches",
    "extract_patches",
    "patch_pca_features",
    "minicluster_index",
    "confident_share",
    "select_epoch",
]


# --------------------------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------------------------
def check_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    """A boolean (H, W) mask selecting at least one pixel, or a clear error."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(
            f"mask has shape {m.shape} but the cube is {shape[0]}x{shape[1]} pixels; "
            "pass a (H, W) mask with the cube's first two dimensions"
        )
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.number):
            raise TypeError(f"mask must be boolean or 0/1 numbers, got dtype {m.dtype}")
        m = m != 0
    if not m.any():
        raise ValueError("the mask selects no pixel; pass a mask with at least one True entry")
    return m


def extract_patches(cube: np.ndarray, rows: np.ndarray, cols: np.ndarray, patch: int) -> np.ndarray:
    """(N, C, patch, patch) patches of a (H, W, C) cube centred on the given pixels.

    Borders use reflect padding (as the authors do); ``patch`` must be odd.
    """
    if patch % 2 == 0 or patch < 1:
        raise ValueError(f"patch size must be an odd integer >= 1, got {patch}")
    r = patch // 2
    H, W, _ = cube.shape
    mode = "reflect" if min(H, W) > r else "symmetric"
    padded = np.pad(cube, ((r, r), (r, r), (0, 0)), mode=mode)
    win = np.lib.stride_tricks.sliding_window_view(padded, (patch, patch), axis=(0, 1))
    return np.ascontiguousarray(win[rows, cols])  # (N, C, patch, patch)


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
        # None: deepclust.base.TILE_PIXELS (65,536 pixels), read at fit time
        self.tile_pixels = int(tile_pixels) if tile_pixels is not None else _base.TILE_PIXELS

    def _tiles(self, cube: np.ndarray):
        # each tile as float32 first (the precision the one-piece path sees), then float64
        for t in iter_row_tiles(cube, self.tile_pixels):
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
        mode = "reflect" if min(H, W) > r else "symmetric"  # as extract_patches
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
        return extract_patches_torch(None, ij, self.patch, padded=self.padded)

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

        Up to ``exact_below`` pixels (default ``deepclust.base.TILE_PIXELS``): numpy's
        float32 mean/std of the materialised patch matrix
        (the original computation, bit-identical). Above: accumulated over chunks in float64
        (two passes: sums, then centred squares), equal up to float rounding.
        """
        n, f = self.shape[0], int(np.prod(self.shape[1:]))
        exact_below = _base.TILE_PIXELS if exact_below is None else int(exact_below)
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


def minicluster_index(
    features: np.ndarray,
    *,
    level: int = 1,
    backend: str = "torch",
    exact: bool = False,
    ann_threshold: int = ANN_THRESHOLD,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """Mini-cluster index (N,) from FINCH (cosine) on ``features``; ``level`` 1 = the partition
    after FINCH's second iteration (section 4.4.1). Falls back to the coarsest available level
    with a warning when FINCH stops earlier.

    Above ``ann_threshold`` points FINCH's first-neighbour search uses an approximate faiss
    index (``exact=True`` forces the exact search); the recall@1 measured on a sample of
    queries is in the returned info (``finch_search``)."""
    search: dict = {}
    parts, counts, _ = finch(
        features,
        metric="cosine",
        max_levels=level + 1,
        backend=backend,
        exact=exact,
        ann_threshold=ann_threshold,
        seed=seed,
        info=search,
    )
    used = min(level, len(parts) - 1)
    if used != level:
        warnings.warn(
            f"FINCH produced only {len(parts)} level(s); using level {used} for the mini-clusters",
            stacklevel=2,
        )
    return parts[used], {
        "finch_levels": [int(c) for c in counts],
        "finch_level_used": used,
        "finch_search": search["levels"],
    }


def init_bases_gram(
    z: np.ndarray, labels: np.ndarray, n_clusters: int, d: int, *, rng: np.random.Generator,
    chunk: int = 8192,
) -> np.ndarray:
    """The bases of :func:`deepclust.methods.edesc.init_bases` (per cluster the top-``d`` right
    singular vectors of its codes, no centring) from each cluster's Gram matrix ``Z_j^T Z_j``
    (latent x latent, accumulated over chunks) instead of an SVD of ``Z_j``: memory
    O(latent^2) instead of O(n_j latent). The right singular vectors are the Gram matrix's
    eigenvectors (equal up to sign, which eq. 3's ``||z D_j||^2`` and eq. 4 do not see, and up
    to float rounding). Directions a cluster lacks are filled at random, as ``init_bases`` does.
    """
    latent = z.shape[1]
    if d > latent:
        raise ValueError(f"n_subspace_dims={d} exceeds the latent dimension {latent}")
    D = np.zeros((latent, n_clusters * d), dtype=np.float64)
    for j in range(n_clusters):
        rows = np.flatnonzero(labels == j)
        G = np.zeros((latent, latent))
        for a in range(0, rows.shape[0], chunk):
            Zj = z[rows[a : a + chunk]].astype(np.float64)
            G += Zj.T @ Zj
        vals, vecs = np.linalg.eigh(G)  # ascending
        vals, vecs = vals[::-1], vecs[:, ::-1]
        # rank as init_bases counts it: singular values > 1e-10 * the largest (squared here)
        rank = int((vals > max(vals[0], 0.0) * 1e-20).sum()) if rows.size else 0
        V = vecs[:, : min(d, rank)].T  # (<= d, latent)
        V = complete_basis(V, d, rng)
        D[:, j * d : (j + 1) * d] = V.T
    return D.astype(np.float32)


def _sampled_init(
    ae: torch.nn.Module,
    source: ScenePatches,
    k: int,
    d: int,
    *,
    sample: int,
    n_init: int,
    seed: int,
    backend: str,
    rng: np.random.Generator,
    device,
    batch: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means + SVD initialisation of a large scene without the (N, latent) code matrix.

    Algorithm 1's k-means (and the per-cluster SVD of eq. 5's bases) run on the codes of a
    seeded random sample of ``sample`` pixels (an approximation of the all-pixel fit; exact
    below the threshold, see ``SCDSC.kmeans_sample``); every pixel then gets the label of its
    nearest centre, in chunks. Returns the (N,) labels and the (latent, k*d) bases.
    """
    n = len(source)
    idx = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, sample, replace=False)))
    was = ae.training
    ae.eval()
    with torch.no_grad():
        zs = None
        for a in range(0, sample, batch):  # (sample, latent), filled in place
            z = ae.encode(source[idx[a : a + batch]].to(device)).cpu().numpy()
            if zs is None:
                zs = np.empty((sample, z.shape[1]), dtype=np.float32)
            zs[a : a + z.shape[0]] = z
        lab_s, centres = kmeans_codes(zs, k, n_init=n_init, seed=seed, backend=backend)
        D = init_bases_gram(zs, lab_s, k, d, rng=rng)
        del zs
        C = torch.from_numpy(np.asarray(centres, dtype=np.float32)).to(device)  # (k, latent)
        labels = np.empty(n, dtype=np.int64)
        for a in range(0, n, batch):
            z = ae.encode(source[slice(a, a + batch)].to(device))  # (b, latent)
            dist = (z * z).sum(1, keepdim=True) - 2.0 * z @ C.T + (C * C).sum(1)  # (b, k)
            labels[a : a + z.shape[0]] = dist.argmin(1).cpu().numpy()
    ae.train(was)
    return labels, D


# --------------------------------------------------------------------------------------------
# initialisation and keeping every cluster alive (label-free rules, each a switch of SCDSC)
# --------------------------------------------------------------------------------------------
def min_cluster_size(n: int, k: int, share: float | None) -> int:
    """Smallest size a cluster may have: ``share`` of the mean cluster size ``n / k`` (at least 1
    pixel; 0 when ``share`` is None, i.e. no cluster is ever called too small)."""
    if share is None:
        return 0
    return max(1, int(np.ceil(float(share) * n / k)))


def _two_means(z: np.ndarray, seed: int) -> np.ndarray:
    """0/1 split of the rows of ``z`` by 2-means (3 restarts); a split into one side only (all
    rows equal) falls back to halving by the first principal direction."""
    from sklearn.cluster import KMeans

    if z.shape[0] < 2:
        return np.zeros(z.shape[0], dtype=np.int64)
    lab = KMeans(n_clusters=2, n_init=3, random_state=seed).fit(z).labels_.astype(np.int64)
    if lab.min() == lab.max():
        c = z - z.mean(0)
        v = np.linalg.svd(c, full_matrices=False)[2][0]
        proj = c @ v
        lab = (proj > np.median(proj)).astype(np.int64)
    return lab


def repair_partition(
    z: np.ndarray, labels: np.ndarray, k: int, *, min_size: int, seed: int, max_rounds: int | None = None
) -> tuple[np.ndarray, int]:
    """Reject a degenerate partition: while some cluster has fewer than ``min_size`` points,
    dissolve the smallest one (its points go to the nearest other centre) and reuse its label by
    splitting a cluster in two (2-means): the cluster with the largest within-cluster sum of
    squares whose split leaves both halves with at least ``min_size`` points (so a few far
    outliers are never split off again).

    Label-free and deterministic for a given ``seed``. Returns the new labels and the number of
    repairs made (at most ``max_rounds``, default ``k``); it stops early when no cluster can be
    split that way.
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    rounds = 0
    max_rounds = k if max_rounds is None else int(max_rounds)
    while rounds < max_rounds:
        counts = np.bincount(labels, minlength=k)
        small = int(np.argmin(counts))
        if counts[small] >= min_size:
            break
        trial = labels.copy()
        keep = np.array([j for j in range(k) if j != small])
        centres = np.stack([z[trial == j].mean(0) for j in keep])  # (k-1, latent)
        pts = np.flatnonzero(trial == small)
        if pts.size:
            d2 = ((z[pts, None, :] - centres[None]) ** 2).sum(-1)  # (|small|, k-1): small by definition
            trial[pts] = keep[d2.argmin(1)]
        sse = {j: float(((z[trial == j] - z[trial == j].mean(0)) ** 2).sum()) for j in keep}
        done = False
        for big in sorted(sse, key=lambda j: -sse[j]):
            members = np.flatnonzero(trial == big)
            if members.size < 2 * min_size:
                continue
            half = _two_means(z[members], seed + rounds)
            if min(int(half.sum()), int((half == 0).sum())) >= min_size:
                trial[members[half == 1]] = small
                done = True
                break
        if not done:
            break
        labels = trial
        rounds += 1
    return labels, rounds


def kmeans_nondegenerate(
    z: np.ndarray, k: int, *, n_init: int, seed: int, backend: str, min_size: int,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """k-means with degenerate restarts rejected: ``n_init`` single restarts (seeds ``seed``,
    ``seed + 1``, ...); among those whose every cluster holds at least ``min_size`` points
    (weighted by ``sample_weight``, e.g. pixels per mini-cluster) the lowest inertia wins, else
    the lowest inertia overall (said in the returned info). With ``min_size == 0`` this is plain
    :func:`kmeans_codes` (its own restarts). Label-free."""
    if min_size <= 0:
        lab, cen = kmeans_codes(z, k, n_init=n_init, seed=seed, backend=backend, sample_weight=sample_weight)
        return lab, cen, {}
    w = np.ones(z.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    best, best_any = None, None
    rejected = 0
    for r in range(max(1, int(n_init))):
        lab, cen = kmeans_codes(z, k, n_init=1, seed=seed + r, backend=backend, sample_weight=sample_weight)
        inertia = float((w * ((z - cen[lab]) ** 2).sum(1)).sum())
        sizes = np.bincount(lab, weights=w, minlength=k)
        if best_any is None or inertia < best_any[0]:
            best_any = (inertia, lab, cen)
        if sizes.min() >= min_size:
            if best is None or inertia < best[0]:
                best = (inertia, lab, cen)
        else:
            rejected += 1
    info = {"kmeans_restarts_rejected": rejected}
    if best is None:
        info["kmeans_all_degenerate"] = True
        best = best_any
    return best[1], best[2], info


def minicluster_init(
    ae: torch.nn.Module,
    source,
    mini: np.ndarray,
    k: int,
    *,
    n_init: int,
    seed: int,
    backend: str,
    device,
    min_size: int = 0,
    batch: int = 8192,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Initial partition from the mini-clusters: the mean code of every FINCH mini-cluster,
    weighted k-means (weight = its number of pixels) on those means, each pixel labelled as its
    mini-cluster. Streams the codes (never the (N, latent) matrix). Restarts leaving a cluster
    with fewer than ``min_size`` pixels are rejected (:func:`kmeans_nondegenerate`). Returns the
    (N,) labels, the (l, latent) mini-cluster means and the k-means info."""
    l_ = int(mini.max()) + 1
    idx = torch.from_numpy(np.asarray(mini, dtype=np.int64))
    sums = None
    was = ae.training
    ae.eval()
    with torch.no_grad():
        for a in range(0, len(source), batch):
            z = ae.encode(source[slice(a, a + batch)].to(device)).double().cpu()
            if sums is None:
                sums = torch.zeros(l_, z.shape[1], dtype=torch.float64)
            sums.index_add_(0, idx[a : a + z.shape[0]], z)
    ae.train(was)
    counts = np.bincount(mini, minlength=l_).astype(np.float64)
    means = (sums.numpy() / np.maximum(counts, 1.0)[:, None]).astype(np.float32)
    info: dict = {}
    if l_ <= k:  # fewer mini-clusters than clusters: each its own cluster (the rest stay empty)
        lab_m = np.arange(l_, dtype=np.int64)
    else:
        lab_m, _, info = kmeans_nondegenerate(means, k, n_init=n_init, seed=seed, backend=backend,
                                              min_size=min_size, sample_weight=counts)
    return lab_m[mini], means, info


class ClusterReseeder:
    """Re-seed a cluster whose share of pixels fell below ``min_size`` during joint training.

    After ``patience`` consecutive epochs whose hard assignments (argmax of ``S``) leave a cluster
    with fewer than ``min_size`` pixels (a short dip that recovers by itself is left alone), the
    cluster with the largest total subspace residual ``sum_i (||z_i||^2 - ||z_i D_j||^2)`` over its
    pixels is split in two by 2-means on its codes (at most ``sample`` of them); each half gets the
    top-``d`` right singular vectors of its codes as basis, one half keeping the split cluster's
    slot and the other taking the dead one's. The optimizer's moment estimates of those basis
    columns are reset. One re-seed per epoch, at most ``max_reseeds`` in a fit, none in the last
    ``quiet_epochs`` epochs (so a re-seeded
    cluster has time to settle before the last epoch). Label-free.
    """

    def __init__(self, *, k: int, d: int, min_size: int, max_reseeds: int, quiet_epochs: int,
                 epochs: int, seed: int, sample: int = 20000, patience: int = 3):
        self.k, self.d, self.min_size, self.patience = k, d, min_size, patience
        self.small_run = 0  # consecutive epochs (so far) with a cluster below min_size
        self.max_reseeds, self.quiet_epochs, self.epochs = max_reseeds, quiet_epochs, epochs
        self.seed, self.sample = seed, sample
        self.events: list[dict] = []

    @torch.no_grad()
    def __call__(self, epoch: int, labels: np.ndarray, net: BasisClusteringNet, X, opt, device) -> bool:
        """Re-seed after ``epoch`` (0-based) if a cluster of ``labels`` is too small; True if done."""
        counts = np.bincount(labels, minlength=self.k)
        dead = int(np.argmin(counts))
        # labels are identical on every rank: every rank takes the same decision
        self.small_run = self.small_run + 1 if counts[dead] < self.min_size else 0
        if (self.small_run < self.patience or len(self.events) >= self.max_reseeds
                or epoch >= self.epochs - self.quiet_epochs):
            return False
        self.small_run = 0
        # rank 0 plans (its BatchNorm statistics decide the codes), every rank applies the plan
        big, cols = ddp.run_on_rank0(lambda: self._plan(labels, dead, net, X, device))
        big = int(np.asarray(big).reshape(-1)[0])
        d = self.d
        for slot, part in ((big, 0), (dead, 1)):
            sl = slice(slot * d, (slot + 1) * d)
            net.D[:, sl] = torch.from_numpy(np.asarray(cols[part], dtype=np.float32)).to(net.D.device)
            st = opt.state.get(net.D, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    st[key][:, sl] = 0.0
        self.events.append({"epoch": epoch + 1, "dead": dead, "dead_size": int(counts[dead]), "split": big})
        return True

    def _plan(self, labels: np.ndarray, dead: int, net: BasisClusteringNet, X, device):
        """(the cluster to split, (2, latent, d) bases of its two halves)."""
        k, d = self.k, self.d
        rng = np.random.default_rng([self.seed, len(self.events)])  # local: ranks' generators stay equal
        D = net.D.detach()
        n = labels.shape[0]
        res = torch.zeros(k, dtype=torch.float64)
        was = net.training
        net.eval()
        lab_t = torch.from_numpy(labels)
        for a in range(0, n, 8192):
            z = net.autoencoder.encode(X[a : a + 8192].to(device))
            energy = (z @ D).pow(2).view(z.shape[0], k, d).sum(2)  # (b, k)
            own = lab_t[a : a + z.shape[0]].to(device)
            r = (z * z).sum(1) - energy.gather(1, own[:, None])[:, 0]  # residual off the own subspace
            res.index_add_(0, own.cpu(), r.double().cpu())
        res[dead] = -np.inf
        big = int(torch.argmax(res))
        members = np.flatnonzero(labels == big)
        if members.size > self.sample:
            members = np.sort(rng.choice(members, self.sample, replace=False))
        idx = torch.from_numpy(members)
        zb = torch.cat([net.autoencoder.encode(X[idx[a : a + 8192]].to(device)).cpu()
                        for a in range(0, members.size, 8192)]).numpy()
        net.train(was)
        half = _two_means(zb, self.seed + len(self.events))
        D2 = init_bases(zb, half, 2, d, rng=rng)  # (latent, 2d): each half's SVD basis
        return np.array([big]), np.stack([D2[:, :d], D2[:, d:]])  # (2, latent, d)


@torch.no_grad()
def _hard_labels(net: BasisClusteringNet, X, *, chunk: int) -> np.ndarray:
    """argmax of ``S`` for every row of ``X`` with the network in eval mode, ``chunk`` rows at a
    time (the computation ``SCDSC.predict`` makes)."""
    was = net.training
    net.eval()
    out = np.empty(X.shape[0], dtype=np.int64)
    for a in range(0, X.shape[0], chunk):
        s = net(X[a : a + chunk])[2]
        out[a : a + s.shape[0]] = s.argmax(dim=1).cpu().numpy()
    net.train(was)
    return out


@torch.no_grad()
def project_unit_columns(D: torch.Tensor) -> None:
    """Rescale every basis vector (column of ``D``) to unit norm, in place: the hard form of
    eq. 4's unit-norm term, applied after each optimizer step (zero columns are left alone)."""
    norms = D.norm(dim=0, keepdim=True)
    D.div_(torch.where(norms > 0, norms, torch.ones_like(norms)))


@torch.no_grad()
def recalibrate_batchnorm(net: torch.nn.Module, X, *, chunk: int, device) -> None:
    """Set every BatchNorm's running statistics to those of the clustered pixels under the
    current weights (one pass in train mode, cumulative average over chunks; one chunk on the
    full-batch path, i.e. exactly the statistics joint training normalised with), so that the
    eval-mode network used by ``predict`` computes the soft assignments training saw."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    n = X.shape[0]
    lo, hi = ddp.shard_range(n)
    for a in range(lo, hi, chunk):
        net.autoencoder(X[a : min(hi, a + chunk)].to(device))  # encoder and decoder BatchNorms
    for m, (mom, tr) in zip(bns, saved):
        m.momentum = mom
        m.train(tr)
    if ddp.world_size() > 1:
        average_buffers(net)


# --------------------------------------------------------------------------------------------
# the label-free epoch rule
# --------------------------------------------------------------------------------------------
def confident_share(s: torch.Tensor, threshold: float = 0.9) -> float:
    """Share of rows of ``s`` (N, k) whose largest entry exceeds ``threshold``."""
    return float((s.max(dim=1).values > threshold).float().mean())


def select_epoch(shares: list[float]) -> int:
    """Index of the epoch with the largest confident share (first one on ties)."""
    if not shares:
        raise ValueError("no epoch to select from")
    return int(np.argmax(np.asarray(shares)))


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def _train_scdsc(
    *,
    net: BasisClusteringNet,
    X: torch.Tensor,
    flat_index: torch.Tensor,
    mask: torch.Tensor,
    mini_index: torch.Tensor | None,
    local: bool,
    window: int,
    beta: float,
    beta1: float,
    beta2: float,
    epochs: int,
    lr: float,
    chunk_size: int | None,
    threshold: float,
    generator: torch.Generator,
    history: History,
    verbose: bool,
    checkpoint_path: str | None = None,
    resume: bool = False,
    rng: np.random.Generator | None = None,
    basis_norm: str = "penalty",
    min_size: int = 0,
    reseeder: ClusterReseeder | None = None,
    device=None,
    warmup_epochs: int = 0,
    local_ramp_epochs: int = 0,
) -> dict:
    """Joint training (eq. 17), full batch; returns the selected/last states and labels.

    ``basis_norm="project"`` rescales the basis vectors to unit norm before every step (after
    the previous optimizer step); ``"penalty"`` leaves it to eq. 4's unit term alone.
    ``min_size``: epochs whose hard partition has a cluster smaller than this are selected only
    when no epoch without one exists. ``reseeder`` (optional) re-seeds a dying cluster after an
    epoch (:class:`ClusterReseeder`). ``warmup_epochs``: the learning rate rises linearly from
    ``lr / (warmup_epochs + 1)`` to ``lr`` over the first steps (one step per epoch; 0: constant).
    ``local_ramp_epochs``: the local weight rises linearly from ``beta2 / (local_ramp_epochs + 1)``
    to ``beta2`` over the first epochs (0: ``beta2`` throughout, as the paper).
    """
    beta2_full = beta2
    ramp = {"beta2": beta2}
    n = X.shape[0]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n_mini = int(mini_index.max()) + 1 if mini_index is not None else None
    chunk = n if chunk_size is None else max(1, min(int(chunk_size), n))
    # "best_ok": whether the selected epoch's partition kept every cluster at >= min_size pixels;
    # such epochs rank above all others, then the confident share decides (label-free)
    track: dict = {"shares": [], "best": -1.0, "best_ok": False, "reseeds": []}
    # Distributed (--nproc): each rank forwards its contiguous shard of the pixels; the soft
    # assignments S are gathered (with gradient) in pixel order, so the mini-cluster means
    # (eqs. 7-9) and the spatial filter (eqs. 11-12) see all pixels and every rank computes the
    # same global losses. The reconstruction is this rank's part of the global mean, times W.
    world = ddp.world_size()
    lo, hi = ddp.shard_range(n)

    def cluster_terms(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if mini_index is not None:  # eqs. 7-9, averaged over l*k entries
            # s holds all pixels (gathered when distributed): no further all-reduce
            nl = minicluster_kl(s, mini_index, n_mini, reduction="mean", global_batch=False)
        else:  # Baseline: EDESC's pixel-level KL (every pixel its own mini-cluster)
            nl = kl_divergence(target_distribution(s), s, reduction="mean")
        if local:  # eqs. 11-12, averaged over n*k entries
            loc = spatial_kl(s, flat_index, mask, window, reduction="mean")
        else:
            loc = torch.zeros((), device=s.device)
        return nl, loc

    def record(s: torch.Tensor) -> None:
        share = confident_share(s, threshold)
        track["shares"].append(share)
        track["last_labels"] = s.argmax(dim=1).cpu().numpy().astype(np.int64)
        ok = bool(np.bincount(track["last_labels"], minlength=s.shape[1]).min() >= min_size)
        better = (ok and not track["best_ok"]) or (ok == track["best_ok"] and share > track["best"])
        if better:  # parameters as they produced this s (before the update)
            track["best_ok"] = ok
            if world > 1:  # one snapshot on every rank: BatchNorm statistics averaged (linear)
                average_buffers(net)
            track["best"] = share
            track["best_epoch"] = len(track["shares"]) - 1
            track["best_state"] = copy.deepcopy(net.state_dict())

    def step_distributed() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The step below over this rank's pixels ``X[lo:hi]``; returns (rec, nl, loc, S, basis)
        after the backward (``rec`` global, all tensors detached)."""
        between, unit = net.basis_terms()
        basis = beta * (between + unit)  # identical on every rank: averaging keeps its gradient
        if chunk >= n:
            xr = X[lo:hi]
            _, x_hat, s_loc = net(xr)
            s = ddp.all_gather_with_grad(s_loc)  # (N, k), pixel order; backward sums the ranks
            rec_r = F.mse_loss(x_hat, xr, reduction="sum") / X.numel()  # this rank's share, eq. 13
            nl, loc = cluster_terms(s)
            (world * rec_r + basis + beta1 * nl + ramp["beta2"] * loc).backward()
            s_all = s.detach()
        else:  # chunked: dL/dS over all pixels, then this rank's chunks (times W, see above)
            with torch.no_grad():
                # rows gathered per chunk (a lazy ScenePatches input is never materialised whole)
                s_all = ddp.gather_rows(torch.cat([net(X[lo + a : min(hi, lo + a + chunk)])[2]
                                                   for a in range(0, hi - lo, chunk)]))
            s_leaf = s_all.clone().requires_grad_(True)
            nl, loc = cluster_terms(s_leaf)
            (beta1 * nl + ramp["beta2"] * loc).backward()
            g = s_leaf.grad[lo:hi]  # this rank's rows of dL/dS
            rec_r = torch.zeros((), device=X.device)
            for a in range(0, hi - lo, chunk):
                xc = X[lo + a : min(hi, lo + a + chunk)]
                _, x_hat, s_c = net(xc)
                rec_c = F.mse_loss(x_hat, xc, reduction="sum") / X.numel()
                (world * (rec_c + (g[a : a + chunk] * s_c).sum())).backward()
                rec_r = rec_r + rec_c.detach()
            basis.backward()
        rec = ddp.all_reduce_sum(rec_r.detach().reshape(1))[0]  # the global eq. 13 value
        return rec, nl.detach(), loc.detach(), s_all, basis.detach()

    def step(_batch) -> dict[str, torch.Tensor]:
        if world > 1:
            rec, nl, loc, s_all, basis = step_distributed()
            between, unit = (t.detach() for t in net.basis_terms())
            record(s_all)
            return {
                "loss": rec + basis + beta1 * nl + ramp["beta2"] * loc, "rec": rec,
                "basis_between": between, "basis_unit": unit, "nonlocal": nl, "local": loc,
                "confident_share": torch.tensor(track["shares"][-1]),
            }
        between, unit = net.basis_terms()
        basis = beta * (between + unit)  # eq. 4 terms, weight beta = 1e-3 each
        if chunk >= n:  # faithful full-batch step
            z, x_hat, s = net(X)
            rec = F.mse_loss(x_hat, X)  # eq. 13 (entry mean, see module notes)
            nl, loc = cluster_terms(s)
            total = rec + basis + beta1 * nl + ramp["beta2"] * loc  # eq. 17
            total.backward()
            s_all = s.detach()
        else:  # the same gradient accumulated over chunks
            with torch.no_grad():
                s_all = torch.cat([net(X[a : a + chunk])[2] for a in range(0, n, chunk)])
            s_leaf = s_all.clone().requires_grad_(True)
            nl, loc = cluster_terms(s_leaf)
            (beta1 * nl + ramp["beta2"] * loc).backward()
            g = s_leaf.grad  # d(beta1 L_NL + beta2 L_L) / dS, (N, k)
            rec_sum = torch.zeros((), device=X.device)
            for a in range(0, n, chunk):
                xc = X[a : a + chunk]
                _, x_hat, s_c = net(xc)
                rec_c = F.mse_loss(x_hat, xc, reduction="sum") / X.numel()
                (rec_c + (g[a : a + chunk] * s_c).sum()).backward()
                rec_sum = rec_sum + rec_c.detach()
            basis.backward()
            rec = rec_sum
            total = rec + basis.detach() + beta1 * nl.detach() + ramp["beta2"] * loc.detach()
        record(s_all)
        return {
            "loss": total.detach(),
            "rec": rec.detach(),
            "basis_between": between.detach(),
            "basis_unit": unit.detach(),
            "nonlocal": nl.detach(),
            "local": loc.detach(),
            "confident_share": torch.tensor(track["shares"][-1]),
        }

    def before_step(global_step: int) -> None:
        if local_ramp_epochs > 0:
            ramp["beta2"] = beta2_full * min(1.0, (global_step + 1) / (local_ramp_epochs + 1))
        if warmup_epochs > 0:
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (global_step + 1) / (warmup_epochs + 1))
        if basis_norm == "project":
            project_unit_columns(net.D)

    def after_epoch(epoch: int, _means: dict) -> bool:
        if reseeder is not None:
            reseeder(epoch, track["last_labels"], net, X, opt, device)
            track["reseeds"], track["small_run"] = list(reseeder.events), reseeder.small_run
        return False

    def load_extra(extra: dict) -> None:
        track.update(unpack_state(extra["track"]))
        if reseeder is not None:
            reseeder.events, reseeder.small_run = list(track["reseeds"]), int(track.get("small_run", 0))

    fit_loop(
        model=net,
        optimizer=opt,
        step=step,
        epochs=epochs,
        stage="train",
        history=history,
        batches=lambda e: [None],
        generator=generator,
        manual_backward=True,
        on_batch_start=before_step,
        on_epoch_end=after_epoch,
        checkpoint_path=checkpoint_path,
        checkpoint_every=1 if checkpoint_path else 0,
        resume=resume,
        rng=rng,
        # the epoch-selection record (shares, best epoch, its labels and weights) is part of a
        # resumable state: without it a resumed fit could select a different epoch
        extra_state=lambda: {"track": pack_state(track)},
        load_extra_state=load_extra,
        verbose=verbose,
    )
    if basis_norm == "project":  # the final state, as every recorded one, has unit-norm bases
        project_unit_columns(net.D)
    return track


# --------------------------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------------------------
class SCDSC(DeepClusterer):
    """SCDSC on a hyperspectral cube ``(H, W, B)`` and an optional mask of pixels to cluster.

    ``fit(cube, mask=None)``; ``labels_`` holds one label per masked pixel in row-major order.
    ``predict(cube, mask=None)`` labels any pixels (default: all), ``predict_scene(cube=None)``
    returns the full (H, W) land-cover map.

    Parameters
    ----------
    n_clusters : int
    local : bool, default True
        Use the local (spatial smoothing) loss, eqs. 11-12.
    nonlocal_ : bool, default True
        Use the mini-cluster loss, eqs. 7-9; False uses EDESC's pixel-level KL (Baseline).
    beta, beta1, beta2 : float
        Weights of eq. 17 (basis terms 1e-3; ``L_NL`` 3; ``L_L`` dataset-dependent).
    window : int, default 7
        Side of the smoothing window (odd).
    lr, epochs : joint training (Adam, full batch).
    pretrain_epochs, pretrain_lr, pretrain_batch_size : autoencoder pretraining (MSE, Adam).
    n_components, patch, channels : PCA components, patch side, conv channels of the AE.
    finch_patch, finch_pca, finch_level : mini-cluster features and FINCH level (1 = after the
        second iteration).
    n_subspace_dims, eta : basis vectors per subspace (5) and the affinity constant (5).
    kmeans_n_init : int, default 30
    kmeans_backend : {"sklearn", "faiss"}
    threshold : float, default 0.9
        Confidence level of the label-free epoch rule.
    selection : {"confident", "last"}
    checkpoint_path : str or None
        Checkpoint file written after every epoch of pretraining and joint training (None: none).
    resume : bool, default False
        Continue an interrupted fit from ``checkpoint_path`` (same cube, mask and parameters).
    chunk_size : int or None
        None trains full-batch exactly; an int bounds memory (see module notes).
    finch_backend : {"torch", "faiss"}
    finch_exact : bool, default False
        True forces FINCH's exact first-neighbour search at any size.
    ann_threshold : int, default 200_000
        Above this many points FINCH's first-neighbour search uses an approximate faiss
        IVF-Flat index; the recall@1 against exact search on a sample of queries is recorded in
        ``diagnostics_["finch_search"]``.
    finch_pca_sample : int or None, default 200_000
        Above this many pixels the FINCH features' standardisation and PCA are fitted on a
        seeded sample of this many pixels (None: always all pixels, exact).
    kmeans_sample : int or None, default 100_000
        Above this many pixels the initial k-means and bases are fitted on the codes of a
        seeded sample of this many pixels, and the (N, latent) code matrix is never held
        (None: always all codes, exact).
    predict_chunk : int, default 65536
        Pixels per chunk in ``predict``; memory is O(chunk) beyond the O(N) labels.
    random_state, device, verbose

    Attributes
    ----------
    labels_, labels_last_, extra_labels_, model_, history_, selection_, diagnostics_,
    mini_clusters_, init_labels_
    """

    input_kind = "scene"
    _lazy_scene = True  # a memory-mapped / large cube is read in tiles, never copied whole

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        local: bool = True,
        nonlocal_: bool = True,
        beta: float = 1e-3,
        beta1: float = 3.0,
        beta2: float = 7.0,
        window: int = 7,
        lr: float = 5e-3,
        epochs: int = 400,
        pretrain_epochs: int = 50,
        pretrain_lr: float = 1e-3,
        pretrain_batch_size: int = 4096,
        n_components: int = 8,
        patch: int = 7,
        channels: int = 32,
        finch_patch: int = 17,
        finch_pca: int = 300,
        finch_level: int = 1,
        n_subspace_dims: int = 5,
        eta: float = 5.0,
        kmeans_n_init: int = 30,
        kmeans_backend: str = "sklearn",
        threshold: float = 0.9,
        selection: Literal["confident", "last"] = "confident",
        chunk_size: int | None = None,
        finch_backend: str = "torch",
        finch_exact: bool = False,
        ann_threshold: int = ANN_THRESHOLD,
        finch_pca_sample: int | None = 200_000,
        kmeans_sample: int | None = 100_000,
        predict_chunk: int = 65536,
        patch_scaling: Literal["global", "feature"] = "global",
        pretrain_tol: float | None = 0.01,
        pretrain_patience: int = 10,
        basis_norm: Literal["project", "penalty"] = "project",
        init: Literal["kmeans", "minicluster"] = "kmeans",
        init_repair: bool = True,
        reseed: bool = True,
        warmup_epochs: int = 0,
        local_ramp_epochs: int = 0,
        min_cluster_share: float | None = 0.1,
        checkpoint_path: str | None = None,
        resume: bool = False,
        random_state: int | None = None,
        device: str = "auto",
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.patch_scaling = patch_scaling
        self.pretrain_tol = pretrain_tol
        self.pretrain_patience = pretrain_patience
        self.basis_norm = basis_norm
        self.init = init
        self.init_repair = init_repair
        self.reseed = reseed
        self.warmup_epochs = warmup_epochs
        self.local_ramp_epochs = local_ramp_epochs
        self.min_cluster_share = min_cluster_share
        self.checkpoint_path = checkpoint_path
        self.resume = resume
        self.local = local
        self.nonlocal_ = nonlocal_
        self.beta = beta
        self.beta1 = beta1
        self.beta2 = beta2
        self.window = window
        self.lr = lr
        self.epochs = epochs
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.pretrain_batch_size = pretrain_batch_size
        self.n_components = n_components
        self.patch = patch
        self.channels = channels
        self.finch_patch = finch_patch
        self.finch_pca = finch_pca
        self.finch_level = finch_level
        self.n_subspace_dims = n_subspace_dims
        self.eta = eta
        self.kmeans_n_init = kmeans_n_init
        self.kmeans_backend = kmeans_backend
        self.threshold = threshold
        self.selection = selection
        self.chunk_size = chunk_size
        self.finch_backend = finch_backend
        self.finch_exact = finch_exact
        self.ann_threshold = ann_threshold
        self.finch_pca_sample = finch_pca_sample
        self.kmeans_sample = kmeans_sample
        self.predict_chunk = predict_chunk
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- validation ------------------------------------------------------------------------
    def fit(self, X, y=None, mask=None):
        """Cluster the masked pixels of the cube ``X`` (H, W, B); ``y`` is ignored."""
        cube = np.asarray(X) if not isinstance(X, torch.Tensor) else X.detach().cpu().numpy()
        if cube.ndim == 3 and np.issubdtype(cube.dtype, np.floating):
            bad = np.zeros(cube.shape[-1], dtype=bool)
            for t in iter_row_tiles(cube):  # tile by tile: a large cube is never copied
                bad |= ~np.isfinite(t).all(axis=0)
            if bad.any():
                bands = np.flatnonzero(bad).tolist()[:10]
                raise ValueError(
                    f"the cube has NaN or infinite values in band(s) {bands}; "
                    "drop those bands (e.g. cube[..., good_bands]) or impute them before clustering"
                )
        if cube.ndim == 3:
            m = check_mask(mask, cube.shape[:2])
            check_n_clusters(self.n_clusters, int(m.sum()))
            check_window(int(self.window), cube.shape[:2])
            mask = m
        if self.selection not in ("confident", "last"):
            raise ValueError(f"selection must be 'confident' or 'last', got {self.selection!r}")
        for name, allowed in (("patch_scaling", ("global", "feature")), ("basis_norm", ("project", "penalty")),
                              ("init", ("kmeans", "minicluster"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.min_cluster_share is not None and not 0 <= float(self.min_cluster_share) < 1:
            raise ValueError(f"min_cluster_share must be in [0, 1) or None, got {self.min_cluster_share}")
        if self.pretrain_tol is not None and float(self.pretrain_tol) < 0:
            raise ValueError(f"pretrain_tol must be >= 0 or None, got {self.pretrain_tol}")
        return super().fit(X, y, mask=mask)

    # -- training --------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, mask: np.ndarray | None = None) -> None:
        H, W, _ = X.shape
        mask = check_mask(mask, (H, W))
        k, d = int(self.n_clusters), int(self.n_subspace_dims)
        window = check_window(int(self.window), (H, W))
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        rows, cols = np.nonzero(mask)  # row-major order
        timings: dict[str, float] = {}
        dev = self.device_

        t0 = time.perf_counter()
        self.preprocessor_ = ScenePreprocessor(int(self.n_components)).fit(X)
        pca_cube = self.preprocessor_.transform(X)  # (H, W, C), small: C = 8 bands
        # the network input is gathered per batch from the padded reduced cube; the
        # (N, C, P, P) patch matrix exists only on the full-batch path (chunk_size=None or
        # chunk_size >= N, where the joint step runs the network on all pixels at once)
        source = ScenePatches(pca_cube, rows, cols, int(self.patch), device=dev)
        self.patch_mean_, self.patch_scale_ = source.feature_stats(scaling=self.patch_scaling)
        source.set_normalisation(self.patch_mean_, self.patch_scale_)
        lazy = self.chunk_size is not None and int(self.chunk_size) < rows.shape[0]
        Xt = source if lazy else source.materialize()
        timings["preprocess_seconds"] = time.perf_counter() - t0

        # Step 1: mini-clusters (FINCH) — when the non-local loss or the mini-cluster init uses them
        mini = None
        diag: dict = {}
        if self.nonlocal_ or self.init == "minicluster":
            t0 = time.perf_counter()
            feats = patch_pca_features(
                pca_cube,
                rows,
                cols,
                patch=int(self.finch_patch),
                n_components=int(self.finch_pca),
                sample=self.finch_pca_sample,
                seed=self.seed_,
            )
            mini, info = minicluster_index(
                feats,
                level=int(self.finch_level),
                backend=self.finch_backend,
                exact=bool(self.finch_exact),
                ann_threshold=int(self.ann_threshold),
                seed=self.seed_,
            )
            del feats
            diag.update(info)
            diag["n_mini_clusters"] = int(mini.max()) + 1
            timings["finch_seconds"] = time.perf_counter() - t0
            self.mini_clusters_ = mini

        # Step 2: pretraining
        t0 = time.perf_counter()
        with seeded_init(self.seed_):
            ae = ConvPatchAutoencoder(
                source.shape[1], int(self.patch), channels=int(self.channels)
            )
        net = BasisClusteringNet(ae, n_clusters=k, d=d, eta=float(self.eta)).to(dev)
        history = History()
        diag["pretrain_epochs_run"] = pretrain_autoencoder(
            ae=ae,
            X=Xt,
            epochs=int(self.pretrain_epochs),
            batch_size=int(self.pretrain_batch_size),
            lr=float(self.pretrain_lr),
            generator=self._torch_gen,
            device=dev,
            history=history,
            verbose=self.verbose,
            checkpoint_path=self.checkpoint_path,
            resume=bool(self.resume),
            rng=self._rng,
            plateau_tol=self.pretrain_tol,
            plateau_patience=int(self.pretrain_patience),
        )
        timings["pretrain_seconds"] = time.perf_counter() - t0

        # Step 3: the initial partition (k-means on the codes, or weighted k-means on the
        # mini-clusters' mean codes), repaired if degenerate, then the bases by SVD
        t0 = time.perf_counter()
        n = rows.shape[0]
        min_size = min_cluster_size(n, k, self.min_cluster_share)
        exact_init = self.kmeans_sample is None or n <= int(self.kmeans_sample)
        if self.init == "minicluster":
            guard = min_size if self.init_repair else 0
            out = minicluster_init(ae, source, mini, k, n_init=int(self.kmeans_n_init), seed=self.seed_,
                                   backend=self.kmeans_backend, device=dev, min_size=guard)
            init_labels = np.asarray(ddp.broadcast_array(out[0]), dtype=np.int64)  # rank 0's partition
            diag.update(out[2])
            z = encode_all(ae, Xt, batch_size=8192, device=dev) if exact_init else None
            if self.init_repair and min_size > 0 and z is not None:
                init_labels, diag["init_repairs"] = repair_partition(z, init_labels, k, min_size=min_size,
                                                                     seed=self.seed_)
            with torch.no_grad():
                if z is not None:
                    D0 = init_bases(z, init_labels, k, d, rng=self._rng)
                else:  # large scene: bases from the Gram matrices of a sample's codes
                    samp = np.sort(np.random.default_rng(self.seed_).choice(n, int(self.kmeans_sample), replace=False))
                    zs = encode_all(ae, source[torch.from_numpy(samp)], batch_size=8192, device=dev)
                    D0 = init_bases_gram(zs, init_labels[samp], k, d, rng=self._rng)
                net.D.copy_(torch.from_numpy(D0))
            del z
        elif exact_init:  # exact: all codes
            z = encode_all(ae, Xt, batch_size=8192, device=dev)
            guard = min_size if self.init_repair else 0
            init_labels, _, info = kmeans_nondegenerate(
                z, k, n_init=int(self.kmeans_n_init), seed=self.seed_, backend=self.kmeans_backend,
                min_size=guard,
            )
            init_labels = np.asarray(ddp.broadcast_array(init_labels), dtype=np.int64)
            diag.update(info)
            if self.init_repair and min_size > 0:
                init_labels, diag["init_repairs"] = repair_partition(z, init_labels, k, min_size=min_size,
                                                                     seed=self.seed_)
            with torch.no_grad():
                net.D.copy_(torch.from_numpy(init_bases(z, init_labels, k, d, rng=self._rng)))
            del z
        else:  # large scene: never hold the (N, latent) codes
            init_labels, D0 = _sampled_init(
                ae,
                source,
                k,
                d,
                sample=int(self.kmeans_sample),
                n_init=int(self.kmeans_n_init),
                seed=self.seed_,
                backend=self.kmeans_backend,
                rng=self._rng,
                device=dev,
            )
            with torch.no_grad():
                net.D.copy_(torch.from_numpy(D0))
            diag["kmeans_init"] = f"k-means fitted on a seeded sample of {self.kmeans_sample} codes"
        self.init_labels_ = init_labels
        timings["init_seconds"] = time.perf_counter() - t0

        # Step 4: joint training (eq. 17)
        t0 = time.perf_counter()
        flat_index = torch.from_numpy(rows * W + cols).to(dev)
        track = _train_scdsc(
            net=net,
            X=Xt,
            flat_index=flat_index,
            mask=torch.from_numpy(mask).to(dev),
            mini_index=torch.from_numpy(mini).to(dev) if mini is not None else None,
            local=bool(self.local),
            window=window,
            beta=float(self.beta),
            beta1=float(self.beta1),
            beta2=float(self.beta2),
            epochs=int(self.epochs),
            lr=float(self.lr),
            chunk_size=self.chunk_size,
            threshold=float(self.threshold),
            generator=self._torch_gen,
            history=history,
            verbose=self.verbose,
            checkpoint_path=self.checkpoint_path,
            resume=bool(self.resume),
            rng=self._rng,
            basis_norm=self.basis_norm,
            min_size=min_size,
            reseeder=ClusterReseeder(
                k=k, d=d, min_size=min_size, max_reseeds=2 * k, quiet_epochs=max(1, int(self.epochs) // 5),
                epochs=int(self.epochs), seed=self.seed_,
            ) if self.reseed and min_size > 0 else None,
            device=dev,
            warmup_epochs=int(self.warmup_epochs),
            local_ramp_epochs=int(self.local_ramp_epochs),
        )
        timings["train_seconds"] = time.perf_counter() - t0
        timings["seconds_per_epoch"] = timings["train_seconds"] / int(self.epochs)
        diag["reseeds"] = list(track["reseeds"])

        # The reported labels are computed exactly as ``predict`` computes them: the network in
        # eval mode, its BatchNorm statistics set to the clustered pixels' (what the full-batch
        # training steps normalised with), so ``labels_`` == ``predict(cube, mask)``.
        chunk = n if self.chunk_size is None else max(1, int(self.chunk_size))
        self.history_ = history
        recalibrate_batchnorm(net, Xt, chunk=chunk, device=dev)
        self.labels_last_ = _hard_labels(net, Xt, chunk=int(self.predict_chunk))
        use_confident = self.selection == "confident" and track["best"] > 0.0
        if self.selection == "confident" and not use_confident:
            # no epoch had a single confident pixel: the rule cannot rank epochs
            self.labels_ = self.labels_last_
            self.selection_ = (
                f"last epoch ({self.epochs}): no epoch had a pixel with max soft assignment > "
                f"{self.threshold}, so the confident-share rule was undefined (label-free)"
            )
        elif use_confident:
            net.load_state_dict(track["best_state"])
            recalibrate_batchnorm(net, Xt, chunk=chunk, device=dev)
            self.labels_ = _hard_labels(net, Xt, chunk=int(self.predict_chunk))
            kept = "" if track["best_ok"] or min_size == 0 else (
                f"; no epoch kept every cluster at >= {min_size} pixels")
            self.selection_ = (
                f"epoch {track['best_epoch'] + 1} of {self.epochs}: largest share "
                f"({track['best']:.4f}) of pixels with max soft assignment > {self.threshold}"
                + (f" among epochs with every cluster >= {min_size} pixels" if min_size else "")
                + f" (label-free, the authors' rule{kept}); last-epoch labels in extra_labels_['last_epoch']"
            )
        else:
            self.labels_ = self.labels_last_
            self.selection_ = f"last epoch ({self.epochs})"
        self.extra_labels_ = {"last_epoch": self.labels_last_, "kmeans_init": init_labels}
        self.model_ = net
        self.mask_ = mask
        self.cube_shape_ = X.shape
        self._cube = X
        self.diagnostics_ = {
            **diag,
            **{k_: round(v, 4) for k_, v in timings.items()},
            "selected_epoch": int(track["best_epoch"]) + 1 if use_confident else int(self.epochs),
            "selected_epoch_all_clusters_kept": bool(track["best_ok"]),
            "confident_share_selected": float(track["best"]),
            "confident_share_last": float(track["shares"][-1]),
            "n_pixels": int(rows.shape[0]),
            "latent_dim": int(ae.latent_dim),
        }

    # -- prediction ------------------------------------------------------------------------
    @torch.no_grad()
    def _predict(self, X: np.ndarray, mask=None) -> np.ndarray:
        """Labels of the masked pixels (default: all), ``predict_chunk`` pixels at a time.

        The cube is reduced tile by tile to its C PCA bands and padded once; each chunk gathers
        its patches, runs the network and keeps only the argmax, so memory is O(N) labels +
        O(chunk) patches and soft assignments: never all patches or the (N, k) matrix.
        """
        H, W, _ = X.shape
        mask = check_mask(mask, (H, W))
        chunk = int(self.predict_chunk)
        if chunk < 1:
            raise ValueError(f"predict_chunk must be a positive number of pixels, got {chunk}")
        rows, cols = np.nonzero(mask)
        pca_cube = self.preprocessor_.transform(X)  # (H, W, C)
        source = ScenePatches(
            pca_cube, rows, cols, int(self.patch), self.patch_mean_, self.patch_scale_,
            device=self.device_,
        )
        return _hard_labels(self.model_, source, chunk=chunk)

    def predict_scene(self, X=None) -> np.ndarray:
        """The full (H, W) cluster map of ``X`` (default: the fitted cube), every pixel labelled."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "labels_")
        cube = self._cube if X is None else X
        labels = self.predict(cube)
        return labels.reshape(cube.shape[:2])
