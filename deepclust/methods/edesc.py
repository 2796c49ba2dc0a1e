"""EDESC: efficient deep embedded subspace clustering (Cai et al., CVPR 2022).

The basis-representation model SCDSC extends (SCDSC's reference [18], the "Baseline" row of its
Table 5). ``k`` subspaces of ``d`` basis vectors each live in the autoencoder's latent space as
one matrix ``D`` (latent, k*d). A sample's soft assignment is its projection energy on each
subspace (SCDSC eq. 3, :func:`deepclust.losses.subspace.subspace_affinity`); training minimises

    reconstruction + kl_weight * KL(P || S) + basis_weight * (between + unit)      (EDESC)

with ``P`` the DEC-style sharpened target of ``S`` (SCDSC eq. 8 form) and the two basis terms of
SCDSC eq. 4. Initialisation: pretrain the autoencoder, k-means on the codes, then ``D_j`` = the
top-``d`` right singular vectors of cluster ``j``'s codes (no centring).

The basis model and its initialisation are shared with SCDSC (:class:`deepclust.nn.subspace.BasisClusteringNet`,
:func:`deepclust.cluster.subspace.init_bases`, :mod:`deepclust.nn.pretrain`); this module holds
the :class:`EDESC` estimator for vectors and images (flattened, with the d-500-500-2000-z MLP
autoencoder) and its training step.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deepclust import distributed as ddp
from deepclust.base import DeepClusterer
from deepclust.cluster.kmeans import kmeans_codes
from deepclust.cluster.subspace import init_bases
from deepclust.losses.dec import kl_divergence, target_distribution
from deepclust.nn import seeded_init
from deepclust.nn.mlp_ae import MLPAutoencoder
from deepclust.nn.pretrain import encode_all, pretrain_autoencoder
from deepclust.nn.subspace import BasisClusteringNet
from deepclust.training import History, device_data, fit_loop, minibatches, take_rows

__all__ = ["EDESC"]


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
    drop_last = ddp.drop_short_last(n, batch_size)  # no rank left without rows (never in one process)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = take_rows(X, idx, device)
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
    precision : {"fp32", "bf16", "auto"}, default "fp32"
        bf16 autocast of the training steps on CUDA ("auto": where supported); fp32 on the CPU.

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
        precision: str = "fp32",
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
        self.precision = precision
        self.verbose = verbose

    def _fit(self, X: np.ndarray) -> None:
        k, d = int(self.n_clusters), int(self.n_subspace_dims)
        if d < 1 or d > int(self.latent):
            raise ValueError(f"n_subspace_dims must be between 1 and latent={self.latent}, got {d}")
        Xt = device_data(torch.from_numpy(X), self.device_)  # on the device once, where it fits
        with seeded_init(self.seed_):
            ae = MLPAutoencoder(X.shape[1], hidden=tuple(self.hidden), latent=int(self.latent))
        net = BasisClusteringNet(ae, n_clusters=k, d=d, eta=float(self.eta)).to(self.device_)
        history = History()
        # the settings both stages share: generators, history, progress, checkpoints
        run = dict(generator=self._torch_gen, device=self.device_, history=history, verbose=self.verbose,
                   checkpoint_path=self.checkpoint_path, resume=bool(self.resume), rng=self._rng)
        pretrain_autoencoder(ae=ae, X=Xt, epochs=int(self.pretrain_epochs), batch_size=int(self.batch_size),
                             lr=float(self.pretrain_lr), **run)
        z = encode_all(ae, Xt, batch_size=4096, device=self.device_)
        init_labels, _ = ddp.run_on_rank0(  # rank 0's k-means on every rank
            lambda: kmeans_codes(z, k, n_init=int(self.kmeans_n_init), seed=self.seed_)
        )
        with torch.no_grad():
            net.D.copy_(torch.from_numpy(init_bases(z, init_labels, k, d, rng=self._rng)))
        _train_edesc(net=net, X=Xt, epochs=int(self.epochs), batch_size=int(self.batch_size), lr=float(self.lr),
                     kl_weight=float(self.kl_weight), basis_weight=float(self.basis_weight), **run)
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
