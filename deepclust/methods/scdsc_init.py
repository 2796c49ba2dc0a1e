"""SCDSC's UMAP start: the initial partition from a UMAP embedding of the pretrained codes.

Algorithm 1 of the paper starts the joint training from k-means on the autoencoder's codes.
k-means in the 1,568-D code space cuts the scene's elongated, curved clusters badly (on
Salinas-A: OA 0.857 for k-means on the codes, 0.9996 for UMAP + k-means on the same codes,
seed 0), and the joint training keeps much of what its start gets wrong. ``SCDSC(init="umap")``
clusters the codes as the ``umap-kmeans`` baseline clusters its inputs, with that method's
settings (umap-learn's recommendation for clustering: PCA 50, 30 neighbours, ``min_dist=0``,
10 dimensions, k-means with 10 restarts; :mod:`deepclust.presets.umap_kmeans`), the same for
every scene; the bases of eq. 5 are then fitted to that partition exactly as to k-means'. It is a
deviation from the paper, measured both ways in ``benchmarks/RESULTS.md``.

Above ``sample`` pixels UMAP is fitted on the codes of a seeded sample; every pixel then gets the
cluster of the nearest sample-cluster mean code, in chunks (the (N, latent) codes are never held).
"""

from __future__ import annotations

import numpy as np
import torch

from deepclust.nn.pretrain import encode_all
from deepclust.nn.subspace import nearest_centre_labels

__all__ = ["umap_partition"]


def umap_partition(ae: torch.nn.Module, source, X, k: int, *, sample: int | None, seed: int, device,
                   batch: int = 8192) -> tuple[np.ndarray, dict, np.ndarray | None]:
    """(N,) labels of the rows of ``X`` (``source`` yields the same rows in batches), a
    ``diagnostics_`` entry saying how they were obtained, and the (N, latent) codes of all rows
    when they were computed (at most ``sample`` rows; else None), for the bases."""
    from deepclust.methods.umap_kmeans import cluster_means, preset_partition

    n = len(source)
    if sample is None or n <= int(sample):
        z = encode_all(ae, X, batch_size=batch, device=device)
        labels = preset_partition(z, k, seed).labels_
        return (np.asarray(labels, dtype=np.int64), {"init_umap": f"UMAP + k-means on the codes of all {n} pixels"},
                z)
    idx = np.sort(np.random.default_rng(seed).choice(n, int(sample), replace=False))
    zs = encode_all(ae, source[torch.from_numpy(idx)], batch_size=batch, device=device)
    lab_s = np.asarray(preset_partition(zs, k, seed).labels_)
    centres = cluster_means(zs, lab_s, k)
    labels = nearest_centre_labels(ae, source, centres, batch=batch, device=device)
    return labels, {"init_umap": f"UMAP + k-means on a seeded sample of {sample} codes; "
                                 "every pixel labelled by the nearest cluster mean code"}, None
