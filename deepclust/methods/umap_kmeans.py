"""UMAP + k-means (or a Gaussian mixture): the cheap, strong, non-deep baseline.

UMAP (McInnes, Healy & Melville 2018, the ``umap-learn`` package) embeds the flattened samples
in a few dimensions, and k-means (or a full-covariance Gaussian mixture) clusters the embedding.
It needs no training loop and no tuning per data set, and it is the peer every deep method must
beat. ``umap-learn`` is a dependency of the package (DEC/IDEC's ``init="umap"`` uses this class
too); where it cannot be imported the error says how to install it.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings

import numpy as np

from deepclust.base import DeepClusterer

__all__ = ["UMAPKMeans", "UMAP_INSTALL_HINT", "preset_partition", "cluster_means"]

UMAP_INSTALL_HINT = 'python -m pip install "deepclust[umap]"'

#: ``pca_components="auto"``: inputs wider than this are reduced by PCA before UMAP ...
AUTO_PCA_ABOVE = 100
#: ... to this many components.
AUTO_PCA_COMPONENTS = 50

CLUSTERERS = ("kmeans", "gmm")


def import_umap():
    """The ``umap`` module, or an ``ImportError`` that says how to install it (never a fallback)."""
    try:
        with warnings.catch_warnings():  # umap-learn warns at import that its optional TensorFlow part is absent
            warnings.filterwarnings("ignore", message=".*ParametricUMAP", category=ImportWarning)
            import umap
    except ImportError as exc:
        err = ModuleNotFoundError(
            f"umap-kmeans needs the optional package umap-learn, which is not installed ({exc}); "
            f"install it with: {UMAP_INSTALL_HINT}",
            name="umap",
        )
        err.install_hint = UMAP_INSTALL_HINT  # the CLI shows such errors as one line (exit 2)
        raise err from exc
    return umap


@contextlib.contextmanager
def keep_torch_threads():
    """Restore torch's intra-op thread count after umap-learn has run.

    umap-learn's numba kernels run on numba's OpenMP threading layer, which sets the OpenMP
    thread count of the process to numba's own (the machine's cores); torch shares that OpenMP
    runtime, so after a UMAP fit torch would train on all cores whatever the user set
    (``OMP_NUM_THREADS``, ``torch.set_num_threads``). Every UMAP call here runs inside this."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class UMAPKMeans(DeepClusterer):
    """UMAP embedding of the flattened samples, then k-means or a Gaussian mixture on it.

    Images (N, C, H, W) are flattened per sample and scene pixels are clustered as spectra,
    exactly as :class:`~deepclust.methods.kmeans.KMeans` takes them, so the two sit side by side
    in the same tables.

    The UMAP settings are the ones the umap-learn documentation recommends for clustering
    (*Using UMAP for Clustering*, umap-learn.readthedocs.io/en/latest/clustering.html):
    ``n_neighbors`` doubled from the visualisation default 15 to 30, because small neighbourhoods
    produce fine-grained structure that is noise rather than clusters, ``min_dist=0`` so that
    points pack densely and clusters separate cleanly, and an embedding of about 10 dimensions
    rather than 2, since the goal is to cluster, not to draw.

    Parameters
    ----------
    n_clusters : int
        Number of clusters.
    n_components : int, default 10
        Dimension of the UMAP embedding.
    n_neighbors : int, default 30
        Size of UMAP's neighbourhood graph (umap-learn's clustering guide; 15 is its default for
        visualisation). Truncated by UMAP to ``n_samples - 1`` on tiny inputs.
    min_dist : float, default 0.0
        UMAP's minimum distance between embedded points, in [0, 1] (0 for clustering, as above).
    metric : str, default "euclidean"
        UMAP's input metric (any metric umap-learn accepts, e.g. ``"cosine"``).
    clusterer : {"kmeans", "gmm"}, default "kmeans"
        What clusters the embedding: k-means, or scikit-learn's ``GaussianMixture`` with full
        covariances (clusters of a 10-D UMAP embedding are often elongated, where a mixture fits
        better than k-means' spheres).
    n_init : int, default 10
        Restarts of the clusterer; the best one is kept without labels (lowest k-means inertia,
        or highest mixture likelihood).
    pca_components : int, None or "auto", default "auto"
        PCA before UMAP. ``"auto"``: 50 components when the input has more than 100 features
        (28x28 images, hyperspectral bands), none otherwise. 50 principal components keep most of
        the variance of such data and make UMAP's nearest-neighbour search several times cheaper;
        50 is the usual size of that pre-step (the default of t-SNE's reference implementation
        and of scanpy; umap-learn's clustering guide reduces MNIST to 50 PCA dimensions before
        HDBSCAN, noting that they keep most of the variance). An integer: that many components
        (no PCA when it is not below the number of features); ``None``: no PCA.
    random_state : int or None
        Seeds PCA, UMAP and the clusterer. UMAP then runs on one thread (umap-learn's rule for
        reproducible embeddings); ``seed_`` records the seed drawn when None.
    device : str
        Accepted for API symmetry; everything runs on the CPU.
    verbose : bool
        UMAP's progress messages.

    Attributes
    ----------
    embedding_ : ndarray (n_samples, n_components)
        The UMAP embedding of the training samples (what the clusterer saw).
    labels_ : ndarray (n_samples,)
    pca_ : sklearn PCA or None
    umap_ : umap.UMAP
    clusterer_ : sklearn KMeans or GaussianMixture
    """

    input_kind = "vectors"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_components: int = 10,
        n_neighbors: int = 30,
        min_dist: float = 0.0,
        metric: str = "euclidean",
        clusterer: str = "kmeans",
        n_init: int = 10,
        pca_components: int | str | None = "auto",
        random_state: int | None = None,
        device: str = "cpu",
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.clusterer = clusterer
        self.n_init = n_init
        self.pca_components = pca_components
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- parameters ------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not _is_int(self.n_components) or self.n_components < 1:
            raise ValueError(f"n_components must be an integer >= 1, got {self.n_components!r}")
        if not _is_int(self.n_neighbors) or self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be an integer >= 2, got {self.n_neighbors!r}")
        if (isinstance(self.min_dist, bool) or not isinstance(self.min_dist, numbers.Real)
                or not 0.0 <= float(self.min_dist) <= 1.0):
            raise ValueError(f"min_dist must be a number in [0, 1], got {self.min_dist!r}")
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"metric must be the name of a UMAP metric such as 'euclidean', got {self.metric!r}")
        if self.clusterer not in CLUSTERERS:
            raise ValueError(f"clusterer must be 'kmeans' or 'gmm', got {self.clusterer!r}")
        if not _is_int(self.n_init) or self.n_init < 1:
            raise ValueError(f"n_init must be an integer >= 1, got {self.n_init!r}")
        p = self.pca_components
        if not (p is None or p == "auto" or (_is_int(p) and p >= 1)):
            raise ValueError(f"pca_components must be 'auto', None or an integer >= 1, got {p!r}")

    def _pca_size(self, n_samples: int, n_features: int) -> int | None:
        """Components of the PCA before UMAP (None: no PCA)."""
        p = self.pca_components
        if p is None:
            return None
        if p == "auto":
            p = AUTO_PCA_COMPONENTS if n_features > AUTO_PCA_ABOVE else None
        if p is None or p >= n_features:
            return None
        return int(min(p, n_samples))

    # -- fit / predict ---------------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        self._check_params()
        umap = import_umap()
        seed = int(self.seed_)
        n, d = X.shape

        size = self._pca_size(n, d)
        if size is not None:
            from sklearn.decomposition import PCA

            self.pca_ = PCA(n_components=size, random_state=seed).fit(X)
            Z = self.pca_.transform(X).astype(np.float32)
        else:
            self.pca_ = None
            Z = X

        # n_jobs=1 explicitly: with a seed, umap-learn runs on one thread anyway (and warns otherwise)
        self.umap_ = umap.UMAP(
            n_components=int(self.n_components), n_neighbors=int(self.n_neighbors),
            min_dist=float(self.min_dist), metric=self.metric, random_state=seed, n_jobs=1,
            verbose=bool(self.verbose),
        )
        with keep_torch_threads():
            self.embedding_ = np.ascontiguousarray(self.umap_.fit_transform(Z), dtype=np.float32)

        k = int(self.n_clusters)
        if self.clusterer == "kmeans":
            from sklearn.cluster import KMeans as SKKMeans

            self.clusterer_ = SKKMeans(n_clusters=k, n_init=int(self.n_init), random_state=seed).fit(self.embedding_)
            self.labels_ = self.clusterer_.labels_.astype(np.int64)
            self.inertia_ = float(self.clusterer_.inertia_)
            best = f"lowest inertia of n_init={self.n_init} k-means restarts"
        else:
            from sklearn.mixture import GaussianMixture

            self.clusterer_ = GaussianMixture(
                n_components=k, covariance_type="full", n_init=int(self.n_init), random_state=seed,
            ).fit(self.embedding_)
            self.labels_ = self.clusterer_.predict(self.embedding_).astype(np.int64)
            best = f"highest likelihood of n_init={self.n_init} Gaussian-mixture restarts"
        pca = f"PCA {size} -> " if size is not None else ""
        self.selection_ = (f"{pca}UMAP {self.n_components}-D (n_neighbors={self.n_neighbors}, "
                           f"min_dist={self.min_dist}), {best} (label-free)")

    def transform(self, X) -> np.ndarray:
        """UMAP embedding of new samples (umap-learn's ``transform``: placed against the training
        embedding, not refitted)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "embedding_")
        return self._embed(self._check_new_data(X))

    def _embed(self, X: np.ndarray) -> np.ndarray:
        Z = self.pca_.transform(X).astype(np.float32) if self.pca_ is not None else X
        with keep_torch_threads():
            return np.ascontiguousarray(self.umap_.transform(Z), dtype=np.float32)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.clusterer_.predict(self._embed(X)).astype(np.int64)


def preset_partition(X: np.ndarray, n_clusters: int, seed: int, **overrides) -> UMAPKMeans:
    """The ``umap-kmeans`` baseline with its ``fast`` preset (umap-learn's recommendation for
    clustering, the same for every data set; ``overrides`` replace entries), fitted on the rows of
    ``X``: the start other methods take from it (DEC / IDEC and SCDSC ``init="umap"``, the
    ``patch-kmeans`` reference with ``embed="umap"``)."""
    from deepclust.presets.umap_kmeans import PRESETS

    settings = {**PRESETS["fast"]["default"], **overrides}
    return UMAPKMeans(n_clusters=int(n_clusters), random_state=int(seed), **settings).fit(X)


def cluster_means(z: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """(n_clusters, d) mean row of ``z`` in each cluster of ``labels``; an empty cluster's row is
    +inf, so no point is ever nearest to it."""
    z = np.asarray(z)
    return np.stack([z[labels == c].mean(0) if (labels == c).any() else np.full(z.shape[1], np.inf)
                     for c in range(int(n_clusters))])
