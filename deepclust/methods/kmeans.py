"""k-means baseline (scikit-learn's Lloyd/Elkan, or faiss for large data)."""

from __future__ import annotations

import numpy as np

from deepclust.base import DeepClusterer

__all__ = ["KMeans"]


class KMeans(DeepClusterer):
    """k-means on flattened samples, the baseline every paper reports.

    Parameters
    ----------
    n_clusters : int
        Number of clusters.
    n_init : int, default 10
        Restarts; the one with the lowest inertia is kept (label-free choice). The papers use >= 10.
    max_iter : int, default 300
    backend : {"sklearn", "faiss", "auto"}, default "auto"
        ``auto`` uses scikit-learn below 200,000 samples and faiss above.
    random_state : int or None
    device : str
        Accepted for API symmetry; k-means runs on the CPU.
    """

    input_kind = "vectors"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_init: int = 10,
        max_iter: int = 300,
        backend: str = "auto",
        random_state: int | None = None,
        device: str = "cpu",
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.backend = backend
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _fit(self, X: np.ndarray) -> None:
        if self.backend not in ("auto", "sklearn", "faiss"):
            raise ValueError(f"backend must be 'auto', 'sklearn' or 'faiss', got {self.backend!r}")
        if int(self.n_init) < 1:
            raise ValueError(f"n_init must be >= 1, got {self.n_init}")
        use_faiss = self.backend == "faiss" or (self.backend == "auto" and X.shape[0] > 200_000)
        if use_faiss:
            import faiss

            best = None
            for i in range(int(self.n_init)):
                km = faiss.Kmeans(
                    X.shape[1], int(self.n_clusters), niter=int(self.max_iter),
                    seed=int(self.seed_) + i, verbose=False, max_points_per_centroid=1_000_000,
                )
                km.train(X)
                dist, lab = km.index.search(X, 1)
                inertia = float(dist.sum())
                if best is None or inertia < best[0]:
                    best = (inertia, km.centroids.copy(), lab.ravel().astype(np.int64))
            self.inertia_, self.cluster_centers_, self.labels_ = best
            self.n_iter_ = int(self.max_iter)
        else:
            from sklearn.cluster import KMeans as SKKMeans

            km = SKKMeans(
                n_clusters=int(self.n_clusters), n_init=int(self.n_init),
                max_iter=int(self.max_iter), random_state=int(self.seed_),
            ).fit(X)
            self.cluster_centers_ = km.cluster_centers_.astype(np.float32)
            self.labels_ = km.labels_.astype(np.int64)
            self.inertia_ = float(km.inertia_)
            self.n_iter_ = int(km.n_iter_)
        self.selection_ = f"lowest inertia of n_init={self.n_init} restarts (label-free)"

    def _predict(self, X: np.ndarray) -> np.ndarray:
        from sklearn.metrics import pairwise_distances_argmin

        return pairwise_distances_argmin(X, self.cluster_centers_).astype(np.int64)
