"""EDESC: efficient deep embedded subspace clustering (Cai et al., CVPR 2022).

The basis-representation model SCDSC extends (SCDSC's reference [18], the "Baseline" row of its
Table 5). ``k`` subspaces of ``d`` basis vectors each live in the autoencoder's latent space as
one matrix ``D`` (latent, k*d). A sample's soft assignment is its projection energy on each
subspace (SCDSC eq. 3, :func:`deepclust.losses.subspace.subspace_affinity`); training minimises

    reconstruction + kl_weight * KL(P || S) + basis_weight * (between + unit)      (EDESC)

with ``P`` the DEC-style sharpened target of ``S`` (SCDSC eq. 8 form) and the two basis terms of
SCDSC eq. 4. Initialisation: pretrain the autoencoder, k-means on the codes, then ``D_j`` = the
top-``d`` right singular vectors of cluster ``j``'s codes (no centring).

This module holds the building blocks SCDSC reuses (:func:`init_bases`,
:class:`BasisClusteringNet`) and the :class:`EDESC` estimator for vectors and images (flattened,
with the d-500-500-2000-z MLP autoencoder).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepclust import distributed as ddp
from deepclust.base import DeepClusterer
from deepclust.losses.dec import kl_divergence, target_distribution
from deepclust.losses.subspace import basis_constraint, subspace_affinity
from deepclust.nn.mlp_ae import MLPAutoencoder
from deepclust.stopping import plateau_rule
from deepclust.training import History, fit_loop, minibatches

__all__ = ["EDESC", "BasisClusteringNet", "init_bases", "kmeans_codes", "seeded_init"]


def init_bases(
    z: np.ndarray, labels: np.ndarray, n_clusters: int, d: int, *, rng: np.random.Generator
) -> np.ndarray:
    """Initial bases (latent, k*d): per cluster the top-``d`` right singular vectors of its codes.

    No centring (the subspaces pass through the origin). A cluster with fewer than ``d``
    independent codes (or none) gets its missing directions from a random Gaussian matrix,
    orthonormalised, so ``D`` always has ``k*d`` unit columns.
    """
    latent = z.shape[1]
    if d > latent:
        raise ValueError(f"n_subspace_dims={d} exceeds the latent dimension {latent}")
    D = np.zeros((latent, n_clusters * d), dtype=np.float64)
    for j in range(n_clusters):
        Zj = z[labels == j].astype(np.float64)
        V = np.zeros((0, latent))
        if Zj.shape[0] > 0:
            _, sv, Vt = np.linalg.svd(Zj, full_matrices=False)
            V = Vt[: min(d, int((sv > sv.max() * 1e-10).sum()) if sv.size else 0)]
        V = complete_basis(V, d, rng)
        D[:, j * d : (j + 1) * d] = V.T
    return D.astype(np.float32)


def complete_basis(V: np.ndarray, d: int, rng: np.random.Generator) -> np.ndarray:
    """(r, latent) orthonormal rows -> (d, latent): missing directions drawn at random, orthogonal to V."""
    if V.shape[0] >= d:
        return V
    R = rng.normal(size=(d - V.shape[0], V.shape[1]))
    R -= (R @ V.T) @ V
    Q, _ = np.linalg.qr(R.T)
    return np.concatenate([V, Q.T[: d - V.shape[0]]], axis=0)


def kmeans_codes(
    z: np.ndarray, n_clusters: int, *, n_init: int, seed: int, backend: str = "sklearn",
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means on the codes, ``n_init`` restarts, the lowest inertia kept (label-free).

    ``backend="sklearn"`` (Lloyd/Elkan, to convergence) or ``"faiss"`` (100 Lloyd iterations per
    restart; ~10x faster on wide codes such as SCDSC's 1,568-dim ones). ``sample_weight``
    (n,) weighs each row (e.g. a mini-cluster mean by its number of pixels).
    """
    if backend == "faiss":
        import faiss

        zz = np.ascontiguousarray(z, dtype=np.float32)
        km = faiss.Kmeans(
            zz.shape[1],
            int(n_clusters),
            niter=100,
            nredo=int(n_init),
            seed=int(seed),
            max_points_per_centroid=max(256, zz.shape[0]),
            verbose=False,
        )
        w = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float32)
        km.train(zz, weights=w)
        _, lab = km.index.search(zz, 1)
        return lab.ravel().astype(np.int64), km.centroids.copy()
    if backend != "sklearn":
        raise ValueError(f"kmeans_backend must be 'sklearn' or 'faiss', got {backend!r}")
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, n_init=int(n_init), random_state=seed).fit(z, sample_weight=sample_weight)
    return km.labels_.astype(np.int64), km.cluster_centers_


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


@contextlib.contextmanager
def seeded_init(seed: int):
    """Seed torch's default generator for weight initialisation only, restoring it afterwards
    (layers draw their initial weights from the global generator; this keeps that local)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def encode_all(ae: nn.Module, X: torch.Tensor, *, batch_size: int, device) -> np.ndarray:
    """Codes of ``X`` in eval mode, in batches (no autograd memory).

    Under a process group this is a collective: every rank encodes its shard of the rows and all
    ranks get all codes in the original order (:func:`deepclust.distributed.map_rows`).
    """
    was = ae.training
    ae.eval()

    def codes(a: int, b: int) -> torch.Tensor:
        if b <= a:  # an empty shard (fewer rows than ranks): no rows of the right width
            return ae.encode(X[:1].to(device)).cpu()[:0]
        return torch.cat([ae.encode(X[i : min(i + batch_size, b)].to(device)).cpu()
                          for i in range(a, b, batch_size)])

    out = ddp.map_rows(codes, X.shape[0])
    ae.train(was)
    return out.numpy()


def pretrain_autoencoder(
    *,
    ae: nn.Module,
    X: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    device,
    history: History,
    verbose: bool = False,
    checkpoint_path: str | None = None,
    resume: bool = False,
    rng: np.random.Generator | None = None,
    plateau_tol: float | None = None,
    plateau_patience: int = 10,
) -> int:
    """Reconstruction (MSE) pretraining with Adam on shuffled mini-batches.

    ``epochs`` is a cap: with ``plateau_tol`` set, pretraining stops as soon as the epoch-mean
    reconstruction error has plateaued (:func:`deepclust.stopping.plateau_reached`: the last
    ``plateau_patience`` epochs lowered the best error by less than a ``plateau_tol`` share), a
    label-free rule. Returns the number of epochs run.
    """
    if epochs <= 0:
        return 0
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    n = X.shape[0]
    distributed = ddp.world_size() > 1
    drop_last = n >= batch_size and 0 < n % batch_size < ddp.world_size()  # never in one process

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = X[idx].to(device)
        _, x_hat = ae(x)
        rec = F.mse_loss(x_hat, x)
        if distributed:  # this rank's share of the union-batch mean
            return {"loss": rec * ddp.shard_weight(len(idx)), "rec": rec}
        return {"loss": rec, "rec": rec}

    fit_loop(
        model=ae,
        optimizer=opt,
        step=step,
        epochs=epochs,
        stage="pretrain",
        history=history,
        batches=lambda e: minibatches(n, batch_size, generator=generator, drop_last=drop_last, shard=True),
        generator=generator,
        checkpoint_path=checkpoint_path,
        checkpoint_every=1 if checkpoint_path else 0,
        resume=resume,
        rng=rng,
        verbose=verbose,
        on_epoch_end=plateau_rule(history, "pretrain", "rec", tol=plateau_tol, patience=plateau_patience),
    )
    return history.epochs("pretrain")


def _train_edesc(
    *,
    net: BasisClusteringNet,
    X: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    kl_weight: float,
    basis_weight: float,
    generator: torch.Generator,
    device,
    history: History,
    verbose: bool,
    checkpoint_path: str | None = None,
    resume: bool = False,
    rng: np.random.Generator | None = None,
) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = X.shape[0]
    distributed = ddp.world_size() > 1
    drop_last = n >= batch_size and 0 < n % batch_size < ddp.world_size()  # never in one process

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = X[idx].to(device)
        z, x_hat, s = net(x)
        rec = F.mse_loss(x_hat, x)
        between, unit = net.basis_terms()
        if distributed:
            # the target's soft frequencies f_j over the global batch (all ranks' rows); the
            # per-sample terms become this rank's share of the union-batch mean
            f = ddp.all_reduce_sum(s.detach().sum(dim=0))
            kl = kl_divergence(target_distribution(s, counts=f), s, reduction="batchmean")
            loss = ddp.shard_weight(len(idx)) * (rec + kl_weight * kl) + basis_weight * (between + unit)
        else:
            kl = kl_divergence(target_distribution(s), s, reduction="batchmean")  # target detached
            loss = rec + kl_weight * kl + basis_weight * (between + unit)
        return {"loss": loss, "rec": rec, "kl": kl, "basis_between": between, "basis_unit": unit}

    fit_loop(
        model=net,
        optimizer=opt,
        step=step,
        epochs=epochs,
        stage="train",
        history=history,
        batches=lambda e: minibatches(n, batch_size, generator=generator, drop_last=drop_last, shard=True),
        generator=generator,
        checkpoint_path=checkpoint_path,
        checkpoint_every=1 if checkpoint_path else 0,
        resume=resume,
        rng=rng,
        verbose=verbose,
    )


class EDESC(DeepClusterer):
    """EDESC on vectors (images are flattened), with the MLP autoencoder.

    Parameters
    ----------
    n_clusters : int
    n_subspace_dims : int, default 5
        ``d``, basis vectors per subspace.
    eta : float, default 5.0
        Smoothing constant of the affinity (eq. 3).
    kl_weight : float, default 0.1
        Weight of ``KL(P || S)`` (our choice following EDESC's setting as we read it).
    basis_weight : float, default 1e-3
        Weight of each of the two basis terms (eq. 4).
    hidden, latent : autoencoder sizes (d-500-500-2000-latent).
    pretrain_epochs, epochs, batch_size, lr, pretrain_lr : training schedule.
    kmeans_n_init : int, default 30
    checkpoint_path : str or None
        Checkpoint file written after every epoch of both stages (None: no checkpoints).
    resume : bool, default False
        Continue an interrupted fit from ``checkpoint_path`` (same data and parameters).
    random_state, device, verbose

    Attributes
    ----------
    labels_, model_ (BasisClusteringNet), history_, selection_, diagnostics_
    """

    input_kind = "vectors"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_subspace_dims: int = 5,
        eta: float = 5.0,
        kl_weight: float = 0.1,
        basis_weight: float = 1e-3,
        hidden: tuple[int, ...] = (500, 500, 2000),
        latent: int = 20,
        pretrain_epochs: int = 50,
        epochs: int = 100,
        batch_size: int = 512,
        lr: float = 1e-3,
        pretrain_lr: float = 1e-3,
        kmeans_n_init: int = 30,
        checkpoint_path: str | None = None,
        resume: bool = False,
        random_state: int | None = None,
        device: str = "auto",
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.checkpoint_path = checkpoint_path
        self.resume = resume
        self.n_subspace_dims = n_subspace_dims
        self.eta = eta
        self.kl_weight = kl_weight
        self.basis_weight = basis_weight
        self.hidden = hidden
        self.latent = latent
        self.pretrain_epochs = pretrain_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.pretrain_lr = pretrain_lr
        self.kmeans_n_init = kmeans_n_init
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _fit(self, X: np.ndarray) -> None:
        k, d = int(self.n_clusters), int(self.n_subspace_dims)
        if d < 1 or d > int(self.latent):
            raise ValueError(f"n_subspace_dims must be between 1 and latent={self.latent}, got {d}")
        Xt = torch.from_numpy(X)
        with seeded_init(self.seed_):
            ae = MLPAutoencoder(X.shape[1], hidden=tuple(self.hidden), latent=int(self.latent))
        net = BasisClusteringNet(ae, n_clusters=k, d=d, eta=float(self.eta)).to(self.device_)
        history = History()
        pretrain_autoencoder(
            ae=ae,
            X=Xt,
            epochs=int(self.pretrain_epochs),
            batch_size=int(self.batch_size),
            lr=float(self.pretrain_lr),
            generator=self._torch_gen,
            device=self.device_,
            history=history,
            verbose=self.verbose,
            checkpoint_path=self.checkpoint_path,
            resume=bool(self.resume),
            rng=self._rng,
        )
        z = encode_all(ae, Xt, batch_size=4096, device=self.device_)
        init_labels, _ = ddp.run_on_rank0(  # rank 0's k-means on every rank
            lambda: kmeans_codes(z, k, n_init=int(self.kmeans_n_init), seed=self.seed_)
        )
        with torch.no_grad():
            net.D.copy_(torch.from_numpy(init_bases(z, init_labels, k, d, rng=self._rng)))
        _train_edesc(
            net=net,
            X=Xt,
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            kl_weight=float(self.kl_weight),
            basis_weight=float(self.basis_weight),
            generator=self._torch_gen,
            device=self.device_,
            history=history,
            verbose=self.verbose,
            checkpoint_path=self.checkpoint_path,
            resume=bool(self.resume),
            rng=self._rng,
        )
        self.model_ = net
        self.history_ = history
        self.labels_ = ddp.broadcast_array(self._predict(X))  # rank 0's labels on every rank
        self.init_labels_ = init_labels
        self.selection_ = "last epoch (no model selection)"
        self.diagnostics_ = {
            "epochs": int(self.epochs),
            "pretrain_epochs": int(self.pretrain_epochs),
        }

    @torch.no_grad()
    def _predict(self, X: np.ndarray) -> np.ndarray:
        net = self.model_
        z = torch.from_numpy(
            encode_all(net.autoencoder, torch.from_numpy(X), batch_size=4096, device=self.device_)
        ).to(self.device_)
        return net.affinity(z).argmax(dim=1).cpu().numpy().astype(np.int64)
