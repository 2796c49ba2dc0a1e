"""The basis-representation model (EDESC, SCDSC) and the label-free rules that initialise it and
keep every cluster alive.

:class:`BasisClusteringNet` is an autoencoder plus the bases ``D`` (latent, k*d) of ``k``
subspaces; a sample's soft assignment ``S`` is its projection energy on each subspace (SCDSC eq. 3).
Around it:

* :func:`initial_bases`: the initial partition and bases from the pretrained encoder's codes:
  k-means on all codes, on a seeded sample of codes (:func:`sampled_init`, never the (N, latent)
  code matrix), or weighted k-means on the mean codes of mini-clusters (:func:`minicluster_init`);
  the bases come from :mod:`deepclust.cluster.subspace`;
* :func:`project_unit_columns`: the hard form of eq. 4's unit-norm term;
* :class:`ClusterReseeder`: a cluster that stays too small during training is re-seeded by
  splitting the cluster with the largest subspace residual;
* :func:`recalibrate_batchnorm` and :func:`hard_labels`: the eval-mode labels ``predict`` gives,
  with BatchNorm statistics of the clustered samples, in chunks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from deepclust import distributed as ddp
from deepclust.cluster.kmeans import kmeans_codes, kmeans_nondegenerate, repair_partition, two_means
from deepclust.cluster.subspace import init_bases, init_bases_gram
from deepclust.losses.subspace import basis_constraint, subspace_affinity
from deepclust.nn.pretrain import encode_all
from deepclust.training import recompute_batchnorm_stats

if TYPE_CHECKING:
    from deepclust.data.scene import ScenePatches

__all__ = [
    "BasisClusteringNet",
    "ClusterReseeder",
    "hard_labels",
    "initial_bases",
    "minicluster_init",
    "project_unit_columns",
    "recalibrate_batchnorm",
    "sampled_init",
]


class BasisClusteringNet(nn.Module):
    """An autoencoder plus the subspace bases ``D`` (latent, k*d).

    ``forward(x)`` returns ``(z, x_hat, s)`` with the soft assignment ``s`` of eq. 3.
    """

    def __init__(self, autoencoder: nn.Module, *, n_clusters: int, d: int = 5, eta: float = 5.0):
        super().__init__()
        self.autoencoder = autoencoder
        self.n_clusters = int(n_clusters)
        self.d = int(d)
        self.eta = float(eta)
        latent = int(autoencoder.latent_dim)
        self.D = nn.Parameter(torch.zeros(latent, self.n_clusters * self.d))

    def affinity(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent) -> (N, k) soft assignment (eq. 3)."""
        return subspace_affinity(z, self.D, n_clusters=self.n_clusters, d=self.d, eta=self.eta)

    def basis_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The two terms of eq. 4 on ``D``."""
        return basis_constraint(self.D, n_clusters=self.n_clusters, d=self.d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, x_hat = self.autoencoder(x)
        return z, x_hat, self.affinity(z)


def sampled_init(
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
    ae.train(was)
    return nearest_centre_labels(ae, source, centres, batch=batch, device=device), D


@torch.no_grad()
def nearest_centre_labels(ae: torch.nn.Module, source, centres: np.ndarray, *, batch: int, device) -> np.ndarray:
    """(N,) label of every row of ``source``: the nearest of the (k, latent) ``centres`` to its
    code, encoded in chunks (eval mode; the (N, latent) codes are never held)."""
    C = torch.from_numpy(np.asarray(centres, dtype=np.float32)).to(device)  # (k, latent)
    labels = np.empty(len(source), dtype=np.int64)
    was = ae.training
    ae.eval()
    for a in range(0, len(source), batch):
        z = ae.encode(source[slice(a, a + batch)].to(device))  # (b, latent)
        dist = (z * z).sum(1, keepdim=True) - 2.0 * z @ C.T + (C * C).sum(1)  # (b, k)
        labels[a : a + z.shape[0]] = dist.argmin(1).cpu().numpy()
    ae.train(was)
    return labels


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
        half = two_means(zb, self.seed + len(self.events))
        D2 = init_bases(zb, half, 2, d, rng=rng)  # (latent, 2d): each half's SVD basis
        return np.array([big]), np.stack([D2[:, :d], D2[:, d:]])  # (2, latent, d)


@torch.no_grad()
def hard_labels(net: BasisClusteringNet, X, *, chunk: int) -> np.ndarray:
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
    current weights (one pass of the autoencoder, cumulative average over chunks; one chunk on
    the full-batch path, i.e. exactly the statistics joint training normalised with), so that the
    eval-mode network used by ``predict`` computes the soft assignments training saw."""
    recompute_batchnorm_stats(net, X, forward=net.autoencoder, batch_size=chunk, device=device)


def initial_bases(
    ae: nn.Module, source: ScenePatches, X, k: int, d: int, *, init: str, mini: np.ndarray | None,
    sample: int | None, n_init: int, seed: int, backend: str, min_size: int, repair: bool,
    rng: np.random.Generator, device, labels: np.ndarray | None = None, codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The initial partition (N,) and bases (latent, k*d) of the basis model from the pretrained
    encoder ``ae`` (SCDSC Algorithm 1: k-means on the codes, then each cluster's SVD basis).

    ``init="kmeans"``: k-means on the codes of all ``X`` rows, or, above ``sample`` rows, on a
    seeded sample of codes (:func:`sampled_init`, never the (N, latent) code matrix).
    ``init="minicluster"``: weighted k-means on the mean codes of the mini-clusters ``mini``
    (:func:`minicluster_init`). ``init="given"``: the partition ``labels`` computed by the caller
    (SCDSC's UMAP start, :func:`deepclust.methods.scdsc_init.umap_partition`, which passes the
    ``codes`` of all rows it computed). With ``repair``,
    restarts leaving a cluster under ``min_size`` rows are rejected and a degenerate partition is
    repaired (:mod:`deepclust.cluster.kmeans`; the repair needs all codes, so it is skipped above
    ``sample``). ``source`` yields the rows of ``X``
    in batches; ``X`` is the same data (or ``source`` itself). Returns the labels, the bases and
    what the rules did (for ``diagnostics_``).
    """
    n = len(source)
    info: dict = {}
    exact = sample is None or n <= int(sample)
    guard = min_size if repair else 0
    if init in ("minicluster", "given"):
        if init == "minicluster":
            out = minicluster_init(ae, source, mini, k, n_init=n_init, seed=seed, backend=backend, device=device,
                                   min_size=guard)
            labels = out[0]
            info.update(out[2])
        elif labels is None or len(labels) != n:
            raise ValueError(f"init='given' needs labels for all {n} rows")
        labels = np.asarray(ddp.broadcast_array(labels), dtype=np.int64)  # rank 0's partition
        z = codes if codes is not None else encode_all(ae, X, batch_size=8192, device=device) if exact else None
        if repair and min_size > 0 and z is not None:
            labels, info["init_repairs"] = repair_partition(z, labels, k, min_size=min_size, seed=seed)
        if z is not None:
            D0 = init_bases(z, labels, k, d, rng=rng)
        else:  # large scene: bases from the Gram matrices of a sample's codes
            samp = np.sort(np.random.default_rng(seed).choice(n, int(sample), replace=False))
            zs = encode_all(ae, source[torch.from_numpy(samp)], batch_size=8192, device=device)
            D0 = init_bases_gram(zs, labels[samp], k, d, rng=rng)
    elif exact:  # all codes
        z = encode_all(ae, X, batch_size=8192, device=device)
        labels, _, kinfo = kmeans_nondegenerate(z, k, n_init=n_init, seed=seed, backend=backend, min_size=guard)
        labels = np.asarray(ddp.broadcast_array(labels), dtype=np.int64)
        info.update(kinfo)
        if repair and min_size > 0:
            labels, info["init_repairs"] = repair_partition(z, labels, k, min_size=min_size, seed=seed)
        D0 = init_bases(z, labels, k, d, rng=rng)
    else:  # large scene: never hold the (N, latent) codes
        labels, D0 = sampled_init(ae, source, k, d, sample=int(sample), n_init=n_init, seed=seed, backend=backend,
                                  rng=rng, device=device)
        info["kmeans_init"] = f"k-means fitted on a seeded sample of {sample} codes"
    return labels, D0, info
